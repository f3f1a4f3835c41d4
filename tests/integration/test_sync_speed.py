"""The pipelined sync pass (issue 15): a large backlog drained by one pass
with every row exact everywhere, kill -9 at random points of the pipeline
(also right after a batch was read, before it is applied), and --loop
running passes back to back while changes are left.

Pending changes are written by SQL, as lazykvd's lazy writes leave them
(seq = NULL, each with a version above the row's), so that large backlogs
cost seconds; rows are compared with SQL checksums. Every test removes its
rows from every partition at the end: the cluster is shared with the next
files.
"""
import os
import random
import re
import signal
import subprocess
import threading
import time
import zlib

from harness import wait_for

BIG = "batch_size = 1000"


def sql_in(c, i, text):
    """Runs SQL text on partition i through stdin (statements too long for
    a command line)."""
    cmd = ["mariadb", "--no-defaults", "-h127.0.0.1", "-P%d" % c.db_ports[i], "-ulazykv",
           "-psecret", "-N", "-B", "test_store_%d" % (i + 1)]
    p = subprocess.run(cmd, input=text.encode(), capture_output=True, check=True)
    return [line.split("\t") for line in p.stdout.decode().splitlines()]


def big_batches(c):
    """The test config with batch_size = 1000, as in production."""
    return c.kvd_config({"batch_size": 1000}, name="sync-speed.cfg")


def checksum(c, i, prefix):
    """(live rows, CRC sum of key, value and version, tombstones, pending
    rows) of the keys under prefix on partition i."""
    rows = c.sql(i, "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(k, v, version))), 0),"
                    " (SELECT COUNT(*) FROM data WHERE k LIKE '%s%%' AND deleted = 1),"
                    " (SELECT COUNT(*) FROM data WHERE k LIKE '%s%%' AND seq IS NULL)"
                    " FROM data WHERE k LIKE '%s%%' AND deleted = 0" % (prefix, prefix, prefix))
    return tuple(int(x) for x in rows[0])


def expected_checksum(live):
    """(rows, CRC sum) of live, {key: (value, version)}, as checksum() computes it."""
    total = sum(zlib.crc32(k + v + str(ver).encode()) for k, (v, ver) in live.items())
    return len(live), total


def cleanup(c, prefix):
    for i in range(c.n):
        c.sql(i, "DELETE FROM data WHERE k LIKE '%s%%'" % prefix)


def pass_ok(c, config, *args):
    r = c.sync(*args, config=config, timeout=600)
    assert r.returncode == 0, (r.returncode, r.stdout.decode()[-3000:], r.stderr.decode())
    return r.stdout.decode()


def test_a_backlog_of_200k_changes_is_drained_by_one_pass(c):
    own, shared = 60000, 6667
    cfg = big_batches(c)
    try:
        for i in range(c.n):
            # Each partition's own keys: values of 1 to 200 bytes, one in
            # ten a tombstone (a delete that has to propagate).
            c.sql(i, "INSERT INTO data (k, v, ctype, version, deleted, seq) SELECT"
                     " CONCAT('speed/%d/', LPAD(seq, 6, '0')),"
                     " IF(seq %% 10 = 0, '', REPEAT(CHAR(97 + seq %% 26), 1 + seq %% 200)),"
                     " 'text/plain', 5, seq %% 10 = 0, NULL FROM seq_1_to_%d" % (i, own))
            # Keys written at every partition with different versions: the
            # highest wins everywhere, whichever partition wrote it.
            c.sql(i, "INSERT INTO data (k, v, ctype, version, deleted, seq) SELECT"
                     " CONCAT('speed/shared/', LPAD(seq, 6, '0')), CONCAT('p%d-', seq), '',"
                     " 1000 + (seq + %d) %% 3, 0, NULL FROM seq_1_to_%d" % (i, i, shared))
        changes = c.n * (own + shared)
        assert changes >= 200000
        t0 = time.monotonic()
        out = pass_ok(c, cfg)
        took = time.monotonic() - t0
        total = re.search(r"^sync: total rows=(\d+) .* backlog=(\d+) unreachable=0$", out, re.M)
        assert total and int(total.group(2)) == 0, out
        # every own change reaches the n - 1 others; a shared key's losing
        # writes are copied too (kept out by the version rule) unless a
        # newer copy replaced them before their partition stamped them
        copies = int(total.group(1))
        assert c.n * own * (c.n - 1) <= copies <= changes * (c.n - 1), out
        live = {}
        for i in range(c.n):
            for n in range(1, own + 1):
                if n % 10:
                    live[b"speed/%d/%06d" % (i, n)] = (bytes([97 + n % 26]) * (1 + n % 200), 5)
        for n in range(1, shared + 1):
            winner = (2 - n) % 3  # (n + i) % 3 == 2: version 1002
            live[b"speed/shared/%06d" % n] = (b"p%d-%d" % (winner, n), 1002)
        rows, crc = expected_checksum(live)
        for i in range(c.n):
            got = checksum(c, i, "speed/")
            assert got[:2] == (rows, crc) and got[3] == 0, (i, got, rows, crc)
            # tombstones are purged everywhere or nowhere (tombstone_grace = 0)
            assert got[2] == checksum(c, 0, "speed/")[2], (i, got)
        print("  200k changes: %d copies in %.1f s" % (copies, took))
    finally:
        cleanup(c, "speed/")
        pass_ok(c, cfg)


