"""Sync cost grows with the changes, not the table (issue 3, point 8).

Runs last: it leaves a million rows in partition 0's table.
"""
ROWS = 1000000


def handler_reads(c, i):
    rows = c.sql(i, "SHOW GLOBAL STATUS LIKE 'Handler_read%'")
    return sum(int(v) for _, v in rows)


def test_idle_pass_on_a_million_rows_reads_almost_nothing(c):
    r = c.sync()
    assert r.returncode == 0, r
    # a million rows that partition 0 stamped in an old epoch (1), long copied
    c.sql(0, "INSERT INTO data (k, v, ctype, version, deleted, seq) "
             "SELECT CONCAT('scale/', LPAD(seq, 8, '0')), 'v', '', 1, 0, 1 FROM seq_1_to_%d" % ROWS)
    assert int(c.sql(0, "SELECT COUNT(*) FROM data")[0][0]) > ROWS
    before = [handler_reads(c, i) for i in range(c.n)]
    r = c.sync()
    assert r.returncode == 0, r
    assert "sync: total rows=0 " in r.stdout.decode(), r.stdout
    after = [handler_reads(c, i) for i in range(c.n)]
    read = [a - b for a, b in zip(after, before)]
    # each SHOW STATUS itself reads a few hundred status rows; a scan would read a million
    assert all(n < 5000 for n in read), read
    # a batch reads one epoch through the by_seq index; the next epoch is an
    # index lookup too
    plan = c.sql(0, "EXPLAIN SELECT k, v, ctype, version, deleted, seq FROM data "
                    "FORCE INDEX (by_seq) WHERE seq = 5 AND k > '' ORDER BY k LIMIT 100")
    assert plan[0][5] == "by_seq" and plan[0][3] in ("ref", "range"), plan
    plan = c.sql(0, "EXPLAIN SELECT MIN(seq) FROM data WHERE seq > 5")
    assert plan[0][9] == "Select tables optimized away", plan
