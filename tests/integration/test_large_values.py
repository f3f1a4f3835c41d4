"""Large values (issue 14): streamed uploads and downloads, chunk rows,
byte ranges, Repr-Digest, replication, faults and collection.

Written against the contract of issue 14 and the design in src/chunks.h:
 - a value longer than CHUNKS_INLINE_MAX (1 MiB) is stored as rows of
   `data_chunks` (kh = UNHEX(SHA2(k, 256)), version = the main row's
   chunk_version, n = 0..chunks-1, CHUNKS_SIZE bytes each but the last);
   exactly 1 MiB is inline (chunks = 0), 1 MiB + 1 is two chunks;
 - the main row holds len, digest (SHA-256) and chunks;
 - a failed upload leaves the old value whole; sets nothing names are
   collected by each sync pass once older than [sync] chunk_grace.

Every test runs on a lazykvd of its own (max_value_size 256 MiB) so that a
crash or a stalled connection never touches the shared one. Keys live under
large/; the last test deletes them all (a delete-tree of chunked values) and
checks that collection leaves no chunk row behind.

The database is read directly through the mariadb client (harness.sql):
values are compared there by SHA-256 per chunk (SHA2() on the server), so
no 100 MiB blob ever crosses the client.
"""
import base64
import contextlib
import hashlib
import http.client
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

from harness import SANITIZED, free_port, wait_for

MiB = 1 << 20
CHUNK = MiB                # CHUNKS_SIZE and CHUNKS_INLINE_MAX
BIG_LEN = 100 * MiB        # the one 100 MiB value of this file
BIG_KEY = "large/big100"
OWN_MAX = 256 * MiB        # max_value_size of the tests' own lazykvd
RSS_BOUND_KIB = 32 * 1024  # lazykvd memory growth allowed around a 100 MiB value

q = urllib.parse.quote


# ---- values and expectations ----------------------------------------------------

def path(key, canonical=False, query=""):
    return (("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")
            + ("?" + query if query else ""))


def rnd_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def sha_hex(value):
    return hashlib.sha256(value).hexdigest()


def repr_digest(value):
    """The Repr-Digest of a whole value (RFC 9530): sha-256=:BASE64:"""
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(value).digest()).decode()


def n_chunks(length):
    """chunks_count(): 0 for an inline value, else ceil(len / 1 MiB)."""
    return 0 if length <= CHUNK else (length + CHUNK - 1) // CHUNK


def expected_chunks(value):
    """[(n, length, sha256 hex)] of the chunk rows value must be stored as."""
    return [(n, len(value[n * CHUNK:(n + 1) * CHUNK]), sha_hex(value[n * CHUNK:(n + 1) * CHUNK]))
            for n in range(n_chunks(len(value)))]


_big = {}


def big_value():
    """The 100 MiB random value (made once per run)."""
    if "v" not in _big:
        _big["v"] = rnd_bytes(BIG_LEN, 14)
    return _big["v"]


# ---- lazykvd, the sync, and SQL ----------------------------------------------------

@contextlib.contextmanager
def own_kvd(c, **overrides):
    """A lazykvd of the test's own with max_value_size raised (OWN_MAX unless
    overridden); yields (Popen, port). Checks at the end that it did not
    die on its own (unless the test killed it)."""
    o = {"max_value_size": OWN_MAX}
    o.update(overrides)
    proc, port, log = c.extra_kvd(o)
    ok = False
    try:
        yield proc, port
        ok = True
    finally:
        alive = proc.poll() is None
        c.stop_extra(proc)
        if not ok or os.environ.get("LAZYKV_SHOW_LOGS"):
            # what the test's lazykvd said: the one place a failure's cause shows
            sys.stdout.write("-- the test's lazykvd log (tail):\n%s\n" % open(
                log, errors="replace").read()[-4000:])
        if ok and not getattr(proc, "killed_by_test", False):
            assert alive, "the test's lazykvd died: %s" % open(log, errors="replace").read()[-3000:]


def sync_config(c, grace):
    """The test config with [sync] chunk_grace = grace (seconds)."""
    p = os.path.join(c.dir, "large-sync-grace-%d.cfg" % grace)
    text = open(c.config).read()
    assert text.count("[sync]\n") == 1
    with open(p, "w") as f:
        f.write(text.replace("[sync]\n", "[sync]\nchunk_grace = %d\n" % grace, 1))
    os.chmod(p, 0o600)
    return p


def sync_ok(c, config=None):
    r = c.sync(config=config, timeout=600)
    assert r.returncode == 0, (r.returncode, r.stdout.decode(), r.stderr.decode())
    return r.stdout.decode()


def collect(c):
    """A full sync pass whose collector takes every set nothing names
    (chunk_grace = 0)."""
    return sync_ok(c, config=sync_config(c, 0))


def assert_converged(c):
    r = c.admin("verify", timeout=600)
    assert r.returncode == 0 and b"differing=0" in r.stdout, (r.stdout.decode(), r.stderr.decode())


def sql(c, i, query, db=True):
    """harness.sql, failing with the server's message (a missing table or
    column says what is not implemented yet)."""
    try:
        return c.sql(i, query, db=db)
    except subprocess.CalledProcessError as e:
        err = [ln for ln in e.stderr.decode(errors="replace").splitlines() if ln.startswith("ERROR")]
        raise AssertionError("SQL on partition %d failed: %s\n  %s"
                             % (i, " ".join(err) or e.stderr.decode(errors="replace"), query)) from None


def khex(key):
    return key.encode().hex()


def kh_sql(key):
    return "UNHEX(SHA2(UNHEX('%s'), 256))" % khex(key)


def main_row(c, i, key):
    """The main row of key on partition i as a dict, or None."""
    rows = sql(c, i, "SELECT version, deleted, chunks, chunk_version, IFNULL(len, 'NULL'),"
                     " IFNULL(LOWER(HEX(digest)), 'NULL'), LENGTH(v), SHA2(v, 256),"
                     " IFNULL(expires_at, 'NULL') FROM data WHERE k = UNHEX('%s')" % khex(key))
    if not rows:
        return None
    r = rows[0]
    return {"version": int(r[0]), "deleted": int(r[1]), "chunks": int(r[2]),
            "chunk_version": int(r[3]), "len": None if r[4] == "NULL" else int(r[4]),
            "digest": None if r[5] == "NULL" else r[5], "vlen": int(r[6]), "vsha": r[7],
            "expires_at": None if r[8] == "NULL" else int(r[8])}


def chunk_rows(c, i, key, version=None):
    """[(version, n, length, sha256 hex)] of key's chunk rows on partition i."""
    where = "kh = %s" % kh_sql(key)
    if version is not None:
        where += " AND version = %d" % version
    rows = sql(c, i, "SELECT version, n, LENGTH(data), SHA2(data, 256) FROM data_chunks WHERE %s"
                     " ORDER BY version, n" % where)
    return [(int(v), int(n), int(ln), h) for v, n, ln, h in rows]


def chunk_count(c, i, key, exclude_versions=(), version=None):
    where = "kh = %s" % kh_sql(key)
    if version is not None:
        where += " AND version = %d" % version
    if exclude_versions:
        where += " AND version NOT IN (%s)" % ",".join(str(v) for v in exclude_versions)
    return int(sql(c, i, "SELECT COUNT(*) FROM data_chunks WHERE %s" % where)[0][0])


def chunk_versions(c, i, key):
    return {int(r[0]) for r in sql(c, i, "SELECT DISTINCT version FROM data_chunks WHERE kh = %s"
                                         % kh_sql(key))}


def orphan_chunks(c, i, prefix="large/"):
    """Chunk rows under prefix on partition i that no main row names."""
    return int(sql(c, i, "SELECT COUNT(*) FROM data_chunks ch WHERE ch.k LIKE '%s%%' AND NOT EXISTS"
                         " (SELECT 1 FROM data m WHERE m.k = ch.k AND m.chunks > 0"
                         " AND m.chunk_version = ch.version)" % prefix)[0][0])


def stored_digest(value):
    """The digest column a value written under schema 3 has (lower hex)."""
    return sha_hex(value)


def assert_no_orphans(c, i, prefix):
    n = orphan_chunks(c, i, prefix)
    assert n == 0, "partition %d: %d chunk rows under %s that no main row names" % (i, n, prefix)


def assert_stored(c, i, key, value, version=None):
    """Partition i holds value whole for key, as the design lays it out:
    len, digest and chunks in the main row; inline (chunks = 0, v = the
    value) up to 1 MiB, else v = '' and exactly the chunk rows
    (kh, chunk_version, 0..N-1) of 1 MiB each but the last. An inline row
    may leave len NULL (sql/schema.sql: NULL is LENGTH(v)); the digest is
    checked last, so that a missing digest does not hide the bytes. Returns
    the row."""
    row = main_row(c, i, key)
    assert row is not None, (i, key, "no main row")
    assert row["deleted"] == 0, (i, key, row)
    if version is not None:
        assert row["version"] == version, (i, key, row, version)
    assert row["chunks"] == n_chunks(len(value)), (i, key, row, "chunks for", len(value))
    if row["chunks"] == 0:
        assert row["len"] in (None, len(value)), (i, key, row, len(value))
        assert (row["vlen"], row["vsha"]) == (len(value), sha_hex(value)), (i, key, row)
    else:
        assert row["len"] == len(value), (i, key, row, len(value))
        assert row["vlen"] == 0, (i, key, row)
        got = [(n, ln, h) for _, n, ln, h in chunk_rows(c, i, key, row["chunk_version"])]
        assert got == expected_chunks(value), (i, key, row, "the named chunk set differs",
                                                [(n, ln) for n, ln, _ in got])
    assert row["digest"] == stored_digest(value), (i, key, row, "digest")
    return row


