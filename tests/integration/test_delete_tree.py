"""Deleting a tree (issue 10): DELETE /{bucket|canonicalbucket}/?prefix=P.

Every live key starting with P becomes a tombstone at its master (canonical:
also copied to every reachable partition at once), keys outside P are
untouched; 202 with {"deleted": N}, N the keys deleted (0 for an empty
tree); a missing or empty prefix is 400. Any size of tree, in bounded
transactions; a write under P racing the delete survives whole or is
deleted whole.
"""
import http.client
import os
import random
import threading
import time
import urllib.parse

from harness import Response, wait_for

q = urllib.parse.quote


def path(key, canonical=False):
    if isinstance(key, str):
        key = key.encode()
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key, safe="/")


def tree(prefix, canonical):
    if isinstance(prefix, str):
        prefix = prefix.encode()
    return ("/canonicalbucket/" if canonical else "/bucket/") + "?prefix=" + q(prefix, safe="")


def delete_tree(c, prefix, canonical, expect, timeout=30):
    """DELETE ?prefix=: 202 with {"deleted": expect}; returns the document."""
    r = c.request("DELETE", tree(prefix, canonical), timeout=timeout)
    assert r.status == 202, r
    assert r.header("Content-Type").startswith("application/json"), r
    doc = r.json()
    assert isinstance(doc.get("deleted"), int) and doc["deleted"] == expect, (prefix, doc, expect)
    return doc


def write_all(c, keys, canonical):
    """POSTs key -> its own name; returns {key: write document}."""
    out = {}
    for k in keys:
        body = k if isinstance(k, bytes) else k.encode()
        r = c.request("POST", path(k, canonical), body + b"!")
        assert r.status == 201, (k, r)
        out[k] = r.json()
    return out


def assert_untouched(c, written):
    """Each key written (write documents) still holds what was written, at
    its master and, when written canonically, on every partition."""
    for k, w in written.items():
        body = (k if isinstance(k, bytes) else k.encode()) + b"!"
        g = c.request("GET", path(k, True))
        assert g.status == 200 and g.body == body, (k, g)
        assert g.header("X-Lazykv-Index") == str(w["version"]), (k, g, w)
        where = range(c.n) if w["consistency"] == "canonical" else [w["master"]]
        for i in where:
            assert c.row(i, k) == (body, w["version"], 0), (k, i, c.row(i, k))


def delete_keys(c, keys):
    for k in keys:
        assert c.request("DELETE", path(k, True)).status in (202, 404), k


def list_keys(c, prefix, canonical=True):
    r = c.request("GET", tree(prefix, canonical) + "&limit=10000")
    assert r.status == 200, r
    return r.json()["keys"]


# ---- the basics ----------------------------------------------------------------------

def test_canonical_delete_tree_tombstones_every_partition_and_nothing_else(c):
    p = "dt/c/tree/"
    inside = [p + "a", p + "b/c", p + "z", p + "ttl"]
    outside = ["dt/c/tree",       # a prefix of P
               "dt/c/tre",
               "dt/c/treex/a",    # share P's first bytes, not P
               "dt/c/tree0",
               "dt/c/tree.x",
               "dt/c/Tree/a",
               "dt/c/tref"]
    written = write_all(c, inside[:3], True)
    w = c.request("PUT", path(inside[3], True) + "?ttl=300", b"with a ttl")
    assert w.status == 201, w
    written[inside[3]] = w.json()
    # not live, so not counted: a deleted key and an expired one
    write_all(c, [p + "gone", p + "expired"], True)
    assert c.request("DELETE", path(p + "gone", True)).status == 202
    # written just above: a PUT replaces it (200), now with a TTL
    assert c.request("PUT", path(p + "expired", True) + "?ttl=1", b"brief").status == 200
    outside_written = write_all(c, outside, True)
    wait_for(lambda: c.request("GET", path(p + "expired", True)).status == 404, 3, "the expiry")

    delete_tree(c, p, True, len(inside))
    for k in inside:
        rows = [c.row(i, k) for i in range(c.n)]
        master = written[k]["master"]
        tomb = rows[master][1]
        assert tomb > written[k]["version"], (k, rows)
        # the tombstone itself, on every partition, at once
        assert all(r is not None and r[1:] == (tomb, 1) for r in rows), (k, rows)
        g = c.request("GET", path(k, True))
        assert g.status == 404 and g.header("X-Lazykv-Index") == str(tomb), (k, g)
        for _ in range(6):
            assert c.request("GET", path(k)).status == 404
    assert list_keys(c, p) == [] and list_keys(c, p, False) == []
    assert_untouched(c, outside_written)
    # nothing left to delete
    delete_tree(c, p, True, 0)
    delete_tree(c, p, False, 0)
    delete_keys(c, outside)


