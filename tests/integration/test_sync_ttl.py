"""lazykv-sync and TTL (issue 10): it copies expires_at, turns the expired
rows each partition wrote itself into tombstones of version
max(version + 1, expires_at) before stamping, and purges them like deletes.

Expiries are set by SQL, as the request path would store them, so these
tests depend on the sync alone. The test config has tombstone_grace = 0,
which would purge a new tombstone in the pass that makes it: to look at
the tombstones, a pass runs with a config that keeps them (GRACE_S).
"""
import os
import time

from harness import wait_for

GRACE_S = 3600


def now_us():
    return time.time_ns() // 1000


def keeping_config(c):
    """The test config with tombstones kept GRACE_S seconds."""
    path = os.path.join(c.dir, "keep-tombstones.cfg")
    text = open(c.config).read()
    assert text.count("tombstone_grace = 0\n") == 1
    with open(path, "w") as f:
        f.write(text.replace("tombstone_grace = 0\n", "tombstone_grace = %d\n" % GRACE_S))
    os.chmod(path, 0o600)
    return path


def sync_ok(c, *args, config=None):
    r = c.sync(*args, config=config)
    assert r.returncode == 0, (r.returncode, r.stdout.decode(), r.stderr.decode())
    return r.stdout.decode()


def state(c, i, key):
    """(hex value, version, deleted, expires_at or None, seq or None) of key
    on partition i, or None."""
    rows = c.sql(i, "SELECT HEX(v), version, deleted, IFNULL(expires_at, 'NULL'),"
                    " IFNULL(seq, 'NULL') FROM data WHERE k = '%s'" % key)
    if not rows:
        return None
    v, version, deleted, exp, seq = rows[0]
    return (bytes.fromhex(v), int(version), int(deleted), None if exp == "NULL" else int(exp),
            None if seq == "NULL" else int(seq))


def write(c, key, value):
    """Writes key through lazykvd (lazily, at its master): (master, version)."""
    r = c.request("POST", "/bucket/" + key, value)
    assert r.status == 201, r
    return r.json()["master"], r.json()["version"]


def set_expiry(c, i, key, expires_at, pending):
    """Gives key's row on partition i an expiry, as a write at that partition
    (pending: seq = NULL, for the sync to stamp) or in place (the copy a
    partition holds, as time passes)."""
    c.sql(i, "UPDATE data SET expires_at = %d%s WHERE k = '%s'"
          % (expires_at, ", seq = NULL" if pending else "", key))


def wait_past(us):
    wait_for(lambda: now_us() > us, timeout=5, what="the clock to pass %d" % us)


def test_expired_row_becomes_the_same_tombstone_everywhere_then_is_purged(c):
    # Expired before its version (the index is version + 1) and after it
    # (the index is expires_at).
    m1, v1 = write(c, "ttlsync/early", b"early")
    m2, v2 = write(c, "ttlsync/late", b"late")
    set_expiry(c, m1, "ttlsync/early", v1 - 5, pending=True)
    set_expiry(c, m2, "ttlsync/late", v2 + 1000, pending=True)
    wait_past(v2 + 1000)
    keep = keeping_config(c)
    out = sync_ok(c, "--verbose", config=keep)
    assert "sync: %d: expired rows=" % m1 in out, out
    for key, master, index in (("ttlsync/early", m1, v1 + 1), ("ttlsync/late", m2, v2 + 1000)):
        for i in range(c.n):
            v, version, deleted, exp, seq = state(c, i, key)
            assert (v, version, deleted, exp) == (b"", index, 1, None), (key, i)
            # the master's is its own stamped tombstone, which the purge
            # looks for; the others hold its copy
            assert (seq > 0) if i == master else seq == 0, (key, i, seq)
        assert c.request("GET", "/canonicalbucket/" + key).status == 404
    # nothing left to expire: a second pass copies nothing
    out = sync_ok(c, "--verbose", config=keep)
    assert "expired rows=" not in out and "sync: total rows=0 " in out, out
    sync_ok(c)  # tombstone_grace = 0
    for key in ("ttlsync/early", "ttlsync/late"):
        assert [state(c, i, key) for i in range(c.n)] == [None] * c.n, key