# ---- HTTP ---------------------------------------------------------------------------

def check_whole(r, value, etag=None):
    """A 200 answer carrying value whole: bytes, SHA-256, Content-Length."""
    assert r.status == 200, r
    assert r.header("Content-Length") == str(len(value)), (r.header("Content-Length"), len(value))
    assert len(r.body) == len(value) and sha_hex(r.body) == sha_hex(value), \
        "the body differs from the value (%d bytes, expected %d)" % (len(r.body), len(value))
    if etag is not None:
        assert r.header("ETag") == etag, (r.header("ETag"), etag)


def check_headers(r, value):
    """Issue 14's headers on a GET answer (200 or 206): Repr-Digest of the
    whole value, Accept-Ranges: bytes."""
    assert r.header("Repr-Digest") == repr_digest(value), (r.header("Repr-Digest"), repr_digest(value))
    assert r.header("Accept-Ranges") == "bytes", r.header("Accept-Ranges")


def check_head(r, value, etag=None):
    """A HEAD answer for value: Content-Length and Repr-Digest of the whole."""
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Length") == str(len(value)), (r.header("Content-Length"), len(value))
    assert r.header("Repr-Digest") == repr_digest(value), r.header("Repr-Digest")
    if etag is not None:
        assert r.header("ETag") == etag


def every_partition(c, port, key, check, method="GET", headers=None, tries=150):
    """Lazy requests until every partition has answered one (lazy reads
    start at a random partition); check(response) on each. Returns
    {partition: ETag}."""
    seen = {}
    for _ in range(tries):
        r = c.request(method, path(key), headers=headers, port=port, timeout=300)
        p = r.header("X-Lazykv-Partition")
        assert p is not None, r
        check(r)
        seen[p] = r.header("ETag")
        if len(seen) == c.n:
            return seen
    raise AssertionError("lazy reads of %s never reached every partition: %s" % (key, seen))


def check_absent(r):
    assert r.status == 404, r


def proc_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def settled_rss(pid, samples=None):
    """Samples pid's VmRSS (KiB) every 0.2 s until ten samples in a row lie
    within 1 MiB of each other; returns the last. samples (a list) gets
    every sample."""
    samples = [] if samples is None else samples
    last = [0.0]

    def settled():
        now = time.monotonic()
        if now - last[0] >= 0.2:
            last[0] = now
            samples.append(proc_kib(pid, "VmRSS"))
        recent = samples[-10:]
        return len(recent) == 10 and max(recent) - min(recent) < 1024
    wait_for(settled, timeout=30, what="the RSS of %d to settle" % pid)
    return samples[-1]


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


def server_closed(port, client_port):
    """True once the server side of the TCP connection 127.0.0.1:port <->
    127.0.0.1:client_port is closed by the server (gone, or past
    CLOSE_WAIT), from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port:
                return state not in ("01", "08")   # ESTABLISHED, CLOSE_WAIT
    return True


def raw_upload(port, method, p, length, headers=b""):
    """Opens a connection and sends a request head promising length bytes;
    returns the socket."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(60)
    s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
              % (method.encode(), p.encode(), length, headers))
    return s


