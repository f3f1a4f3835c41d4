"""Upgrading a table of the previous release (schema 1, without expires_at:
tests/fixtures/schema_v1.sql) for TTL (issue 10): lazykvd and lazykv-sync
refuse to start on it with one line and exit 2; `lazykv-admin init`
upgrades it in place, keeping every row byte for byte, and a second init
changes nothing.

Each test works on its own table (TABLE) in the cluster's databases,
through a config naming it, and drops it at the end.
"""
import os
import re
import subprocess

from harness import ROOT, wait_for

TABLE = "upgrade_v1"
TABLES = (TABLE, TABLE + "_meta", TABLE + "_sync", TABLE + "_chunks", TABLE + "_chunks_gc")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "schema_v1.sql")
BINARY = bytes(range(256)) + b"\x00\xff"

# (key, value, content type, version, deleted, seq): copies of the same rows
# on every partition, as a converged cluster of the previous release holds
# them, and one change still pending at partition 1.
ROWS = [(b"up/text", b"hello", b"text/plain", 1764000000000001, 0, 0),
        (b"up/binary", BINARY, b"application/octet-stream", 1764000000000002, 0, 0),
        (b"up/gone", b"", b"text/plain", 1764000000000003, 1, 0)]
PENDING = (b"up/pending", b"\xffpending", b"", 1764000000000004, 0, None)


def config(c):
    path = os.path.join(c.dir, "upgrade.cfg")
    text, n = re.subn(r"(?m)^table_name = .*$", "table_name = " + TABLE, open(c.config).read())
    assert n == 1
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def insert(c, i, row):
    k, v, ctype, version, deleted, seq = row
    c.sql(i, "INSERT INTO %s (k, v, ctype, version, deleted, seq) VALUES"
             " (UNHEX('%s'), UNHEX('%s'), UNHEX('%s'), %d, %d, %s)"
             % (TABLE, k.hex(), v.hex(), ctype.hex(), version, deleted,
                "NULL" if seq is None else seq))


def drop(c, i):
    c.sql(i, "DROP TABLE IF EXISTS " + ", ".join(TABLES))


def create_v1(c):
    """The previous release's tables, with ROWS, on every partition."""
    ddl = open(FIXTURE).read().replace("@T", TABLE)
    for i in range(c.n):
        drop(c, i)
        c.sql(i, ddl)
        for row in ROWS:
            insert(c, i, row)
    insert(c, 1, PENDING)


def rows(c, i):
    """Every row of TABLE on partition i, in bytes, as the previous release
    has them (seq of a pending row: None)."""
    out = c.sql(i, "SELECT HEX(k), HEX(v), HEX(ctype), version, deleted, IFNULL(seq, 'NULL')"
                   " FROM %s ORDER BY k" % TABLE)
    return [(bytes.fromhex(k), bytes.fromhex(v), bytes.fromhex(ct), int(ver), int(d),
             None if seq == "NULL" else int(seq)) for k, v, ct, ver, d, seq in out]


def expected(i):
    return sorted(ROWS + ([PENDING] if i == 1 else []))


