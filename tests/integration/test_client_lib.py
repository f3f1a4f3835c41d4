"""liblazykv (issue 11): every function of lazykv.h, through lkv_test.

build/lkv_test (tests/client/lkv_test.c, built by make against
lib/liblazykv.a; build/asan/lkv_test under make asan) is a program written
only from <lazykv.h>. Each subcommand makes its calls and prints exact lines
(the format is described at the top of lkv_test.c: "OP KEY -> CODE
field=value ...", bytes escaped as \\xHH); these tests compare them with
what lazykvd itself answers over HTTP for the same keys, so every index,
value, content type and expiry the library returns is checked against the
server's own headers.

Fault tests: endpoints that refuse connections, hang, or answer 503/500/4xx
(a small fake server in this file), a second lazykvd killed mid-watch and
restarted on the same port, a partition frozen under a held lock. The
library's leaks are checked under valgrind (plain builds) and LeakSanitizer
(make asan: lkv_test exits non-zero on a leak).
"""
import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import harness
from harness import SANITIZED, wait_for
from parked import expires_us

q = urllib.parse.quote
P = b"clientlib/"
OCTETS = "application/octet-stream"


# ---- the program ------------------------------------------------------------------------

def program(c):
    """build/lkv_test for bin/, build/asan/lkv_test for bin/asan/."""
    rel = os.path.relpath(c.bindir, harness.ROOT).split(os.sep)
    if rel[0] == "bin":
        build = os.path.join(harness.ROOT, "build", *rel[1:])
    else:
        build = os.path.join(harness.ROOT, "build")
    exe = os.path.join(build, "lkv_test")
    assert os.access(exe, os.X_OK), "%s is missing (make builds it with lib/liblazykv.a)" % exe
    return exe


def url(port):
    return "http://127.0.0.1:%d" % port


def b(s):
    return s if isinstance(s, bytes) else s.encode()


def esc(data):
    """What lkv_test prints for bytes: 0x21..0x7e but '\\' as is, else \\xHH."""
    return "".join(chr(x) if 0x20 < x < 0x7f and x != 0x5c else "\\x%02x" % x for x in b(data))


def unesc(text):
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.encode())


def fnv(data):
    h = 0xcbf29ce484222325
    for x in data:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def value_arg(c, value):
    """A value as lkv_test takes it: hex: (any bytes), file: when large."""
    value = b(value)
    if len(value) <= 16384:
        return "hex:" + value.hex()
    fd, tmp = tempfile.mkstemp(dir=c.dir, prefix="clientlib-value-")
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return "file:" + tmp


class Out:
    def __init__(self, rc, stdout, stderr, took):
        self.rc = rc
        self.lines = stdout.decode("ascii").splitlines()
        self.err = stderr.decode(errors="replace")
        self.took = took

    def __repr__(self):
        return "<rc=%s lines=%r stderr=%r took=%.2fs>" % (self.rc, self.lines[:20],
                                                          self.err[-2000:], self.took)


