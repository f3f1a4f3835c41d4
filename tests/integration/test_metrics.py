"""/metrics an operator can alert on (issue 13): histograms, per-partition
state, replication status; promtool accepts the exposition and the alert
rules; the values move with what happens (a request, a stopped partition).
"""
import os
import re
import signal
import subprocess

from harness import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
P = "/bucket/metrics-test/"


def scrape(c, port=None):
    r = c.request("GET", "/metrics", port=port)
    assert r.status == 200, r
    assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    return r.body.decode()


def sample(text, name, **labels):
    """The value of the one series name{labels} (label order as exposed),
    or None when it is absent."""
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    pat = r"^%s%s (\S+)$" % (re.escape(name), re.escape("{%s}" % want) if want else "")
    found = re.findall(pat, text, re.M)
    assert len(found) <= 1, (name, labels, found)
    return float(found[0]) if found else None


def key_mastered_by(c, node, prefix):
    for i in range(1000):
        k = "%s%d" % (prefix, i)
        r = c.request("POST", P + k, b"probe")
        assert r.status == 201, r
        if r.json()["master"] == node:
            return k
    raise AssertionError("no key mastered by partition %d" % node)


def test_promtool_accepts_the_exposition_and_the_alert_rules(c):
    for i in range(3):  # some of every series: histograms, statements
        assert c.request("PUT", P + "p%d" % i, b"v").status in (200, 201)
        assert c.request("GET", "/canonicalbucket/metrics-test/p%d" % i).status == 200
        assert c.request("GET", "/bucket/?prefix=metrics-test/").status == 200
    text = scrape(c)
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True)
    assert p.returncode == 0 and p.stdout == b"" and p.stderr == b"", p
    rules = os.path.join(ROOT, "conf", "lazykv-alerts.yml")
    p = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
    assert p.returncode == 0 and "SUCCESS: 3 rules found" in p.stdout, p


def test_request_histogram_counts_each_request_by_route_and_method(c):
    name = "lazykv_http_request_duration_seconds_count"
    before = scrape(c)
    assert c.request("PUT", P + "h1", b"value").status in (200, 201)
    assert c.request("GET", "/canonicalbucket/metrics-test/h1").status == 200
    assert c.request("DELETE", P + "h1").status == 202

    def delta(route, method):
        return (sample(after, name, route=route, method=method) or 0) - \
               (sample(before, name, route=route, method=method) or 0)
    # A request is observed when libmicrohttpd completes it, after its
    # answer went out: the scrape may come first (seen under ASan).
    after = None

    def delete_counted():
        nonlocal after
        after = scrape(c)
        return delta("lazy", "DELETE") >= 1
    wait_for(delete_counted, timeout=10, what="the DELETE in the histogram")
    assert delta("lazy", "PUT") == 1
    assert delta("canonical", "GET") == 1
    assert delta("lazy", "DELETE") == 1
    assert delta("list", "GET") == 0
    # the +Inf bucket equals the count, and buckets are cumulative
    buckets = [float(v) for v in re.findall(
        r'^lazykv_http_request_duration_seconds_bucket\{route="lazy",method="PUT",le="[^"]+"\} (\S+)$',
        after, re.M)]
    assert len(buckets) == 17 and buckets == sorted(buckets), buckets
    assert buckets[-1] == sample(after, name, route="lazy", method="PUT")


def test_statements_are_counted_per_partition_and_kind(c):
    key = key_mastered_by(c, 1, "stmt/")
    before = scrape(c)
    assert c.request("PUT", P + key, b"v2").status == 200
    after = scrape(c)
    st = "lazykv_partition_statements_total"
    assert sample(after, st, partition="1", kind="write") - \
        sample(before, st, partition="1", kind="write") == 1
    assert sample(after, st, partition="0", kind="write") == \
        sample(before, st, partition="0", kind="write")
    h = "lazykv_db_statement_duration_seconds_count"
    assert sample(after, h, partition="1", kind="write") - \
        (sample(before, h, partition="1", kind="write") or 0) == 1
    assert sample(after, "lazykv_partition_statements_in_flight", partition="1") == 0
    assert sample(after, "lazykv_partition_mean_batch", partition="1") >= 1


def test_a_stopped_partition_is_down_within_5_s(c):
    key = key_mastered_by(c, 2, "down/")
    assert sample(scrape(c), "lazykv_partition_up", partition="2") == 1
    c.stop_node(2)
    try:
        wait_for(lambda: sample(scrape(c), "lazykv_partition_up", partition="2") == 0,
                 timeout=5, what="partition_up 0 for the stopped partition")
        assert sample(scrape(c), "lazykv_partition_up", partition="0") == 1
        assert c.request("PUT", P + key, b"x").status == 503
    finally:
        c.start_node(2)
        wait_for(lambda: sample(scrape(c), "lazykv_partition_up", partition="2") == 1,
                 timeout=30, what="partition_up 1 again")
    wait_for(lambda: c.request("PUT", P + key, b"y").status == 200, timeout=10,
             what="writes to the partition again")