def lazykvd(c, cfg):
    args = [os.path.join(c.bindir, "lazykvd"), "-c", cfg, "--test", "--listen", "127.0.0.1:0"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    return subprocess.run(args, capture_output=True, timeout=60)


def refusal(prog, i):
    return ("%s: partition %d (test_store_%d): table %s is of an earlier schema (no chunk_version column):"
            " run lazykv-admin init to upgrade\n" % (prog, i, i + 1, TABLE)).encode()


def schema_facts(c, i):
    """What a no-op init must leave alone: the table's definition and its
    InnoDB identity (a rebuild gives it a new table id), and the meta rows."""
    create = c.sql(i, "SHOW CREATE TABLE " + TABLE)
    table_id = c.sql(i, "SELECT TABLE_ID FROM information_schema.INNODB_SYS_TABLES"
                        " WHERE NAME = 'test_store_%d/%s'" % (i + 1, TABLE))
    meta = c.sql(i, "SELECT name, value, text FROM %s_meta ORDER BY name" % TABLE)
    return create, table_id, meta


def test_lazykvd_and_sync_refuse_a_table_of_the_previous_schema(c):
    cfg = config(c)
    create_v1(c)
    try:
        r = lazykvd(c, cfg)
        assert (r.returncode, r.stderr) == (2, refusal("lazykvd", 0)), r
        r = c.sync(config=cfg)
        assert (r.returncode, r.stderr, r.stdout) == (2, refusal("lazykv-sync", 0), b""), r
        r = c.sync("--loop", "1", config=cfg)  # a loop stops at its first pass
        assert (r.returncode, r.stderr, r.stdout) == (2, refusal("lazykv-sync", 0), b""), r
        # nothing was done: the pending row is still pending, nowhere else
        for i in range(c.n):
            assert rows(c, i) == expected(i), i
    finally:
        for i in range(c.n):
            drop(c, i)


def test_lazykvd_checks_the_partitions_reachable_at_start(c):
    cfg = config(c)
    create_v1(c)
    c.stop_node(0)
    try:
        r = lazykvd(c, cfg)
        assert (r.returncode, r.stderr) == (2, refusal("lazykvd", 1)), r
    finally:
        c.start_node(0)
        for i in range(c.n):
            drop(c, i)
    # the shared lazykvd serves partition 0 again before the next test
    wait_for(lambda: c.request("GET", "/health").json()["reachable"] == c.n,
             what="lazykvd to see partition 0 again")


def test_init_upgrades_in_place_and_twice_is_a_no_op(c):
    cfg = config(c)
    create_v1(c)
    proc = None
    try:
        meta = [c.sql(i, "SELECT name, value, text FROM %s_meta ORDER BY name" % TABLE)
                for i in range(c.n)]
        r = c.admin("init", config=cfg)
        assert r.returncode == 0 and r.stdout.count(b" ready\n") == 3, r
        facts = []
        for i in range(c.n):
            assert rows(c, i) == expected(i), i
            cols = c.sql(i, "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM"
                            " information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                            " AND TABLE_NAME = '%s' AND COLUMN_NAME = 'expires_at'" % TABLE)
            assert cols == [["expires_at", "bigint(20) unsigned", "YES"]], cols
            assert c.sql(i, "SELECT COUNT(*) FROM %s WHERE expires_at IS NOT NULL"
                            % TABLE) == [["0"]]
            assert c.sql(i, "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE"
                            " TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '%s'"
                            " AND INDEX_NAME = 'by_expiry'" % TABLE) == [["expires_at"]]
            f = schema_facts(c, i)
            assert f[2] == meta[i] and f[1] != [], (i, f)
            facts.append(f)
        # a second init changes nothing, not even the table's identity
        r = c.admin("init", config=cfg)
        assert r.returncode == 0 and r.stdout.count(b" ready\n") == 3, r
        for i in range(c.n):
            assert rows(c, i) == expected(i), i
            assert schema_facts(c, i) == facts[i], i
        # the programs start, and serve the rows byte for byte
        proc, port, _ = c.extra_kvd({"table_name": TABLE})
        for path in ("/canonicalbucket/up/binary", "/bucket/up/binary"):
            for _ in range(6):  # lazy reads: from any partition
                g = c.request_to(port, "GET", path)
                assert g.status == 200 and g.body == BINARY, (path, g)
                assert g.header("Content-Type") == "application/octet-stream"
        g = c.request_to(port, "GET", "/canonicalbucket/up/text")
        assert (g.status, g.body, g.header("Content-Type")) == (200, b"hello", "text/plain"), g
        assert c.request_to(port, "GET", "/canonicalbucket/up/gone").status == 404
        r = c.sync(config=cfg)
        assert r.returncode == 0 and r.stderr == b"", r
        for i in range(c.n):  # the pending row went out, the others stayed
            got = rows(c, i)
            assert [r[:5] for r in got] == [r[:5] for r in sorted(ROWS + [PENDING])], i
            seq = {r[0]: r[5] for r in got}[PENDING[0]]
            assert seq > 0 if i == 1 else seq == 0, (i, seq)
    finally:
        if proc is not None:
            assert c.stop_extra(proc) == 0
        for i in range(c.n):
            drop(c, i)