def test_lazy_delete_tree_tombstones_at_the_masters(c):
    p = "dt/l/tree/"
    canon = [p + "c%d" % i for i in range(4)]
    lazy = [p + "l%d" % i for i in range(4)]
    outside = ["dt/l/tree", "dt/l/treez", "dt/l/tre/x"]
    written = write_all(c, canon, True)
    written.update(write_all(c, lazy, False))
    outside_written = write_all(c, outside, True)

    delete_tree(c, p, False, len(canon) + len(lazy))
    for k, w in written.items():
        row = c.row(w["master"], k)
        assert row is not None and row[2] == 1 and row[1] > w["version"], (k, row)
        g = c.request("GET", path(k, True))
        assert g.status == 404 and g.header("X-Lazykv-Index") == str(row[1]), (k, g)
    assert list_keys(c, p) == []
    # lazy reads see it after the next sync pass, from every partition
    r = c.sync()
    assert r.returncode == 0, r
    for k in written:
        for i in range(c.n):
            row = c.row(i, k)
            assert row is None or row[2] == 1, (k, i, row)   # a tombstone, or purged
        seen = set()
        for _ in range(30):
            g = c.request("GET", path(k))
            assert g.status == 404, (k, g)
            seen.add(g.header("X-Lazykv-Partition"))
        assert len(seen) > 1, seen
    assert list_keys(c, p, False) == []
    assert_untouched(c, outside_written)
    delete_keys(c, outside)


def test_prefixes_with_sql_metacharacters_and_high_bytes(c):
    cases = [
        ("dt/x_y/", ["dt/x_y/a", "dt/x_y/b"], ["dt/xzy/a", "dt/x_y", "dt/x_yy"]),
        ("dt/p%q/", ["dt/p%q/a"], ["dt/pabq/a", "dt/p%q", "dt/pq/a"]),
        ("dt/b\\s/", ["dt/b\\s/a"], ["dt/bs/a", "dt/b\\\\s/a", "dt/b\\t/a"]),
        ("dt/st*r?[a]/", ["dt/st*r?[a]/x"], ["dt/star/x", "dt/st*r?[b]/x"]),
        # a prefix ending in 0xff: the range above it is not "last byte + 1"
        (b"dt/f\xff", [b"dt/f\xff", b"dt/f\xff\xffz", b"dt/f\xff\x01"],
         [b"dt/g", b"dt/f\xfe", b"dt/f", b"dt/f\xfe\xff"]),
        (b"dt/h\xc3\xa9/", [b"dt/h\xc3\xa9/1"], [b"dt/h\xc3/1", b"dt/he/1", b"dt/h\xc3\xa8/1"]),
    ]
    for n, (p, inside, outside) in enumerate(cases):
        canonical = n % 2 == 0
        write_all(c, inside, canonical)
        outside_written = write_all(c, outside, True)
        delete_tree(c, p, canonical, len(inside))
        for k in inside:
            assert c.request("GET", path(k, True)).status == 404, k
        assert_untouched(c, outside_written)
        delete_keys(c, outside)


def test_a_missing_or_empty_prefix_is_400_and_deletes_nothing(c):
    canary = write_all(c, ["dt/canary/a", "dt/canary/b"], True)
    for target in ("/bucket/", "/canonicalbucket/", "/bucket/?prefix=", "/canonicalbucket/?prefix=",
                   "/bucket/?start_after=dt", "/canonicalbucket/?limit=5", "/bucket/?prefix=%zz"):
        r = c.request("DELETE", target)
        assert r.status == 400, (target, r)
        assert r.header("Content-Type").startswith("application/problem+json"), (target, r)
    assert_untouched(c, canary)
    delete_keys(c, canary)


def test_an_empty_tree_deletes_nothing(c):
    for canonical in (False, True):
        delete_tree(c, "dt/nothing/here/", canonical, 0)
    assert c.request("GET", path("dt/nothing/here/x", True)).status == 404


# ---- a large tree, with writers racing it ------------------------------------------------

