"""The lazykv command (issue 11): bin/lazykv through the real cluster.

Every command and option, byte-exact values through stdin/stdout, TTL,
conditional puts, delete-tree, ls --long, both watches (a line per change,
exit 0 on SIGINT/SIGTERM), lock (10 processes contending; COMMAND's exit
status; signals passed on; lock loss when renewal is impossible), failover
between endpoints, and every exit status but 77 (401/403: lazykvd has no
tokens yet, so nothing can answer them).

Each test works under its own prefix of lkvcli/ and deletes it at the end;
every process it starts is stopped in a finally. Exit statuses, stdout
bytes and the one-line stderr are asserted exactly.
"""
import base64
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
import urllib.parse

from harness import free_port, wait_for
from parked import expires_us

q = urllib.parse.quote
ROOT = "lkvcli/"
LONG = re.compile(rb"^(\d+) (\d+) (\S+) (.*)$")
PRECONDITION = b"the precondition does not hold; nothing was written"


# ---- helpers ---------------------------------------------------------------------------

def endpoint(port):
    return "http://127.0.0.1:%d" % port


def env_for(c, port=None, extra=None):
    e = dict(os.environ)
    for name in ("LAZYKV_TOKEN", "LAZYKV_LOCK_TOKEN"):
        e.pop(name, None)
    e["LAZYKV_ENDPOINTS"] = endpoint(port or c.http_port)
    e["PATH"] = c.bindir + os.pathsep + e.get("PATH", "")
    e.update(extra or {})
    return e


def argv(c, args):
    return [os.path.join(c.bindir, "lazykv")] + list(args)


def run(c, *args, stdin=b"", port=None, env=None, timeout=60, stdout=subprocess.PIPE):
    """Runs lazykv with LAZYKV_ENDPOINTS at the cluster's lazykvd (or port)."""
    return subprocess.run(argv(c, args), input=stdin, stdout=stdout, stderr=subprocess.PIPE,
                          env=env or env_for(c, port), timeout=timeout)


def ok(r, stdout=b""):
    assert (r.returncode, r.stdout, r.stderr) == (0, stdout, b""), r
    return r


def failed(r, status, stderr):
    """r exited with status, printed nothing, and said exactly stderr (bytes,
    or a compiled pattern for what only the library decides)."""
    assert r.returncode == status, (status, r)
    assert r.stdout == b"", r
    if isinstance(stderr, bytes):
        assert r.stderr == stderr, (stderr, r.stderr)
    else:
        assert stderr.fullmatch(r.stderr), (stderr.pattern, r.stderr)
    assert r.stderr.count(b"\n") == 1 and r.stderr.endswith(b"\n"), r.stderr


def usage(r, line):
    failed(r, 2, line.encode() + b"\n")


def one_line(prefix):
    """A pattern for one stderr line starting with prefix (bytes)."""
    return re.compile(re.escape(prefix) + rb"[^\n]+\n")


def path(key, canonical=True):
    if isinstance(key, str):
        key = key.encode()
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key, safe="/")


def canonical_get(c, key):
    return c.request("GET", path(key))


def index_of(c, key):
    g = canonical_get(c, key)
    assert g.status == 200, g
    return int(g.header("X-Lazykv-Index"))


def cleanup(c, prefix):
    r = c.request("DELETE", "/canonicalbucket/?prefix=" + q(prefix.encode(), safe=""))
    assert r.status == 202, r


def master_of(c, key):
    """The partition that masters key (learned from a write, then undone)."""
    w = c.request("POST", path(key), b"probe")
    assert w.status == 201, w
    assert c.request("DELETE", path(key)).status == 202
    return w.json()["master"]


def dead_endpoint():
    """An endpoint nothing listens on."""
    return endpoint(free_port())