def lkv(c, *args, ep=None, opts=(), rc=0, timeout=120, wrap=()):
    """Runs lkv_test ENDPOINTS OPTS ARGS; asserts its exit status is rc."""
    cmd = list(wrap) + [program(c), url(c.http_port) if ep is None else ep] + list(opts)
    cmd += [a if isinstance(a, (bytes, str)) else str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = Out(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    assert rc is None or out.rc == rc, ("lkv_test %r: exit %d, wanted %d" % (args, out.rc, rc),
                                        out)
    return out


def result(line, op, key=None):
    """(code, {field: value}) of "OP ESC(KEY) -> CODE field=value ..."."""
    head = op + (" " + esc(key) if key is not None else "") + " -> "
    assert line.startswith(head), ("not a result of %s" % head, line)
    parts = line[len(head):].split(" ")
    return parts[0], dict(x.split("=", 1) for x in parts[1:])


def one(c, op, key, *args, rc=0, **kw):
    """One operation: (code, fields) of its single result line."""
    out = lkv(c, op, key, *args, rc=rc, **kw)
    assert len(out.lines) == 1, out
    return result(out.lines[0], op, key)


def failed(c, op, key, *args, code, **kw):
    """An operation that returns code (exit 1): its detail, unescaped."""
    got, fields = one(c, op, key, *args, rc=1, **kw)
    assert got == code, (op, key, got, fields)
    # lazykv.h: the server's problem detail, or what failed locally
    assert fields["detail"], ("lkv_last_error is empty after %s" % code, op, key)
    return unesc(fields["detail"])


# ---- what the server says --------------------------------------------------------------

def path(key, canonical=True):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(b(key), safe="/")


def tree_target(prefix, canonical=True):
    return ("/canonicalbucket/" if canonical else "/bucket/") + "?prefix=" + q(b(prefix), safe="")


def clean(c, prefix):
    r = c.request("DELETE", tree_target(prefix), timeout=60)
    assert r.status == 202, r


def pair_text(key, index, value, ctype=OCTETS, expires_ms=0):
    """A pair as lkv_test prints it."""
    value = b(value)
    s = "key=%s index=%d len=%d ctype=%s expires_at_ms=%d fnv=%016x" % (
        esc(key), index, len(value), esc(ctype), expires_ms, fnv(value))
    if len(value) <= 512:
        s += " value=" + esc(value)
    return s


def server_pair(c, key, port=None):
    """The pair lkv_test must print for key, from a canonical GET (None: 404)."""
    r = c.request("GET", path(key), port=port)
    if r.status == 404:
        return None
    assert r.status == 200, r
    exp = r.header("X-Lazykv-Expires")
    return pair_text(key, int(r.header("X-Lazykv-Index")), r.body, r.header("Content-Type"),
                     expires_us(exp) // 1000 if exp else 0)


def http_index(c, key):
    r = c.request("GET", path(key))
    assert r.status in (200, 404), r
    return int(r.header("X-Lazykv-Index"))


def get_ok(c, key, **kw):
    """lkv get of key: the fields of its line (LKV_OK asserted)."""
    code, fields = one(c, "get", key, **kw)
    assert code == "LKV_OK", (key, code, fields)
    return fields


def assert_get_matches_server(c, key):
    out = lkv(c, "get", key)
    assert out.lines == ["get %s -> LKV_OK %s" % (esc(key), server_pair(c, key))], out


# ---- a long-running lkv_test read line by line --------------------------------------------

class Proc:
    def __init__(self, c, *args, ep=None, opts=()):
        cmd = [program(c), url(c.http_port) if ep is None else ep] + list(opts)
        cmd += [a if isinstance(a, (bytes, str)) else str(a) for a in args]
        self.args = args
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.err = b""
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        self.e = threading.Thread(target=self._read_err, daemon=True)
        self.e.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.decode("ascii").rstrip("\n"))
        self.lines.put(None)

    def _read_err(self):
        self.err = self.p.stderr.read()

    def line(self, timeout=15):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("lkv_test %r printed nothing in %s s" % (self.args, timeout))
        if line is None:
            rc = self.p.wait()
            self.e.join(5)
            raise AssertionError("lkv_test %r ended early: exit %s, %r"
                                 % (self.args, rc, self.err.decode(errors="replace")))
        return line

    def lines_now(self, n, timeout=15):
        return [self.line(timeout) for _ in range(n)]

    def finish(self, timeout=30):
        """(exit status, the lines it printed still unread)."""
        rc = self.p.wait(timeout=timeout)
        self.t.join(5)
        self.e.join(5)
        rest = []
        while True:
            line = self.lines.get(timeout=5)
            if line is None:
                return rc, rest
            rest.append(line)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ---- a fake lazykvd: answers every request with one status -------------------------------

class Fake:
    """An HTTP/1.1 server on a free port that answers every request with
    status and a problem document (detail), and records each request
    (method, raw target, headers, body)."""

    def __init__(self, status, detail):
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        chunk = self.rfile.read(size + 2)[:size]
                        if size == 0:
                            break
                        body += chunk
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                doc = json.dumps({"type": "about:blank", "title": "fake", "status": status,
                                  "detail": detail}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json")
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", str(len(doc)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(doc)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def dead_port():
    """A port nothing listens on (bound and closed: connections are refused)."""
    return harness.free_port()


# ---- strerror, open --------------------------------------------------------------------

def test_strerror_names_every_code(c):
    out = lkv(c, "strerror")
    names = ["LKV_OK", "LKV_ERR_NOT_FOUND", "LKV_ERR_KEY_EXISTS", "LKV_ERR_KEY_MODIFIED",
             "LKV_ERR_CANNOT_LOCK", "LKV_ERR_TIMEOUT", "LKV_ERR_UNAVAILABLE",
             "LKV_ERR_UNAUTHORIZED", "LKV_ERR_FORBIDDEN", "LKV_ERR_INVALID", "LKV_ERR_IO",
             "LKV_ERR_NOMEM"]
    assert len(out.lines) == len(names) + 2, out
    texts = []
    for i, name in enumerate(names):
        head = "%d %s: " % (i, name)
        assert out.lines[i].startswith(head), (out.lines[i], head)
        texts.append(unesc(out.lines[i][len(head):]))
    assert all(texts) and len(set(texts)) == len(texts), ("distinct, non-empty texts", texts)
    # codes out of range still get a text (never NULL)
    assert out.lines[-2].startswith("99 unknown: ") and len(out.lines[-2]) > len("99 unknown: ")
    assert out.lines[-1].startswith("-1 unknown: ") and len(out.lines[-1]) > len("-1 unknown: ")


def test_open_accepts_endpoint_lists_and_refuses_malformed_ones(c):
    for good in ["http://127.0.0.1:1", "http://127.0.0.1:1,http://127.0.0.1:2",
                 "http://localhost:8080/", "https://example.invalid:443"]:
        out = lkv(c, "open", ep=good)
        assert out.lines == ["open -> OK"], (good, out)
    for bad in ["", ",", "ftp://127.0.0.1:1"]:
        out = lkv(c, "open", ep=bad, rc=1)
        assert out.lines == ["open -> NULL"], (bad, out)


# ---- put, get, exists, delete ----------------------------------------------------------

def test_put_get_exists_delete(c):
    key = P + b"basic/k"
    clean(c, P + b"basic/")
    assert one(c, "put", key, "hello") == ("LKV_OK", {})
    assert_get_matches_server(c, key)
    f = get_ok(c, key)
    assert (f["value"], f["len"], f["ctype"], f["expires_at_ms"]) == ("hello", "5", OCTETS, "0")
    first = int(f["index"])
    assert one(c, "exists", key) == ("LKV_OK", {"exists": "1"})
    # an overwrite: a new, higher index
    assert one(c, "put", key, "world")[0] == "LKV_OK"
    f = get_ok(c, key)
    assert f["value"] == "world" and int(f["index"]) > first, f
    assert_get_matches_server(c, key)
    # delete; then every read says absent
    assert one(c, "delete", key) == ("LKV_OK", {})
    assert c.request("GET", path(key)).status == 404
    detail = failed(c, "get", key, code="LKV_ERR_NOT_FOUND")
    assert detail, "lkv_last_error is empty after a 404"
    assert one(c, "exists", key) == ("LKV_OK", {"exists": "0"})
    failed(c, "delete", key, code="LKV_ERR_NOT_FOUND")
    # a key that never existed
    failed(c, "get", P + b"basic/never", code="LKV_ERR_NOT_FOUND")
    failed(c, "delete", P + b"basic/never", code="LKV_ERR_NOT_FOUND")
    assert one(c, "exists", P + b"basic/never") == ("LKV_OK", {"exists": "0"})


def test_put_with_a_content_type(c):
    key = P + b"ctype/k"
    clean(c, P + b"ctype/")
    html = "text/html; charset=utf-8"
    assert one(c, "put_ctype", key, "<b>hi</b>", html) == ("LKV_OK", {})
    g = c.request("GET", path(key))
    assert (g.status, g.body, g.header("Content-Type")) == (200, b"<b>hi</b>", html), g
    assert get_ok(c, key)["ctype"] == esc(html)
    assert_get_matches_server(c, key)
    # NULL: application/octet-stream
    assert one(c, "put_ctype", key, "raw", "-") == ("LKV_OK", {})
    assert c.request("GET", path(key)).header("Content-Type") == OCTETS
    # with a ttl
    t0 = time.time()
    assert one(c, "put_ctype", key, "brief", "text/plain", "40") == ("LKV_OK", {})
    t1 = time.time()
    f = get_ok(c, key)
    assert f["ctype"] == "text/plain" and \
        t0 * 1000 + 39900 <= int(f["expires_at_ms"]) <= t1 * 1000 + 40100, f
    assert_get_matches_server(c, key)
    failed(c, "put_ctype", b"", "v", "text/plain", code="LKV_ERR_INVALID")
    clean(c, P + b"ctype/")


def test_health(c):
    out = lkv(c, "health")
    assert len(out.lines) == 2 and out.lines[0] == "health -> LKV_OK", out
    assert out.lines[1].startswith("json "), out
    doc = json.loads(unesc(out.lines[1][5:]))
    http = c.request("GET", "/health").json()
    assert doc["status"] == http["status"] == "ok" and doc["reachable"] == 3, doc
    assert [p["database"] for p in doc["partition"]] == \
        [p["database"] for p in http["partition"]], doc
    # the first endpoint that answers
    out = lkv(c, "health", ep="%s,%s" % (url(dead_port()), url(c.http_port)))
    assert out.lines[0] == "health -> LKV_OK" and json.loads(unesc(out.lines[1][5:]))["reachable"] == 3
    # none answers
    out = lkv(c, "health", ep="%s,%s" % (url(dead_port()), url(dead_port())), rc=1)
    assert len(out.lines) == 1 and result(out.lines[0], "health")[0] == "LKV_ERR_UNAVAILABLE", out


def test_lazy_reads_see_the_masters_copy(c):
    key = P + b"basic/lazy"
    assert one(c, "put", key, "lazy value")[0] == "LKV_OK"
    # a plain put reaches the master at least: lazy reads of it end up there
    # after the next sync pass; run one so that every partition holds it
    c.sync(check=True)
    f = get_ok(c, key, opts=["--lazy"])
    assert f["value"] == "lazy\\x20value" and int(f["index"]) == http_index(c, key), f
    assert one(c, "exists", key, opts=["--lazy"]) == ("LKV_OK", {"exists": "1"})
    assert one(c, "delete", key)[0] == "LKV_OK"


def test_last_error_is_the_servers_problem_detail(c):
    absent = P + b"lasterror/absent"
    r = c.request("GET", path(absent))
    assert r.status == 404, r
    assert failed(c, "get", absent, code="LKV_ERR_NOT_FOUND") == r.json()["detail"].encode()
    # a key longer than key_length (250): the server's 400 detail
    long_key = P + b"lasterror/" + b"x" * 240
    details = {c.request(m, path(long_key), b"v").json()["detail"].encode()
               for m in ("POST", "PUT")}
    assert failed(c, "put", long_key, "v", code="LKV_ERR_INVALID") in details
    # a failed precondition has a detail too
    key = P + b"lasterror/cas"
    assert one(c, "put", key, "v")[0] == "LKV_OK"
    stale = http_index(c, key)
    assert one(c, "put", key, "w")[0] == "LKV_OK"
    assert failed(c, "atomic_put", key, "x", str(stale), code="LKV_ERR_KEY_MODIFIED")
    assert failed(c, "atomic_put", key, "x", "-", code="LKV_ERR_KEY_EXISTS")
    clean(c, P + b"lasterror/")


# ---- values and keys ---------------------------------------------------------------------

def test_binary_values_round_trip(c):
    clean(c, P + b"bin/")
    cases = {
        P + b"bin/all-bytes": bytes(range(256)) * 4,          # NUL included
        P + b"bin/nul-only": b"\x00",
        P + b"bin/empty": b"",
        P + b"bin/nul-inside": b"a\x00b\x00\x00c",
        P + b"bin/one-mib": os.urandom(1 << 20),
    }
    for key, value in cases.items():
        assert one(c, "put", key, value_arg(c, value)) == ("LKV_OK", {}), key
        g = c.request("GET", path(key))
        assert g.status == 200 and g.body == value, (key, g)
        out = lkv(c, "get", key)
        assert out.lines == ["get %s -> LKV_OK %s" % (esc(key), server_pair(c, key))], out
        f = result(out.lines[0], "get", key)[1]
        assert int(f["len"]) == len(value) and int(f["fnv"], 16) == fnv(value)
        if len(value) <= 512:
            assert unesc(f["value"]) == value
    # the same values through a list with values (base64 in JSON on the wire)
    out = lkv(c, "list", P + b"bin/")
    keys = sorted(cases)
    assert out.lines[0] == "list %s -> LKV_OK n=%d" % (esc(P + b"bin/"), len(keys)), out
    assert out.lines[1:] == ["pair %d %s" % (i, server_pair(c, k)) for i, k in enumerate(keys)]
    clean(c, P + b"bin/")


AWKWARD = [b"a/b/c", b"with space", b"100%", b"100%25", b"q?x=1&y=2", b"frag#ment",
           b"plus+sign", b"semi;colon", b"\xc3\xbcn\xc3\xafc\xc3\xb8d\xc3\xa9/\xe6\x97\xa5",
           b"raw\xff\xfe\x01bytes", b"tab\there", b"new\nline", b"quote\"'`", b"back\\slash",
           b"//double//", b"trailing/", b"~tilde!*()", b"%2F", b"..x", b"x.."]


def test_awkward_keys_are_percent_encoded(c):
    # the prefix itself needs encoding in a query string ('+' is a space there)
    prefix = P + b"keys/ odd+?#%&=/"
    clean(c, prefix)
    keys = [prefix + k for k in AWKWARD]
    for key in keys:
        value = b"value of " + key
        assert one(c, "put", key, value_arg(c, value)) == ("LKV_OK", {}), key
        # the server stored exactly this key: the library encoded it right
        g = c.request("GET", path(key))
        assert g.status == 200 and g.body == value, (key, g)
        assert_get_matches_server(c, key)
        assert one(c, "exists", key) == ("LKV_OK", {"exists": "1"}), key
    # non-UTF-8 keys make the list page percent-encoded: decoded by the library
    out = lkv(c, "list", prefix)
    assert out.lines[0] == "list %s -> LKV_OK n=%d" % (esc(prefix), len(keys)), out
    assert out.lines[1:] == ["pair %d %s" % (i, server_pair(c, k))
                             for i, k in enumerate(sorted(keys))], out
    for key in keys:
        assert one(c, "delete", key) == ("LKV_OK", {}), key
        assert c.request("GET", path(key)).status == 404, key
    assert lkv(c, "list", prefix).lines == ["list %s -> LKV_OK n=0" % esc(prefix)]
    # keys the server refuses: '.' and '..' segments, over key_length, empty
    for bad in [P + b"keys/./x", P + b"keys/../x", P + b"keys/" + b"k" * 250]:
        assert failed(c, "put", bad, "v", code="LKV_ERR_INVALID"), bad
    failed(c, "put", b"", "v", code="LKV_ERR_INVALID")


def test_wire_encoding_token_and_read_paths(c):
    """On the wire (a fake server records the requests): keys percent-
    encoded so that they decode to exactly their bytes, reads from
    /canonicalbucket/ by default and /bucket/ with lazy, the bearer token."""
    fake = Fake(404, "fake: no such key")
    key = P + b"wire/a b?c#d%e+f&g=h;i\xff\xc3\xa9/j\n"
    try:
        ep = url(fake.port)
        assert failed(c, "get", key, ep=ep, code="LKV_ERR_NOT_FOUND") == b"fake: no such key"
        failed(c, "get", key, ep=ep, opts=["--lazy", "--token", "s3cret"],
               code="LKV_ERR_NOT_FOUND")
        lkv(c, "list", key, ep=ep, rc=1)     # whatever code a 404 list maps to
        assert len(fake.requests) == 3, fake.requests
        (m1, t1, h1, _), (m2, t2, h2, _), (m3, t3, _, _) = fake.requests
        for method, target, root in ((m1, t1, "/canonicalbucket/"), (m2, t2, "/bucket/")):
            assert method in ("GET", "HEAD"), method
            raw = target.split("?", 1)[0]
            assert raw.startswith(root), (target, root)
            assert all(0x20 < ord(ch) < 0x7f for ch in raw) and "#" not in raw, raw
            assert urllib.parse.unquote_to_bytes(raw[len(root):]) == key, raw
        assert "Authorization" not in h1, h1
        assert h2.get("Authorization") == "Bearer s3cret", h2
        # the list's prefix: one query parameter that decodes to the prefix
        # (as lazykvd decodes queries: '+' is a space)
        assert m3 == "GET" and t3.split("?", 1)[0] in ("/canonicalbucket/",
                                                         "/canonicalbucket"), t3
        query = t3.split("?", 1)[1]
        params = {}
        for part in query.split("&"):
            name, _, value = part.partition("=")
            params[name] = urllib.parse.unquote_to_bytes(value.replace("+", " "))
        assert params.get("prefix") == key, (t3, params)
    finally:
        fake.close()


# ---- status codes and endpoints ------------------------------------------------------------

def test_status_codes_map_to_errors_with_the_servers_detail(c):
    for status, code in [(400, "LKV_ERR_INVALID"), (401, "LKV_ERR_UNAUTHORIZED"),
                         (403, "LKV_ERR_FORBIDDEN"), (404, "LKV_ERR_NOT_FOUND"),
                         (500, "LKV_ERR_IO"), (418, "LKV_ERR_IO")]:
        fake = Fake(status, "fake detail %d" % status)
        try:
            detail = failed(c, "get", P + b"status/k", ep=url(fake.port), code=code)
            assert detail == b"fake detail %d" % status, (status, detail)
            assert len(fake.requests) == 1, (status, fake.requests)   # not retried
        finally:
            fake.close()


def test_a_500_is_returned_as_is_not_retried_on_the_next_endpoint(c):
    key = P + b"status/500"
    clean(c, P + b"status/")
    fake = Fake(500, "fake: broken")
    try:
        ep = "%s,%s" % (url(fake.port), url(c.http_port))
        assert failed(c, "put", key, "v", ep=ep, code="LKV_ERR_IO") == b"fake: broken"
        assert len(fake.requests) == 1, fake.requests
        assert c.request("GET", path(key)).status == 404
    finally:
        fake.close()


def test_a_503_is_retried_on_the_next_endpoint(c):
    key = P + b"status/503"
    clean(c, P + b"status/")
    fake = Fake(503, "fake: partition down")
    try:
        ep = "%s,%s" % (url(fake.port), url(c.http_port))
        assert one(c, "put", key, "after a 503", ep=ep) == ("LKV_OK", {})
        assert len(fake.requests) >= 1, "the first endpoint was never tried"
        g = c.request("GET", path(key))
        assert g.status == 200 and g.body == b"after a 503", g
        # 503 from every endpoint: UNAVAILABLE, within about timeout_ms
        fake.requests.clear()
        out = lkv(c, "get", key, ep=url(fake.port), opts=["--timeout", "1500"], rc=1)
        assert result(out.lines[0], "get", key)[0] == "LKV_ERR_UNAVAILABLE", out
        assert out.took < 1.5 + 2.0, out
        assert len(fake.requests) >= 1
    finally:
        fake.close()
    clean(c, P + b"status/")


def test_failover_to_a_live_endpoint_and_all_endpoints_dead(c):
    key = P + b"failover/k"
    clean(c, P + b"failover/")
    dead = [dead_port(), dead_port()]
    ep = "%s,%s" % (url(dead[0]), url(c.http_port))
    assert one(c, "put", key, "via the second", ep=ep) == ("LKV_OK", {})
    f = get_ok(c, key, ep=ep)
    assert f["value"] == "via\\x20the\\x20second" and int(f["index"]) == http_index(c, key)
    assert one(c, "exists", key, ep=ep) == ("LKV_OK", {"exists": "1"})
    assert one(c, "delete", key, ep=ep) == ("LKV_OK", {})
    # every endpoint refuses: UNAVAILABLE within about timeout_ms
    ep = "%s,%s" % (url(dead[0]), url(dead[1]))
    for op, args in (("get", ()), ("put", ("v",)), ("list", ())):
        out = lkv(c, op, key, *args, ep=ep, opts=["--timeout", "2000"], rc=1)
        code, fields = result(out.lines[0], op, key)
        assert code == "LKV_ERR_UNAVAILABLE" and fields["detail"], out
        assert out.took < 2.0 + 1.5, ("UNAVAILABLE after %.2f s" % out.took, out)
    # an endpoint that accepts and never answers: given up after timeout_ms
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    try:
        out = lkv(c, "get", key, ep=url(hang.getsockname()[1]), opts=["--timeout", "1000"],
                  rc=1)
        code, _ = result(out.lines[0], "get", key)
        assert code in ("LKV_ERR_TIMEOUT", "LKV_ERR_UNAVAILABLE"), out
        assert 0.9 <= out.took < 1.0 + 2.0, out
    finally:
        hang.close()


# ---- TTL -----------------------------------------------------------------------------------

def test_ttl_expiry_instant_and_expiry(c):
    key = P + b"ttl/k"
    clean(c, P + b"ttl/")
    t0 = time.time()
    assert one(c, "put", key, "v", "30")[0] == "LKV_OK"
    t1 = time.time()
    f = get_ok(c, key)
    exp = int(f["expires_at_ms"])
    assert t0 * 1000 + 30000 - 100 <= exp <= t1 * 1000 + 30000 + 100, (t0, exp, t1)
    assert_get_matches_server(c, key)          # the same instant as X-Lazykv-Expires
    # a write without ttl clears it
    assert one(c, "put", key, "v2")[0] == "LKV_OK"
    assert get_ok(c, key)["expires_at_ms"] == "0"
    assert c.request("GET", path(key)).header("X-Lazykv-Expires") is None
    # atomic_put with a ttl
    t0 = time.time()
    idx = http_index(c, key)
    code, f = one(c, "atomic_put", key, "v3", str(idx), "20")
    t1 = time.time()
    assert code == "LKV_OK" and t0 * 1000 + 19900 <= int(f["expires_at_ms"]) <= t1 * 1000 + 20100
    assert f == result("x -> LKV_OK " + server_pair(c, key), "x")[1], f
    # a 1 s ttl: absent once the instant passes, never before
    short = P + b"ttl/short"
    assert one(c, "put", short, "brief", "1")[0] == "LKV_OK"
    exp = int(get_ok(c, short)["expires_at_ms"])
    seen = {}

    def absent():
        out = lkv(c, "exists", short)
        after = time.time() * 1000
        if out.lines == ["exists %s -> LKV_OK exists=0" % esc(short)]:
            seen["at"] = after
            return True
        assert out.lines == ["exists %s -> LKV_OK exists=1" % esc(short)], out
        return False
    wait_for(absent, 5, "the key to expire")
    assert seen["at"] >= exp - 5, ("absent before its expiry", seen["at"], exp)
    failed(c, "get", short, code="LKV_ERR_NOT_FOUND")
    assert lkv(c, "list", P + b"ttl/").lines[0] == "list %s -> LKV_OK n=1" % esc(P + b"ttl/")
    clean(c, P + b"ttl/")


# ---- lists and trees ------------------------------------------------------------------------

def fill_value(i, size):
    """The value lkv_test fill gives key i (see fill_value in lkv_test.c)."""
    head = b"v%05d-" % i
    if size <= len(head):
        return head[:size]
    base = bytes(range(251)) * (size // 251 + 2)
    start = (i + len(head)) % 251
    return head + base[start:start + size - len(head)]


def test_list_returns_every_page_with_values(c):
    """1,500 keys of 12,000 bytes: 18 MB, more than a page whatever the
    library asks for (the server's pages stop at 1,000 keys by default and
    at 16 MiB of values in any case)."""
    prefix, n, size = P + b"list/", 1500, 12000
    clean(c, prefix)
    clean(c, P + b"listX")
    out = lkv(c, "fill", prefix, n, size, timeout=300)
    assert out.lines == ["fill %s -> LKV_OK n=%d" % (esc(prefix), n)], out
    assert one(c, "put", P + b"listX", "outside")[0] == "LKV_OK"      # shares "list" only
    out = lkv(c, "list", prefix, timeout=300)
    assert out.lines[0] == "list %s -> LKV_OK n=%d" % (esc(prefix), n), out.lines[:3]
    assert len(out.lines) == n + 1
    for i, line in enumerate(out.lines[1:]):
        key = prefix + b"%05d" % i
        m = re.fullmatch(r"pair %d key=(\S+) index=(\d+) len=(\d+) ctype=(\S+) "
                         r"expires_at_ms=(\d+) fnv=([0-9a-f]{16})" % i, line)
        assert m and m.group(1) == esc(key), (i, line)
        assert (int(m.group(3)), m.group(4), m.group(5)) == (size, OCTETS, "0"), line
        # FNV of every value costs Python seconds: every 25th key, and all of
        # them around the page boundaries (1,000 keys; 16 MiB = 1,398 values)
        if i % 25 == 0 or 990 <= i <= 1010 or 1390 <= i <= 1410 or i == n - 1:
            assert int(m.group(6), 16) == fnv(fill_value(i, size)), (i, line)
            assert int(m.group(2)) == http_index(c, key), (i, line)
    # delete_tree takes all of it, and nothing else
    assert one(c, "delete_tree", prefix) == ("LKV_OK", {})
    assert lkv(c, "list", prefix).lines == ["list %s -> LKV_OK n=0" % esc(prefix)]
    r = c.request("GET", tree_target(prefix))
    assert r.status == 200 and r.json()["keys"] == [], r
    assert get_ok(c, P + b"listX")["value"] == "outside"
    clean(c, P + b"listX")


def test_delete_tree(c):
    prefix = P + b"tree/"
    clean(c, prefix)
    inside = [prefix + b"a", prefix + b"b/c", prefix + b"b/d", prefix + b"\xff"]
    outside = [P + b"treeX", P + b"tre"]
    for k in inside + outside:
        assert one(c, "put", k, value_arg(c, k))[0] == "LKV_OK"
    assert lkv(c, "list", prefix).lines[0] == "list %s -> LKV_OK n=4" % esc(prefix)
    assert one(c, "delete_tree", prefix) == ("LKV_OK", {})
    for k in inside:
        assert c.request("GET", path(k)).status == 404, k
    for k in outside:
        assert c.request("GET", path(k)).status == 200, k
    assert lkv(c, "list", prefix).lines == ["list %s -> LKV_OK n=0" % esc(prefix)]
    # an empty tree is fine; an empty prefix is refused (it would be everything)
    assert one(c, "delete_tree", prefix) == ("LKV_OK", {})
    failed(c, "delete_tree", b"", code="LKV_ERR_INVALID")
    for k in outside:
        assert one(c, "delete", k)[0] == "LKV_OK"


# ---- atomic operations ----------------------------------------------------------------------

def test_atomic_put_create_only_and_compare_and_swap(c):
    key = P + b"atomic/k"
    clean(c, P + b"atomic/")
    code, f = one(c, "atomic_put", key, "v1", "-")
    assert code == "LKV_OK", f
    i1 = int(f["index"])
    assert f == result("x -> LKV_OK " + server_pair(c, key), "x")[1], f
    assert failed(c, "atomic_put", key, "v2", "-", code="LKV_ERR_KEY_EXISTS")
    assert get_ok(c, key)["value"] == "v1"
    code, f = one(c, "atomic_put", key, "v2", str(i1))
    assert code == "LKV_OK" and f["value"] == "v2", f
    i2 = int(f["index"])
    assert i2 > i1 and i2 == http_index(c, key)
    # a stale previous: KEY_MODIFIED, nothing written
    failed(c, "atomic_put", key, "v3", str(i1), code="LKV_ERR_KEY_MODIFIED")
    assert get_ok(c, key)["value"] == "v2"
    # out = NULL
    assert one(c, "atomic_put", key, "v3", str(i2), "0", "noout") == ("LKV_OK", {})
    i3 = http_index(c, key)
    assert i3 > i2 and get_ok(c, key)["value"] == "v3"
    # atomic_delete: stale, right, gone
    failed(c, "atomic_delete", key, str(i2), code="LKV_ERR_KEY_MODIFIED")
    assert get_ok(c, key)["value"] == "v3"
    assert one(c, "atomic_delete", key, str(i3)) == ("LKV_OK", {})
    assert c.request("GET", path(key)).status == 404
    failed(c, "atomic_delete", key, str(i3), code="LKV_ERR_NOT_FOUND")
    # compare-and-swap on a key that is gone
    failed(c, "atomic_put", key, "v4", str(i3), code="LKV_ERR_NOT_FOUND")
    assert c.request("GET", path(key)).status == 404
    failed(c, "atomic_put", P + b"atomic/never", "v", "12345", code="LKV_ERR_NOT_FOUND")
    failed(c, "atomic_delete", P + b"atomic/never", "12345", code="LKV_ERR_NOT_FOUND")
    # create-only works again on a deleted key
    code, f = one(c, "atomic_put", key, "v5", "-")
    assert code == "LKV_OK" and int(f["index"]) > i3, f
    assert failed(c, "atomic_put", key, "v6", "-", code="LKV_ERR_KEY_EXISTS")
    clean(c, P + b"atomic/")


def test_atomic_put_races_have_one_winner(c):
    """10 processes CAS from the same index: exactly one wins."""
    key = P + b"atomic/race"
    assert one(c, "put", key, "base")[0] == "LKV_OK"
    idx = http_index(c, key)
    procs = [subprocess.Popen([program(c), url(c.http_port), "atomic_put", key, "w%d" % i,
                               str(idx)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(10)]
    codes = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        codes.append(result(out.decode().splitlines()[0], "atomic_put", key)[0])
        assert p.returncode == (0 if codes[-1] == "LKV_OK" else 1), (out, err)
    assert sorted(codes) == ["LKV_ERR_KEY_MODIFIED"] * 9 + ["LKV_OK"], codes
    winner = codes.index("LKV_OK")
    assert get_ok(c, key)["value"] == "w%d" % winner
    clean(c, P + b"atomic/")


# ---- watches ------------------------------------------------------------------------------

def test_watch_gives_the_current_state_then_each_change(c):
    key = P + b"watch/k"
    clean(c, P + b"watch/")
    w = Proc(c, "watch", key, 6)
    try:
        assert w.line() == "state 0: absent"
        r = c.request("POST", path(key, False), b"v1")        # a lazy write, from Python
        assert r.status == 201, r
        assert w.line() == "state 1: " + server_pair(c, key)
        assert int(server_pair(c, key).split(" ")[1][6:]) == r.json()["version"]
        assert one(c, "put", key, "v2")[0] == "LKV_OK"        # another client
        assert w.line() == "state 2: " + server_pair(c, key)
        assert c.request("DELETE", path(key)).status == 202
        assert w.line() == "state 3: absent"
        r = c.request("PUT", path(key) + "?ttl=2", b"v3", {"Content-Type": "text/x-three"})
        assert r.status == 201, r
        assert w.line() == "state 4: " + server_pair(c, key)  # with its expiry and type
        assert w.line(10) == "state 5: absent"                # expired
        rc, rest = w.finish()
        assert (rc, rest) == (0, ["watch %s -> LKV_OK calls=6" % esc(key)]), (rc, rest, w.err)
    finally:
        w.kill()
    clean(c, P + b"watch/")


def test_watch_tree_gives_the_list_then_each_change(c):
    prefix = P + b"wtree/"
    clean(c, prefix)
    clean(c, P + b"wtreeX")
    w = Proc(c, "watch_tree", prefix, 5)

    def state(i, keys):
        assert w.line() == "tree %d: n=%d" % (i, len(keys))
        for j, k in enumerate(keys):
            assert w.line() == "tree %d pair %d %s" % (i, j, server_pair(c, k))
    try:
        state(0, [])
        assert c.request("POST", path(prefix + b"a", False), b"va").status == 201
        state(1, [prefix + b"a"])
        assert one(c, "put", prefix + b"b\xff", "vb")[0] == "LKV_OK"
        state(2, [prefix + b"a", prefix + b"b\xff"])
        # a change outside the prefix wakes nothing: the next state is the delete's
        assert c.request("POST", path(P + b"wtreeX"), b"outside").status == 201
        assert c.request("DELETE", path(prefix + b"a")).status == 202
        state(3, [prefix + b"b\xff"])
        assert c.request("POST", path(prefix + b"b\xff"), b"vb2").status == 201
        state(4, [prefix + b"b\xff"])
        rc, rest = w.finish()
        assert (rc, rest) == (0, ["watch_tree %s -> LKV_OK calls=5" % esc(prefix)]), (rc, rest)
    finally:
        w.kill()
    clean(c, prefix)
    clean(c, P + b"wtreeX")


def test_watches_end_on_their_stop_flag_set_by_another_thread(c):
    """lkv_test watch_stop: the watch runs on the main thread; a second
    thread with its own client writes "one" once the watch gave the current
    state, then sets the stop flag once the watch gave the write."""
    key, prefix = P + b"wstop/k", P + b"wstop/t/"
    clean(c, P + b"wstop/")
    out = lkv(c, "watch_stop", key)
    assert out.lines[:3] == ["state 0: absent", "state 1: " + server_pair(c, key),
                             "watch_stop %s -> LKV_OK calls=2" % esc(key)], out
    stop_ms = int(out.lines[3].split("=")[1])
    assert len(out.lines) == 4 and stop_ms < 3000, ("returned %d ms after stop" % stop_ms, out)
    out = lkv(c, "watch_tree_stop", prefix)
    k = prefix + b"k"
    assert out.lines[:4] == ["tree 0: n=0", "tree 1: n=1",
                             "tree 1 pair 0 " + server_pair(c, k),
                             "watch_tree_stop %s -> LKV_OK calls=2" % esc(prefix)], out
    stop_ms = int(out.lines[4].split("=")[1])
    assert len(out.lines) == 5 and stop_ms < 3000, ("returned %d ms after stop" % stop_ms, out)
    print("client_lib: a watch returned %d ms after its stop flag was set" % stop_ms)
    clean(c, P + b"wstop/")


def kvd_on_port(c, port):
    """A lazykvd on the cluster's configuration, on this very port (after a
    kill -9 of the previous one there)."""
    args = [os.path.join(c.bindir, "lazykvd"), "-c", c.config, "--test",
            "--listen", "127.0.0.1:%d" % port]
    if os.geteuid() == 0:
        args.append("--allow-root")
    logpath = os.path.join(c.dir, "clientlib-kvd-%d.log" % port)
    deadline = time.monotonic() + 30
    while True:
        log = open(logpath, "ab")
        proc = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()
        wait_for(lambda: proc.poll() is not None or c.serves(port), what="lazykvd on %d" % port)
        if proc.poll() is None:
            return proc
        # the port not free yet: try again
        assert time.monotonic() < deadline, open(logpath).read()[-2000:]
        time.sleep(0.2)


def test_watches_survive_a_restart_of_their_lazykvd(c):
    """Both watches have a second lazykvd as their only endpoint; it is
    killed (-9) mid-watch, a change is made through the main lazykvd while
    it is down, and a new lazykvd starts on the same port: the watches
    resume from their last index and see that change, then the next."""
    key, prefix = P + b"restart/k", P + b"restart/t/"
    clean(c, P + b"restart/")
    assert c.request("POST", path(key), b"v0").status == 201
    proc, port, _ = c.extra_kvd({})
    proc2 = None
    opts = ["--timeout", "30000"]
    kw = Proc(c, "watch", key, 4, ep=url(port), opts=opts)
    tw = Proc(c, "watch_tree", prefix, 3, ep=url(port), opts=opts)
    try:
        assert kw.line() == "state 0: " + server_pair(c, key)
        assert tw.line() == "tree 0: n=0"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert c.request("POST", path(key), b"while down").status == 201
        assert c.request("POST", path(prefix + b"x"), b"x1").status == 201
        proc2 = kvd_on_port(c, port)
        assert kw.line(30) == "state 1: " + server_pair(c, key)
        assert tw.lines_now(2, 30) == ["tree 1: n=1",
                                       "tree 1 pair 0 " + server_pair(c, prefix + b"x")]
        # and the next changes, through the new lazykvd itself
        assert c.request("POST", path(key), b"after", port=port).status == 201
        assert kw.line() == "state 2: " + server_pair(c, key)
        assert c.request("POST", path(prefix + b"y"), b"y1", port=port).status == 201
        assert tw.lines_now(3) == ["tree 2: n=2",
                                   "tree 2 pair 0 " + server_pair(c, prefix + b"x"),
                                   "tree 2 pair 1 " + server_pair(c, prefix + b"y")]
        assert c.request("DELETE", path(key)).status == 202
        assert kw.line() == "state 3: absent"
        assert kw.finish() == (0, ["watch %s -> LKV_OK calls=4" % esc(key)]), kw.err
        assert tw.finish() == (0, ["watch_tree %s -> LKV_OK calls=3" % esc(prefix)]), tw.err
    finally:
        kw.kill()
        tw.kill()
        if proc.poll() is None:
            c.stop_extra(proc)
        if proc2 is not None:
            assert c.stop_extra(proc2) == 0
    clean(c, P + b"restart/")


def requests_answered(c, port):
    r = c.request("GET", "/metrics", port=port)
    m = re.search(r"(?m)^lazykv_http_requests_total (\d+)$", r.body.decode())
    assert m, r
    return int(m.group(1))


def test_a_watch_fails_over_to_the_second_endpoint(c):
    key = P + b"wfail/k"
    clean(c, P + b"wfail/")
    assert c.request("POST", path(key), b"v0").status == 201
    proc, port, _ = c.extra_kvd({})
    w = None
    try:
        before = requests_answered(c, port)
        w = Proc(c, "watch", key, 3, ep="%s,%s" % (url(port), url(c.http_port)))
        assert w.line() == "state 0: " + server_pair(c, key)
        # the first endpoint answered it (metrics count the /metrics request too)
        assert requests_answered(c, port) >= before + 2, "the watch did not use the first endpoint"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert c.request("POST", path(key), b"v1").status == 201
        assert w.line(15) == "state 1: " + server_pair(c, key)
        assert c.request("POST", path(key), b"v2").status == 201
        assert w.line() == "state 2: " + server_pair(c, key)
        assert w.finish() == (0, ["watch %s -> LKV_OK calls=3" % esc(key)]), w.err
    finally:
        if w is not None:
            w.kill()
        if proc.poll() is None:
            c.stop_extra(proc)
    clean(c, P + b"wfail/")


def test_a_watch_gives_up_when_no_endpoint_answers(c):
    key = P + b"wdead/k"
    proc, port, _ = c.extra_kvd({})
    w = Proc(c, "watch", key, 10, ep=url(port), opts=["--timeout", "2000"])
    try:
        assert w.line() == "state 0: absent"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        rc, rest = w.finish(30)
        took = time.monotonic() - t0
        assert rc == 1 and len(rest) == 1, (rc, rest, w.err)
        code, fields = result(rest[0], "watch", key)
        assert code == "LKV_ERR_UNAVAILABLE" and fields["calls"] == "1", rest
        assert took < 2.0 + 3.0, "UNAVAILABLE %.2f s after the only endpoint died" % took
    finally:
        w.kill()
        if proc.poll() is None:
            c.stop_extra(proc)


# ---- locks -----------------------------------------------------------------------------------

def test_lock_acquire_token_held_release(c):
    key = P + b"lock/basic"
    clean(c, P + b"lock/")
    out = lkv(c, "lock_basic", key)
    pat = [r"acquire a wait=0 -> LKV_OK token=(?P<t1>\d+) held=1",
           r"holder value=owner-a index=(?P=t1)",
           r"acquire b wait=0 -> LKV_ERR_CANNOT_LOCK detail=\S+",
           r"acquire b wait=1500 -> LKV_ERR_CANNOT_LOCK detail=\S+",
           r"waited_ms=(?P<waited>\d+)",
           r"holder value=owner-a index=(?P=t1)",
           r"release a -> LKV_OK",
           r"acquire b wait=15000 -> LKV_OK token=(?P<t2>\d+) held=1",
           r"handover_ms=(?P<handover>-?\d+)",
           r"holder value=owner-b index=(?P=t2)",
           r"release b -> LKV_OK",
           r"get %s -> LKV_ERR_NOT_FOUND detail=\S+" % re.escape(esc(key)),
           r"acquire c wait=0 -> LKV_OK token=(?P<t3>\d+) held=1",
           r"release c -> LKV_OK"]
    m = re.fullmatch("\n".join(pat), "\n".join(out.lines))
    assert m, out
    t1, t2, t3 = int(m.group("t1")), int(m.group("t2")), int(m.group("t3"))
    assert t1 < t2 < t3, (t1, t2, t3)
    assert 1400 <= int(m.group("waited")) < 4500, m.group("waited")
    assert int(m.group("handover")) < 2000, m.group("handover")
    print("client_lib: lock handed over %s ms after its release" % m.group("handover"))
    assert c.request("GET", path(key)).status == 404


def test_lock_held_elsewhere_cannot_be_acquired_until_released(c):
    key = P + b"lock/elsewhere"
    clean(c, P + b"lock/")
    held = c.request("PUT", path(key) + "?ttl=30", b"python", {"If-None-Match": "*"})
    assert held.status == 201, held
    out = lkv(c, "lock_try", key, 1200, rc=1)
    assert len(out.lines) == 1 and result(out.lines[0], "lock_try", key)[0] == \
        "LKV_ERR_CANNOT_LOCK", out
    assert 1.2 <= out.took < 1.2 + 3.0, out
    g = c.request("GET", path(key))
    assert (g.status, g.body, g.header("ETag")) == (200, b"python", held.header("ETag")), g
    d = c.request("DELETE", path(key), headers={"If-Match": held.header("ETag")})
    assert d.status == 202, d
    out = lkv(c, "lock_try", key, 0)
    code, f = result(out.lines[0], "lock_try", key)
    assert code == "LKV_OK" and int(f["token"]) > d.json()["version"], out
    assert out.lines[1:] == ["release -> LKV_OK"], out
    assert c.request("GET", path(key)).status == 404


def test_10_processes_contending_hold_the_lock_one_at_a_time(c):
    key = P + b"lock/contend"
    clean(c, P + b"lock/")
    log = os.path.join(c.dir, "clientlib-contend.txt")
    if os.path.exists(log):
        os.unlink(log)
    procs = [subprocess.Popen([program(c), url(c.http_port), "contend", key, log, "100"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(10)]
    tokens = {}
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, (p.returncode, out, err)
            lines = out.decode().splitlines()
            assert len(lines) == 1, lines
            code, f = result(lines[0], "contend", key)
            assert code == "LKV_OK", lines
            tokens[p.pid] = f["token"]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = open(log).read().splitlines()
    assert len(lines) == 20, lines
    order = []
    for i in range(0, 20, 2):
        start, end = lines[i].split(" "), lines[i + 1].split(" ")
        assert start[0] == "start" and end[0] == "end" and start[1:] == end[1:], lines
        order.append((int(start[1]), start[2]))
    assert sorted(pid for pid, _ in order) == sorted(p.pid for p in procs), (order, lines)
    assert all(tokens[pid] == tok for pid, tok in order), (tokens, order)
    toks = [int(t) for _, t in order]
    assert toks == sorted(toks) and len(set(toks)) == 10, toks
    assert c.request("GET", path(key)).status == 404


def key_mastered_by(c, node, prefix):
    for i in range(1000):
        k = prefix + b"%d" % i
        r = c.request("POST", path(k, False), b"probe")
        assert r.status == 201, r
        assert c.request("DELETE", path(k)).status == 202
        if r.json()["master"] == node:
            return k
    raise AssertionError("no key mastered by partition %d" % node)


def test_lock_held_becomes_0_when_renewal_is_impossible(c):
    """A lock (ttl 3 s, renewed by the library) whose key's master is
    frozen (SIGSTOP): lkv_lock_held turns 0."""
    key = key_mastered_by(c, 2, P + b"lock/lost/")
    w = Proc(c, "lock_hold", key, 3, 2500, opts=["--timeout", "2000"])
    pid = None
    try:
        code, f = result(w.line(), "acquire", key)
        assert code == "LKV_OK", f
        token = int(f["token"])
        m = re.fullmatch(r"holder value=holder\\x20%d index=(\d+)" % w.p.pid, w.line(10))
        assert m and int(m.group(1)) > token, "renewals move the key's index"
        m = re.fullmatch(r"renewed index=(\d+) token=(\d+) held=1", w.line())
        assert m, "still held after 2.5 ttl"
        assert w.line() == "ready"
        pid = c.freeze_node(2)
        frozen = time.monotonic()
        line = w.line(60)
        lost = time.monotonic() - frozen
        assert re.fullmatch(r"lost after_ms=\d+", line), line
        print("client_lib: lock reported lost %.2f s after its master froze (ttl 3 s)" % lost)
        # a renewal is due every ttl/3 and gives up after timeout_ms (2 s), or
        # lazykvd's read_timeout (5 s) answers 503
        assert lost < 3 + 5 + 2 + 2, "held stayed 1 for %.2f s" % lost
        rc, rest = w.finish(60)
        assert rc == 0 and len(rest) == 1 and rest[0].startswith("release -> "), (rc, rest, w.err)
    finally:
        w.kill()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: c.request("GET", path(key)).status in (200, 404), 30,
             "partition 2 to answer again")
    wait_for(lambda: c.request("GET", path(key)).status == 404, 10, "the lock to expire")


# ---- valgrind ----------------------------------------------------------------------------------

def test_no_leaks_or_memory_errors_under_valgrind(c):
    if SANITIZED:
        print("client_lib: valgrind skipped (sanitized build: LeakSanitizer checked every run)")
        return
    if shutil.which("valgrind") is None:
        print("client_lib: valgrind skipped (not installed)")
        return
    vg = ["valgrind", "--quiet", "--error-exitcode=1", "--leak-check=full",
          "--errors-for-leak-kinds=definite,indirect", "--track-fds=no"]
    pre = P + b"vg/"
    clean(c, pre)
    key = pre + b"k \xff"
    live_after_dead = "%s,%s" % (url(dead_port()), url(c.http_port))

    def vrun(*args, rc=0, ep=None, opts=()):
        out = lkv(c, *args, rc=rc, ep=ep, opts=opts, wrap=vg, timeout=300)
        assert not re.search(r"(?m)^==\d+==", out.err), ("valgrind reported", args, out.err)
        return out
    vrun("strerror")
    vrun("open", ep="", rc=1)
    vrun("put", key, value_arg(c, bytes(range(256))), "60")
    vrun("put_ctype", pre + b"ct", "<p>", "text/html")
    vrun("health")
    assert vrun("get", key).lines == ["get %s -> LKV_OK %s" % (esc(key), server_pair(c, key))]
    vrun("exists", key)
    vrun("get", pre + b"absent", rc=1)
    vrun("fill", pre + b"f/", 40, 100)
    assert vrun("list", pre + b"f/").lines[0] == "list %s -> LKV_OK n=40" % esc(pre + b"f/")
    code, f = result(vrun("atomic_put", pre + b"a", "x", "-").lines[0], "atomic_put", pre + b"a")
    vrun("atomic_put", pre + b"a", "y", f["index"], "0", "noout")
    vrun("atomic_put", pre + b"a", "z", f["index"], rc=1)                 # KEY_MODIFIED
    vrun("atomic_delete", pre + b"a", str(http_index(c, pre + b"a")))
    vrun("delete", key)
    vrun("delete_tree", pre + b"f/")
    vrun("put", key, "v", ep=live_after_dead)
    vrun("get", key, ep="%s,%s" % (url(dead_port()), url(dead_port())), rc=1,
         opts=["--timeout", "1000"])
    vrun("watch", key, 1)
    vrun("watch_tree", pre, 1)
    vrun("watch_stop", pre + b"ws")
    vrun("watch_tree_stop", pre + b"wt/")
    vrun("lock_basic", pre + b"lock")
    vrun("lock_try", pre + b"lock", 0)
    clean(c, pre)