BIG = 100000
OUT_RANGES = [("dtbig/j/", "dtbig/j0"),     # before P
              ("dtbig/k", "dtbig/k/"),      # "dtbig/k" (a prefix of P) and "dtbig/k.NNNN"
              ("dtbig/k0", "dtbig/k1")]     # just after P


class KeepAlive:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method, target, body=None, headers=None):
        for attempt in (0, 1):
            try:
                self.conn.request(method, target, body=body, headers=headers or {})
                r = self.conn.getresponse()
                return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt or method != "GET":
                    raise

    def close(self):
        self.conn.close()


class Writer(threading.Thread):
    """Canonical POSTs of make(n) = (key, value, content type), n = 0, 1, ...
    until stopped; logs (key, value, ctype, sent, acknowledged, status)."""

    def __init__(self, c, make, limit):
        super().__init__()
        self.c, self.make, self.limit = c, make, limit
        self.stop = threading.Event()
        self.log = []
        self.errors = []

    def run(self):
        cl = KeepAlive(self.c.http_port)
        try:
            for n in range(self.limit):
                if self.stop.is_set():
                    break
                k, v, ct = self.make(n)
                t0 = time.monotonic()
                r = cl.request("POST", path(k, True), v, {"Content-Type": ct})
                self.log.append((k, v, ct, t0, time.monotonic(), r.status,
                                 r.header("X-Lazykv-Replicas")))
                if r.status != 201:
                    break
                time.sleep(0.02)
        except Exception as e:  # noqa: BLE001 -- re-raised by the test
            self.errors.append(e)
        finally:
            cl.close()

    def sent_after(self, t):
        return sum(1 for entry in self.log if entry[3] > t)


def fingerprint(c, i, lo, hi):
    return c.sql(i, "SELECT COUNT(*), SUM(deleted), MIN(version), MAX(version), "
                    "BIT_XOR(CRC32(CONCAT(k, 0x00, v, 0x00, ctype))) FROM data "
                    "WHERE k >= '%s' AND k < '%s'" % (lo, hi))[0]