class Lines:
    """A running lazykv whose stdout is read a line at a time, with a
    deadline (watch)."""

    def __init__(self, c, *args, env=None):
        self.proc = subprocess.Popen(argv(c, args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env or env_for(c))
        self.buf = b""

    def line(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no line within %.1f s (have %r)" % (timeout, self.buf))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("lazykv ended (%s): %r %r" % (
                        self.proc.wait(), self.buf, self.proc.stderr.read()))
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def quiet(self, seconds):
        """Asserts that no line comes for seconds."""
        ready, _, _ = select.select([self.proc.stdout], [], [], seconds)
        assert not ready and b"\n" not in self.buf, os.read(self.proc.stdout.fileno(), 65536)

    def stop(self, sig=signal.SIGINT, timeout=10):
        """Sends sig; returns (status, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("lazykv did not end within %d s of signal %d" % (timeout, sig))
        return self.proc.returncode, self.buf + out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def doc(key, index, value, content_type, expires_at=None):
    """A watch line for a live key, as lazykv prints it (compact, in its order)."""
    d = {"key": key, "index": index}
    try:
        d["value"] = value.decode("utf-8")
    except UnicodeDecodeError:
        d["value"] = base64.b64encode(value).decode()
        d["encoding"] = "base64"
    d["content_type"] = content_type
    d["expires_at"] = expires_at
    return d


def dumps(d):
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def live_doc(c, key):
    """What a watch of key should print now: read with a canonical GET."""
    g = canonical_get(c, key)
    assert g.status == 200, g
    return doc(key, int(g.header("X-Lazykv-Index")), g.body, g.header("Content-Type"),
               g.header("X-Lazykv-Expires"))


# ---- help and usage ----------------------------------------------------------------------

def test_help_for_the_program_and_every_command(c):
    r = run(c, "--help")
    assert r.returncode == 0 and r.stderr == b"", r
    assert r.stdout.startswith(b"usage: lazykv [GLOBAL OPTIONS] COMMAND [OPTIONS] ARGS\n"), r
    for cmd in (b"get", b"put", b"rm", b"ls", b"watch", b"lock", b"health"):
        assert b"\n  " + cmd + b" " in r.stdout, cmd
    assert b"Exit status: 0 done; 1 absent key or failed precondition; 2 usage" in r.stdout
    assert run(c, "-h").stdout == r.stdout
    for cmd in ("get", "put", "rm", "ls", "watch", "lock", "health"):
        h = run(c, cmd, "--help")
        assert h.returncode == 0 and h.stderr == b"", (cmd, h)
        assert h.stdout.startswith(b"usage: lazykv [GLOBAL OPTIONS] " + cmd.encode()), (cmd, h)
        assert run(c, cmd, "-h").stdout == h.stdout
    # help needs no server
    h = run(c, "-e", dead_endpoint(), "put", "--help")
    assert h.returncode == 0 and b"--if-index N" in h.stdout and b"--content-type T" in h.stdout
    assert b"--if-absent" in h.stdout and b"--ttl S" in h.stdout
    assert b"--long" in run(c, "ls", "--help").stdout
    assert b"LAZYKV_LOCK_TOKEN" in run(c, "lock", "--help").stdout
    # after "--", --help is COMMAND's
    r = run(c, "lock", ROOT + "help/l", "--", "sh", "-c", 'echo "$1"', "sh", "--help")
    ok(r, b"--help\n")
    ok(run(c, "lock", ROOT + "help/l", "sh", "-c", 'echo "$1"', "sh", "--help"), b"--help\n")


def test_usage_errors_exit_2_with_one_line(c):
    usage(run(c), "lazykv: COMMAND is required (see lazykv --help)")
    usage(run(c, "frob"), "lazykv: unknown command 'frob' (see lazykv --help)")
    usage(run(c, "--bogus", "get", "k"), "lazykv: unknown option '--bogus' (see lazykv --help)")
    usage(run(c, "-x", "get", "k"), "lazykv: unknown option '-x' (see lazykv --help)")
    usage(run(c, "-e"), "lazykv: --endpoints needs a value (see lazykv --help)")
    usage(run(c, "--lazy=1", "get", "k"), "lazykv: --lazy takes no value (see lazykv --help)")
    usage(run(c, "--cert", "/x.pem", "get", "k"), "lazykv: --cert and --key go together (see lazykv --help)")
    usage(run(c, "--timeout", "0", "get", "k"),
          "lazykv: --timeout must be a whole number of seconds from 1 to 86400, got '0' (see lazykv --help)")
    usage(run(c, "get"), "lazykv: get: KEY is required (see lazykv get --help)")
    usage(run(c, "get", "a", "b"), "lazykv: get: one KEY only (see lazykv get --help)")
    usage(run(c, "get", ""), "lazykv: get: KEY must not be empty (see lazykv get --help)")
    usage(run(c, "get", "--ttl", "5", "k"), "lazykv: get: unknown option '--ttl' (see lazykv get --help)")
    usage(run(c, "put"), "lazykv: put: KEY is required (see lazykv put --help)")
    usage(run(c, "put", "k", "v", "w"), "lazykv: put: too many arguments (KEY [VALUE]) (see lazykv put --help)")
    for bad in ("0", "x", "-1", "315360001", "1.5", " 5", ""):
        usage(run(c, "put", "--ttl", bad, "k", "v"),
              "lazykv: put: --ttl must be a whole number of seconds from 1 to 315360000, got '%s'"
              " (see lazykv put --help)" % bad)
    usage(run(c, "put", "--ttl"), "lazykv: put: --ttl needs a value (see lazykv put --help)")
    usage(run(c, "put", "--if-index", "abc", "k", "v"),
          "lazykv: put: --if-index must be a whole number, got 'abc' (see lazykv put --help)")
    usage(run(c, "put", "--if-absent", "--if-index", "3", "k", "v"),
          "lazykv: put: --if-absent and --if-index exclude each other (see lazykv put --help)")
    usage(run(c, "put", "--if-absent", "--content-type", "text/plain", "k", "v"),
          "lazykv: put: --content-type cannot be combined with --if-absent or --if-index"
          " (see lazykv put --help)")
    usage(run(c, "rm"), "lazykv: rm: KEY or --prefix PREFIX is required (see lazykv rm --help)")
    usage(run(c, "rm", "--prefix", "p/", "k"), "lazykv: rm: either KEY or --prefix PREFIX (see lazykv rm --help)")
    usage(run(c, "rm", "--prefix", ""), "lazykv: rm: PREFIX must not be empty (see lazykv rm --help)")
    usage(run(c, "ls", "a", "b"), "lazykv: ls: one PREFIX only (see lazykv ls --help)")
    usage(run(c, "watch"), "lazykv: watch: KEY or --prefix PREFIX is required (see lazykv watch --help)")
    usage(run(c, "watch", "--prefix"), "lazykv: watch: --prefix needs a value (see lazykv watch --help)")
    usage(run(c, "lock"), "lazykv: lock: NAME is required (see lazykv lock --help)")
    usage(run(c, "lock", "L"),
          "lazykv: lock: COMMAND is required (lock NAME -- COMMAND [ARG...]) (see lazykv lock --help)")
    usage(run(c, "lock", "L", "--"),
          "lazykv: lock: COMMAND is required (lock NAME -- COMMAND [ARG...]) (see lazykv lock --help)")
    usage(run(c, "lock", "L", "--ttl", "0", "--", "true"),
          "lazykv: lock: --ttl must be a whole number of seconds from 1 to 315360000, got '0'"
          " (see lazykv lock --help)")
    usage(run(c, "lock", "L", "--wait", "soon", "--", "true"),
          "lazykv: lock: --wait must be a whole number of seconds from 0 to 315360000, got 'soon'"
          " (see lazykv lock --help)")
    usage(run(c, "health", "x"), "lazykv: health: no arguments expected (see lazykv health --help)")
    # a control byte in an argument cannot split the line
    usage(run(c, "--a\nb", "get", "k"), "lazykv: unknown option '--a\\x0ab' (see lazykv --help)")
    # a malformed endpoint list
    usage(run(c, "-e", "ftp://h:1", "get", "k"),
          "lazykv: malformed endpoint list 'ftp://h:1' (want http[s]://HOST[:PORT][,...])")
    usage(run(c, "get", "k", env=env_for(c, extra={"LAZYKV_ENDPOINTS": "nowhere"})),
          "lazykv: malformed endpoint list 'nowhere' (want http[s]://HOST[:PORT][,...])")


# ---- get, put, rm ----------------------------------------------------------------------

def test_put_get_rm_and_exit_1_for_an_absent_key(c):
    p = ROOT + "basic/"
    try:
        k = p + "greeting"
        ok(run(c, "put", k, "hello"))
        ok(run(c, "get", k), b"hello")
        g = canonical_get(c, k)
        assert (g.status, g.body) == (200, b"hello"), g
        # rewritten, from stdin
        ok(run(c, "put", k, stdin=b"hello again\n"))
        ok(run(c, "get", k), b"hello again\n")
        # a value that looks like an option, and a key after "--"
        ok(run(c, "put", k, "-5"))
        ok(run(c, "get", k), b"-5")
        ok(run(c, "put", "--", p + "-dash", "v"))
        ok(run(c, "get", "--", p + "-dash"), b"v")
        # an empty value (argument and stdin)
        ok(run(c, "put", p + "empty", ""))
        ok(run(c, "get", p + "empty"), b"")
        ok(run(c, "put", p + "empty2", stdin=b""))
        assert canonical_get(c, p + "empty2").status == 200
        # keys with spaces, '%', UTF-8 and slashes
        odd = p + "a b/%2F/ü/€"
        ok(run(c, "put", odd, "odd"))
        ok(run(c, "get", odd), b"odd")
        assert canonical_get(c, odd).body == b"odd"
        # rm
        ok(run(c, "rm", k))
        failed(run(c, "get", k), 1, b"lazykv: get " + k.encode() + b": no such key\n")
        failed(run(c, "rm", k), 1, b"lazykv: rm " + k.encode() + b": no such key\n")
        failed(run(c, "get", p + "never"), 1, b"lazykv: get " + p.encode() + b"never: no such key\n")
        assert canonical_get(c, k).status == 404
    finally:
        cleanup(c, p)


def test_binary_values_round_trip_byte_exact_through_stdin_and_stdout(c):
    p = ROOT + "binary/"
    try:
        every_byte = bytes(range(256)) * 4
        big = os.urandom(3 * 1024 * 1024 + 7)
        for name, value in (("every-byte", every_byte), ("big", big), ("nul", b"\0"),
                            ("crlf", b"\r\n\r\n"), ("not-utf8", b"\xff\xfe\xc3(")):
            k = p + name
            ok(run(c, "put", k, stdin=value))
            ok(run(c, "get", k), value)
            assert canonical_get(c, k).body == value, name
        # a key holding a byte that is not UTF-8, and a control byte
        k = (p + "bin-").encode() + b"\xff\x01"
        ok(run(c, "put", k, stdin=b"x"))
        ok(run(c, "get", k), b"x")
        r = ok(run(c, "ls", p + "bin-"), k + b"\n")
        # a failed get names it on one line, control byte escaped
        ok(run(c, "rm", k))
        failed(run(c, "get", k), 1, b"lazykv: get " + k[:-1] + b"\\x01: no such key\n")
    finally:
        cleanup(c, p)


def test_stdout_that_cannot_be_written_exits_74(c):
    p = ROOT + "full/"
    try:
        ok(run(c, "put", p + "k", "some bytes"))
        with open("/dev/full", "wb") as full:
            r = run(c, "get", p + "k", stdout=full)
        assert r.returncode == 74, r
        assert r.stderr == b"lazykv: get: writing to stdout: No space left on device\n", r.stderr
    finally:
        cleanup(c, p)


def test_put_ttl_expires_the_key_and_a_plain_put_clears_it(c):
    p = ROOT + "ttl/"
    try:
        k = p + "session"
        t0 = time.time()
        ok(run(c, "put", "--ttl", "2", k, "alive"))
        ok(run(c, "get", k), b"alive")
        g = canonical_get(c, k)
        assert g.header("X-Lazykv-Expires"), g
        line = run(c, "ls", "--long", k)
        m = LONG.match(line.stdout.rstrip(b"\n"))
        assert m and line.returncode == 0 and line.stderr == b"", line
        assert m.group(3).decode() == g.header("X-Lazykv-Expires"), (m.group(3), g)
        exp = expires_us(m.group(3).decode()) / 1e6
        assert t0 + 1.5 <= exp <= time.time() + 2.5, (t0, exp)
        # gone everywhere once the instant passes
        wait_for(lambda: run(c, "get", k).returncode == 1, timeout=6, what="the key to expire")
        failed(run(c, "get", k), 1, b"lazykv: get " + k.encode() + b": no such key\n")
        # a put with --ttl=S (inline), then a plain put: no expiry any more
        ok(run(c, "put", "--ttl=60", k, "v"))
        assert canonical_get(c, k).header("X-Lazykv-Expires")
        ok(run(c, "put", k, "v2"))
        assert canonical_get(c, k).header("X-Lazykv-Expires") is None
        assert LONG.match(run(c, "ls", "-l", k).stdout.rstrip(b"\n")).group(3) == b"-"
    finally:
        cleanup(c, p)


def test_put_if_absent_and_if_index_exit_1_when_the_precondition_fails(c):
    p = ROOT + "cas/"
    try:
        k = p + "counter"
        ok(run(c, "put", "--if-absent", k, "1"))
        failed(run(c, "put", "--if-absent", k, "2"), 1, b"lazykv: put " + k.encode() + b": " + PRECONDITION + b"\n")
        ok(run(c, "get", k), b"1")
        # --if-index: the index ls --long shows
        idx = int(LONG.match(run(c, "ls", "--long", k).stdout).group(1))
        assert idx == index_of(c, k)
        ok(run(c, "put", "--if-index", str(idx), k, "2"))
        ok(run(c, "get", k), b"2")
        # the old index no longer matches: nothing written
        failed(run(c, "put", "--if-index", str(idx), k, "3"), 1,
               b"lazykv: put " + k.encode() + b": " + PRECONDITION + b"\n")
        ok(run(c, "get", k), b"2")
        # with --ttl and from stdin
        idx = index_of(c, k)
        ok(run(c, "put", "--if-index", str(idx), "--ttl", "60", k, stdin=b"3"))
        g = canonical_get(c, k)
        assert g.body == b"3" and g.header("X-Lazykv-Expires"), g
        # a deleted key: no index matches; --if-absent and --if-index 0 create it
        ok(run(c, "rm", k))
        r = run(c, "put", "--if-index", g.header("X-Lazykv-Index"), k, "4")
        assert (r.returncode, r.stdout) == (1, b""), r
        assert r.stderr in (b"lazykv: put " + k.encode() + b": " + PRECONDITION + b"\n",
                            b"lazykv: put " + k.encode() + b": no such key\n"), r.stderr
        assert canonical_get(c, k).status == 404
        ok(run(c, "put", "--if-index", "0", k, "5"))
        ok(run(c, "get", k), b"5")
        failed(run(c, "put", "--if-index", "0", k, "6"), 1,
               b"lazykv: put " + k.encode() + b": " + PRECONDITION + b"\n")
        ok(run(c, "rm", k))
        ok(run(c, "put", "--if-absent", k, "7"))
        ok(run(c, "get", k), b"7")
    finally:
        cleanup(c, p)


def test_put_content_type(c):
    p = ROOT + "ctype/"
    try:
        k = p + "page"
        ok(run(c, "put", "--content-type", "text/html; charset=utf-8", k, "<p>hi</p>"))
        g = canonical_get(c, k)
        assert (g.body, g.header("Content-Type")) == (b"<p>hi</p>", "text/html; charset=utf-8"), g
        ok(run(c, "get", k), b"<p>hi</p>")
        # from stdin, with a TTL
        ok(run(c, "put", "--content-type=image/png", "--ttl", "60", k, stdin=b"\x89PNG"))
        g = canonical_get(c, k)
        assert (g.body, g.header("Content-Type")) == (b"\x89PNG", "image/png"), g
        assert g.header("X-Lazykv-Expires"), g
        # without it: the server's default again, as for a POST without one
        ok(run(c, "put", k, "plain"))
        assert c.request("POST", path(p + "other"), b"x").status == 201
        default = canonical_get(c, p + "other").header("Content-Type")
        assert default and canonical_get(c, k).header("Content-Type") == default
    finally:
        cleanup(c, p)


# ---- rm --prefix, ls ---------------------------------------------------------------------

def test_rm_prefix_deletes_a_tree_and_nothing_else(c):
    p = ROOT + "tree/"
    try:
        for k in ("a/1", "a/2", "a/b/3", "ab", "b/1"):
            ok(run(c, "put", p + k, k))
        ok(run(c, "rm", "--prefix", p + "a/"))
        ok(run(c, "ls", p), (p + "ab\n" + p + "b/1\n").encode())
        for k in ("a/1", "a/2", "a/b/3"):
            assert canonical_get(c, p + k).status == 404
        # nothing under it: still 0
        ok(run(c, "rm", "--prefix", p + "a/"))
        ok(run(c, "rm", "--prefix=" + p))
        ok(run(c, "ls", p), b"")
    finally:
        cleanup(c, p)


def test_ls_lists_sorted_keys_and_long_shows_index_size_and_expiry(c):
    p = ROOT + "ls/"
    try:
        values = {"b": b"22", "a": b"1", "c/d": b"", "c/e": bytes(range(1, 256)) * 4, "é": b"x"}
        for k, v in values.items():
            ok(run(c, "put", p + k, stdin=v))
        ok(run(c, "put", "--ttl", "300", p + "t", "ttl"))
        names = sorted([p + k for k in values] + [p + "t"], key=lambda s: s.encode())
        ok(run(c, "ls", p), b"".join(n.encode() + b"\n" for n in names))
        ok(run(c, "ls", p + "c/"), (p + "c/d\n" + p + "c/e\n").encode())
        ok(run(c, "ls", p + "nothing"), b"")
        # every key without a prefix: ours among them, in order
        everything = run(c, "ls")
        assert everything.returncode == 0 and everything.stderr == b""
        mine = [l for l in everything.stdout.split(b"\n") if l.startswith(p.encode())]
        assert mine == [n.encode() for n in names], mine
        # --long: INDEX SIZE EXPIRY KEY
        r = run(c, "ls", "--long", p)
        assert r.returncode == 0 and r.stderr == b"", r
        lines = r.stdout.split(b"\n")
        assert lines[-1] == b"" and len(lines) == len(names) + 1, lines
        for line, name in zip(lines, names):
            m = LONG.match(line)
            assert m, line
            g = canonical_get(c, name)
            assert m.group(4) == name.encode()
            assert int(m.group(1)) == int(g.header("X-Lazykv-Index")), (line, g)
            assert int(m.group(2)) == len(g.body)
            assert m.group(3).decode() == (g.header("X-Lazykv-Expires") or "-"), (line, g)
        # --lazy ls: one partition's keys (maybe not all of ours yet), never others
        r = run(c, "--lazy", "ls", p)
        assert r.returncode == 0 and set(r.stdout.split(b"\n")[:-1]) <= {n.encode() for n in names}
    finally:
        cleanup(c, p)


def test_ls_and_watch_prefix_of_a_value_holding_nul_bytes(c):
    """A value of NUL bytes is valid UTF-8: lists carry it as "\\u0000..."
    strings, which the library must parse (jansson's JSON_ALLOW_NUL)."""
    p = ROOT + "nul/"
    try:
        ok(run(c, "put", p + "zeros", stdin=bytes(1000)))
        ok(run(c, "put", p + "mixed", stdin=b"a\0b"))
        ok(run(c, "ls", p), (p + "mixed\n" + p + "zeros\n").encode())
        r = run(c, "ls", "--long", p)
        assert r.returncode == 0 and [LONG.match(l).group(2) for l in r.stdout.splitlines()] == \
            [b"3", b"1000"], r
        w = Lines(c, "watch", "--prefix", p)
        try:
            assert w.line() == dumps({"prefix": p, "keys": [live_doc(c, p + "mixed"),
                                                            live_doc(c, p + "zeros")]})
            assert w.stop()[0] == 0
        finally:
            w.kill()
    finally:
        cleanup(c, p)


# ---- --lazy ------------------------------------------------------------------------------

def test_lazy_reads_come_from_any_partition(c):
    p = ROOT + "lazy/"
    k = p + "everywhere"
    try:
        # written on every partition; then its master goes down
        w = c.request("POST", path(k), b"copied")
        assert w.status == 201, w
        m = w.json()["master"]
        c.stop_node(m)
        try:
            wait_for(lambda: not c.request("GET", "/health").json()["partition"][m]["reachable"],
                     what="lazykvd to see the partition down")
            # the master's read: 503 -> 69
            r = run(c, "--timeout", "2", "get", k)
            failed(r, 69, one_line(b"lazykv: get " + k.encode() + b": "))
            # any partition's
            ok(run(c, "--lazy", "get", k), b"copied")
            ok(run(c, "--lazy", "--timeout", "5", "get", k), b"copied")
        finally:
            c.start_node(m)
        wait_for(lambda: canonical_get(c, k).status == 200, what="the master back")
        ok(run(c, "get", k), b"copied")
    finally:
        cleanup(c, p)


# ---- watch -------------------------------------------------------------------------------

def test_watch_key_prints_the_state_then_a_line_per_change_and_exits_0_on_sigint(c):
    p = ROOT + "watch/"
    k = p + "config"
    w = Lines(c, "watch", k)
    try:
        # absent first
        assert w.line() == dumps({"key": k, "deleted": True})
        ok(run(c, "put", k, "v1"))
        assert w.line() == dumps(live_doc(c, k))
        # a value that is not UTF-8: base64
        ok(run(c, "put", "--content-type", "application/x-bin", k, stdin=b"\xff\x00\x01"))
        line = w.line()
        assert line == dumps(live_doc(c, k)), line
        assert json.loads(line)["value"] == "/wAB" and json.loads(line)["encoding"] == "base64"
        # a TTL shows as expires_at; its expiry is a change too
        ok(run(c, "put", "--ttl", "1", k, "brief \"quoted\"\n"))
        line = w.line()
        d = live_doc(c, k)
        assert line == dumps(d) and d["expires_at"], (line, d)
        assert w.line(timeout=5) == dumps({"key": k, "deleted": True})
        # nothing changes: nothing printed
        w.quiet(0.5)
        ok(run(c, "put", k, "v2"))
        assert w.line() == dumps(live_doc(c, k))
        ok(run(c, "rm", k))
        assert w.line() == dumps({"key": k, "deleted": True})
        status, rest, err = w.stop(signal.SIGINT)
        assert (status, rest, err) == (0, b"", b""), (status, rest, err)
    finally:
        w.kill()
        cleanup(c, p)


def test_watch_starts_with_the_current_value_and_exits_0_on_sigterm(c):
    p = ROOT + "watch2/"
    k = p + "ü key"
    try:
        ok(run(c, "put", k, "now"))
        w = Lines(c, "watch", k)
        try:
            first = w.line()
            assert first == dumps(live_doc(c, k)), first
            assert "ü key" in first.decode("utf-8")
            status, rest, err = w.stop(signal.SIGTERM)
            assert (status, rest, err) == (0, b"", b""), (status, rest, err)
        finally:
            w.kill()
        # a key that is not UTF-8 is printed percent-encoded
        kb = (p + "raw-").encode() + b"\xfe"
        w = Lines(c, "watch", kb)
        try:
            assert w.line() == dumps({"key": p + "raw-%FE", "key_encoding": "url", "deleted": True})
            assert w.stop()[0] == 0
        finally:
            w.kill()
    finally:
        cleanup(c, p)


def test_watch_prefix_prints_the_keys_under_it_after_each_change(c):
    p = ROOT + "wtree/"
    try:
        ok(run(c, "put", p + "a", "1"))
        w = Lines(c, "watch", "--prefix", p)
        try:
            assert w.line() == dumps({"prefix": p, "keys": [live_doc(c, p + "a")]})
            ok(run(c, "put", p + "b/c", "2"))
            assert w.line() == dumps({"prefix": p, "keys": [live_doc(c, p + "a"), live_doc(c, p + "b/c")]})
            ok(run(c, "put", p + "a", "1bis"))
            assert w.line() == dumps({"prefix": p, "keys": [live_doc(c, p + "a"), live_doc(c, p + "b/c")]})
            # a key next to the prefix is no change
            ok(run(c, "put", ROOT + "wtree-not", "x"))
            w.quiet(0.5)
            ok(run(c, "rm", "--prefix", p))
            assert w.line() == dumps({"prefix": p, "keys": []})
            status, rest, err = w.stop(signal.SIGINT)
            assert (status, rest, err) == (0, b"", b""), (status, rest, err)
        finally:
            w.kill()
    finally:
        cleanup(c, p)
        cleanup(c, ROOT + "wtree-not")


# ---- lock --------------------------------------------------------------------------------

def test_ten_processes_contending_for_a_lock_never_hold_it_together(c):
    p = ROOT + "lock10/"
    name = p + "job"
    log = os.path.join(c.dir, "lock10.log")
    open(log, "w").close()
    script = ('echo "start $LAZYKV_LOCK_TOKEN $$" >> %s; sleep 0.05; '
              'echo "end $LAZYKV_LOCK_TOKEN $$" >> %s' % (log, log))
    procs = []
    try:
        for _ in range(10):
            procs.append(subprocess.Popen(argv(c, ["lock", name, "--wait", "30", "--", "sh", "-c", script]),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env_for(c)))
        results = [(pr.wait(timeout=90), pr.stdout.read(), pr.stderr.read()) for pr in procs]
        assert results == [(0, b"", b"")] * 10, results
        lines = open(log).read().splitlines()
        assert len(lines) == 20, lines
        tokens, pids = [], set()
        for start, end in zip(lines[0::2], lines[1::2]):
            s, e = start.split(), end.split()
            # start and end strictly alternate, each pair one holder's
            assert s[0] == "start" and e[0] == "end" and s[1:] == e[1:], lines
            tokens.append(int(s[1]))
            pids.add(s[2])
        assert len(pids) == 10, lines           # each ran once
        assert tokens == sorted(tokens) and len(set(tokens)) == 10, tokens   # fencing tokens grow
        assert canonical_get(c, name).status == 404                           # released
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
        cleanup(c, p)


def test_lock_runs_command_with_the_token_and_passes_its_exit_status(c):
    p = ROOT + "lockrun/"
    name = p + "l"
    try:
        # COMMAND sees the lock held by this lazykv (HOST:PID) and its token
        script = 'lazykv get "$0"; echo; echo "$LAZYKV_LOCK_TOKEN"; lazykv ls --long "$0"'
        pr = subprocess.Popen(argv(c, ["lock", name, "--ttl", "30", "--", "sh", "-c", script, name]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env_for(c))
        out, err = pr.communicate(timeout=60)
        assert (pr.returncode, err) == (0, b""), (pr.returncode, out, err)
        owner, token, long_line = out.split(b"\n")[:3]
        assert owner == ("%s:%d" % (socket.gethostname(), pr.pid)).encode(), owner
        m = LONG.match(long_line)
        assert m and int(m.group(1)) == int(token) and m.group(4) == name.encode(), out
        assert m.group(3) != b"-"                  # the lock has its TTL
        assert canonical_get(c, name).status == 404
        # options before NAME, and no "--"
        ok(run(c, "lock", "--wait", "1", name, "echo", "hi"), b"hi\n")
        # COMMAND's status; 128 + the signal that ended it; released each time
        r = run(c, "lock", name, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n"), r
        assert canonical_get(c, name).status == 404
        r = run(c, "lock", name, "--", "sh", "-c", "kill -KILL $$")
        assert (r.returncode, r.stdout, r.stderr) == (137, b"", b""), r
        assert canonical_get(c, name).status == 404
        # a COMMAND that cannot run
        failed(run(c, "lock", name, "--", "/nonexistent/cmd"), 127,
               b"lazykv: lock " + name.encode() + b": cannot run /nonexistent/cmd: No such file or directory\n")
        failed(run(c, "lock", name, "--", c.dir), 126,
               b"lazykv: lock " + name.encode() + b": cannot run " + c.dir.encode() + b": Permission denied\n")
        assert canonical_get(c, name).status == 404
        # stdin reaches COMMAND
        ok(run(c, "lock", name, "--", "cat", stdin=b"through\n"), b"through\n")
    finally:
        cleanup(c, p)


def default_signals():
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def test_lock_passes_sigterm_and_sigint_to_command_and_releases(c):
    p = ROOT + "locksig/"
    name = p + "l"
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            # default dispositions: `make test` run as a background job (or
            # under nohup) inherits SIGINT or SIGHUP ignored, and lazykv lock
            # rightly leaves an ignored signal ignored
            pr = subprocess.Popen(argv(c, ["lock", name, "--", "sleep", "30"]),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env_for(c),
                                  preexec_fn=default_signals)
            try:
                wait_for(lambda: canonical_get(c, name).status == 200, what="the lock taken")
                time.sleep(0.2)          # sleep has started
                t0 = time.monotonic()
                pr.send_signal(sig)
                out, err = pr.communicate(timeout=10)
                assert (pr.returncode, out, err) == (128 + sig, b"", b""), (sig, pr.returncode, out, err)
                assert time.monotonic() - t0 < 2
                assert canonical_get(c, name).status == 404
            finally:
                if pr.poll() is None:
                    pr.kill()
                    pr.wait()
    finally:
        cleanup(c, p)


def test_a_held_lock_exits_75_at_once_or_after_wait(c):
    p = ROOT + "lockheld/"
    name = p + "l"
    try:
        a = c.request("PUT", path(name) + "?ttl=60", b"someone else", {"If-None-Match": "*"})
        assert a.status == 201, a
        t0 = time.monotonic()
        failed(run(c, "lock", name, "--", "echo", "never"), 75,
               b"lazykv: lock " + name.encode() + b": held by another\n")
        assert time.monotonic() - t0 < 2
        t0 = time.monotonic()
        failed(run(c, "lock", name, "--wait", "1", "--", "echo", "never"), 75,
               b"lazykv: lock " + name.encode() + b": still held by another after 1 s\n")
        took = time.monotonic() - t0
        assert 0.9 <= took < 4, took
        assert canonical_get(c, name).body == b"someone else"
        # released while a lazykv waits: it gets it
        pr = subprocess.Popen(argv(c, ["lock", name, "--wait", "20", "--", "echo", "mine"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env_for(c))
        try:
            time.sleep(0.5)
            assert pr.poll() is None
            assert c.request("DELETE", path(name), headers={"If-Match": a.header("ETag")}).status == 202
            out, err = pr.communicate(timeout=20)
            assert (pr.returncode, out, err) == (0, b"mine\n", b""), (pr.returncode, out, err)
        finally:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
        assert canonical_get(c, name).status == 404
    finally:
        cleanup(c, p)


def test_lock_loss_when_renewal_is_impossible_sends_sigterm_to_command(c):
    """The lock key's master partition hangs (SIGSTOP): renewals fail, the
    library says the lock may be lost, COMMAND gets SIGTERM and lazykv
    exits with COMMAND's status, 143."""
    p = ROOT + "lockloss/"
    name = p + "l"
    m = master_of(c, name)
    pr = subprocess.Popen(argv(c, ["--timeout", "2", "lock", name, "--ttl", "2", "--",
                                   "sh", "-c", "trap 'echo got TERM; kill $!; exit 143' TERM; sleep 60 & wait"]),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env_for(c))
    pid = None
    try:
        wait_for(lambda: canonical_get(c, name).status == 200, what="the lock taken")
        time.sleep(0.3)
        pid = c.freeze_node(m)
        t0 = time.monotonic()
        out, err = pr.communicate(timeout=40)
        took = time.monotonic() - t0
        print("lazykv cli: lock loss noticed and COMMAND ended %.1f s after the freeze" % took)
        assert pr.returncode == 143, (pr.returncode, out, err)
        assert out == b"got TERM\n", out
        assert err == (b"lazykv: lock " + name.encode() +
                       b": the lock may be lost (a renewal failed); sending SIGTERM to sh\n"), err
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        if pr.poll() is None:
            pr.kill()
            pr.wait()
    # the key expires by itself; the partition serves again
    wait_for(lambda: canonical_get(c, name).status == 404, timeout=20, what="the lost lock to expire")
    cleanup(c, p)


def test_lock_loss_when_the_only_endpoint_goes_away(c):
    """Renewal through a lazykvd that is gone: the same, exit 143 for a
    COMMAND that dies of the SIGTERM."""
    p = ROOT + "lockgone/"
    name = p + "l"
    proc, port, _ = c.extra_kvd({})
    pr = None
    try:
        pr = subprocess.Popen(argv(c, ["--timeout", "2", "lock", name, "--ttl", "3", "--", "sleep", "60"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env_for(c, port))
        wait_for(lambda: canonical_get(c, name).status == 200, what="the lock taken")
        assert c.stop_extra(proc) == 0
        out, err = pr.communicate(timeout=40)
        assert (pr.returncode, out) == (143, b""), (pr.returncode, out, err)
        assert err == (b"lazykv: lock " + name.encode() +
                       b": the lock may be lost (a renewal failed); sending SIGTERM to sleep\n"), err
    finally:
        if pr is not None and pr.poll() is None:
            pr.kill()
            pr.wait()
        if proc.poll() is None:
            c.stop_extra(proc)
    wait_for(lambda: canonical_get(c, name).status == 404, timeout=10, what="the lost lock to expire")
    cleanup(c, p)


# ---- health, endpoints, exit 69 --------------------------------------------------------------

def test_health_prints_the_document(c):
    r = run(c, "health")
    assert r.returncode == 0 and r.stderr == b"" and r.stdout.endswith(b"\n"), r
    d = json.loads(r.stdout)

    def steady(doc):
        """The document without what the probers reread every 5 s (each
        partition's backlog, the sync's last pass)."""
        doc = dict(doc, partition=[{k: v for k, v in p.items() if k != "pending_rows"}
                                   for p in doc["partition"]])
        doc.pop("sync", None)
        return doc
    assert "sync" in d and all("pending_rows" in p for p in d["partition"]), d
    assert steady(d) == steady(c.request("GET", "/health").json()), d
    assert (d["status"], d["reachable"], d["partitions"]) == ("ok", 3, 3), d


def test_an_unreachable_endpoint_exits_69_for_every_command(c):
    dead = dead_endpoint()
    k = ROOT + "dead/k"
    cases = [(k, "get", k), (k, "put", k, "v"), (k, "put", "--if-absent", k, "v"),
             (k, "put", "--content-type", "text/plain", k, "v"), (k, "rm", k),
             (ROOT + "dead/", "rm", "--prefix", ROOT + "dead/"), (ROOT, "ls", ROOT),
             (k, "watch", k), (ROOT, "watch", "--prefix", ROOT), (None, "health")]
    for subject, *args in cases:
        t0 = time.monotonic()
        r = run(c, "-e", dead, "--timeout", "1", *args, timeout=30)
        prefix = b"lazykv: " + args[0].encode() + (b" " + subject.encode() if subject else b"") + b": "
        failed(r, 69, one_line(prefix))
        assert time.monotonic() - t0 < 10, args
    r = run(c, "-e", dead, "--timeout", "1", "lock", k, "--", "echo", "never", timeout=30)
    failed(r, 69, one_line(b"lazykv: lock " + k.encode() + b": "))
    # the default timeout also ends
    r = run(c, "get", k, env=env_for(c, extra={"LAZYKV_ENDPOINTS": dead}), timeout=60)
    failed(r, 69, one_line(b"lazykv: get " + k.encode() + b": "))


def test_two_endpoints_with_the_first_down_still_work(c):
    p = ROOT + "failover/"
    both = dead_endpoint() + "," + endpoint(c.http_port)
    try:
        ok(run(c, "-e", both, "put", p + "k", "v"))
        ok(run(c, "--endpoints", both, "get", p + "k"), b"v")
        ok(run(c, "--endpoints=" + both, "ls", p), (p + "k\n").encode())
        assert run(c, "-e", both, "health").returncode == 0
        ok(run(c, "-e", both, "lock", p + "l", "--", "echo", "locked"), b"locked\n")
        w = Lines(c, "-e", both, "watch", p + "k")
        try:
            assert w.line() == dumps(live_doc(c, p + "k"))
            assert w.stop()[0] == 0
        finally:
            w.kill()
        ok(run(c, "-e", both, "rm", p + "k"))
        # the same list from the environment; -e wins over it
        e = env_for(c, extra={"LAZYKV_ENDPOINTS": both})
        ok(run(c, "put", p + "k2", "v2", env=e))
        ok(run(c, "get", p + "k2", env=e), b"v2")
        e = env_for(c, extra={"LAZYKV_ENDPOINTS": dead_endpoint()})
        ok(run(c, "-e", endpoint(c.http_port), "get", p + "k2", env=e), b"v2")
    finally:
        cleanup(c, p)


def test_exit_77_needs_tokens(c):
    """401/403 -> 77 cannot be tested: lazykvd has no tokens yet. A token
    is sent without harm (lazykvd ignores Authorization)."""
    p = ROOT + "token/"
    try:
        ok(run(c, "--token", "t0ken", "put", p + "k", "v"))
        ok(run(c, "get", p + "k", env=env_for(c, extra={"LAZYKV_TOKEN": "t0ken"})), b"v")
    finally:
        cleanup(c, p)
