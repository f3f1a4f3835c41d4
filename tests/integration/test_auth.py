"""Bearer tokens scoped by key prefix (issue 12; /work/notes/issue12-contract.md).

A lazykvd started with `[auth] tokens_file = PATH` (c.extra_kvd) beside the
cluster's own lazykvd (which has no [auth]). Tokens are made with
`lazykv-admin token NAME PERMISSIONS PREFIX...` (the token on stderr, the
line to add on stdout), or written by hand where the file format itself is
under test. Every route is asked with no token, an unknown token, a token
without the permission, a token whose prefixes do not cover the key or the
list, and the right token, and each answer's status is asserted exactly:
401 (with `WWW-Authenticate: Bearer realm="lazykv"`) for a missing or
unknown token, 403 for a known one that may not, the route's usual status
otherwise. A refused write stores nothing (checked row by row in every
partition); a refused upload is answered after its headers alone and the
connection closed. SIGHUP reloads the file; a malformed file is refused
whole at start-up (exit 2, one line `PATH:LINE: reason`) and at reload (the
old tokens stay, one log line `PATH:LINE:`). The lazykv command and
liblazykv (through build/lkv_test) map 401 and 403 to 77 and
LKV_ERR_UNAUTHORIZED / LKV_ERR_FORBIDDEN.

Every lazykvd a test starts is stopped in a finally (Auth is a context
manager); every key lives under auth/ and is deleted at the end.
"""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import harness
from harness import free_port, wait_for

q = urllib.parse.quote
REALM = 'Bearer realm="lazykv"'
TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")
APP = "auth/app/"           # the prefix of the scoped tokens


# ---- tokens ------------------------------------------------------------------------------

def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def make_token(c, name, perms, *prefixes):
    """lazykv-admin token NAME PERMS PREFIX...: checks its output's contract
    and returns (token text, line for the tokens file)."""
    p = c.admin("token", name, perms, *prefixes)
    assert p.returncode == 0, p
    out, err = p.stdout.decode(), p.stderr.decode()
    assert out.count("\n") == 1 and out.endswith("\n"), ("stdout is not one line", out)
    assert err.count("\n") == 1 and err.endswith("\n"), ("stderr is not one line", err)
    token = err[:-1]
    assert TOKEN_TEXT.fullmatch(token), ("not 43 chars of base64url", token)
    assert len(base64.urlsafe_b64decode(token + "=")) == 32, token
    assert out[:-1].split(" ") == [name, perms, sha(token)] + list(prefixes), (out, token)
    return token, out[:-1]


_TOKENS = {}


def tokens(c):
    """The tokens of the route matrix, made once per cluster:
    name -> (token text, tokens file line)."""
    if c.dir not in _TOKENS:
        _TOKENS[c.dir] = {
            "star": make_token(c, "star", "rwa", "*"),
            "rw": make_token(c, "rw", "rw", APP),
            "ro": make_token(c, "ro", "r", APP),
            "wo": make_token(c, "wo", "w", APP),
            "adm": make_token(c, "adm", "a", APP),
            "multi": make_token(c, "multi", "rw", "auth/one/", "auth/two/"),
        }
    return _TOKENS[c.dir]