def write_round(c, rnd, rno, keys, expect):
    """Pending writes at random partitions, as lazykvd's lazy writes leave
    them: a version above any earlier write of the key; some deletes.
    Records the winner of each key in expect."""
    for i in range(c.n):
        rows = []
        for k in rnd.sample(keys, 400):
            version = 10 ** 12 + rno * 10 + i
            if rnd.random() < 0.15:
                rows.append("('%s', '', '', %d, 1, NULL)" % (k, version))
                value = None
            else:
                value = b"r%d-p%d-" % (rno, i) + b"x" * rnd.choice((10, 500, 2000))
                rows.append("('%s', '%s', '', %d, 0, NULL)" % (k, value.decode(), version))
            if k not in expect or expect[k][1] < version:
                expect[k] = (value, version)
        sql_in(c, i, "INSERT INTO data (k, v, ctype, version, deleted, seq) VALUES %s"
                     " ON DUPLICATE KEY UPDATE v = VALUES(v), version = VALUES(version),"
                     " deleted = VALUES(deleted), seq = NULL;" % ", ".join(rows))


def kill_in_pass(c, cfg, rnd):
    """Starts a pass and kills it with SIGKILL: after a random delay, or
    right after its reader said it read a batch (before that batch can
    have been applied everywhere). Returns which."""
    p = subprocess.Popen([os.path.join(c.bindir, "lazykv-sync"), "-c", cfg, "--test",
                          "--verbose"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    how = "delay"
    if rnd.random() < 0.5:
        time.sleep(rnd.uniform(0, 0.3))
    else:
        reads, want = 0, rnd.randint(1, 6)
        for line in p.stdout:
            if re.match(rb"sync: \d: read rows=", line):
                reads += 1
                if reads == want:
                    how = "after a read"
                    break
    p.send_signal(signal.SIGKILL)
    rc = p.wait()
    p.stdout.close()
    return how if rc == -signal.SIGKILL else "ended before the kill"


def test_kill_9_at_random_points_of_the_pipeline_loses_nothing(c):
    rnd = random.Random(15)
    keys = ["speedkill/%04d" % n for n in range(3000)]
    expect = {}
    cfg = c.config  # batch_size = 100: many batches per pass
    hows = []
    try:
        for rno in range(30):
            write_round(c, rnd, rno, keys, expect)
            hows.append(kill_in_pass(c, cfg, rnd))
        assert hows.count("after a read") >= 5, hows
        assert hows.count("ended before the kill") <= 10, hows
        print("  kills: %s" % {h: hows.count(h) for h in set(hows)})
        out = pass_ok(c, cfg)
        assert "backlog=0 " in out, out
        live = {k.encode(): ve for k, ve in expect.items() if ve[0] is not None}
        rows, crc = expected_checksum(live)
        sums = [checksum(c, i, "speedkill/") for i in range(c.n)]
        for i in range(c.n):
            assert sums[i][:2] == (rows, crc) and sums[i][3] == 0, (i, sums[i], rows, crc)
            assert sums[i][2] == sums[0][2], sums
        # deleted keys: a tombstone of the delete's version, or purged
        for k, (value, version) in expect.items():
            if value is None:
                for i in range(c.n):
                    row = c.row(i, k) if k.endswith("7") else None  # a sample
                    assert row is None or (row[2] == 1 and row[1] == version), (k, i, row)
    finally:
        cleanup(c, "speedkill/")
        pass_ok(c, cfg)


def test_loop_runs_passes_back_to_back_while_changes_are_left(c):
    """--loop 30 never waits its 30 s while a pass left changes: writes made
    during the first pass are copied by a second one at once."""
    cfg = big_batches(c)
    preload = 60000  # a first pass of a second or so
    c.sql(0, "INSERT INTO data (k, v, ctype, version, deleted, seq) SELECT"
             " CONCAT('speedloop/pre/', seq), REPEAT('p', 300), '', 7, 0, NULL"
             " FROM seq_1_to_%d" % preload)
    loop = subprocess.Popen([os.path.join(c.bindir, "lazykv-sync"), "-c", cfg, "--test",
                             "--loop", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, first_total = [], threading.Event()

    def read_out():
        for line in loop.stdout:
            lines.append((time.monotonic(), line.decode()))
            if line.startswith(b"sync: total "):
                first_total.set()
    reader = threading.Thread(target=read_out)
    reader.start()
    written = preload
    try:
        # Write while the first pass runs, so that it ends with a backlog.
        n = 0
        while not first_total.is_set():
            c.sql(n % c.n, "INSERT INTO data (k, v, ctype, version, deleted, seq) SELECT"
                           " CONCAT('speedloop/%d/', seq), REPEAT('l', 300), '', 7, 0, NULL"
                           " FROM seq_1_to_500" % n)
            n += 1
            written += 500
        assert n < 10000

        def totals():
            return [(t, l) for t, l in lines if l.startswith("sync: total ")]
        wait_for(lambda: any(" backlog=0 " in l for _, l in totals()), timeout=20,
                 what="the loop to drain the backlog")
        ts = totals()
        pat = (r"^sync: total rows=\d+ bytes=\d+ purged=\d+ ms=\d+ lag_ms=\d+ backlog=(\d+)"
               r" unreachable=0\n$")
        assert all(re.match(pat, l) for _, l in ts), ts
        assert int(re.match(pat, ts[0][1]).group(1)) > 0, ts
        drained = next(k for k, (_, l) in enumerate(ts) if " backlog=0 " in l)
        # each pass after one that left changes came at once, not 30 s later
        for k in range(1, drained + 1):
            assert ts[k][0] - ts[k - 1][0] < 10, ts
        for i in range(c.n):
            got = c.sql(i, "SELECT COUNT(*), SUM(seq IS NULL) FROM data WHERE k LIKE 'speedloop/%'")
            assert [int(x) for x in got[0]] == [written, 0], (i, got, written)
    finally:
        loop.send_signal(signal.SIGTERM)
        rc = loop.wait(timeout=60)
        reader.join()
        err = loop.stderr.read()
        loop.stderr.close()
        cleanup(c, "speedloop/")
        pass_ok(c, cfg)
    assert rc == 0, err


def test_large_values_are_read_in_batches_of_batch_bytes(c):
    """Batches cut by batch_bytes, not batch_size: every row still arrives
    once and exact, and the reads shrink to what a batch holds."""
    cfg = c.kvd_config({"batch_size": 1000}, append="[sync]\nbatch_bytes = 1048576",
                       name="sync-bytes.cfg")
    pass_ok(c, cfg)  # what earlier tests left pending is not counted below
    try:
        c.sql(1, "INSERT INTO data (k, v, ctype, version, deleted, seq) SELECT"
                 " CONCAT('speedbig/', LPAD(seq, 3, '0')), REPEAT(CHAR(65 + seq % 26), 200000),"
                 " '', 3, 0, NULL FROM seq_1_to_60")
        out = pass_ok(c, cfg, "--verbose")
        reads = [int(m) for m in re.findall(r"^sync: 1: read rows=(\d+) ", out, re.M)]
        assert sum(reads) == 60 and max(reads) <= 7 and len(reads) >= 9, reads
        live = {b"speedbig/%03d" % n: (bytes([65 + n % 26]) * 200000, 3) for n in range(1, 61)}
        for i in range(c.n):
            got = checksum(c, i, "speedbig/")
            assert got == expected_checksum(live) + (0, 0), (i, got)
    finally:
        cleanup(c, "speedbig/")
        pass_ok(c, cfg)
