"""The access log (issue 12; /work/notes/issue12-contract.md).

`[server] access_log = PATH` (or `-`, standard output): one line per
request, written when it ends, in the combined log format plus the request
time in microseconds and the partition that answered:

  HOST - USER [DD/Mon/YYYY:HH:MM:SS +0000] "METHOD TARGET HTTP/1.1" STATUS BYTES "REFERER" "USER-AGENT" MICROS PARTITION

Each test starts a lazykvd of its own with the key inserted right after
`[server]` in a copy of the cluster's configuration, sends requests one at a
time, and after each waits for exactly one new line, which it parses field
by field: the target exactly as sent (query included), the status, the body
bytes (`-` for none), the quoted headers with `"`, `\\` and bytes outside
printable ASCII escaped, the token's NAME as the user (never the token),
the partition (the X-Lazykv-Partition of a read, the master of a write, `-`
for /health, /metrics and errors before any database work). SIGHUP reopens
the file after it was moved away. Keys live under al/ and are deleted.
"""
import calendar
import hashlib
import http.client
import os
import re
import signal
import socket
import time
import urllib.parse

import harness
from harness import wait_for

q = urllib.parse.quote

QUOTED = r'"((?:[^"\\]|\\.)*)"'
LINE = re.compile(r"^(?P<host>\S+) - (?P<user>\S+) \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2}) "
                  r"\+0000\] " + QUOTED.replace("(", "(?P<request>", 1) + r" (?P<status>\d{3}) "
                  r"(?P<bytes>[1-9]\d*|-) " + QUOTED.replace("(", "(?P<referer>", 1) + " " +
                  QUOTED.replace("(", "(?P<agent>", 1) + r" (?P<micros>\d+) (?P<partition>\d+|-)$")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
UA = "lazykv-access-test/1.0"


def esc(data):
    """A quoted field as the contract writes it: '"' and '\\' escaped with a
    backslash, bytes < 0x20 or >= 0x7f as \\xHH."""
    out = []
    for x in data:
        if x in (0x22, 0x5c):
            out.append("\\" + chr(x))
        elif x < 0x20 or x >= 0x7f:
            out.append("\\x%02x" % x)
        else:
            out.append(chr(x))
    return "".join(out)


def same_escapes(got, want):
    """got == want, the hex digits of \\xHH in either case."""
    norm = lambda s: re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: "\\x" + m.group(1).lower(), s)
    return norm(got) == norm(want)