def test_a_statement_that_times_out_counts_as_a_timeout_error(c):
    """A frozen master (SIGSTOP): the canonical read waits read_timeout (5 s
    in the test configuration), answers 503, and that one statement is a
    timeout of that partition in /metrics. On a lazykvd of its own: the
    shared one may still hold watches of earlier tests, whose change scans
    would time out too."""
    key = key_mastered_by(c, 1, "frozen/")
    proc, port, _ = c.extra_kvd({})
    try:
        target = "/canonicalbucket/metrics-test/" + key
        assert c.request("GET", target, port=port).status == 200
        err = "lazykv_partition_errors_total"
        before = scrape(c, port)
        pid = c.freeze_node(1)
        try:
            assert c.request("GET", target, port=port).status == 503
            after = scrape(c, port)
        finally:
            os.kill(pid, signal.SIGCONT)
        deltas = {k: sample(after, err, partition="1", kind=k) -
                  sample(before, err, partition="1", kind=k)
                  for k in ("connect", "timeout", "connection", "deadlock", "other")}
        assert deltas == {"connect": 0, "timeout": 1, "connection": 0, "deadlock": 0,
                          "other": 0}, deltas
        assert sample(after, err, partition="0", kind="timeout") == \
            sample(before, err, partition="0", kind="timeout")
    finally:
        c.stop_extra(proc)
    wait_for(lambda: c.request("GET", "/canonicalbucket/metrics-test/" + key).status == 200,
             timeout=15, what="reads from the thawed partition")


def test_health_and_metrics_show_each_partitions_backlog(c):
    # a lazy write leaves a change no pass has stamped yet at its master
    key = key_mastered_by(c, 0, "backlog/")
    assert c.request("PUT", P + key, b"pending").status == 200

    def backlog():
        doc = c.request("GET", "/health").json()
        return [p.get("pending_rows") for p in doc["partition"]]
    wait_for(lambda: all(isinstance(n, int) for n in backlog()) and backlog()[0] >= 1,
             timeout=15, what="pending_rows in /health")
    text = scrape(c)
    assert sample(text, "lazykv_sync_pending_rows", partition="0") >= 1
    for i in range(3):
        assert sample(text, "lazykv_sync_pending_rows", partition=str(i)) is not None


def test_each_sync_pass_is_seen_by_lazykvd_and_in_the_textfile(c):
    textfile = os.path.join(c.dir, "sync.prom")
    key = key_mastered_by(c, 0, "pass/")
    assert c.request("PUT", P + key, b"to copy").status == 200
    p = c.sync("--metrics-file", textfile)
    assert p.returncode == 0, p
    assert not [f for f in os.listdir(c.dir) if f.startswith("sync.prom.tmp")]
    text = open(textfile).read()
    v = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert v.returncode == 0 and v.stdout == b"" and v.stderr == b"", v
    end = sample(text, "lazykv_sync_last_pass_end_timestamp_seconds")
    assert sample(text, "lazykv_sync_last_pass_exit_code") == 0
    assert sample(text, "lazykv_sync_last_pass_rows") >= 1
    for i in range(3):
        assert sample(text, "lazykv_sync_pending_rows", partition=str(i)) is not None
    # every partition's _meta has it; lazykvd's probers read it within 5 s
    wait_for(lambda: sample(scrape(c), "lazykv_sync_last_pass_end_timestamp_seconds") == end,
             timeout=10, what="lazykvd to see the pass")
    m = scrape(c)
    assert sample(m, "lazykv_sync_last_pass_exit_code") == 0
    assert sample(m, "lazykv_sync_lag_seconds") is not None
    sync = c.request("GET", "/health").json()["sync"]
    assert sync["exit_code"] == 0 and sync["rows"] == sample(text, "lazykv_sync_last_pass_rows")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", sync["last_pass_end"]), sync


def test_a_pass_with_a_partition_down_is_recorded_with_exit_code_1(c):
    textfile = os.path.join(c.dir, "sync-down.prom")
    c.stop_node(2)
    try:
        p = c.sync("--metrics-file", textfile)
        assert p.returncode == 1, p
        text = open(textfile).read()
        assert sample(text, "lazykv_sync_last_pass_exit_code") == 1
        assert sample(text, "lazykv_sync_pending_rows", partition="2") is None
        assert sample(text, "lazykv_sync_pending_rows", partition="0") is not None
        wait_for(lambda: sample(scrape(c), "lazykv_sync_last_pass_exit_code") == 1,
                 timeout=10, what="lazykvd to see the failed pass")
    finally:
        c.start_node(2)
        wait_for(lambda: sample(scrape(c), "lazykv_partition_up", partition="2") == 1,
                 timeout=30, what="partition_up 1 again")
    assert c.sync().returncode == 0