def unknown_token():
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def write_tokens(path, lines, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.chmod(path, mode)


# ---- a lazykvd with [auth] -----------------------------------------------------------------

class Auth:
    """A lazykvd whose [auth] tokens_file holds lines (name: the files' base
    name). req(..., token=NAME|text|None) sends `Authorization: Bearer`."""

    def __init__(self, c, lines, name="auth"):
        self.c = c
        self.tokens_path = os.path.join(c.dir, name + ".tokens")
        write_tokens(self.tokens_path, lines)
        cfg = c.kvd_config({}, append="[auth]\ntokens_file = %s" % self.tokens_path,
                           name=name + ".cfg")
        self.proc, self.port, self.log = c.spawn_kvd(cfg)
        self.known = {}

    def __enter__(self):
        return self

    def __exit__(self, etype, value, tb):
        rc = harness.Cluster.stop_extra(self.proc)
        if etype is None:
            assert rc == 0, ("the [auth] lazykvd exited with %s" % rc, self.log_text()[-3000:])

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def req(self, method, target, token=None, body=None, headers=None, timeout=30, scheme="Bearer"):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "%s %s" % (scheme, self.known.get(token, token))
        return self.c.request(method, target, body, h, timeout=timeout, port=self.port)


def matrix_server(c):
    t = tokens(c)
    a = Auth(c, ["# the route matrix"] + [line for _, line in t.values()], name="matrix")
    a.known = {name: tok for name, (tok, _) in t.items()}
    return a


def kpath(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")


def lpath(prefix=None, canonical=False, extra=""):
    root = "/canonicalbucket/" if canonical else "/bucket/"
    if prefix is None:
        return root + ("?" + extra.lstrip("&") if extra else "")
    return "%s?prefix=%s%s" % (root, q(prefix.encode(), safe=""), extra)


def problem(r, status):
    assert r.status == status, (status, r)
    assert r.header("Content-Type").startswith("application/problem+json"), r
    doc = r.json()
    assert doc["status"] == status, doc


def check(a, method, target, cases, body=None, headers=None):
    """cases: {who: status}, who a token name, "none" or "unknown". Each
    401 carries WWW-Authenticate and a problem document, each 403 a problem
    document; no answer echoes a token. Returns {who: Response}."""
    out = {}
    for who, status in cases.items():
        token = None if who == "none" else unknown_token() if who == "unknown" else who
        r = a.req(method, target, token, body=body, headers=headers)
        assert r.status == status, (method, target, who, status, r)
        if status == 401:
            assert r.header("WWW-Authenticate") == REALM, (method, target, who, r)
        if status in (401, 403) and method != "HEAD":
            problem(r, status)
        for tok in a.known.values():
            assert tok.encode() not in r.body and tok not in str(r.headers), (who, r)
        out[who] = r
    return out


def stored(c, key):
    """Every partition's row of key (None where absent)."""
    return [c.row(i, key) for i in range(c.n)]


def cleanup(a, prefix="auth/"):
    r = a.req("DELETE", lpath(prefix, canonical=True), "star")
    assert r.status == 202, r


# ---- lazykv-admin token -------------------------------------------------------------------------

def test_admin_token_prints_the_token_once_and_the_line_to_add(c):
    t1, line1 = make_token(c, "ci-bot", "rw", APP, "auth/two/")
    t2, line2 = make_token(c, "ci-bot", "rw", APP, "auth/two/")
    assert t1 != t2 and line1 != line2, "two runs made the same token"
    make_token(c, "every.thing@host_1-x", "arw", "*")
    make_token(c, "n" * 64, "a", "x")
    # usage errors: exit 2, one line on stderr, nothing on stdout
    for args in (("bad", "rx", APP), ("bad", "rr", APP), ("bad", "", APP), ("bad", "rwar", APP),
                 ("bad name", "r", APP), ("bad!", "r", APP), ("n" * 65, "r", APP), ("", "r", APP),
                 ("bad", "r")):
        p = c.admin("token", *args)
        assert p.returncode == 2, (args, p)
        assert p.stdout == b"" and p.stderr.count(b"\n") == 1 and p.stderr.endswith(b"\n"), (args, p)
    # it touches no database: the same with every partition unreachable
    dead = os.path.join(c.dir, "dead-partitions.cfg")
    text = re.sub(r"(?m)^port = \d+$", "port = %d" % free_port(), open(c.config).read())
    with open(dead, "w") as f:
        f.write(text)
    os.chmod(dead, 0o600)
    p = c.admin("token", "offline", "r", APP, config=dead, timeout=30)
    assert p.returncode == 0 and TOKEN_TEXT.fullmatch(p.stderr.decode().rstrip("\n")), p


# ---- the route matrix -----------------------------------------------------------------------------

def test_keys_every_method_every_kind_of_token(c):
    with matrix_server(c) as a:
        try:
            for canonical in (False, True):
                k = APP + ("canon/" if canonical else "lazy/") + "k1"
                out = "auth/other/" + ("canon/" if canonical else "lazy/") + "k1"
                near = "auth/apple" + ("-canon" if canonical else "-lazy")   # shares "auth/app"
                for key in (k, out, near):
                    assert a.req("PUT", kpath(key, True), "star", b"value of " + key.encode()).status == 201
                # reads: r, inside the prefix
                for method in ("GET", "HEAD"):
                    rs = check(a, method, kpath(k, canonical),
                               {"none": 401, "unknown": 401, "wo": 403, "adm": 403, "multi": 403,
                                "ro": 200, "rw": 200, "star": 200})
                    if method == "GET":
                        assert rs["ro"].body == b"value of " + k.encode(), rs["ro"]
                    check(a, method, kpath(out, canonical), {"none": 401, "ro": 403, "rw": 403,
                                                            "star": 200})
                    check(a, method, kpath(near, canonical), {"ro": 403, "rw": 403, "star": 200})
                    # a key that does not exist is still outside: 403, not 404
                    check(a, method, kpath("auth/other/missing", canonical), {"ro": 403, "star": 404})
                    check(a, method, kpath(APP + "missing", canonical), {"ro": 404, "wo": 403})
                # the key is compared after percent-decoding
                check(a, "GET", ("/canonicalbucket/" if canonical else "/bucket/") +
                      q(k.encode(), safe=""), {"ro": 200, "wo": 403})
                check(a, "GET", ("/canonicalbucket/" if canonical else "/bucket/") +
                      q(out.encode(), safe="").replace("auth", "%61uth"), {"ro": 403, "star": 200})
                # writes: w, inside the prefix; every refusal stores nothing
                refused = APP + ("canon/" if canonical else "lazy/") + "refused"
                for method in ("PUT", "POST"):
                    check(a, method, kpath(refused, canonical),
                          {"none": 401, "unknown": 401, "ro": 403, "adm": 403, "multi": 403},
                          body=b"must not be stored")
                    check(a, method, kpath("auth/other/refused", canonical),
                          {"rw": 403, "wo": 403}, body=b"must not be stored")
                    check(a, method, kpath(near + "-refused", canonical), {"rw": 403},
                          body=b"must not be stored")
                check(a, "DELETE", kpath(k, canonical),
                      {"none": 401, "unknown": 401, "ro": 403, "adm": 403, "multi": 403})
                check(a, "DELETE", kpath(out, canonical), {"rw": 403, "wo": 403})
                for key in (refused, "auth/other/refused", near + "-refused"):
                    assert stored(c, key) == [None] * c.n, (key, stored(c, key))
                for key in (k, out):
                    assert a.req("GET", kpath(key, True), "star").body == b"value of " + key.encode()
                # the right token
                w = APP + ("canon/" if canonical else "lazy/") + "written"
                check(a, "PUT", kpath(w, canonical), {"wo": 201}, body=b"one")
                check(a, "PUT", kpath(w, canonical), {"rw": 200}, body=b"two")
                check(a, "POST", kpath(w, canonical), {"rw": 201}, body=b"three")
                assert a.req("GET", kpath(w, True), "ro").body == b"three"
                check(a, "DELETE", kpath(w, canonical), {"wo": 202})
                check(a, "DELETE", kpath(w, canonical), {"rw": 404})
                check(a, "PUT", kpath("auth/other/x", canonical), {"star": 201}, body=b"x")
                check(a, "DELETE", kpath("auth/other/x", canonical), {"star": 202})
                # two prefixes: either one
                m = "auth/two/" + ("canon" if canonical else "lazy")
                check(a, "PUT", kpath(m, canonical), {"multi": 201, "rw": 403}, body=b"m")
                check(a, "GET", kpath("auth/one/none", canonical), {"multi": 404})
                check(a, "GET", kpath("auth/three/m", canonical), {"multi": 403})
        finally:
            cleanup(a)


def test_refresh_and_locks_need_w(c):
    with matrix_server(c) as a:
        try:
            k = APP + "lock"
            check(a, "PUT", kpath(k, True) + "?ttl=30", {"rw": 201}, body=b"holder",
                  headers={"If-None-Match": "*"})
            etag = a.req("GET", kpath(k, True), "ro").header("ETag")
            check(a, "PUT", kpath(k, True) + "?ttl=30&refresh=1",
                  {"none": 401, "ro": 403, "wo": 200}, headers={"If-Match": etag})
            # a blocking acquire is refused at once, not after its wait
            t0 = time.monotonic()
            check(a, "PUT", kpath(k, True) + "?ttl=30&wait=5", {"none": 401, "ro": 403},
                  body=b"other", headers={"If-None-Match": "*"})
            assert time.monotonic() - t0 < 3, "a refused lock acquisition waited"
            check(a, "PUT", kpath("auth/other/lock", True) + "?ttl=30&wait=5", {"rw": 403},
                  body=b"other", headers={"If-None-Match": "*"})
            assert stored(c, "auth/other/lock") == [None] * c.n
        finally:
            cleanup(a)


def test_lists_by_prefix(c):
    with matrix_server(c) as a:
        try:
            for key in (APP + "a", APP + "sub/b", "auth/apple", "auth/other/c", "auth/two/d"):
                assert a.req("PUT", kpath(key, True), "star", key.encode()).status == 201
            for canonical in (False, True):
                for extra in ("", "&values=1", "&limit=1"):
                    for method in ("GET", "HEAD"):
                        rs = check(a, method, lpath(APP, canonical, extra),
                                   {"none": 401, "unknown": 401, "wo": 403, "adm": 403,
                                    "multi": 403, "ro": 200, "rw": 200, "star": 200})
                        if method == "GET" and extra != "&limit=1":
                            keys = rs["ro"].json()["keys"]
                            if extra:
                                assert [(e["key"], e["value"]) for e in keys] == [
                                    (APP + "a", APP + "a"), (APP + "sub/b", APP + "sub/b")], keys
                            else:
                                assert keys == [APP + "a", APP + "sub/b"], keys
                        # inside: a longer prefix
                        check(a, method, lpath(APP + "sub/", canonical, extra), {"ro": 200})
                        check(a, method, lpath(APP + "s", canonical, extra), {"ro": 200})
                        # outside: another prefix, one that merely shares a shorter start,
                        # the parent, the empty prefix, no prefix: 403, never a filtered list
                        for p in ("auth/other/", "auth/app", "auth/", "a", ""):
                            check(a, method, lpath(p, canonical, extra),
                                  {"none": 401, "ro": 403, "rw": 403, "star": 200})
                        check(a, method, lpath(None, canonical, extra),
                              {"none": 401, "ro": 403, "rw": 403, "star": 200})
                # the prefix is compared after decoding (%2F, %61)
                check(a, "GET", lpath(None, canonical, "prefix=%61uth%2Fapp%2F"), {"ro": 200})
                check(a, "GET", lpath(None, canonical, "prefix=%61uth%2Fapp"), {"ro": 403})
                # several prefixes: each one lists, their common parent does not
                r = check(a, "GET", lpath("auth/two/", canonical), {"multi": 200})["multi"]
                assert r.json()["keys"] == ["auth/two/d"], r
                check(a, "GET", lpath("auth/one/", canonical), {"multi": 200})
                check(a, "GET", lpath("auth/t", canonical), {"multi": 403})
                r = check(a, "GET", lpath("auth/", canonical), {"star": 200})["star"]
                assert r.json()["keys"] == sorted([APP + "a", APP + "sub/b", "auth/apple",
                                                   "auth/other/c", "auth/two/d"]), r
        finally:
            cleanup(a)


def waiting(a):
    """lazykv_watches_waiting of a's lazykvd (read with the adm token)."""
    m = re.search(rb"(?m)^lazykv_watches_waiting (\d+)$", a.req("GET", "/metrics", "adm").body)
    return int(m.group(1))


def test_key_and_prefix_watches(c):
    with matrix_server(c) as a:
        try:
            k = APP + "watched"
            assert a.req("PUT", kpath(k, True), "star", b"w").status == 201
            index = a.req("GET", kpath(k, True), "star").header("X-Lazykv-Index")
            for canonical in (False, True):
                # an index that differs: answered at once as a GET
                check(a, "GET", kpath(k, canonical) + "?index=1&wait=5", {"ro": 200})
                # refused at once, before the watch is parked
                t0 = time.monotonic()
                check(a, "GET", kpath(k, canonical) + "?index=%s&wait=5" % index,
                      {"none": 401, "unknown": 401, "wo": 403, "adm": 403})
                check(a, "GET", kpath("auth/other/w", canonical) + "?index=0&wait=5",
                      {"rw": 403, "ro": 403})
                assert time.monotonic() - t0 < 4, "a refused key watch was parked"
                # the right token: held until wait passes, then the unchanged GET
                t0 = time.monotonic()
                r = check(a, "GET", kpath(k, canonical) + "?index=%s&wait=1" % index,
                          {"ro": 200})["ro"]
                assert time.monotonic() - t0 >= 0.9 and r.body == b"w", r
                assert r.header("X-Lazykv-Index") == index, r

                # prefix watches
                lst = check(a, "GET", lpath(APP, canonical), {"ro": 200})["ro"]
                token = lst.header("X-Lazykv-Index")

                def watch(wait):
                    return lpath(APP, canonical, "&index=%s&wait=%d" % (q(token, safe=""), wait))
                t0 = time.monotonic()
                check(a, "GET", watch(5), {"none": 401, "unknown": 401, "wo": 403, "adm": 403})
                other = a.req("GET", lpath("auth/", canonical), "star").header("X-Lazykv-Index")
                check(a, "GET", lpath("auth/", canonical, "&index=%s&wait=5" % q(other, safe="")),
                      {"ro": 403, "rw": 403})
                check(a, "GET", lpath("auth/app", canonical, "&index=%s&wait=5" % q(other, safe="")),
                      {"ro": 403})
                assert time.monotonic() - t0 < 4, "a refused prefix watch was parked"
                t0 = time.monotonic()
                r = check(a, "GET", watch(1), {"ro": 200})["ro"]
                assert time.monotonic() - t0 >= 0.9 and r.header("X-Lazykv-Index") == token, r
                assert r.json()["keys"] == [k], r
                # a watch with the right token sees a change made by another token
                box = {}
                th = threading.Thread(target=lambda: box.update(r=a.req("GET", watch(20), "ro")))
                th.start()
                wait_for(lambda: waiting(a) == 1, timeout=10, what="the prefix watch to park")
                assert a.req("PUT", kpath(APP + "new", True), "wo", b"n").status == 201
                th.join(30)
                assert box["r"].status == 200 and box["r"].json()["keys"] == [APP + "new", k], box
                assert a.req("DELETE", kpath(APP + "new", True), "wo").status == 202
        finally:
            cleanup(a)


def test_delete_tree_by_prefix(c):
    with matrix_server(c) as a:
        try:
            tree = [APP + "tree/%d" % i for i in range(3)]
            tree2 = [APP + "tree2/%d" % i for i in range(2)]
            keep = ["auth/other/tree/0", "auth/apple/tree", APP + "treehouse"]
            for key in tree + tree2 + keep:
                assert a.req("PUT", kpath(key, True), "star", b"t").status == 201
            for canonical in (False, True):
                check(a, "DELETE", lpath(APP + "tree/", canonical),
                      {"none": 401, "unknown": 401, "ro": 403, "adm": 403, "multi": 403})
                for p in ("auth/other/", "auth/app", "auth/", ""):
                    check(a, "DELETE", lpath(p, canonical), {"rw": 403, "wo": 403})
                check(a, "DELETE", lpath(None, canonical), {"rw": 403, "none": 401})
                for key in tree + tree2 + keep:
                    assert a.req("GET", kpath(key, True), "star").status == 200, key
            r = check(a, "DELETE", lpath(APP + "tree/", False), {"wo": 202})["wo"]
            assert r.json()["deleted"] == 3, r
            r = check(a, "DELETE", lpath(APP + "tree2/", True), {"rw": 202})["rw"]
            assert r.json()["deleted"] == 2, r
            for key in tree + tree2:
                assert a.req("GET", kpath(key, True), "star").status == 404, key
            for key in keep:
                assert a.req("GET", kpath(key, True), "star").status == 200, key
            # a * token: any prefix; no prefix is still the usual 400
            check(a, "DELETE", lpath(None, True), {"star": 400})
            r = check(a, "DELETE", lpath("auth/other/", True), {"star": 202})["star"]
            assert r.json()["deleted"] == 1, r
        finally:
            cleanup(a)


def test_metrics_health_and_other_routes(c):
    with matrix_server(c) as a:
        rs = check(a, "GET", "/metrics", {"none": 401, "unknown": 401, "ro": 403, "rw": 403,
                                         "wo": 403, "multi": 403, "adm": 200, "star": 200})
        assert b"lazykv_http_connections" in rs["adm"].body, rs["adm"]
        # /health: reduced without a token or without a
        for who in ("none", "ro", "rw", "wo", "multi"):
            r = check(a, "GET", "/health", {who: 200})[who]
            assert r.header("Content-Type").startswith("application/json"), r
            assert json.loads(r.body) == {"status": "ok"}, (who, r)
        for who in ("adm", "star"):
            doc = check(a, "GET", "/health", {who: 200})[who].json()
            assert doc["auth"] == "on" and doc["status"] == "ok", doc
            assert doc["partitions"] == c.n and len(doc["partition"]) == c.n, doc
        check(a, "GET", "/health", {"unknown": 401})
        # other paths and methods: a known token, then the usual 404 / 405
        # (only GET /health goes without one); every case is tried, then all
        # the mismatches are reported together
        wrong = []
        for method, target, cases in [
                ("GET", "/nope", {"none": 401, "unknown": 401, "adm": 404, "ro": 404}),
                ("PATCH", kpath(APP + "k"), {"none": 401, "unknown": 401, "rw": 405}),
                ("PATCH", lpath(APP), {"none": 401, "unknown": 401, "rw": 405}),
                ("POST", lpath(APP), {"none": 401, "unknown": 401}),
                ("DELETE", "/health", {"none": 401, "unknown": 401, "adm": 405, "ro": 405}),
                ("POST", "/health", {"none": 401, "adm": 405}),
                ("POST", "/metrics", {"none": 401, "unknown": 401, "adm": 405}),
                ("DELETE", "/nope", {"none": 401, "ro": 404})]:
            for who, status in cases.items():
                try:
                    r = check(a, method, target, {who: status})[who]
                    if status == 405:
                        allow = "GET, HEAD" if target in ("/health", "/metrics") else \
                            "GET, HEAD, DELETE" if target.endswith("?prefix=auth%2Fapp%2F") else \
                            "GET, HEAD, POST, PUT, DELETE"
                        assert r.header("Allow") == allow, (method, target, r)
                except AssertionError as e:
                    wrong.append(str(e)[:300])
        assert wrong == [], "\n".join(wrong)


def test_authorization_header_forms_and_query_tokens(c):
    with matrix_server(c) as a:
        try:
            k = APP + "forms"
            assert a.req("PUT", kpath(k, True), "star", b"f").status == 201
            tok = a.known["ro"]
            target = kpath(k, True)

            def status(value, path=target):
                h = {} if value is None else {"Authorization": value}
                r = c.request("GET", path, headers=h, port=a.port)
                if r.status == 401:
                    assert r.header("WWW-Authenticate") == REALM, (value, r)
                    problem(r, 401)
                assert tok.encode() not in r.body, r
                return r.status

            assert status("Bearer " + tok) == 200
            assert status("bearer " + tok) == 200          # the scheme is case-insensitive
            assert status("BEARER " + tok) == 200
            for bad in ("Basic " + base64.b64encode(("ro:" + tok).encode()).decode(),
                        "Basic " + tok, tok, "Bearer", "Bearer ", "Token " + tok,
                        "Bearer " + tok[:-1], "Bearer " + tok + "x", "Bearer " + tok.upper(),
                        "Bearer " + sha(tok)):
                assert status(bad) == 401, bad
            # not taken from the query string
            for query in ("?token=", "?access_token=", "?authorization=Bearer%20"):
                assert status(None, target + query + tok) == 401, query
                assert status(None, lpath(APP, True, "&token=" + tok)) == 401, query
            assert status(None, "/metrics?access_token=" + a.known["adm"]) == 401
            # never logged, whatever was sent where
            log = a.log_text()
            for t in a.known.values():
                assert t not in log, "a token is in lazykvd's log"
        finally:
            cleanup(a)


def test_star_token_reaches_everything(c):
    with matrix_server(c) as a:
        try:
            for canonical in (False, True):
                for key in ("auth/z", "auth/other/z", "authz"):
                    check(a, "PUT", kpath(key, canonical), {"star": 201}, body=b"z")
                    check(a, "GET", kpath(key, True), {"star": 200})
                    check(a, "HEAD", kpath(key, True), {"star": 200})
                    check(a, "DELETE", kpath(key, canonical), {"star": 202})
                check(a, "GET", lpath(None, canonical), {"star": 200})
                check(a, "GET", lpath("", canonical, "&values=1"), {"star": 200})
                check(a, "GET", lpath("zzz", canonical), {"star": 200})
            check(a, "GET", "/metrics", {"star": 200})
        finally:
            cleanup(a)


def read_response(s, deadline):
    """Reads one HTTP response (headers and Content-Length body) from s;
    returns its bytes (what arrived by deadline)."""
    data = b""
    while time.monotonic() < deadline:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?im)^content-length:\s*(\d+)\r?$", head)
            if m and len(rest) >= int(m.group(1)):
                return data
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def closed_by_server(s, deadline):
    """True when the server closes s (EOF or reset) before deadline."""
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if s.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
    return False


def test_upload_refused_before_it_is_read(c):
    with matrix_server(c) as a:
        cases = [(None, APP + "big-none", 401), ("Bearer " + unknown_token(), APP + "big-unknown", 401),
                 ("Bearer " + a.known["ro"], APP + "big-ro", 403),
                 ("Bearer " + a.known["rw"], "auth/other/big-rw", 403)]
        for canonical in (False, True):
            for auth, key, status in cases:
                s = socket.create_connection(("127.0.0.1", a.port))
                try:
                    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                            "Content-Length: 104857600\r\n" % kpath(key, canonical))
                    if auth:
                        head += "Authorization: %s\r\n" % auth
                    t0 = time.monotonic()
                    s.sendall((head + "\r\n").encode())
                    resp = read_response(s, t0 + 5)
                    assert resp.startswith(b"HTTP/1.1 %d " % status), (key, resp[:300])
                    head_bytes, _, body = resp.partition(b"\r\n\r\n")
                    if status == 401:
                        assert re.search(rb'(?im)^www-authenticate: Bearer realm="lazykv"\r?$',
                                         head_bytes), head_bytes
                    assert json.loads(body)["status"] == status, resp
                    assert closed_by_server(s, time.monotonic() + 5), \
                        ("the connection stayed open after a refused upload", key)
                finally:
                    s.close()
                assert stored(c, key) == [None] * c.n, key
        assert c.serves(a.port)


