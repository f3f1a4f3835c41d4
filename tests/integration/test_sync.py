"""lazykv-sync: propagation, ordering, tombstones, crashes, locking, growth (issue 3)."""
import contextlib
import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.parse

from harness import wait_for

q = urllib.parse.quote


def path(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")


def sync_ok(c, *args):
    r = c.sync(*args)
    assert r.returncode == 0, (r.returncode, r.stdout.decode(), r.stderr.decode())
    return r.stdout.decode()


def assert_converged(c, config=None):
    r = c.admin("verify", config=config)
    assert r.returncode == 0 and b"differing=0" in r.stdout, (r.stdout.decode(), r.stderr.decode())


def test_lazy_write_reaches_every_partition_after_one_pass(c):
    r = c.request("POST", path("sync/a"), b"first")
    master = r.json()["master"]
    assert [c.row(i, "sync/a") is not None for i in range(c.n)] == [i == master for i in range(c.n)]
    # canonical read is current at once; a lazy read may be stale until the pass
    assert c.request("GET", path("sync/a", True)).body == b"first"
    out = sync_ok(c)
    assert re.search(r"^sync: total rows=\d+ bytes=\d+ purged=\d+ ms=\d+ lag_ms=\d+ backlog=\d+ unreachable=0$",
                     out, re.M), out
    assert len(re.findall(r"^sync: \d -> \d: rows=\d+ bytes=\d+ ms=\d+$", out, re.M)) == 6, out
    for i in range(c.n):
        assert c.row(i, "sync/a") == (b"first", r.json()["version"], 0)
    for _ in range(10):
        g = c.request("GET", path("sync/a"))
        assert g.status == 200 and g.body == b"first"
    assert_converged(c)
    # a pass with nothing to do copies nothing
    out = sync_ok(c)
    assert "sync: total rows=0 " in out


def test_dry_run_changes_nothing(c):
    r = c.request("POST", path("sync/dry"), b"x")
    master = r.json()["master"]
    out = sync_ok(c, "--dry-run")
    assert "(dry run: would copy)" in out
    for i in range(c.n):
        assert (c.row(i, "sync/dry") is not None) == (i == master)
    sync_ok(c)
    assert all(c.row(i, "sync/dry") for i in range(c.n))


def test_update_and_delete_propagate_and_tombstones_are_purged(c):
    c.request("POST", path("sync/d"), b"v1")
    sync_ok(c)
    c.request("POST", path("sync/d"), b"v2")
    sync_ok(c)
    assert all(c.row(i, "sync/d")[0] == b"v2" for i in range(c.n))
    assert c.request("DELETE", path("sync/d")).status == 202
    out = sync_ok(c)
    # every partition had it, and tombstone_grace is 0 in the test config
    assert "purged=1 " in out or "purged=" in out
    assert [c.row(i, "sync/d") for i in range(c.n)] == [None] * c.n
    for _ in range(6):
        assert c.request("GET", path("sync/d")).status == 404
    assert_converged(c)


def test_no_resurrection_when_a_partition_was_down(c):
    keys = ["sync/res%d" % i for i in range(30)]
    for k in keys:
        c.request("POST", path(k), b"alive")
    sync_ok(c)
    c.stop_node(2)
    try:
        for k in keys:
            r = c.request("DELETE", path(k))
            assert r.status in (202, 503)
        deleted = [k for k in keys if c.request("GET", path(k, True)).status == 404]
        r = c.sync()
        assert r.returncode == 1, r
        assert b"partition 2 (test_store_3) unreachable" in r.stderr, r.stderr
        # no purge while a partition may still hold the live value
        for k in deleted:
            for i in (0, 1):
                assert c.row(i, k)[2] == 1, (k, i, c.row(i, k))
    finally:
        c.start_node(2)
    sync_ok(c)
    for k in deleted:
        assert [c.row(i, k) for i in range(c.n)] == [None] * c.n, k
        for _ in range(3):
            assert c.request("GET", path(k)).status == 404
    assert_converged(c)


def test_older_version_from_a_replica_is_ignored_and_verify_repairs(c):
    r = c.request("POST", path("sync/old", True), b"new")
    v = r.json()["version"]
    master = r.json()["master"]
    sync_ok(c)
    replica = (master + 1) % c.n
    # by hand: the replica gets an older version, as a local pending change
    c.sql(replica, "UPDATE data SET v = 'old', version = %d, seq = NULL WHERE k = 'sync/old'"
          % (v - 1000))
    sync_ok(c)
    for i in range(c.n):
        if i != replica:
            assert c.row(i, "sync/old") == (b"new", v, 0)
    # the replayed older copy is a no-op too
    c.sql(master, "INSERT INTO data (k, v, ctype, version, deleted, seq) VALUES "
          "('sync/old', 'older', '', %d, 0, 0) ON DUPLICATE KEY UPDATE "
          "v = IF(VALUES(version) > version, VALUES(v), v), "
          "version = GREATEST(version, VALUES(version))" % (v - 1))
    assert c.row(master, "sync/old") == (b"new", v, 0)
    r = c.admin("verify")
    assert r.returncode == 1, r
    lines = [l for l in r.stdout.decode().splitlines() if l.startswith("differs: ")]
    assert len(lines) == 1 and lines[0].startswith("differs: sync/old "), r.stdout
    r = c.admin("verify", "--repair")
    assert r.returncode == 0 and b"repaired=1 failed=0" in r.stdout, r.stdout
    assert c.row(replica, "sync/old") == (b"new", v, 0)
    assert_converged(c)


def test_verify_finds_a_row_edited_by_hand(c):
    c.request("POST", path("sync/edit", True), b"same")
    sync_ok(c)
    c.sql(1, "UPDATE data SET v = 'tampered' WHERE k = 'sync/edit'")
    r = c.admin("verify")
    assert r.returncode == 1 and b"differs: sync/edit " in r.stdout, r.stdout
    r = c.admin("verify", "--repair")
    assert r.returncode == 0
    assert c.row(1, "sync/edit")[0] == b"same"   # the majority's content wins
    assert_converged(c)


@contextlib.contextmanager
def sync_lock_held(c, i):
    """Another session holds the sync's named lock on partition i (as a
    running pass would) inside the block; released after it."""
    holder = subprocess.Popen(
        ["mariadb", "--no-defaults", "-h127.0.0.1", "-P%d" % c.db_ports[i], "-ulazykv", "-psecret",
         "-e", "SELECT GET_LOCK('lazykv-sync:data', 0); SELECT SLEEP(60)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: c.sql(i, "SELECT IS_USED_LOCK('lazykv-sync:data')")[0][0] != "NULL",
                 what="the lock to be held")
        yield
    finally:
        owner = c.sql(i, "SELECT IS_USED_LOCK('lazykv-sync:data')")[0][0]
        if owner != "NULL":
            c.sql(i, "KILL %d" % int(owner))
        holder.kill()
        holder.wait()
    wait_for(lambda: c.sql(i, "SELECT IS_USED_LOCK('lazykv-sync:data')")[0][0] == "NULL",
             what="the lock to be released")


def test_second_pass_exits_75_while_the_lock_is_held(c):
    with sync_lock_held(c, 1):
        c.request("POST", path("sync/locked"), b"x")
        t0 = time.monotonic()
        r = c.sync()
        assert r.returncode == 75, r
        assert time.monotonic() - t0 < 5
        assert b"another pass holds the lock" in r.stderr
        assert b"rows=" not in r.stdout
        assert sum(c.row(i, "sync/locked") is not None for i in range(c.n)) == 1
    sync_ok(c)
    assert all(c.row(i, "sync/locked") for i in range(c.n))


def test_repair_exits_75_while_a_pass_holds_the_lock(c):
    """verify --repair writes as a pass does, so it takes the pass lock:
    while a pass holds it on any partition, repair changes nothing and
    exits 75 with one line; verify alone still runs; once the lock is free,
    repair runs."""
    r = c.request("POST", path("sync/repair-locked", True), b"same")
    assert r.status in (200, 201), r
    sync_ok(c)
    c.sql(0, "UPDATE data SET v = 'tampered' WHERE k = 'sync/repair-locked'")
    with sync_lock_held(c, 2):
        r = c.admin("verify", "--repair")
        assert r.returncode == 75, r
        assert r.stderr == (b"lazykv-admin: verify --repair: a sync pass is running "
                            b"(partition 2 holds its lock); nothing done, try again\n"), r.stderr
        assert r.stdout == b"", r.stdout
        assert c.row(0, "sync/repair-locked")[0] == b"tampered"
        r = c.admin("verify")
        assert r.returncode == 1 and b"differs: sync/repair-locked " in r.stdout, r
    r = c.admin("verify", "--repair")
    assert r.returncode == 0 and b"repaired=1 failed=0" in r.stdout, r.stdout
    assert c.row(0, "sync/repair-locked")[0] == b"same"
    # the repair's own lock is gone with it: a pass runs
    sync_ok(c)
    assert_converged(c)


def test_repair_that_loses_its_lock_with_its_connection_stops_there(c):
    """verify --repair holds the pass lock in its connection to each
    partition. When one of those connections is lost while the repair works
    elsewhere (here: killed at partition 0 while the repair waits for a row
    lock at partition 1), the lock went with it: the repair must not open a
    new connection there and carry on without the lock. It fails, with a
    last line saying why; a second repair finishes the work."""
    keys = ["sync/lost-lock/a", "sync/lost-lock/b"]
    for k in keys:
        r = c.request("POST", path(k, True), b"same")
        assert r.status in (200, 201), r
    sync_ok(c)
    inlist = ", ".join("'%s'" % k for k in keys)
    c.sql(1, "UPDATE data SET v = 'tampered' WHERE k IN (%s)" % inlist)
    locker = subprocess.Popen(
        ["mariadb", "--no-defaults", "-h127.0.0.1", "-P%d" % c.db_ports[1], "-ulazykv",
         "-psecret", "test_store_2", "-e",
         "BEGIN; SELECT k FROM data WHERE k IN (%s) FOR UPDATE; SELECT SLEEP(60)" % inlist],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sleeper = ("SELECT id FROM information_schema.processlist"
               " WHERE info = 'SELECT SLEEP(60)'")
    lock_owner = "SELECT IS_USED_LOCK('lazykv-sync:data')"
    done = {}
    try:
        wait_for(lambda: c.sql(1, sleeper), what="the rows to be locked")
        repair = threading.Thread(target=lambda: done.update(r=c.admin("verify", "--repair")))
        repair.start()
        # the repair writes at partition 1 (it waits for the row lock there)
        writing = ("SELECT id FROM information_schema.processlist"
                   " WHERE id = IS_USED_LOCK('lazykv-sync:data') AND info LIKE 'INSERT INTO%'")
        wait_for(lambda: c.sql(1, writing), what="the repair to write at partition 1")
        # meanwhile its idle connection to partition 0 is lost, and its lock
        # (gone from the process list: the server has closed its socket too)
        killed = int(c.sql(0, lock_owner)[0][0])
        c.sql(0, "KILL %d" % killed)
        wait_for(lambda: not c.sql(0, "SELECT id FROM information_schema.processlist"
                                      " WHERE id = %d" % killed),
                 what="partition 0 to close the repair's connection")
        assert c.sql(0, lock_owner) == [["NULL"]]
    finally:
        for row in c.sql(1, sleeper):
            c.sql(1, "KILL %d" % int(row[0]))   # its transaction, and the row locks
        locker.kill()
        locker.wait()
    repair.join(timeout=120)
    r = done["r"]
    assert r.returncode == 1, r
    # its last line says why: the statement that found the connection gone
    # ("Lost connection to server during query"), or the refusal to open
    # another ("connection lost"); before it, the log's line, if any
    last = r.stderr.splitlines()[-1]
    assert (last.startswith(b"lazykv-admin: verify failed: partition 0 (test_store_1): ") and
            last.endswith(b"; the named lock it held went with it")), r.stderr
    r = c.admin("verify", "--repair")
    assert r.returncode == 0, r
    for k in keys:
        assert c.row(1, k)[0] == b"same", k
    assert_converged(c)


def test_partition_down_is_caught_up_after_it_returns(c):
    c.stop_node(1)
    try:
        written = {}
        for i in range(60):
            k = "sync/down%d" % i
            r = c.request("POST", path(k), b"while-away-%d" % i)
            if r.status == 201:
                written[k] = b"while-away-%d" % i
            else:
                assert r.status == 503
        assert len(written) > 20
        r = c.sync()
        assert r.returncode == 1 and b"partition 1" in r.stderr
    finally:
        c.start_node(1)
    sync_ok(c)
    for k, v in written.items():
        assert all(c.row(i, k)[0] == v for i in range(c.n)), k
    assert_converged(c)


def test_kill_9_during_passes_loses_nothing(c):
    rnd = random.Random(7)
    expect = {}
    for rnd_i in range(30):
        for j in range(40):
            k = "kill/%d" % rnd.randrange(300)
            if rnd.random() < 0.2:
                r = c.request("DELETE", path(k))
                if r.status == 202:
                    expect[k] = None
            else:
                v = b"%d-%d" % (rnd_i, j) * rnd.randrange(1, 50)
                r = c.request("POST", path(k), v)
                assert r.status == 201
                expect[k] = v
        p = subprocess.Popen([os.path.join(c.bindir, "lazykv-sync"), "-c", c.config, "--test"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0, 0.06))   # a random moment of the pass to kill it at
        p.send_signal(signal.SIGKILL)
        p.wait()
    sync_ok(c)
    assert_converged(c)
    for k, v in expect.items():
        for i in range(c.n):
            row = c.row(i, k)
            if v is None:
                assert row is None or row[2] == 1, (k, i, row)
            else:
                assert row is not None and row[0] == v and row[2] == 0, (k, i, row)


def test_race_writers_against_sync_loop(c):
    loop = subprocess.Popen([os.path.join(c.bindir, "lazykv-sync"), "-c", c.config, "--test",
                             "--loop", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    acked = {}
    lock = threading.Lock()
    keys = ["race/%d" % i for i in range(200)]

    def writer(seed):
        rnd = random.Random(seed)
        for n in range(150):
            k = rnd.choice(keys)
            canonical = rnd.random() < 0.3
            if rnd.random() < 0.25:
                r = c.request("DELETE", path(k, canonical))
                if r.status in (200, 202):
                    # a delete's version is not returned in a header: read it back
                    with lock:
                        acked.setdefault(k, []).append((r.json()["version"], None))
            else:
                v = b"w%d-%d" % (seed, n)
                r = c.request("POST", path(k, canonical), v)
                assert r.status == 201, r
                with lock:
                    acked.setdefault(k, []).append((r.json()["version"], v))
    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loop.send_signal(signal.SIGTERM)
    assert loop.wait(timeout=60) == 0, loop.stderr.read()
    sync_ok(c)
    assert_converged(c)
    for k, history in acked.items():
        version, value = max(history)
        for i in range(c.n):
            row = c.row(i, k)
            if value is None:
                assert row is None or (row[2] == 1 and row[1] == version), (k, i, row, version)
            else:
                assert row == (value, version, 0), (k, i, row, value, version)


def test_growth_from_3_to_4_partitions(c):
    keys = ["grow/%d" % i for i in range(100)]
    for k in keys:
        c.request("POST", path(k), k.encode())
    sync_ok(c)
    # changes still pending at their old masters when the partition count changes
    pending = ["grow/pending%d" % i for i in range(30)]
    for k in pending:
        c.request("POST", path(k), b"pending")
    c.request("DELETE", path(keys[0]))
    import harness
    port = harness.free_port()
    c.db_ports.append(port)
    c.start_node(3)
    cfg4 = os.path.join(c.dir, "four.cfg")
    c.write_config(partitions=4, path=cfg4)
    try:
        c.admin("init", config=cfg4, check=True)
        r = c.sync(config=cfg4)
        assert r.returncode == 0, r
        for k in keys[1:]:
            assert c.row(3, k) == (k.encode(), c.row(0, k)[1], 0), k
        for k in pending:
            assert all(c.row(i, k)[0] == b"pending" for i in range(4)), k
        assert c.row(3, keys[0]) is None or c.row(3, keys[0])[2] == 1
        assert_converged(c, config=cfg4)
    finally:
        c.stop_node(3)
        c.db_ports.pop()