def test_sync_copies_expires_at_and_only_the_origin_expires_it(c):
    key = "ttlsync/copy"
    master, version = write(c, key, b"\x00copied\xff")
    far = now_us() + GRACE_S * 1000000
    set_expiry(c, master, key, far, pending=True)
    sync_ok(c)
    for i in range(c.n):
        v, ver, deleted, exp, seq = state(c, i, key)
        assert (v, ver, deleted, exp) == (b"\x00copied\xff", version, 0, far), i
        assert (seq > 0) if i == master else seq == 0, (i, seq)
    # a pass that copies nothing leaves the expiry alone
    sync_ok(c)
    assert [state(c, i, key)[3] for i in range(c.n)] == [far] * c.n
    # Time passes everywhere: only the origin turns its row into a
    # tombstone; the copies get it by copy (a stale copy must not expire by
    # itself: its tombstone could be newer than a rewrite at the origin).
    past = version + 7
    for i in range(c.n):
        set_expiry(c, i, key, past, pending=False)
    wait_past(past)
    out = sync_ok(c, "--verbose", config=keeping_config(c))
    assert "sync: %d: expired rows=1" % master in out, out
    for i in range(c.n):
        if i != master:
            assert "sync: %d: expired rows=" % i not in out, out
        v, ver, deleted, exp, seq = state(c, i, key)
        assert (v, ver, deleted, exp) == (b"", max(version + 1, past), 1, None), i
        assert (seq > 0) if i == master else seq == 0, (i, seq)
    sync_ok(c)  # tombstone_grace = 0: the tombstone is purged everywhere
    assert [state(c, i, key) for i in range(c.n)] == [None] * c.n


def test_a_rewrite_before_the_expiry_survives_stale_copies(c):
    """A key written with a TTL and copied, then rewritten at its master
    without one before the expiry: the copies elsewhere are stale and expire
    there, but must not become tombstones that beat the rewrite (whose
    version is below the old expiry instant)."""
    key = "ttlsync/rewritten"
    r = c.request("POST", "/bucket/%s?ttl=2" % key, b"A")
    assert r.status == 201, r
    master = r.json()["master"]
    sync_ok(c)
    exp = state(c, master, key)[3]
    assert [state(c, i, key)[3] for i in range(c.n)] == [exp] * c.n
    w = c.request("POST", "/bucket/" + key, b"B")  # lazily: copies stay stale
    assert w.status == 201 and w.json()["version"] < exp, w
    wait_past(exp)
    sync_ok(c)
    sync_ok(c)
    for i in range(c.n):
        assert state(c, i, key)[:4] == (b"B", w.json()["version"], 0, None), i
    g = c.request("GET", "/canonicalbucket/" + key)
    assert g.status == 200 and g.body == b"B", g
    assert c.request("DELETE", "/canonicalbucket/" + key).status == 202


def test_expiry_runs_in_batches_of_batch_size(c):
    # 250 expired rows written at partition 0, in statements of batch_size
    # (100) rows.
    n, version = 250, now_us() - 2000000
    expires = version + 1000000
    c.sql(0, "INSERT INTO data (k, v, ctype, version, deleted, expires_at, seq) VALUES "
          + ", ".join("('ttlsync/many/%d', 'x', 'text/plain', %d, 0, %d, NULL)"
                      % (i, version, expires) for i in range(n)))
    out = sync_ok(c, "--verbose", config=keeping_config(c))
    assert "sync: 0: expired rows=%d\n" % n in out, out
    for i in range(c.n):
        rows = c.sql(i, "SELECT COUNT(*), MIN(version), MAX(version), SUM(deleted),"
                        " COUNT(expires_at) FROM data WHERE k LIKE 'ttlsync/many/%'")
        assert rows == [[str(n), str(expires), str(expires), str(n), "0"]], (i, rows)
    out = sync_ok(c)
    for i in range(c.n):
        assert c.sql(i, "SELECT COUNT(*) FROM data WHERE k LIKE 'ttlsync/many/%'") == [["0"]]


def test_dry_run_expires_nothing(c):
    key = "ttlsync/dry"
    master, version = write(c, key, b"dry")
    set_expiry(c, master, key, version + 1, pending=True)
    wait_past(version + 1)
    sync_ok(c, "--dry-run")
    assert state(c, master, key) == (b"dry", version, 0, version + 1, None)
    sync_ok(c)
    assert [state(c, i, key) for i in range(c.n)] == [None] * c.n


def test_verify_compares_and_repairs_expires_at(c):
    key = "ttlsync/verify"
    master, version = write(c, key, b"v")
    far = now_us() + GRACE_S * 1000000
    set_expiry(c, master, key, far, pending=True)
    sync_ok(c)
    other = (master + 1) % c.n
    set_expiry(c, other, key, far + 1, pending=False)  # a hand edit, version kept
    r = c.admin("verify")
    lines = [l for l in r.stdout.decode().splitlines() if l.startswith("differs: ")]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("differs: " + key + " "), \
        r.stdout
    r = c.admin("verify", "--repair")
    assert r.returncode == 0 and b"repaired=1 failed=0" in r.stdout, r.stdout
    assert [state(c, i, key)[:4] for i in range(c.n)] == [(b"v", version, 0, far)] * c.n
    r = c.admin("verify")
    assert r.returncode == 0 and b"differing=0" in r.stdout, r.stdout
    c.request("DELETE", "/canonicalbucket/" + key)
    sync_ok(c)