# ---- the tokens file -----------------------------------------------------------------------------

def test_tokens_file_format_comments_tabs_and_escapes(c):
    hand = {"spaced": "hand-made token one", "star": "hand-made-two", "tabbed": "hand-made-three"}
    lines = ["# comments and blank lines are ignored", "",
             "   # an indented comment", "\t",
             "spaced r %s auth/sp%%20ace/" % sha(hand["spaced"]),
             "star\trw \t%s\t%%2A" % sha(hand["star"]),      # a literal '*', not every key
             "tabbed\twr\t%s\tauth/t1/  auth/t2/" % sha(hand["tabbed"])]
    with Auth(c, lines, name="format") as a:
        a.known = dict(hand)
        k = "auth/sp ace/k"
        assert c.request("PUT", kpath(k, True), b"sp").status == 201   # the cluster's lazykvd
        try:
            check(a, "GET", kpath(k, True), {"spaced": 200, "star": 403, "tabbed": 403})
            check(a, "GET", kpath("auth/sp%20ace/k", True), {"spaced": 403})
            check(a, "GET", lpath("auth/sp ace/", True), {"spaced": 200})
            check(a, "PUT", kpath("*x", True), {"star": 201}, body=b"*")
            check(a, "PUT", kpath("x", True), {"star": 403}, body=b"*")
            check(a, "GET", lpath(None, True), {"star": 403})
            check(a, "PUT", kpath("auth/t2/k", True), {"tabbed": 201}, body=b"t")
            check(a, "PUT", kpath("auth/t3/k", True), {"tabbed": 403}, body=b"t")
            assert stored(c, "x") == [None] * c.n
        finally:
            for key in (k, "*x", "auth/t2/k"):
                c.request("DELETE", kpath(key, True))