def test_a_100k_key_tree_with_racing_writers(c):
    t_start = time.monotonic()
    version = int(time.time() * 1e6) - 10000000   # 10 s ago: every write is above it
    load = ("INSERT INTO data (k, v, ctype, version, deleted, expires_at, seq) "
            "SELECT CONCAT('%s', LPAD(seq, %d, '0')), CONCAT('v', seq), 'text/plain', "
            + str(version) + ", 0, NULL, NULL FROM seq_0_to_%d")
    try:
        # Every key on every partition (pending, as if just written): a key
        # is live at its master, whichever that is, so the tree holds BIG.
        for i in range(c.n):
            c.sql(i, load % ("dtbig/k/", 6, BIG - 1))
            c.sql(i, load % ("dtbig/j/", 4, 999))
            c.sql(i, load % ("dtbig/k.", 4, 999))
            c.sql(i, load % ("dtbig/k0", 4, 999))
            c.sql(i, "INSERT INTO data (k, v, ctype, version, deleted, expires_at, seq) "
                     "VALUES ('dtbig/k', 'prefix of P', 'text/plain', %d, 0, NULL, NULL)"
                     % version)
        before = {(i, lo): fingerprint(c, i, lo, hi) for i in range(c.n) for lo, hi in OUT_RANGES}
        assert [before[i, "dtbig/j/"][0] for i in range(c.n)] == ["1000"] * c.n, before
        loaded = time.monotonic() - t_start

        # Writers: new keys under P, rewrites of loaded keys under P, keys outside P.
        rewrites = random.Random(5).sample(range(BIG), 3000)
        writers = [
            Writer(c, lambda n: ("dtbig/k/race/0/%05d" % n, b"race 0 %d " % n + os.urandom(4096),
                                 "application/x-race-0"), 3000),
            Writer(c, lambda n: ("dtbig/k/race/1/%05d" % n, b"race 1 %d " % n + os.urandom(4096),
                                 "application/x-race-1"), 3000),
            Writer(c, lambda n: ("dtbig/k/%06d" % rewrites[n], b"rewrite %d " % n
                                 + os.urandom(2048), "application/x-rewrite"), 3000),
            Writer(c, lambda n: ("dtbig/%s/%05d" % ("kz" if n % 2 else "out", n),
                                 b"outside %d" % n, "text/x-outside"), 3000),
        ]
        largest_trx = [0]
        stop_probe = threading.Event()

        def probe():
            # the delete's transactions stay bounded (sampled on partition 0)
            while not stop_probe.is_set():
                rows = c.sql(0, "SELECT IFNULL(MAX(trx_rows_modified), 0) "
                                "FROM information_schema.INNODB_TRX")
                largest_trx[0] = max(largest_trx[0], int(rows[0][0]))
                time.sleep(0.15)
        prober = threading.Thread(target=probe)
        for w in writers:
            w.start()
        try:
            wait_for(lambda: all(len(w.log) >= 5 or w.errors for w in writers), 30,
                     "the writers to start")
            prober.start()
            rss0 = c.kvd_rss_kib()
            t_sent = time.monotonic()
            r = c.request("DELETE", tree("dtbig/k/", True), timeout=300)
            t_done = time.monotonic()
            rss1 = c.kvd_rss_kib()
            wait_for(lambda: all(w.sent_after(t_done) >= 5 or w.errors or not w.is_alive()
                                 for w in writers), 30, "writes after the delete")
        finally:
            for w in writers:
                w.stop.set()
            for w in writers:
                w.join()
            stop_probe.set()
            if prober.is_alive():
                prober.join()
        for w in writers:
            if w.errors:
                raise w.errors[0]
            for entry in w.log:
                assert entry[5] == 201 and entry[6] == "3/3", ("a racing write failed", entry)
        assert r.status == 202, r
        deleted = r.json()["deleted"]

        # Each racing key under P: deleted whole or kept whole; deleted if
        # acknowledged before the delete was sent, kept if sent after it ended.
        cl = KeepAlive(c.http_port)
        survivors, new_deleted = set(), 0
        try:
            for w in writers[:3]:
                for k, v, ct, sent, acked, _, _ in w.log:
                    g = cl.request("GET", path(k, True))
                    if g.status == 200:
                        assert g.body == v and g.header("Content-Type") == ct, \
                            ("a racing write survived in part", k)
                        assert acked >= t_sent, ("a key written before the delete survived", k)
                        survivors.add(k)
                    else:
                        assert g.status == 404, (k, g)
                        assert sent <= t_done, ("a write made after the delete was lost", k)
                        new_deleted += "/race/" in k
            # keys outside P: every write there stands
            for k, v, ct, _, _, _, _ in writers[3].log:
                g = cl.request("GET", path(k, True))
                assert (g.status, g.body, g.header("Content-Type")) == (200, v, ct), (k, g)
        finally:
            cl.close()
        print("delete-tree: %d keys loaded in %.1f s; deleted %d in %.1f s with %d racing"
              " writes (%d survived); largest transaction on partition 0: %d rows;"
              " lazykvd rss %d -> %d KiB"
              % (BIG, loaded, deleted, t_done - t_sent, sum(len(w.log) for w in writers),
                 len(survivors), largest_trx[0], rss0, rss1))
        # Exact: the loaded keys (each once, rewritten or not) and the racing
        # new keys it deleted.
        assert deleted == BIG + new_deleted, (deleted, BIG, new_deleted)
        # Every partition holds exactly the survivors under P, live
        for i in range(c.n):
            live = {row[0] for row in c.sql(i, "SELECT k FROM data WHERE k >= 'dtbig/k/' "
                                               "AND k < 'dtbig/k0' AND deleted = 0")}
            assert live == survivors, (i, len(live), len(survivors),
                                       sorted(live ^ survivors)[:5])
        assert set(list_keys(c, "dtbig/k/")) == survivors
        # ... and the keys outside P, loaded beside it, are as they were
        for (i, lo), fp in before.items():
            hi = dict(OUT_RANGES)[lo]
            assert fingerprint(c, i, lo, hi) == fp, (i, lo, fp)
        g = c.request("GET", path("dtbig/k", True))
        assert g.status == 200 and g.body == b"prefix of P", g
        assert largest_trx[0] < 30000, ("one transaction for a whole partition's share",
                                        largest_trx[0])
    finally:
        # The rows of this test go as they came: straight from the tables.
        for i in range(c.n):
            c.sql(i, "DELETE FROM data WHERE k >= 'dtbig/' AND k < 'dtbig0'")
    print("delete-tree: 100k test took %.1f s" % (time.monotonic() - t_start))