def read_response(s, timeout=120):
    """Reads one whole answer (head and Content-Length bytes of body) from
    socket s; returns its bytes."""
    s.settimeout(timeout)
    resp = b""
    while True:
        if b"\r\n\r\n" in resp:
            head, body = resp.split(b"\r\n\r\n", 1)
            length = [int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n")[1:]
                      if ln.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                return resp
        d = s.recv(65536)
        assert d, "closed before the answer was whole: %r" % resp[:600]
        resp += d


def close_and_wait(s, port):
    """Closes a client socket and waits until lazykvd has closed its side
    (it noticed the client leaving)."""
    client_port = s.getsockname()[1]
    s.close()
    wait_for(lambda: server_closed(port, client_port), timeout=30,
             what="lazykvd to close the cut connection")


class SqlSession:
    """One long-lived mariadb client session on partition i (to hold a lock
    while something else runs)."""

    def __init__(self, c, i):
        self.p = subprocess.Popen(
            ["mariadb", "--no-defaults", "-h127.0.0.1", "-P%d" % c.db_ports[i], "-ulazykv",
             "-psecret", "-N", "-B", "-n", "test_store_%d" % (i + 1)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.n = 0
        self.buf = ""

    def run(self, statements, timeout=20):
        self.n += 1
        marker = "session-done-%d" % self.n
        self.p.stdin.write((statements + ";\nSELECT '%s';\n" % marker).encode())
        self.p.stdin.flush()
        fd = self.p.stdout.fileno()
        deadline = time.monotonic() + timeout
        while ("\n%s\n" % marker) not in "\n" + self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "SQL session timed out: %r" % statements
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                d = os.read(fd, 65536)
                if not d:
                    raise AssertionError("SQL session ended: %s" % self.p.stderr.read().decode())
                self.buf += d.decode()
        out, self.buf = ("\n" + self.buf).split("\n%s\n" % marker, 1)
        return out.strip("\n").split("\n") if out.strip("\n") else []

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def sync_lock_free(c):
    return all(sql(c, i, "SELECT IS_FREE_LOCK('lazykv-sync:data')", db=False)[0][0] == "1"
               for i in range(c.n))


# Sizes of issue 14's list: empty, one byte, one piece - 1, exactly one piece
# (the largest inline value), one piece + 1 (two chunks: 1 MiB and 1 byte),
# and a value whose last chunk is short.
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]


def sized_values(tag):
    return [("large/%s/%d" % (tag, n), rnd_bytes(n, n + len(tag))) for n in SIZES]


# ---- sizes ------------------------------------------------------------------------

def test_sizes_round_trip_lazy_and_canonical(c):
    """Values of 0 B, 1 B, 1 MiB - 1, 1 MiB, 1 MiB + 1 and 3 MiB + 17: a lazy
    POST/PUT then a canonical GET returns the exact bytes with an exact
    Content-Length; after a sync pass every partition serves them identically
    (lazy GETs from every partition); a canonical write is served identically
    by every partition at once. (This part already works before issue 14.)"""
    with own_kvd(c) as (proc, port):
        lazy = sized_values("lazy")
        written = {}
        for i, (key, value) in enumerate(lazy):
            r = c.request("PUT" if i % 2 else "POST", path(key), value, port=port)
            assert r.status == 201, (key, r)
            written[key] = r.header("ETag")
            g = c.request("GET", path(key, True), port=port)
            check_whole(g, value, written[key])
            assert g.header("X-Lazykv-Partition") == str(r.json()["master"])
        sync_ok(c)
        for key, value in lazy:
            every_partition(c, port, key, lambda r, v=value, e=written[key]: check_whole(r, v, e))
        canon = sized_values("canon")
        for key, value in canon:
            w = c.request("POST", path(key, True), value, port=port)
            assert w.status == 201 and w.header("X-Lazykv-Replicas") == "3/3", (key, w)
            etag = w.header("ETag")
            every_partition(c, port, key, lambda r, v=value, e=etag: check_whole(r, v, e))
            check_whole(c.request("GET", path(key, True), port=port), value, etag)


def test_sizes_carry_repr_digest_and_accept_ranges(c):
    """Digests (RFC 9530): GET (200) and HEAD carry `Repr-Digest:
    sha-256=:BASE64:` of the whole value, write responses too; HEAD's
    Content-Length is the value's length; `Accept-Ranges: bytes` on every GET.
    For every size, lazy and canonical, after a sync on every partition."""
    with own_kvd(c) as (proc, port):
        values = sized_values("digest")
        for key, value in values:
            r = c.request("PUT", path(key), value, port=port)
            assert r.status == 201, (key, r)
            g = c.request("GET", path(key, True), port=port)
            check_whole(g, value, r.header("ETag"))
            check_headers(g, value)
            check_head(c.request("HEAD", path(key, True), port=port), value, r.header("ETag"))
            assert r.header("Repr-Digest") == repr_digest(value), (key, r.header("Repr-Digest"))
            # a canonical overwrite with the same bytes answers the same digest
            w = c.request("PUT", path(key, True), value, port=port)
            assert w.status == 200 and w.header("Repr-Digest") == repr_digest(value), (key, w)
        sync_ok(c)
        for key, value in values:
            def check(r, v=value):
                check_whole(r, v)
                check_headers(r, v)
            every_partition(c, port, key, check)
            every_partition(c, port, key, lambda r, v=value: check_head(r, v), method="HEAD")


def test_sizes_are_stored_inline_up_to_one_mib_and_as_chunks_above(c):
    """Layout (chunks.h, schema 3): exactly 1 MiB and less is inline
    (chunks = 0, v = the value); 1 MiB + 1 is two chunk rows (1 MiB and
    1 byte); `data_chunks` holds ceil(len / 1 MiB) rows (kh = UNHEX(SHA2(k,
    256)), version = the main row's chunk_version, n = 0..N-1); the main row
    has chunks = N, len, digest = SHA-256 and v = ''. On the master after a
    lazy write, and on every partition after a sync pass."""
    with own_kvd(c) as (proc, port):
        values = sized_values("layout")
        masters = {}
        for key, value in values:
            r = c.request("POST", path(key), value, port=port)
            assert r.status == 201, (key, r)
            masters[key] = (r.json()["master"], r.json()["version"])
            row = assert_stored(c, masters[key][0], key, value, masters[key][1])
            if len(value) > CHUNK:
                assert row["chunk_version"] > 0, row
                # nothing but the named set under this key
                assert chunk_versions(c, masters[key][0], key) == {row["chunk_version"]}
            else:
                assert chunk_count(c, masters[key][0], key) == 0
        assert [n_chunks(len(v)) for _, v in values] == [0, 0, 0, 0, 2, 4]
        sync_ok(c)
        for key, value in values:
            named = set()
            for i in range(c.n):
                row = assert_stored(c, i, key, value, masters[key][1])
                named.add(row["chunk_version"])
            # a chunk set is named (k, C) everywhere: copies keep C
            assert len(named) == 1, (key, named)


def stalled_get(port, p, first_bytes=64 * 1024):
    """A raw GET that reads the head and about first_bytes of the body, then
    stops reading; returns (socket, {lower-case header: value}, body so far)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.connect(("127.0.0.1", port))
    s.settimeout(30)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode())
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < first_bytes:
        d = s.recv(65536)
        assert d, "closed after %d bytes: %r" % (len(got), got[:300])
        got += d
    head, body = got.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200 "), lines[0]
    headers = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in lines[1:]}
    return s, headers, body


def read_rest(s, length, body):
    """Reads on until length body bytes or the server closes; returns
    (body, closed early). Fails when the server neither sends nor closes
    for 20 s."""
    s.settimeout(20)
    while len(body) < length:
        try:
            d = s.recv(1 << 20)
        except ConnectionResetError:
            d = b""
        except socket.timeout:
            raise AssertionError("the download stalled at %d of %d bytes: neither sent nor closed"
                                 % (len(body), length)) from None
        if not d:
            return body, True
        body += d
    return body, False


# ---- 100 MiB ------------------------------------------------------------------------

def ensure_big(c, port):
    """BIG_KEY holds the 100 MiB value at its master (written once)."""
    big = big_value()
    h = c.request("HEAD", path(BIG_KEY, True), port=port)
    if h.status == 200 and h.header("Repr-Digest") == repr_digest(big) \
            and h.header("Content-Length") == str(BIG_LEN):
        return big, h.header("ETag")
    r = c.request("PUT", path(BIG_KEY), big, port=port, timeout=600)
    assert r.status in (200, 201), r
    return big, r.header("ETag")


def test_100_mib_random_value_streams_through_lazy_and_canonical_paths(c):
    """One 100 MiB random value, above every partition's max_allowed_packet
    (64 MiB here): PUT then GET canonical and lazy, exact bytes and SHA-256,
    Content-Length and Repr-Digest; lazykvd's peak RSS grows by at most 32
    MiB over the upload and the download (streamed: never the whole value in
    memory); after a sync pass every partition holds the 100 chunk rows and
    serves the value (HEAD, ranges from each partition, one whole lazy GET)."""
    big = big_value()
    for i in range(c.n):
        packet = int(sql(c, i, "SELECT @@global.max_allowed_packet", db=False)[0][0])
        assert packet < BIG_LEN, "the premise: the value is larger than a packet (%d)" % packet
    with own_kvd(c) as (proc, port):
        hwm0 = proc_kib(proc.pid, "VmHWM")
        r = c.request("PUT", path(BIG_KEY), big, port=port, timeout=600)
        assert r.status in (200, 201), r
        etag, version, master = r.header("ETag"), r.json()["version"], r.json()["master"]
        g = c.request("GET", path(BIG_KEY, True), port=port, timeout=600)
        check_whole(g, big, etag)
        hwm1 = proc_kib(proc.pid, "VmHWM")
        print("large: 100 MiB PUT + GET: lazykvd peak RSS grew %d KiB" % (hwm1 - hwm0))
        assert SANITIZED or hwm1 - hwm0 <= RSS_BOUND_KIB, \
            "lazykvd's peak RSS grew %d KiB over a 100 MiB value" % (hwm1 - hwm0)
        row = assert_stored(c, master, BIG_KEY, big, version)
        assert row["chunks"] == 100
        check_headers(g, big)
        del g
        assert r.header("Repr-Digest") == repr_digest(big), r.header("Repr-Digest")
        sync_ok(c)
        for i in range(c.n):
            assert_stored(c, i, BIG_KEY, big, version)
        every_partition(c, port, BIG_KEY, lambda h: check_head(h, big, etag), method="HEAD")
        # each partition's copy, read back through lazykvd where it is most
        # likely to go wrong: the first and last chunk and a boundary
        for first, last in ((0, CHUNK - 1), (50 * CHUNK - 7, 50 * CHUNK + 6),
                            (BIG_LEN - CHUNK - 3, BIG_LEN - 1)):
            def check(r, a=first, b=last):
                assert r.status == 206, r
                assert r.header("Content-Range") == "bytes %d-%d/%d" % (a, b, BIG_LEN)
                assert r.body == big[a:b + 1]
                assert r.header("ETag") == etag
            every_partition(c, port, BIG_KEY, check, headers={"Range": "bytes=%d-%d" % (first, last)})
        g = c.request("GET", path(BIG_KEY), port=port, timeout=600)
        check_whole(g, big, etag)


def test_stalled_download_keeps_lazykvd_memory_bounded(c):
    """Streaming downloads: a client that stops reading does not make
    lazykvd buffer the rest. A raw GET of the 100 MiB value reads a few KB
    and stops; lazykvd's RSS, once stable, has grown by at most 32 MiB;
    other requests are served meanwhile; then the client closes and lazykvd
    lets the connection go."""
    with own_kvd(c) as (proc, port):
        big, etag = ensure_big(c, port)
        small = c.request("PUT", path("large/stall/other"), b"other", port=port)
        assert small.status == 201
        rss0 = settled_rss(proc.pid)
        s, headers, body = stalled_get(port, path(BIG_KEY, True), 16 * 1024)
        assert headers["content-length"] == str(BIG_LEN) and headers["etag"] == etag, headers
        assert big.startswith(body)
        # stop reading; sample RSS until it holds still
        samples = []
        settled_rss(proc.pid, samples)
        grown = max(samples) - rss0
        print("large: stalled 100 MiB download: lazykvd RSS grew %d KiB" % grown)
        assert SANITIZED or grown <= RSS_BOUND_KIB, "lazykvd grew %d KiB for a stalled client" % grown
        # the stalled download holds no lane: other keys are still served
        g = c.request("GET", path("large/stall/other", True), port=port, timeout=10)
        assert g.status == 200 and g.body == b"other", g
        close_and_wait(s, port)
        assert c.request("GET", "/health", port=port).status == 200


def test_a_download_never_mixes_versions(c):
    """Streaming downloads never mix chunks of two versions: a GET that began
    before the value was replaced (and the sync ran, default chunk_grace)
    still completes with the old value, byte for byte; a GET whose set is
    collected under it (chunk_grace = 0) is cut short (the connection closes
    before Content-Length bytes), never completed with other bytes."""
    with own_kvd(c) as (proc, port):
        key = "large/mix/x"
        v1, v2, v3 = (rnd_bytes(16 * CHUNK + 1, seed) for seed in (120, 121, 122))
        assert c.request("PUT", path(key, True), v1, port=port).status == 201
        s, headers, body = stalled_get(port, path(key))
        try:
            assert headers["content-length"] == str(len(v1))
            w = c.request("PUT", path(key, True), v2, port=port)
            assert w.status == 200 and w.header("X-Lazykv-Replicas") == "3/3", w
            sync_ok(c)   # the default chunk_grace keeps v1's set for this download
            body, cut = read_rest(s, len(v1), body)
            assert not cut and len(body) == len(v1) and sha_hex(body) == sha_hex(v1), \
                "a download begun before a replacement did not complete with the old value"
        finally:
            s.close()
        s, headers, body = stalled_get(port, path(key, True))
        try:
            assert headers["content-length"] == str(len(v2))
            w = c.request("PUT", path(key, True), v3, port=port)
            assert w.status == 200, w
            collect(c)   # v2's set: unnamed, past a grace of 0: deleted
            body, cut = read_rest(s, len(v2), body)
        finally:
            s.close()
        assert body == v2[:len(body)], "a download went on with bytes of another value"
        assert cut and len(body) < len(v2), \
            "a download completed although its chunks were collected under it"
        check_whole(c.request("GET", path(key, True), port=port), v3, w.header("ETag"))


# ---- ranges -------------------------------------------------------------------------

def range_cases(n):
    """(Range, If-Range, expected status, first, last) on a value of n
    bytes; first/last None: the whole value (200) or 416."""
    return [
        ("bytes=0-0", None, 206, 0, 0),                                  # the first byte
        ("bytes=%d-%d" % (n - 1, n - 1), None, 206, n - 1, n - 1),       # the last byte
        ("bytes=1048575-1048576", None, 206, CHUNK - 1, CHUNK),          # across chunks 0 and 1
        ("bytes=524288-1572863", None, 206, CHUNK // 2, CHUNK + CHUNK // 2 - 1),  # 1 MiB across
        ("bytes=%d-%d" % (2 * CHUNK, 3 * CHUNK - 1), None, 206, 2 * CHUNK, 3 * CHUNK - 1),  # one chunk
        ("bytes=-100", None, 206, n - 100, n - 1),                       # suffix
        ("bytes=-%d" % (n + 10), None, 206, 0, n - 1),                   # suffix past the start
        ("bytes=%d-" % (2 * CHUNK + 5), None, 206, 2 * CHUNK + 5, n - 1),  # open end
        ("bytes=0-", None, 206, 0, n - 1),
        ("bytes=%d-%d" % (n - 5, n + 1000), None, 206, n - 5, n - 1),    # last-pos cut to the end
        ("bytes=%d-" % n, None, 416, None, None),                        # past the end
        ("bytes=%d-%d" % (n, n + 10), None, 416, None, None),
        ("bytes=-0", None, 416, None, None),                             # zero length
        ("bytes=0-0,5-9", None, 200, None, None),                        # several: whole
        ("bytes=5-2", None, 200, None, None),                            # invalid: ignored
        ("items=0-5", None, 200, None, None),                            # other unit: ignored
    ]


def check_range_answer(r, value, etag, status, first, last):
    n = len(value)
    assert r.status == status, (status, r)
    if status == 416:
        assert r.header("Content-Range") == "bytes */%d" % n, r.header("Content-Range")
        return
    assert r.header("ETag") == etag, (r.header("ETag"), etag)
    check_headers(r, value)   # Repr-Digest is of the whole value, on 206 too
    if status == 200:
        check_whole(r, value, etag)
        assert r.header("Content-Range") is None
        return
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (first, last, n), r.header("Content-Range")
    assert r.header("Content-Length") == str(last - first + 1)
    assert r.body == value[first:last + 1], "range %d-%d: wrong bytes" % (first, last)


def test_ranges_on_a_chunked_value(c):
    """Byte ranges on a chunked value (3 MiB + 17, four chunks), lazy and
    canonical: first byte, last byte, a range spanning the chunk boundary
    (1048575-1048576), bytes=-N, bytes=A-, a last-pos past the end cut to
    it: 206 with Content-Range and exact bytes; past the end and -0: 416
    with `Content-Range: bytes */LEN`; several ranges: 200 whole; If-Range
    with the current ETag: 206; with a stale one (or a date): 200 whole,
    even for an unsatisfiable range."""
    with own_kvd(c) as (proc, port):
        key = "large/range/chunked"
        stale = c.request("PUT", path(key, True), rnd_bytes(2 * CHUNK + 1, 1), port=port)
        assert stale.status == 201, stale
        value = rnd_bytes(3 * CHUNK + 17, 2)
        w = c.request("PUT", path(key, True), value, port=port)
        assert w.status == 200 and w.header("X-Lazykv-Replicas") == "3/3", w
        etag, old_etag = w.header("ETag"), stale.header("ETag")
        n = len(value)
        cases = range_cases(n) + [
            ("bytes=10-19", etag, 206, 10, 19),
            ("bytes=1048570-1048580", etag, 206, CHUNK - 6, CHUNK + 4),
            ("bytes=10-19", old_etag, 200, None, None),
            ("bytes=%d-" % n, old_etag, 200, None, None),
            ("bytes=10-19", "W/" + etag, 200, None, None),   # weak: no strong match
            ("bytes=10-19", w.header("Last-Modified") or "Sun, 06 Nov 1994 08:49:37 GMT",
             200, None, None),
        ]
        for canonical in (True, False):
            for rng, if_range, status, first, last in cases:
                headers = {"Range": rng}
                if if_range:
                    headers["If-Range"] = if_range
                r = c.request("GET", path(key, canonical), headers=headers, port=port)
                try:
                    check_range_answer(r, value, etag, status, first, last)
                except AssertionError as e:
                    raise AssertionError("%s %r: %s" % ("canonical" if canonical else "lazy",
                                                        headers, e)) from None
        # every partition answers a range of its own copy
        every_partition(c, port, key, lambda r: check_range_answer(r, value, etag, 206, CHUNK - 1, CHUNK),
                        headers={"Range": "bytes=1048575-1048576"})


def test_ranges_on_inline_and_empty_values(c):
    """Ranges on an inline value (exactly 1 MiB, sliced in memory) and on
    the empty value: on the empty value bytes=0-0 is 416 `bytes */0` and
    bytes=-5 a 200 with the empty body (no Content-Range can describe it)."""
    with own_kvd(c) as (proc, port):
        key = "large/range/inline"
        value = rnd_bytes(CHUNK, 3)
        w = c.request("PUT", path(key, True), value, port=port)
        assert w.status == 201, w
        etag = w.header("ETag")
        for rng, status, first, last in (("bytes=0-0", 206, 0, 0),
                                         ("bytes=1048575-1048575", 206, CHUNK - 1, CHUNK - 1),
                                         ("bytes=1000-", 206, 1000, CHUNK - 1),
                                         ("bytes=-1", 206, CHUNK - 1, CHUNK - 1),
                                         ("bytes=1048576-", 416, None, None),
                                         ("bytes=-0", 416, None, None)):
            r = c.request("GET", path(key, True), headers={"Range": rng}, port=port)
            check_range_answer(r, value, etag, status, first, last)
        key = "large/range/empty"
        w = c.request("PUT", path(key, True), b"", port=port)
        assert w.status == 201, w
        r = c.request("GET", path(key, True), headers={"Range": "bytes=0-0"}, port=port)
        check_range_answer(r, b"", w.header("ETag"), 416, None, None)
        r = c.request("GET", path(key), headers={"Range": "bytes=-5"}, port=port)
        check_range_answer(r, b"", w.header("ETag"), 200, None, None)


# ---- uploads cut half-way -------------------------------------------------------------

def test_cut_uploads_keep_the_old_value_whole(c):
    """Streaming uploads: an upload that fails half-way leaves the old value
    whole and visible. A 3 MiB + 17 upload over a chunked value, cut (raw
    socket closed) after the headers only, after exactly the first 1 MiB
    piece, after the first piece and one byte, in the middle, and one byte
    short of Content-Length: each time the key keeps its old bytes and
    ETag on every partition (no partition serves a partial value), the
    bytes already sent reached the master as chunks (the body goes to the
    master as it arrives), and after a collecting sync pass no chunk row of
    the cut uploads is left. A cut upload of a new key stores nothing. The
    key is still writable afterwards."""
    with own_kvd(c) as (proc, port):
        key = "large/cut/old"
        old = rnd_bytes(CHUNK + CHUNK // 2 + 5, 10)
        w = c.request("PUT", path(key, True), old, port=port)
        assert w.status == 201 and w.header("X-Lazykv-Replicas") == "3/3", w
        etag, master = w.header("ETag"), w.json()["master"]
        versions = [main_row(c, i, key)["version"] for i in range(c.n)]
        new_len = 3 * CHUNK + 17
        new = rnd_bytes(new_len, 11)
        # (what is sent, chunk rows that must have reached the master first)
        stages = [("headers only", 0, 0),
                  ("the first piece", CHUNK, 0),
                  ("the first piece and a byte", CHUNK + 1, 1),
                  ("the middle", 2 * CHUNK + CHUNK // 2, 2),
                  ("one byte short", new_len - 1, 3)]
        for k, (stage, sent, min_chunks) in enumerate(stages):
            known = chunk_versions(c, master, key)
            s = raw_upload(port, "PUT" if k % 2 else "POST", path(key, k % 3 == 0), new_len)
            s.sendall(new[:sent])
            if min_chunks:
                wait_for(lambda: chunk_count(c, master, key, known) >= min_chunks, timeout=30,
                         what="%d chunk rows of the upload cut at %s at the master"
                              % (min_chunks, stage))
            close_and_wait(s, port)
            try:
                check_whole(c.request("GET", path(key, True), port=port), old, etag)
                every_partition(c, port, key, lambda r: check_whole(r, old, etag))
                assert [main_row(c, i, key)["version"] for i in range(c.n)] == versions
                for i in range(c.n):
                    assert_stored(c, i, key, old)
            except AssertionError as e:
                raise AssertionError("cut at %s: %s" % (stage, e)) from None
        # a new key: cut in the middle, nothing stored anywhere
        fresh = "large/cut/new"
        m = c.request("PUT", path(fresh), b"x", port=port).json()["master"]
        assert c.request("DELETE", path(fresh, True), port=port).status == 202
        sync_ok(c)   # purges the tombstone: the key never existed
        assert [main_row(c, i, fresh) for i in range(c.n)] == [None] * c.n
        s = raw_upload(port, "PUT", path(fresh, True), new_len)
        s.sendall(new[:2 * CHUNK + 10])
        wait_for(lambda: chunk_count(c, m, fresh) >= 2, timeout=30,
                 what="the new key's first chunks at its master")
        close_and_wait(s, port)
        assert c.request("GET", path(fresh, True), port=port).status == 404
        assert c.request("HEAD", path(fresh), port=port).status == 404
        assert [main_row(c, i, fresh) for i in range(c.n)] == [None] * c.n
        # the cut uploads' sets are collected (if the writer did not delete them at once)
        collect(c)
        for i in range(c.n):
            assert_no_orphans(c, i, "large/cut/")
            assert chunk_count(c, i, fresh) == 0, i
            row = assert_stored(c, i, key, old)
            assert chunk_versions(c, i, key) == {row["chunk_version"]}, i
        # the key is not stuck: a whole upload replaces the value
        r = c.request("PUT", path(key, True), new, port=port)
        assert r.status == 200 and r.header("X-Lazykv-Replicas") == "3/3", r
        check_whole(c.request("GET", path(key, True), port=port), new, r.header("ETag"))


# ---- replication ---------------------------------------------------------------------

def test_chunked_value_replicated_by_the_sync(c):
    """The sync moves a chunked value chunk by chunk: after a lazy write only
    the master holds the main row and the chunk rows; after a pass every
    partition holds the same main row (same version, same chunk_version) and
    the complete set, serves the value, and verify compares them equal."""
    with own_kvd(c) as (proc, port):
        key = "large/repl/sync"
        value = rnd_bytes(5 * CHUNK + 123, 20)
        r = c.request("POST", path(key), value, port=port)
        assert r.status == 201, r
        master, version, etag = r.json()["master"], r.json()["version"], r.header("ETag")
        row = assert_stored(c, master, key, value, version)
        for i in range(c.n):
            if i != master:
                assert main_row(c, i, key) is None, i
                assert chunk_count(c, i, key) == 0, i
        sync_ok(c)
        for i in range(c.n):
            got = assert_stored(c, i, key, value, version)
            assert got["chunk_version"] == row["chunk_version"], (i, got, row)
        every_partition(c, port, key, lambda g: (check_whole(g, value, etag), check_headers(g, value)))
        assert_converged(c)


def test_chunked_value_replicated_by_a_canonical_write(c):
    """Canonical writes tee each chunk to every other reachable partition
    and switch the replicas after the master: X-Lazykv-Replicas 3/3, every
    partition holds the whole set under the master's chunk_version at once
    (no sync), and serves the value."""
    with own_kvd(c) as (proc, port):
        key = "large/repl/canonical"
        value = rnd_bytes(4 * CHUNK + 1, 21)
        r = c.request("POST", path(key, True), value, port=port)
        assert r.status == 201 and r.header("X-Lazykv-Replicas") == "3/3", r
        version, etag = r.json()["version"], r.header("ETag")
        named = {assert_stored(c, i, key, value, version)["chunk_version"] for i in range(c.n)}
        assert len(named) == 1, named
        every_partition(c, port, key, lambda g: (check_whole(g, value, etag), check_headers(g, value)))
        assert r.header("Repr-Digest") == repr_digest(value), r.header("Repr-Digest")
        # a second canonical write of a chunked value replaces it everywhere
        value2 = rnd_bytes(2 * CHUNK + 2, 22)
        r = c.request("PUT", path(key, True), value2, port=port)
        assert r.status == 200 and r.header("X-Lazykv-Replicas") == "3/3", r
        for i in range(c.n):
            assert_stored(c, i, key, value2, r.json()["version"])
        every_partition(c, port, key, lambda g: check_whole(g, value2, r.header("ETag")))


def test_verify_finds_an_incomplete_chunk_set_and_repair_restores_it(c):
    """Verify and repair (chunks.h): verify compares digests, lists a main
    row whose named set is incomplete on a partition (one chunk row deleted
    by hand at a replica): exit 1, the key named; --repair copies the set
    back chunk by chunk: the replica holds and serves the whole value, and
    verify is clean again."""
    with own_kvd(c) as (proc, port):
        key = "large/verify/x"
        value = rnd_bytes(4 * CHUNK + 77, 25)
        w = c.request("PUT", path(key, True), value, port=port)
        assert w.status == 201 and w.header("X-Lazykv-Replicas") == "3/3", w
        assert_converged(c)
        replica = (w.json()["master"] + 1) % c.n
        cv = assert_stored(c, replica, key, value)["chunk_version"]
        sql(c, replica, "DELETE FROM data_chunks WHERE kh = %s AND version = %d AND n = 2"
                        % (kh_sql(key), cv))
        r = c.admin("verify", timeout=600)
        assert r.returncode == 1 and key.encode() in r.stdout, (r.returncode, r.stdout.decode(),
                                                                r.stderr.decode())
        r = c.admin("verify", "--repair", timeout=600)
        assert r.returncode == 0, (r.stdout.decode(), r.stderr.decode())
        assert_stored(c, replica, key, value, w.json()["version"])
        assert_converged(c)
        every_partition(c, port, key, lambda g: check_whole(g, value, w.header("ETag")))


def test_kill_9_of_the_sync_half_way_through_a_large_value(c):
    """kill -9 of lazykv-sync while it copies a chunked value (held half-way
    by a row lock on one target's chunk 12 of 24): meanwhile and afterwards
    every partition serves the old or the new value whole (the target's
    main row still names the old set); a later full pass makes every
    partition serve the new value; the collector (chunk_grace = 0) leaves
    no set that nothing names, and each partition holds just the new set.
    The hold assumes what chunks.h's sync step 2 describes: the chunks a
    target lacks are copied one statement each (INSERT ... ON DUPLICATE KEY
    UPDATE n = n), in order of n, without locking the set first."""
    with own_kvd(c) as (proc, port):
        key = "large/kill/sync"
        old = rnd_bytes(6 * CHUNK + 1, 30)
        w0 = c.request("PUT", path(key, True), old, port=port)
        assert w0.status == 201 and w0.header("X-Lazykv-Replicas") == "3/3", w0
        new = rnd_bytes(24 * CHUNK, 31)
        w1 = c.request("PUT", path(key), new, port=port, timeout=300)
        assert w1.status == 200, w1
        master, version = w1.json()["master"], w1.json()["version"]
        cv = assert_stored(c, master, key, new, version)["chunk_version"]
        target = (master + 1) % c.n
        old_version = main_row(c, target, key)["version"]
        etags = {w0.header("ETag"): old, w1.header("ETag"): new}

        def old_or_new(r, method):
            assert r.header("ETag") in etags, r
            v = etags[r.header("ETag")]
            if method == "HEAD":
                check_head(r, v)
            else:
                check_whole(r, v)
        # hold chunk 12 of the new set at the target: the sync's copy waits there
        hold = SqlSession(c, target)
        sync = None
        try:
            hold.run("BEGIN; INSERT INTO data_chunks (kh, version, n, k, data) VALUES "
                     "(%s, %d, 12, UNHEX('%s'), 'held')" % (kh_sql(key), cv, khex(key)))
            sync = subprocess.Popen([os.path.join(c.bindir, "lazykv-sync"), "-c", c.config, "--test"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            def half_copied():
                n = chunk_count(c, target, key, version=cv)
                assert n >= 12 or sync.poll() is None, \
                    "the sync ended (exit %s) with %d of 24 chunks at partition %d" % (
                        sync.returncode, n, target)
                return n >= 12
            wait_for(half_copied, timeout=60,
                     what="the sync to copy half of the set to partition %d" % target)
            assert sync.poll() is None, "the sync ended instead of waiting on the held chunk"
            # half-way: the target still names the old set, every partition serves a whole value
            assert main_row(c, target, key)["version"] == old_version
            every_partition(c, port, key, lambda r: old_or_new(r, "HEAD"), method="HEAD")
            sync.send_signal(signal.SIGKILL)
            sync.wait()
        finally:
            if sync is not None and sync.poll() is None:
                sync.kill()
                sync.wait()
            hold.run("ROLLBACK")
            hold.close()
        assert main_row(c, target, key)["version"] == old_version
        assert_stored(c, target, key, old)
        every_partition(c, port, key, lambda r: old_or_new(r, "GET"))
        wait_for(lambda: sync_lock_free(c), timeout=60, what="the killed pass's lock to be released")
        sync_ok(c)
        for i in range(c.n):
            assert_stored(c, i, key, new, version)
        every_partition(c, port, key, lambda r: check_whole(r, new, w1.header("ETag")))
        collect(c)
        for i in range(c.n):
            assert_no_orphans(c, i, "large/kill/")
            assert chunk_versions(c, i, key) == {cv}, (i, chunk_versions(c, i, key), cv)
            assert chunk_count(c, i, key) == 24, i
        assert_converged(c)


def test_kill_9_of_lazykvd_half_way_through_an_upload(c):
    """kill -9 of lazykvd in the middle of an upload (8 MiB promised, 5 MiB
    sent, 4 chunks at the master): the key keeps its old value whole on
    every partition; the cut set is an orphan that a pass with the default
    chunk_grace keeps (younger than the grace) and a pass with chunk_grace =
    0 collects; afterwards every partition still serves the old value."""
    key = "large/kill/kvd"
    old = rnd_bytes(2 * CHUNK + 3, 40)
    new = rnd_bytes(8 * CHUNK, 41)
    with own_kvd(c) as (proc, port):
        w = c.request("PUT", path(key, True), old, port=port)
        assert w.status == 201 and w.header("X-Lazykv-Replicas") == "3/3", w
        etag, master = w.header("ETag"), w.json()["master"]
        known = chunk_versions(c, master, key)
        s = raw_upload(port, "PUT", path(key), len(new))
        try:
            s.sendall(new[:5 * CHUNK])
            wait_for(lambda: chunk_count(c, master, key, known) >= 4, timeout=30,
                     what="the upload's first 4 chunks at the master")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.killed_by_test = True
        finally:
            s.close()
    with own_kvd(c) as (proc, port):
        check_whole(c.request("GET", path(key, True), port=port), old, etag)
        every_partition(c, port, key, lambda r: check_whole(r, old, etag))
        for i in range(c.n):
            assert_stored(c, i, key, old)
        assert orphan_chunks(c, master, "large/kill/kvd") >= 4, "kill -9 left no cut set behind?"
        sync_ok(c)   # chunk_grace: the default (an hour): the set is kept
        assert orphan_chunks(c, master, "large/kill/kvd") >= 4, \
            "a set younger than chunk_grace was collected"
        collect(c)
        for i in range(c.n):
            assert_no_orphans(c, i, "large/kill/kvd")
            row = assert_stored(c, i, key, old)
            assert chunk_versions(c, i, key) == {row["chunk_version"]}, i
        every_partition(c, port, key, lambda r: check_whole(r, old, etag))
        assert_converged(c)


# ---- overwrite, delete, expiry --------------------------------------------------------

def test_overwrite_chunked_with_chunked_then_inline(c):
    """Overwriting a chunked value with another chunked value, then with a
    small inline one: each read serves exactly the current value; the
    replaced sets stay while younger than chunk_grace (a download of the old
    value may still need them) and are collected by a pass with chunk_grace
    = 0; the inline row has chunks = 0 and no chunk row is left."""
    with own_kvd(c) as (proc, port):
        key = "large/over/x"
        v1, v2, v3 = rnd_bytes(2 * CHUNK + 1, 50), rnd_bytes(3 * CHUNK + 17, 51), b"small now"
        r1 = c.request("PUT", path(key), v1, port=port)
        assert r1.status == 201, r1
        master = r1.json()["master"]
        c1 = assert_stored(c, master, key, v1)["chunk_version"]
        sync_ok(c)
        r2 = c.request("PUT", path(key), v2, port=port)
        assert r2.status == 200, r2
        check_whole(c.request("GET", path(key, True), port=port), v2, r2.header("ETag"))
        c2 = assert_stored(c, master, key, v2, r2.json()["version"])["chunk_version"]
        assert c2 != c1
        sync_ok(c)   # default chunk_grace: v1's set is replaced but kept for now
        for i in range(c.n):
            assert_stored(c, i, key, v2, r2.json()["version"])
            assert chunk_count(c, i, key) == len(expected_chunks(v1)) + len(expected_chunks(v2)), i
        every_partition(c, port, key, lambda r: check_whole(r, v2, r2.header("ETag")))
        r3 = c.request("PUT", path(key, True), v3, port=port)
        assert r3.status == 200 and r3.header("X-Lazykv-Replicas") == "3/3", r3
        for i in range(c.n):
            row = assert_stored(c, i, key, v3, r3.json()["version"])
            assert row["chunks"] == 0
        every_partition(c, port, key, lambda r: check_whole(r, v3, r3.header("ETag")))
        collect(c)
        for i in range(c.n):
            assert chunk_count(c, i, key) == 0, (i, chunk_rows(c, i, key))
            assert_stored(c, i, key, v3, r3.json()["version"])


def test_delete_of_a_chunked_value_then_purge_collects_its_chunks(c):
    """Tombstones of chunked values: a DELETE writes a tombstone with
    chunks = 0, chunk_version = 0, len = 0, digest NULL, v = ''; reads 404
    at once on the canonical path and on every partition after the sync;
    the sync purges the tombstones (tombstone_grace = 0 here) and the
    collector removes every chunk row of the key."""
    with own_kvd(c) as (proc, port):
        key = "large/del/x"
        value = rnd_bytes(3 * CHUNK + 5, 60)
        w = c.request("PUT", path(key), value, port=port)
        assert w.status == 201, w
        master = w.json()["master"]
        sync_ok(c)
        for i in range(c.n):
            assert_stored(c, i, key, value)
        d = c.request("DELETE", path(key), port=port)
        assert d.status == 202, d
        assert c.request("GET", path(key, True), port=port).status == 404
        assert c.request("HEAD", path(key, True), port=port).status == 404
        row = main_row(c, master, key)
        assert row["deleted"] == 1 and row["chunks"] == 0 and row["chunk_version"] == 0 \
            and row["len"] is None and row["digest"] is None and row["vlen"] == 0, row
        # (len NULL: the length of v, '', as for every row not chunked)
        collect(c)
        every_partition(c, port, key, check_absent)
        for i in range(c.n):
            assert main_row(c, i, key) is None, (i, main_row(c, i, key))
            assert chunk_count(c, i, key) == 0, (i, chunk_rows(c, i, key))


def test_ttl_expiry_of_a_chunked_value(c):
    """TTL expiry of a chunked value: served whole until its instant, then
    absent everywhere (GET/HEAD 404, lazy and canonical); the sync turns it
    into a tombstone and purges it, and the collector removes its chunks."""
    with own_kvd(c) as (proc, port):
        key = "large/ttl/x"
        value = rnd_bytes(2 * CHUNK + 9, 70)
        w = c.request("PUT", path(key, True, "ttl=2"), value, port=port)
        assert w.status == 201 and w.header("X-Lazykv-Replicas") == "3/3", w
        assert w.header("X-Lazykv-Expires"), w
        g = c.request("GET", path(key, True), port=port)
        if g.status == 200:   # not yet expired (it lives 2 s)
            check_whole(g, value, w.header("ETag"))
            assert g.header("X-Lazykv-Expires") == w.header("X-Lazykv-Expires")
        for i in range(c.n):
            assert_stored(c, i, key, value)
        wait_for(lambda: c.request("GET", path(key, True), port=port).status == 404, timeout=10,
                 what="the key to expire")
        for _ in range(6):
            assert c.request("GET", path(key), port=port).status == 404
            assert c.request("HEAD", path(key), port=port).status == 404

        def gone():
            collect(c)
            return all(main_row(c, i, key) is None and chunk_count(c, i, key) == 0
                       for i in range(c.n))
        wait_for(gone, timeout=30, what="the expired value's rows and chunks to be purged")


# ---- max_value_size --------------------------------------------------------------------

def send_until_answered(s, pieces):
    """Sends pieces in turn, stopping as soon as the server answers (or
    closes: a server that answers early and closes would reset a
    connection we go on writing to, and the answer could be lost);
    returns what it answered."""
    s.setblocking(False)
    resp = b""
    answered = False
    try:
        for piece in pieces:
            view = memoryview(piece)
            while view and not answered:
                r, w, _ = select.select([s], [s], [], 30)
                if r:
                    resp += s.recv(65536)
                    answered = True
                elif w:
                    view = view[s.send(view):]
                else:
                    raise AssertionError("the server neither reads nor answers")
            if answered:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.setblocking(True)
    s.settimeout(10)
    try:
        while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
            d = s.recv(65536)
            if not d:
                break
            resp += d
    except (socket.timeout, ConnectionResetError):
        pass
    return resp


def test_body_over_max_value_size_is_413_and_stores_nothing(c):
    """413 for a body over max_value_size (3 MiB here, so the refused value
    is past the inline threshold): a Content-Length over it is refused
    before the body; a chunked (Transfer-Encoding) body is refused when its
    running total passes it. The old value stays whole everywhere and no
    chunk row of the refused bodies is left after collection. A body of
    exactly max_value_size is stored."""
    limit = 3 * CHUNK
    with own_kvd(c, max_value_size=limit) as (proc, port):
        key = "large/413/x"
        old = rnd_bytes(2 * CHUNK + 7, 80)
        w = c.request("PUT", path(key, True), old, port=port)
        assert w.status == 201, w
        etag = w.header("ETag")
        # Content-Length over the limit: refused at once
        s = raw_upload(port, "PUT", path(key), limit + 1)
        resp = send_until_answered(s, [rnd_bytes(limit + 1, 81)])
        s.close()
        assert status_of(resp) == 413, resp[:300]
        # chunked: no length announced, refused when the total passes the limit
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % path(key, True).encode())
        piece = b"%x\r\n" % (256 * 1024) + b"z" * (256 * 1024) + b"\r\n"
        resp = send_until_answered(s, [piece] * 16 + [b"0\r\n\r\n"])   # 4 MiB
        s.close()
        assert status_of(resp) == 413, resp[:300]
        check_whole(c.request("GET", path(key, True), port=port), old, etag)
        every_partition(c, port, key, lambda r: check_whole(r, old, etag))
        # a new key refused: nothing at all
        s = raw_upload(port, "POST", path("large/413/new"), limit + CHUNK)
        resp = send_until_answered(s, [b"y" * (limit + CHUNK)])
        s.close()
        assert status_of(resp) == 413, resp[:300]
        assert c.request("GET", path("large/413/new", True), port=port).status == 404
        # exactly the limit is allowed
        exact = rnd_bytes(limit, 82)
        r = c.request("PUT", path("large/413/exact"), exact, port=port)
        assert r.status == 201, r
        check_whole(c.request("GET", path("large/413/exact", True), port=port), exact, r.header("ETag"))
        collect(c)
        for i in range(c.n):
            assert_no_orphans(c, i, "large/413/")
            assert main_row(c, i, "large/413/new") is None
        for i in range(c.n):
            assert_stored(c, i, key, old)


@contextlib.contextmanager
def max_allowed_packet(c, value, which=None):
    """The global max_allowed_packet of partitions which (default: all) set
    to value (new connections see it) for the block; restored after."""
    which = list(range(c.n)) if which is None else which
    before = {i: sql(c, i, "SELECT @@global.max_allowed_packet", db=False)[0][0] for i in which}
    try:
        for i in which:
            sql(c, i, "SET GLOBAL max_allowed_packet = %d" % value, db=False)
        yield
    finally:
        for i in which:
            sql(c, i, "SET GLOBAL max_allowed_packet = %s" % before[i], db=False)


def test_max_value_size_is_free_of_max_allowed_packet(c):
    """max_value_size may exceed every partition's max_allowed_packet, which
    only has to exceed a statement's chunk (chunks_packet_min(250), about
    1.22 MiB): with every partition at 2 MiB, an 8 MiB value is written
    lazily and canonically, read back, and copied by the sync. With a
    partition below the minimum (1 MiB) lazykvd refuses to start, with a
    line naming the partition and max_allowed_packet."""
    with max_allowed_packet(c, 2 * MiB):
        with own_kvd(c) as (proc, port):
            value = rnd_bytes(8 * CHUNK + 3, 90)
            r = c.request("PUT", path("large/packet/canon", True), value, port=port)
            assert r.status == 201 and r.header("X-Lazykv-Replicas") == "3/3", r
            every_partition(c, port, "large/packet/canon", lambda g: check_whole(g, value, r.header("ETag")))
            r = c.request("PUT", path("large/packet/lazy"), value, port=port)
            assert r.status == 201, r
            check_whole(c.request("GET", path("large/packet/lazy", True), port=port), value,
                        r.header("ETag"))
            sync_ok(c)
            for i in range(c.n):
                assert_stored(c, i, "large/packet/lazy", value, r.json()["version"])
    cfg = c.kvd_config({"max_value_size": OWN_MAX}, name="large-packet.cfg")
    with max_allowed_packet(c, MiB, which=[2]):
        p = subprocess.Popen(c.kvd_args(cfg, free_port()), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            out, _ = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise AssertionError("lazykvd started with partition 2's max_allowed_packet at 1 MiB")
    text = out.decode(errors="replace")
    assert p.returncode != 0, text
    lines = [ln for ln in text.splitlines() if "max_allowed_packet" in ln]
    assert len(lines) == 1 and "store_3" in lines[0] and "1048576" in lines[0], text


# ---- digests and content-addressed keys on the chunked path ----------------------------

def b64(raw):
    return base64.b64encode(raw).decode()


def test_digest_mismatch_on_a_chunked_upload_stores_nothing(c):
    """A write's Content-Digest / Repr-Digest (sha-256, sha-512) or
    Content-MD5 is checked while the body streams, at the last byte, after
    its chunks are written: a mismatch answers 400 with a problem document
    naming the digest (digest_expected_name()), switches nothing (the old
    value stays whole everywhere), and its chunks are a set nothing names,
    gone after collection. Matching digests of every kind store the value."""
    with own_kvd(c) as (proc, port):
        key = "large/digest-check/x"
        old = rnd_bytes(CHUNK + 9, 100)
        w = c.request("PUT", path(key, True), old, port=port)
        assert w.status == 201, w
        etag = w.header("ETag")
        new = rnd_bytes(2 * CHUNK + 1, 101)
        other = new[:-1] + bytes([new[-1] ^ 1])   # differs in the last byte only
        cases = [
            ("Content-Digest", "sha-256=:%s:" % b64(hashlib.sha256(other).digest()),
             "Content-Digest sha-256"),
            ("Content-Digest", "sha-512=:%s:" % b64(hashlib.sha512(other).digest()),
             "Content-Digest sha-512"),
            ("Repr-Digest", "sha-256=:%s:" % b64(hashlib.sha256(other).digest()),
             "Repr-Digest sha-256"),
            ("Repr-Digest", "sha-512=:%s:" % b64(hashlib.sha512(other).digest()),
             "Repr-Digest sha-512"),
            ("Content-MD5", b64(hashlib.md5(other).digest()), "Content-MD5"),
        ]
        for k, (field, value, name) in enumerate(cases):
            r = c.request("PUT" if k % 2 else "POST", path(key, k % 2 == 0), new,
                          headers={field: value}, port=port)
            assert r.status == 400, (field, value, r)
            assert r.header("Content-Type") == "application/problem+json", r
            assert name in r.json()["detail"], (name, r.json())
            check_whole(c.request("GET", path(key, True), port=port), old, etag)
        every_partition(c, port, key, lambda r: check_whole(r, old, etag))
        collect(c)
        for i in range(c.n):
            assert_no_orphans(c, i, "large/digest-check/")
            assert_stored(c, i, key, old)
        good = {"Content-Digest": "sha-256=:%s:" % b64(hashlib.sha256(new).digest()),
                "Repr-Digest": "sha-512=:%s:" % b64(hashlib.sha512(new).digest()),
                "Content-MD5": b64(hashlib.md5(new).digest())}
        r = c.request("PUT", path(key, True), new, headers=good, port=port)
        assert r.status == 200 and r.header("Repr-Digest") == repr_digest(new), r
        for i in range(c.n):
            assert_stored(c, i, key, new, r.json()["version"])


def test_content_addressed_chunked_value_twice(c):
    """Content-addressed keys on the chunked path: POST ?key=sha256 of a
    2 MiB + 5 body answers 201 with Location /bucket/<hex sha-256> and
    stores the value as chunks at that key's master; the same content again
    is 200 with the same ETag, and the master is not written again (neither
    its row nor a second set). Lazily, no other partition is written either;
    canonically, the replicas are brought up to the master's row and set
    (X-Lazykv-Replicas n/n), and again with nothing left to bring."""
    with own_kvd(c) as (proc, port):
        value = rnd_bytes(2 * CHUNK + 5, 110)
        hexkey = sha_hex(value)
        r = c.request("POST", "/bucket/?key=sha256", value, port=port)
        assert r.status == 201, r
        assert r.header("Location") == "/bucket/" + hexkey, r.header("Location")
        assert r.json()["key"] == hexkey and r.header("Repr-Digest") == repr_digest(value), r
        etag, master, version = r.header("ETag"), r.json()["master"], r.json()["version"]
        check_whole(c.request("GET", path(hexkey, True), port=port), value, etag)
        assert_stored(c, master, hexkey, value, version)
        first = main_row(c, master, hexkey)
        again = c.request("POST", "/bucket/?key=sha256", value, port=port)
        assert again.status == 200 and again.header("ETag") == etag, again
        assert again.json()["result"] == "unchanged", again.json()
        assert main_row(c, master, hexkey) == first, "rewritten"
        for i in range(c.n):
            assert chunk_count(c, i, hexkey) == (3 if i == master else 0), i
        for n in (1, 2):
            again = c.request("POST", "/canonicalbucket/?key=sha256", value, port=port)
            assert again.status == 200 and again.header("ETag") == etag, (n, again)
            assert again.json()["result"] == "unchanged", again.json()
            assert again.header("X-Lazykv-Replicas") == "%d/%d" % (c.n, c.n), (n, again)
            assert main_row(c, master, hexkey) == first, "rewritten"
            for i in range(c.n):
                assert_stored(c, i, hexkey, value, version)
                # the master's one set, under the master's name, everywhere
                assert main_row(c, i, hexkey)["chunk_version"] == first["chunk_version"], i
                assert chunk_count(c, i, hexkey) == 3, (n, i)
        assert c.request("DELETE", path(hexkey, True), port=port).status == 202
        collect(c)
        for i in range(c.n):
            assert chunk_count(c, i, hexkey) == 0, i


def open_fds_under(pid, directory):
    """How many of pid's open files lie in directory (deleted or not)."""
    fd_dir = "/proc/%d/fd" % pid
    n = 0
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue    # closed meanwhile
        n += target.startswith(directory.rstrip("/") + "/")
    return n


@contextlib.contextmanager
def tmpdir_env(directory):
    """TMPDIR set to directory for the lazykvd started inside."""
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = directory
    try:
        yield
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old


def test_content_addressed_body_is_spooled_to_disk_not_held(c):
    """A content-addressed write learns its key at its last byte, so its
    body cannot stream to a master as it comes: past one chunk it is kept
    in an unnamed file under $TMPDIR (spool.h), not in memory. A 100 MiB
    canonical POST ?key=sha256: while it arrives lazykvd has one file open
    there; lazykvd's peak RSS grows by at most 32 MiB; the answer is 201
    with the body's key, every partition holds the value whole, and the file
    is closed with the request."""
    spool_dir = os.path.join(c.dir, "spool")
    os.makedirs(spool_dir, exist_ok=True)
    big = big_value()
    hexkey = sha_hex(big)
    with tmpdir_env(spool_dir), own_kvd(c) as (proc, port):
        hwm0 = proc_kib(proc.pid, "VmHWM")
        s = raw_upload(port, "POST", "/canonicalbucket/?key=sha256", BIG_LEN)
        try:
            s.sendall(big[:3 * CHUNK])
            wait_for(lambda: open_fds_under(proc.pid, spool_dir) == 1, timeout=30,
                     what="lazykvd to spool the body under %s" % spool_dir)
            s.sendall(big[3 * CHUNK:])
            resp = read_response(s)
        finally:
            s.close()
        assert status_of(resp) == 201, resp[:600]
        head, _, body = resp.partition(b"\r\n\r\n")
        doc = json.loads(body)
        assert doc["key"] == hexkey and doc["result"] == "created", doc
        assert b"\r\nLocation: /canonicalbucket/%s\r\n" % hexkey.encode() in head, head
        assert b"\r\nX-Lazykv-Replicas: %d/%d\r\n" % (c.n, c.n) in head, head
        wait_for(lambda: open_fds_under(proc.pid, spool_dir) == 0, timeout=30,
                 what="lazykvd to close the spool")
        assert os.listdir(spool_dir) == [], "a spool file has a name: %s" % os.listdir(spool_dir)
        hwm1 = proc_kib(proc.pid, "VmHWM")
        print("large: 100 MiB content-addressed POST: lazykvd peak RSS grew %d KiB"
              % (hwm1 - hwm0))
        assert SANITIZED or hwm1 - hwm0 <= RSS_BOUND_KIB, \
            "lazykvd's peak RSS grew %d KiB over a 100 MiB content-addressed body" % (hwm1 - hwm0)
        for i in range(c.n):
            assert_stored(c, i, hexkey, big, doc["version"])
        g = c.request("GET", path(hexkey, True), port=port, timeout=600)
        check_whole(g, big, doc["etag"])
        del g
        assert c.request("DELETE", path(hexkey, True), port=port).status == 202


def test_content_addressed_body_with_a_declared_sha256_streams(c):
    """A content-addressed write whose Content-Digest (or Repr-Digest)
    gives the body's SHA-256 knows its key from its headers: its body
    streams to that key's master as it arrives (chunk rows there before the
    body ends, no spool file), and is stored as any; a body that does not
    match the declared digest is 400 naming it, and nothing is stored (its
    chunks are collected)."""
    spool_dir = os.path.join(c.dir, "spool-declared")
    os.makedirs(spool_dir, exist_ok=True)
    value = rnd_bytes(20 * CHUNK + 9, 120)
    hexkey = sha_hex(value)
    declared = "Content-Digest: sha-256=:%s:\r\n" % b64(hashlib.sha256(value).digest())
    with tmpdir_env(spool_dir), own_kvd(c) as (proc, port):
        s = raw_upload(port, "POST", "/canonicalbucket/?key=sha256", len(value),
                       declared.encode())
        try:
            s.sendall(value[:6 * CHUNK])
            wait_for(lambda: sum(chunk_count(c, i, hexkey) for i in range(c.n)) >= 3,
                     timeout=30, what="chunks of the declared key before the body ends")
            assert open_fds_under(proc.pid, spool_dir) == 0, "spooled, not streamed"
            s.sendall(value[6 * CHUNK:])
            resp = read_response(s)
        finally:
            s.close()
        assert status_of(resp) == 201, resp[:600]
        doc = json.loads(resp.partition(b"\r\n\r\n")[2])
        assert doc["key"] == hexkey and doc["result"] == "created", doc
        for i in range(c.n):
            assert_stored(c, i, hexkey, value, doc["version"])
        check_whole(c.request("GET", path(hexkey, True), port=port), value, doc["etag"])
        assert c.request("DELETE", path(hexkey, True), port=port).status == 202

        other = rnd_bytes(3 * CHUNK, 121)
        r = c.request("POST", "/bucket/?key=sha256", other, port=port,
                      headers={"Repr-Digest": "sha-256=:%s:" % b64(hashlib.sha256(value).digest())})
        assert r.status == 400, r
        assert r.json()["detail"] == ("the body does not match its Repr-Digest sha-256;"
                                      " nothing was written"), r.json()
        for key in (hexkey, sha_hex(other)):
            for i in range(c.n):
                assert main_row(c, i, key) is None or main_row(c, i, key)["deleted"], (key, i)
        collect(c)
        for i in range(c.n):
            assert chunk_count(c, i, hexkey) == 0 and chunk_count(c, i, sha_hex(other)) == 0, i


def test_lazykvd_refuses_to_start_where_it_cannot_spool(c):
    """A $TMPDIR where no file can be made is found at start-up, not by
    each large content-addressed write: lazykvd (and lazykvd -t) exits 2
    with one line naming the directory and TMPDIR. With key_length < 64
    nothing is ever spooled, and it starts."""
    missing = os.path.join(c.dir, "no-such-spool-dir")
    cfg = c.kvd_config({"max_value_size": OWN_MAX}, name="spool-missing.cfg")
    line = ("lazykvd: %s: cannot make a temporary file there (No such file or directory);"
            " content-addressed writes over 1 MiB are kept there until their last byte:"
            " set TMPDIR to a writable directory on disk" % missing)
    env = dict(os.environ, TMPDIR=missing)
    for extra in ([], ["-t"]):
        p = subprocess.run(c.kvd_args(cfg, free_port()) + extra, env=env, capture_output=True,
                           timeout=30)
        assert p.returncode == 2, (extra, p)
        assert p.stderr.decode() == line + "\n", (extra, p.stderr)
    with tmpdir_env(missing), own_kvd(c, key_length=63) as (proc, port):
        r = c.request("POST", "/bucket/?key=sha256", b"x", port=port)
        assert r.status == 400, r


def chunked_post(port, p, value, piece=256 * 1024):
    """POSTs value with Transfer-Encoding: chunked (no Content-Length);
    returns (status, parsed JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", p, body=(value[i:i + piece] for i in range(0, len(value), piece)),
                     encode_chunked=True)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_content_addressed_body_the_disk_cannot_hold_is_503(c):
    """Spooled bodies never fill their file system (a 3 MiB tmpfs as
    $TMPDIR here): they leave 5 % of it free. A body whose Content-Length
    cannot fit is 503 before it is read; one sent without a length that
    runs out of room half-way has the rest dropped and is 503 at its end;
    nothing is stored either way. One that fits is stored; a body within one
    chunk is not spooled at all. (Mounting a tmpfs needs root.)"""
    if os.geteuid() != 0:
        print("skipped: mounting a tmpfs needs root")
        return
    small_fs = os.path.join(c.dir, "small-spool")
    os.makedirs(small_fs, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", small_fs], check=True)
    try:
        value = rnd_bytes(8 * CHUNK, 111)
        hexkey = sha_hex(value)
        with tmpdir_env(small_fs), own_kvd(c) as (proc, port):
            # the head alone: the answer comes before any of the body is sent
            s = raw_upload(port, "POST", "/bucket/?key=sha256", len(value))
            try:
                resp = read_response(s, timeout=30)
            finally:
                s.close()
            assert status_of(resp) == 503, resp
            doc = json.loads(resp.partition(b"\r\n\r\n")[2])
            assert doc["detail"] == ("no room on disk to keep the body until its last"
                                     " byte; nothing was written"), doc
            status, doc = chunked_post(port, "/bucket/?key=sha256", value)
            assert status == 503, doc
            assert doc["detail"] == ("the body could not be kept on disk until its last"
                                     " byte; nothing was written"), doc
            assert c.request("HEAD", path(hexkey, True), port=port).status == 404
            for i in range(c.n):
                assert main_row(c, i, hexkey) is None and chunk_count(c, i, hexkey) == 0, i
            assert os.listdir(small_fs) == []
            fits = rnd_bytes(2 * CHUNK, 113)
            status, doc = chunked_post(port, "/bucket/?key=sha256", fits)
            assert status == 201 and doc["key"] == sha_hex(fits), doc
            check_whole(c.request("GET", path(sha_hex(fits), True), port=port), fits)
            assert c.request("DELETE", path(sha_hex(fits), True), port=port).status == 202
            small = rnd_bytes(CHUNK, 112)
            r = c.request("POST", "/bucket/?key=sha256", small, port=port)
            assert r.status == 201 and r.json()["key"] == sha_hex(small), r
            check_whole(c.request("GET", path(sha_hex(small), True), port=port), small,
                        r.header("ETag"))
            assert c.request("DELETE", path(sha_hex(small), True), port=port).status == 202
    finally:
        subprocess.run(["umount", small_fs], check=True)


# ---- the end: delete-tree of every large value ------------------------------------------

def test_zz_delete_tree_of_chunked_values_collects_every_chunk(c):
    """A delete-tree writes tombstones (chunks = 0) for chunked values too;
    after the sync purges them and the collector runs, no chunk row and no
    candidate under large/ is left on any partition. (Also frees this
    file's values for the tests that follow.)"""
    with own_kvd(c) as (proc, port):
        r = c.request("DELETE", "/canonicalbucket/?prefix=large/", port=port, timeout=300)
        assert r.status == 202, r
        assert c.request("GET", "/canonicalbucket/?prefix=large/", port=port).json()["keys"] == []
        left = {}

        def nothing_left():
            collect(c)
            for i in range(c.n):
                left[i] = [int(sql(c, i, "SELECT COUNT(*) FROM %s WHERE k LIKE 'large/%%'" % t)[0][0])
                           for t in ("data", "data_chunks", "data_chunks_gc")]
            return all(v == [0, 0, 0] for v in left.values())
        try:
            wait_for(nothing_left, timeout=60, what="every large/ row, chunk and candidate to go")
        except AssertionError as e:
            if "timed out" not in str(e):
                raise
            raise AssertionError("left (rows, chunks, candidates) per partition: %s" % left) from None


def test_repeated_downloads_each_complete(c):
    """A download reads two chunks at once, on two lanes, and they may land
    in either order (download.c): twenty downloads of an 8-chunk value each
    complete with its exact bytes (a chunk lost between the two would stall
    one until its timeout)."""
    with own_kvd(c) as (proc, port):
        key = "large/repeat/x"
        value = rnd_bytes(8 * CHUNK + 3, 40)
        w = c.request("PUT", path(key, True), value, port=port)
        assert w.status == 201, w
        for _ in range(20):
            check_whole(c.request("GET", path(key, True), port=port, timeout=20), value,
                        w.header("ETag"))
        assert c.request("DELETE", path(key, True), port=port).status == 202