def start_refused(c, cfg):
    """Starts lazykvd with cfg; asserts it exits 2 within 30 s with exactly
    one line on stderr, starting with "lazykvd: "; returns that line."""
    p = subprocess.Popen(c.kvd_args(cfg, free_port()), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("lazykvd started with %s" % open(cfg).read())
    assert p.returncode == 2, (p.returncode, out, err)
    err = err.decode(errors="replace")
    assert err.count("\n") == 1 and err.endswith("\n") and err.startswith("lazykvd: "), err
    return err[:-1]


def test_start_refused_for_a_tokens_file_readable_by_others(c):
    tok, line = tokens(c)["ro"]
    path = os.path.join(c.dir, "readable.tokens")
    cfg = c.kvd_config({}, append="[auth]\ntokens_file = %s" % path, name="readable.cfg")
    for mode in (0o644, 0o604, 0o666):
        write_tokens(path, [line], mode)
        err = start_refused(c, cfg)
        assert "readable by others" in err and path in err, (oct(mode), err)
    # readable by its group only: starts
    write_tokens(path, [line], 0o640)
    proc, port, _ = c.spawn_kvd(cfg)
    try:
        r = c.request("GET", kpath(APP + "missing"), headers={"Authorization": "Bearer " + tok},
                      port=port)
        assert r.status == 404, r
    finally:
        assert harness.Cluster.stop_extra(proc) == 0
    # missing: the line names the key and the path
    missing = os.path.join(c.dir, "no-such.tokens")
    cfg = c.kvd_config({}, append="[auth]\ntokens_file = %s" % missing, name="tokens-file-missing.cfg")
    err = start_refused(c, cfg)
    assert "tokens_file" in err and missing in err, err


def test_start_refused_for_a_malformed_tokens_file(c):
    good = sha("good-token")
    other = sha("other-token")
    head = ["# line 1", "", "good rw %s auth/" % good]
    bad = {
        "bad hex": "b r %s auth/" % ("g" * 64),
        "upper-case hex": "b r %s auth/" % other.upper(),
        "short hex": "b r %s auth/" % other[:63],
        "long hex": "b r %s0 auth/" % other,
        "unknown permission": "b rx %s auth/" % other,
        "repeated permission": "b rr %s auth/" % other,
        "no permission": "b %s auth/" % other,
        "duplicate name": "good r %s auth/" % other,
        "duplicate hash": "b r %s auth/" % good,
        "missing prefix": "b r %s" % other,
        "bad escape": "b r %s auth/%%zz" % other,
        "short escape": "b r %s auth/%%2" % other,
        "bad name": "b!d r %s auth/" % other,
        "long name": "%s r %s auth/" % ("n" * 65, other),
        "one field": "lonely",
    }
    path = os.path.join(c.dir, "malformed.tokens")
    cfg = c.kvd_config({}, append="[auth]\ntokens_file = %s" % path, name="malformed.cfg")
    for what, line in bad.items():
        write_tokens(path, head + [line])
        err = start_refused(c, cfg)
        assert "%s:4: " % path in err, (what, line, err)
    # the same lines are fine once corrected
    write_tokens(path, head + ["b r %s auth/" % other])
    proc, port, _ = c.spawn_kvd(cfg)
    try:
        for token in ("good-token", "other-token"):
            r = c.request("GET", kpath("auth/none"), headers={"Authorization": "Bearer " + token},
                          port=port)
            assert r.status == 404, (token, r)
    finally:
        assert harness.Cluster.stop_extra(proc) == 0


def test_sighup_reloads_the_tokens_file(c):
    t = {name: unknown_token() for name in ("a", "b", "c")}
    line = {"a": "a rw %s auth/" % sha(t["a"]), "b": "b ra %s auth/" % sha(t["b"]),
            "c": "c r %s auth/" % sha(t["c"])}
    with Auth(c, ["# a and b", line["a"], line["b"]], name="reload") as a:
        a.known = dict(t)
        k = "auth/reload"
        try:
            assert a.req("PUT", kpath(k, True), "a", b"r").status == 201
            index = a.req("GET", kpath(k, True), "b").header("X-Lazykv-Index")
            assert a.req("GET", kpath(k, True), "c").status == 401
            # a watch in flight with a's token
            box = {}
            th = threading.Thread(target=lambda: box.update(
                r=a.req("GET", kpath(k, True) + "?index=%s&wait=6" % index, "a")))
            th.start()

            def parked():
                m = re.search(rb"(?m)^lazykv_watches_waiting (\d+)$",
                              a.req("GET", "/metrics", "b").body)
                return m and int(m.group(1)) == 1
            wait_for(parked, timeout=5, what="the watch to park")
            # a removed token: refused from the next request on
            write_tokens(a.tokens_path, ["# b only", line["b"]])
            os.kill(a.proc.pid, signal.SIGHUP)
            wait_for(lambda: a.req("GET", kpath(k, True), "a").status == 401, timeout=10,
                     what="the removed token to be refused")
            assert a.req("GET", kpath(k, True), "b").status == 200
            assert a.req("PUT", kpath(k, True), "a", b"x").status == 401
            # the request in flight finished as it began
            th.join(15)
            assert box["r"].status == 200 and box["r"].body == b"r", box
            # a malformed file: rejected whole, the old set stays, one log line PATH:3:
            write_tokens(a.tokens_path, [line["b"], line["c"], "d r %s auth/" % ("x" * 64)])
            os.kill(a.proc.pid, signal.SIGHUP)
            where = "%s:3:" % a.tokens_path
            wait_for(lambda: where in a.log_text(), timeout=10, what="the log line " + where)
            assert a.req("GET", kpath(k, True), "b").status == 200
            assert a.req("GET", kpath(k, True), "c").status == 401, "a rejected file was used"
            assert a.req("GET", kpath(k, True), "a").status == 401
            lines = [l for l in a.log_text().splitlines() if where in l]
            assert len(lines) == 1, lines
            # corrected: the next SIGHUP takes it
            write_tokens(a.tokens_path, [line["b"], line["c"]])
            os.kill(a.proc.pid, signal.SIGHUP)
            wait_for(lambda: a.req("GET", kpath(k, True), "c").status == 200, timeout=10,
                     what="the corrected file to be loaded")
            assert a.req("GET", kpath(k, True), "b").status == 200
            log = a.log_text()
            for tok in t.values():
                assert tok not in log, "a token is in lazykvd's log"
            assert a.proc.poll() is None
        finally:
            c.request("DELETE", kpath(k, True))


# ---- without [auth] ----------------------------------------------------------------------

def test_without_auth_everything_as_before_and_health_says_off(c):
    doc = c.request("GET", "/health").json()
    assert doc["auth"] == "off" and doc["status"] == "ok", doc
    # an Authorization header is ignored
    h = {"Authorization": "Bearer " + unknown_token()}
    assert c.request("PUT", kpath("auth/noauth", True), b"n", h).status == 201
    assert c.request("GET", kpath("auth/noauth", True), headers=h).body == b"n"
    assert c.request("GET", "/metrics", headers=h).status == 200
    assert c.request("DELETE", kpath("auth/noauth", True), headers=h).status == 202


def warnings_about_auth(text):
    return [l for l in text.splitlines() if " warn: " in l and "auth" in l.lower()]


def test_without_auth_on_a_public_address_a_warning(c):
    port = free_port()
    args = c.kvd_args(c.config, port)
    args[args.index("--listen") + 1] = "0.0.0.0:%d" % port
    logpath = os.path.join(c.dir, "public-%d.log" % port)
    with open(logpath, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        wait_for(lambda: c.serves(port), what="the lazykvd on 0.0.0.0")
        wait_for(lambda: warnings_about_auth(open(logpath).read()), timeout=5,
                 what="a warning about running without [auth]")
    finally:
        assert harness.Cluster.stop_extra(proc) == 0
    assert warnings_about_auth(open(c.kvd_log, errors="replace").read()) == [], \
        "a warning on 127.0.0.1"


# ---- clients -------------------------------------------------------------------------------

def cli(c, port, *args, token=None, env_token=None, timeout=30):
    e = dict(os.environ)
    for name in ("LAZYKV_TOKEN", "LAZYKV_LOCK_TOKEN"):
        e.pop(name, None)
    e["LAZYKV_ENDPOINTS"] = "http://127.0.0.1:%d" % port
    if env_token is not None:
        e["LAZYKV_TOKEN"] = env_token
    cmd = [os.path.join(c.bindir, "lazykv")] + (["--token", token] if token is not None else [])
    return subprocess.run(cmd + list(args), capture_output=True, env=e, timeout=timeout)


def refused77(r, command):
    assert r.returncode == 77, (command, r)
    assert r.stdout == b"", r
    assert r.stderr.count(b"\n") == 1 and r.stderr.endswith(b"\n"), r
    assert r.stderr.startswith(b"lazykv: " + command.encode()), (command, r.stderr)


def test_lazykv_command_exits_77_on_401_and_403(c):
    with matrix_server(c) as a:
        t = a.known
        k = APP + "cli"
        try:
            r = cli(c, a.port, "put", k, "v", token=t["rw"])
            assert (r.returncode, r.stdout, r.stderr) == (0, b"", b""), r
            r = cli(c, a.port, "get", k, env_token=t["ro"])
            assert (r.returncode, r.stdout, r.stderr) == (0, b"v", b""), r
            r = cli(c, a.port, "ls", APP, token=t["ro"])
            assert (r.returncode, r.stdout, r.stderr) == (0, (k + "\n").encode(), b""), r
            r = cli(c, a.port, "health")
            assert r.returncode == 0 and json.loads(r.stdout) == {"status": "ok"}, r
            r = cli(c, a.port, "health", token=t["adm"])
            assert r.returncode == 0 and json.loads(r.stdout)["auth"] == "on", r
            # 401: none, empty, unknown
            refused77(cli(c, a.port, "get", k), "get " + k)
            refused77(cli(c, a.port, "get", k, token=""), "get " + k)
            refused77(cli(c, a.port, "get", k, token=unknown_token()), "get " + k)
            refused77(cli(c, a.port, "get", k, env_token=unknown_token()), "get " + k)
            refused77(cli(c, a.port, "health", token=unknown_token()), "health")
            # 403: no permission, outside the prefix
            refused77(cli(c, a.port, "get", k, token=t["wo"]), "get " + k)
            refused77(cli(c, a.port, "put", k, "w", token=t["ro"]), "put " + k)
            refused77(cli(c, a.port, "put", "auth/other/cli", "w", token=t["rw"]),
                      "put auth/other/cli")
            refused77(cli(c, a.port, "rm", k, token=t["ro"]), "rm " + k)
            refused77(cli(c, a.port, "ls", "auth/", token=t["ro"]), "ls")
            refused77(cli(c, a.port, "rm", "--prefix", APP, token=t["ro"]), "rm")
            refused77(cli(c, a.port, "watch", k, token=t["wo"]), "watch")
            refused77(cli(c, a.port, "watch", "--prefix", "auth/", token=t["ro"]), "watch")
            assert stored(c, "auth/other/cli") == [None] * c.n
            assert a.req("GET", kpath(k, True), "ro").body == b"v"
            r = cli(c, a.port, "rm", k, token=t["wo"])
            assert (r.returncode, r.stderr) == (0, b""), r
        finally:
            cleanup(a)


def lkv_test_program(c):
    """build/lkv_test beside bin/ (build/asan/lkv_test beside bin/asan/)."""
    rel = os.path.relpath(c.bindir, harness.ROOT).split(os.sep)
    build = os.path.join(harness.ROOT, "build", *rel[1:]) if rel[0] == "bin" else \
        os.path.join(harness.ROOT, "build")
    exe = os.path.join(build, "lkv_test")
    assert os.access(exe, os.X_OK), "%s is missing" % exe
    return exe


def test_liblazykv_maps_401_and_403(c):
    with matrix_server(c) as a:
        t = a.known
        ep = "http://127.0.0.1:%d" % a.port
        k = APP + "lib"

        def lkv(*args, token=None, rc):
            cmd = [lkv_test_program(c), ep] + (["--token", token] if token else []) + list(args)
            p = subprocess.run(cmd, capture_output=True, timeout=60)
            assert p.returncode == rc, (args, rc, p)
            return p.stdout.decode().splitlines()

        try:
            other = "auth/other/lib-refused"
            assert lkv("put", k, "hello", token=t["rw"], rc=0) == ["put %s -> LKV_OK" % k]
            out = lkv("get", k, token=t["ro"], rc=0)
            assert out[0].startswith("get %s -> LKV_OK " % k) and " value=hello" in out[0], out
            for args, token, code in [
                    (("get", k), None, "LKV_ERR_UNAUTHORIZED"),
                    (("get", k), unknown_token(), "LKV_ERR_UNAUTHORIZED"),
                    (("get", k), t["wo"], "LKV_ERR_FORBIDDEN"),
                    (("get", other), t["rw"], "LKV_ERR_FORBIDDEN"),
                    (("put", k, "x"), t["ro"], "LKV_ERR_FORBIDDEN"),
                    (("put", other, "x"), t["rw"], "LKV_ERR_FORBIDDEN"),
                    (("delete", k), None, "LKV_ERR_UNAUTHORIZED"),
                    (("list", "auth/"), t["ro"], "LKV_ERR_FORBIDDEN"),
                    (("delete_tree", APP), t["ro"], "LKV_ERR_FORBIDDEN")]:
                out = lkv(*args, token=token, rc=1)
                assert len(out) == 1 and out[0].startswith("%s %s -> %s detail=" % (
                    args[0], args[1], code)), (args, out)
            out = lkv("list", APP, token=t["ro"], rc=0)
            assert out[0] == "list %s -> LKV_OK n=1" % APP, out
            assert stored(c, other) == [None] * c.n
            assert a.req("GET", kpath(k, True), "ro").body == b"hello"
        finally:
            cleanup(a)