def config_with(c, name, access_log, append="", log_level=None):
    """A copy of the cluster's configuration with `access_log = ...` right
    after [server] (and log_level replaced, text appended); mode 0600."""
    text = open(c.config).read()
    text, n = re.subn(r"(?m)^\[server\]$", "[server]\naccess_log = %s" % access_log, text)
    assert n == 1, text
    if log_level:
        text, n = re.subn(r"(?m)^log_level = .*$", "log_level = " + log_level, text)
        assert n == 1
    if append:
        text += "\n" + append + "\n"
    path = os.path.join(c.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


class Kvd:
    """A lazykvd with an access log at log_path (None: read the lines from
    its standard output, access_log = -)."""

    def __init__(self, c, name, log_path, access_log=None, append="", log_level=None):
        self.c = c
        self.path = log_path
        cfg = config_with(c, name + ".cfg", access_log or log_path, append, log_level)
        self.proc, self.port, self.kvd_log = c.spawn_kvd(cfg)
        if self.path is None:
            self.path = self.kvd_log
        # the readiness checks were requests too: start after a line of our own
        self.seen = 0
        self.req("GET", "/health", headers={"User-Agent": "access-log-sentinel"})
        wait_for(lambda: any("access-log-sentinel" in l for l in self.lines()), timeout=10,
                 what="the sentinel's access log line")
        self.seen = len(self.lines())

    def __enter__(self):
        return self

    def __exit__(self, etype, value, tb):
        rc = harness.Cluster.stop_extra(self.proc)
        if etype is None:
            assert rc == 0, ("lazykvd exited with %s" % rc, open(self.kvd_log).read()[-3000:])

    def lines(self, path=None):
        """The access log lines of path (default: the log): with access_log
        = -, the lines of lazykvd's output that are not its own log lines."""
        try:
            with open(path or self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        # only whole lines
        lines = data.decode("latin-1").split("\n")[:-1]
        if self.path == self.kvd_log and (path is None or path == self.kvd_log):
            lines = [l for l in lines if not re.match(r"^\d{4}-\d\d-\d\dT", l)]
        # the harness's readiness checks may end after the sentinel when one
        # was slow (under ASan): they are not ours
        return [l for l in lines if '"%s"' % harness.Cluster.READY_AGENT not in l]

    def req(self, method, target, body=None, headers=None, timeout=30):
        h = {"User-Agent": UA}
        h.update(headers or {})
        return self.c.request(method, target, body, h, timeout=timeout, port=self.port)

    def next_line(self, timeout=10):
        """Waits for exactly one new line; returns it parsed."""
        wait_for(lambda: len(self.lines()) > self.seen, timeout=timeout,
                 what="an access log line for the request")
        lines = self.lines()
        assert len(lines) == self.seen + 1, ("more than one line for one request",
                                             lines[self.seen:])
        self.seen += 1
        return parse(lines[-1])

    def one(self, method, target, body=None, headers=None, timeout=30):
        """A request and its access log line: (Response, parsed line)."""
        r = self.req(method, target, body, headers, timeout)
        return r, self.next_line()

    def resync(self):
        """Forgets the count: every line up to a fresh sentinel's is seen."""
        self.req("GET", "/health", headers={"User-Agent": "access-log-resync"})
        wait_for(lambda: any("access-log-resync" in l for l in self.lines()), timeout=10,
                 what="the resync line")
        lines = self.lines()
        self.seen = max(i for i, l in enumerate(lines) if "access-log-resync" in l) + 1

    def no_more_lines(self):
        """A last request: its line is the only one after those seen."""
        self.req("GET", "/health", headers={"User-Agent": "access-log-last"})
        m = self.next_line()
        assert m["agent"] == "access-log-last", m


def parse(line):
    assert all(0x20 <= ord(ch) < 0x7f for ch in line), ("unescaped bytes in a line", line)
    m = LINE.match(line)
    assert m, ("not the access log format", line)
    d = m.groupdict()
    d["line"] = line
    # the time: now, UTC
    day, mon, rest = d["time"].split("/")
    year, hh, mm, ss = rest.split(":")
    t = calendar.timegm((int(year), MONTHS.index(mon) + 1, int(day), int(hh), int(mm), int(ss)))
    assert abs(t - time.time()) < 15, ("the time is not now (UTC)", line)
    return d


def expect(d, request, status, body_len, partition, user="-", agent=UA, referer="-",
           host="127.0.0.1"):
    """Asserts every field of a parsed line (partition None: a digit or -)."""
    assert d["host"] == host, d
    assert d["user"] == user, (user, d)
    assert d["request"] == request, (request, d)
    assert int(d["status"]) == status, (status, d)
    assert d["bytes"] == (str(body_len) if body_len else "-"), (body_len, d)
    assert same_escapes(d["referer"], referer), (referer, d)
    assert same_escapes(d["agent"], agent), (agent, d)
    assert int(d["micros"]) < 30 * 1000000, d
    if partition is not None:
        assert d["partition"] == str(partition), (partition, d)
    return d


def kpath(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")


def cleanup(c, prefix="al/"):
    r = c.request("DELETE", "/canonicalbucket/?prefix=" + q(prefix.encode(), safe=""))
    assert r.status == 202, r


# ---- the lines ---------------------------------------------------------------------------

def test_a_line_for_each_kind_of_request(c):
    log = os.path.join(c.dir, "access-kinds.log")
    value = b"value-marker-7f3a9c never logged"
    with Kvd(c, "access-kinds", log) as k:
        try:
            # writes: the master
            p = kpath("al/k1", True)
            r, d = k.one("PUT", p, value, {"Referer": "http://example.test/from?x=1"})
            assert r.status == 201, r
            master = r.json()["master"]
            expect(d, "PUT %s HTTP/1.1" % p, 201, len(r.body), master,
                   referer="http://example.test/from?x=1")
            r, d = k.one("PUT", p, value)
            assert r.status == 200, r
            expect(d, "PUT %s HTTP/1.1" % p, 200, len(r.body), master)
            p2 = kpath("al/k2")
            r, d = k.one("POST", p2, b"two")
            assert r.status == 201, r
            master2 = r.json()["master"]
            expect(d, "POST %s HTTP/1.1" % p2, 201, len(r.body), master2)
            # reads: the partition that served (X-Lazykv-Partition)
            for target in (kpath("al/k1"), kpath("al/k1", True)):
                r, d = k.one("GET", target)
                assert r.status == 200 and r.body == value, r
                expect(d, "GET %s HTTP/1.1" % target, 200, len(value),
                       int(r.header("X-Lazykv-Partition")))
            assert int(r.header("X-Lazykv-Partition")) == master, r   # canonical: the master
            assert int(d["partition"]) in range(c.n)
            r, d = k.one("HEAD", kpath("al/k1", True))
            assert r.status == 200, r
            expect(d, "HEAD %s HTTP/1.1" % kpath("al/k1", True), 200, 0,
                   int(r.header("X-Lazykv-Partition")))
            for target in (kpath("al/missing"), kpath("al/missing", True)):
                r, d = k.one("GET", target)
                assert r.status == 404, r
                expect(d, "GET %s HTTP/1.1" % target, 404, len(r.body),
                       int(r.header("X-Lazykv-Partition")))
            # a key sent percent-encoded: logged as sent, not decoded
            target = "/canonicalbucket/al%2Fk1"
            r, d = k.one("GET", target)
            assert r.status == 200, r
            expect(d, "GET %s HTTP/1.1" % target, 200, len(value), master)
            # a key watch: held for its wait, the time says so
            index = r.header("X-Lazykv-Index")
            target = "%s?index=%s&wait=1" % (kpath("al/k1", True), index)
            r, d = k.one("GET", target)
            assert r.status == 200, r
            expect(d, "GET %s HTTP/1.1" % target, 200, len(value), master)
            assert 900000 <= int(d["micros"]) < 10 * 1000000, d
            # DELETE: the master
            r, d = k.one("DELETE", p2)
            assert r.status == 202, r
            expect(d, "DELETE %s HTTP/1.1" % p2, 202, len(r.body), master2)
            r, d = k.one("DELETE", p2)
            assert r.status == 404, r
            expect(d, "DELETE %s HTTP/1.1" % p2, 404, len(r.body), master2)
            # lists: the target as sent, query included
            for target in ("/canonicalbucket/?prefix=al%2F&limit=5",
                           "/bucket/?prefix=al/&values=1", "/canonicalbucket/?prefix=al%2Fk&start_after=al%2Fa"):
                r, d = k.one("GET", target)
                assert r.status == 200, r
                expect(d, "GET %s HTTP/1.1" % target, 200, len(r.body), None)
            # no partition involved
            r, d = k.one("GET", "/health")
            assert r.status == 200, r
            expect(d, "GET /health HTTP/1.1", 200, len(r.body), "-")
            r, d = k.one("GET", "/metrics")
            assert r.status == 200, r
            expect(d, "GET /metrics HTTP/1.1", 200, len(r.body), "-")
            for target, status in (("/bucket/bad%zzescape", 400), ("/bucket/al/%", 400),
                                   ("/bucket/al/./x", 400), ("/nope?x=1&y=%22", 404)):
                r, d = k.one("GET", target)
                assert r.status == status, (target, r)
                expect(d, "GET %s HTTP/1.1" % target, status, len(r.body), "-")
            r, d = k.one("PATCH", kpath("al/k1"))
            assert r.status == 405, r
            expect(d, "PATCH %s HTTP/1.1" % kpath("al/k1"), 405, len(r.body), "-")
            # without User-Agent or Referer: -
            conn = http.client.HTTPConnection("127.0.0.1", k.port, timeout=30)
            try:
                conn.request("GET", "/health")   # http.client sends no User-Agent
                r = conn.getresponse()
                body = r.read()
                d = k.next_line()
                expect(d, "GET /health HTTP/1.1", 200, len(body), "-", agent="-")
                # keep-alive: one line per request on one connection
                for i in range(3):
                    conn.request("GET", kpath("al/k1", True), headers={"User-Agent": "ka-%d" % i})
                    r = conn.getresponse()
                    assert r.read() == value
                    expect(k.next_line(), "GET %s HTTP/1.1" % kpath("al/k1", True), 200,
                           len(value), master, agent="ka-%d" % i)
            finally:
                conn.close()
            k.no_more_lines()
            text = open(log, "rb").read()
            assert b"value-marker" not in text, "a value is in the access log"
        finally:
            cleanup(c)


def raw_request(port, data, timeout=10):
    """Sends bytes; returns the response (up to close or timeout)."""
    return harness.raw_exchange(port, data, timeout)


def test_quoted_fields_are_escaped(c):
    log = os.path.join(c.dir, "access-escape.log")
    with Kvd(c, "access-escape", log) as k:
        agent = b'curl "quoted" \\ back\tslash \xc3\xa9t\xc3\xa9 ~'
        referer = b'http://x.test/"a"\\b\x7f'
        resp = raw_request(k.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   b"User-Agent: " + agent + b"\r\nReferer: " + referer + b"\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 200 "), resp[:200]
        body = resp.partition(b"\r\n\r\n")[2]
        d = k.next_line()
        expect(d, "GET /health HTTP/1.1", 200, len(body), "-", agent=esc(agent), referer=esc(referer))
        assert d["agent"].startswith('curl \\"quoted\\" \\\\ back\\x09slash \\x'), d
        # a control byte cannot start a forged line
        agent = b"evil\x01\x1b[31m end"
        resp = raw_request(k.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   b"User-Agent: " + agent + b"\r\n\r\n")
        if resp.startswith(b"HTTP/1.1 200 "):
            d = k.next_line()
            assert same_escapes(d["agent"], esc(agent)), d
            k.no_more_lines()
        else:
            # libmicrohttpd refused the header itself: whether that makes a line
            # is not the contract's; only check that no line holds the raw bytes
            k.resync()
        assert b"\x01" not in open(log, "rb").read() and b"\x1b" not in open(log, "rb").read()


def test_user_is_the_token_name_never_the_token(c):
    log = os.path.join(c.dir, "access-auth.log")
    tokens_path = os.path.join(c.dir, "access-auth.tokens")
    made = {}
    for name, perms in (("alice", "rw"), ("bob.ro", "r")):
        p = c.admin("token", name, perms, "al/")
        assert p.returncode == 0, p
        made[name] = p.stderr.decode().strip()
        assert p.stdout.decode().split(" ")[2] == hashlib.sha256(made[name].encode()).hexdigest()
        made[name + "-line"] = p.stdout.decode().strip()
    fd = os.open(tokens_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(made["alice-line"] + "\n" + made["bob.ro-line"] + "\n")
    unknown = "unknown-token-3b1f6e0a9d2c4f7e8a5b6c7d8e9f0a1b2c3"
    with Kvd(c, "access-auth", log, append="[auth]\ntokens_file = %s" % tokens_path,
             log_level="debug") as k:
        try:
            def bearer(name):
                return {"Authorization": "Bearer " + made.get(name, name)}
            p = kpath("al/t1", True)
            r, d = k.one("PUT", p, b"secret-value-5c2e", bearer("alice"))
            assert r.status == 201, r
            expect(d, "PUT %s HTTP/1.1" % p, 201, len(r.body), r.json()["master"], user="alice")
            r, d = k.one("GET", p, None, bearer("bob.ro"))
            assert r.status == 200, r
            expect(d, "GET %s HTTP/1.1" % p, 200, 17, int(r.header("X-Lazykv-Partition")),
                   user="bob.ro")
            # a known token refused (403): its name; an unknown one (401): -
            r, d = k.one("PUT", p, b"x", bearer("bob.ro"))
            assert r.status == 403, r
            expect(d, "PUT %s HTTP/1.1" % p, 403, len(r.body), "-", user="bob.ro")
            r, d = k.one("GET", p, None, bearer(unknown))
            assert r.status == 401, r
            expect(d, "GET %s HTTP/1.1" % p, 401, len(r.body), "-")
            r, d = k.one("GET", p)
            assert r.status == 401, r
            expect(d, "GET %s HTTP/1.1" % p, 401, len(r.body), "-")
            r, d = k.one("GET", "/metrics", None, bearer("alice"))
            assert r.status == 403, r
            expect(d, "GET /metrics HTTP/1.1", 403, len(r.body), "-", user="alice")
            r, d = k.one("GET", "/health")
            assert r.status == 200, r
            expect(d, "GET /health HTTP/1.1", 200, len(r.body), "-")
            r, d = k.one("GET", "/bucket/?prefix=al%2F", None, bearer("bob.ro"))
            assert r.status == 200, r
            expect(d, "GET /bucket/?prefix=al%2F HTTP/1.1", 200, len(r.body), None, user="bob.ro")
            r, d = k.one("DELETE", "/canonicalbucket/?prefix=al%2F", None, bearer("alice"))
            assert r.status == 202, r
            expect(d, "DELETE /canonicalbucket/?prefix=al%2F HTTP/1.1", 202, len(r.body), None,
                   user="alice")
            k.no_more_lines()
            # no token in either log (lazykvd's at debug level), no value in the access log
            for path in (log, k.kvd_log):
                text = open(path, "rb").read()
                for tok in (made["alice"], made["bob.ro"], unknown):
                    assert tok.encode() not in text, ("a token is in " + path)
            assert b"secret-value-5c2e" not in open(log, "rb").read(), "a value is in the access log"
        finally:
            cleanup(c)


def test_sighup_reopens_the_file(c):
    log = os.path.join(c.dir, "access-rotate.log")
    with Kvd(c, "access-rotate", log) as k:
        r, d = k.one("GET", "/health", headers={"User-Agent": "before-rotation"})
        expect(d, "GET /health HTTP/1.1", 200, len(r.body), "-", agent="before-rotation")
        os.rename(log, log + ".1")
        before = "\n".join(k.lines(log + ".1")) + "\n"
        os.kill(k.proc.pid, signal.SIGHUP)
        # until the reopen, lines still go to the moved file: poll with requests
        sent = []

        def reopened():
            agent = "after-rotation-%d" % len(sent)
            r = k.req("GET", "/health", headers={"User-Agent": agent})
            assert r.status == 200, r
            sent.append(agent)
            return os.path.exists(log) and k.lines(log)
        wait_for(reopened, timeout=10, what="a new file at the access log's path")
        # every request of the poll is logged exactly once, in one file or the other
        wait_for(lambda: len(k.lines(log + ".1")) + len(k.lines(log)) >= k.seen + len(sent),
                 timeout=10, what="every line of the poll")
        old, new = k.lines(log + ".1"), k.lines(log)
        assert old[:k.seen] == before.splitlines()
        agents = [parse(l)["agent"] for l in old[k.seen:] + new]
        assert sorted(agents) == sorted(sent), (agents, sent)
        # from now on: the new file only
        k.path, k.seen = log, len(new)
        r, d = k.one("GET", kpath("al/rotated"), headers={"User-Agent": "after-reopen"})
        expect(d, "GET %s HTTP/1.1" % kpath("al/rotated"), 404, len(r.body),
               int(r.header("X-Lazykv-Partition")), agent="after-reopen")
        assert k.lines(log + ".1") == old, "a line went to the moved file after the reopen"
        k.no_more_lines()
        assert k.proc.poll() is None


def test_standard_output_and_relative_path(c):
    # access_log = -: the lines on lazykvd's standard output
    with Kvd(c, "access-stdout", None, access_log="-") as k:
        r, d = k.one("GET", kpath("al/stdout", True), headers={"User-Agent": "to-stdout"})
        assert r.status == 404, r
        expect(d, "GET %s HTTP/1.1" % kpath("al/stdout", True), 404, len(r.body),
               int(r.header("X-Lazykv-Partition")), agent="to-stdout")
        k.no_more_lines()
    # a relative path: relative to the configuration file's directory
    rel = "access-relative-%d.log" % os.getpid()
    assert not os.path.exists(rel)
    try:
        with Kvd(c, "access-relative", os.path.join(c.dir, rel), access_log=rel) as k:
            r, d = k.one("GET", "/health", headers={"User-Agent": "relative"})
            expect(d, "GET /health HTTP/1.1", 200, len(r.body), "-", agent="relative")
            k.no_more_lines()
        assert not os.path.exists(rel), "the access log was opened in the working directory"
    finally:
        if os.path.exists(rel):
            os.unlink(rel)


def test_off_by_default(c):
    # the cluster's lazykvd has no access_log: nothing in its output looks like one
    c.request("GET", "/health", headers={"User-Agent": "default-off"})
    c.request("GET", kpath("al/off"), headers={"User-Agent": "default-off"})
    text = open(c.kvd_log, errors="replace").read()
    assert "default-off" not in text and not any(LINE.match(l) for l in text.splitlines())
    # access_log = off, said explicitly
    cfg = config_with(c, "access-off.cfg", "off")
    proc, port, kvd_log = c.spawn_kvd(cfg)
    try:
        assert c.request("GET", "/health", headers={"User-Agent": "explicit-off"}, port=port).status == 200
    finally:
        assert harness.Cluster.stop_extra(proc) == 0
    text = open(kvd_log, errors="replace").read()
    assert "explicit-off" not in text and not any(LINE.match(l) for l in text.splitlines())
    assert not os.path.exists(os.path.join(c.dir, "off"))
