"""The HTTP API of lazykvd: routes, codes, headers and bytes (issue 2)."""
import hashlib
import json
import os
import re
import threading
import urllib.parse

q = urllib.parse.quote


def path(key, canonical=False):
    if isinstance(key, str):
        key = key.encode()
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key, safe="/")


def test_post_then_canonical_get_is_byte_exact(c):
    r = c.request("POST", path("api/one"), b"hello world", {"Content-Type": "text/plain"})
    assert r.status == 201, r
    assert r.header("Location") == "/bucket/api/one"
    etag = r.header("ETag")
    assert re.fullmatch(r'"[0-9a-f]{16}"', etag), etag
    doc = r.json()
    assert doc["result"] == "created" and doc["key"] == "api/one" and doc["etag"] == etag
    g = c.request("GET", path("api/one", True))
    assert g.status == 200, g
    assert g.body == b"hello world"
    assert g.header("Content-Type") == "text/plain"
    assert g.header("ETag") == etag
    assert g.header("Last-Modified").endswith(" GMT")
    assert g.header("X-Lazykv-Partition") == str(doc["master"])


def test_default_content_type_is_octet_stream(c):
    r = c.request("POST", path("api/ctype"), b"\x00\x01")
    assert r.status == 201
    # http.client sends no Content-Type for a bytes body
    g = c.request("GET", path("api/ctype", True))
    assert g.header("Content-Type") == "application/octet-stream"
    assert g.body == b"\x00\x01"


def test_canonical_write_reaches_every_partition(c):
    r = c.request("POST", path("api/canon", True), b"v1")
    assert r.status == 201, r
    assert r.header("X-Lazykv-Replicas") == "3/3"
    version = r.json()["version"]
    for i in range(c.n):
        assert c.row(i, "api/canon") == (b"v1", version, 0)
    served = set()
    for _ in range(30):
        g = c.request("GET", path("api/canon"))
        assert g.status == 200 and g.body == b"v1"
        served.add(g.header("X-Lazykv-Partition"))
    assert len(served) > 1, "lazy reads should spread over partitions: %s" % served


def test_lazy_write_goes_to_master_only(c):
    r = c.request("POST", path("api/lazyonly"), b"x")
    assert r.status == 201
    master = r.json()["master"]
    for i in range(c.n):
        row = c.row(i, "api/lazyonly")
        assert (row is not None) == (i == master), (i, master, row)
    assert r.header("X-Lazykv-Replicas") is None


def test_all_byte_values_and_10_mib(c):
    allbytes = bytes(range(256)) * 4
    assert c.request("POST", path("api/bytes"), allbytes).status == 201
    assert c.request("GET", path("api/bytes", True)).body == allbytes
    big = os.urandom(10 * 1024 * 1024)
    r = c.request("PUT", path("api/big"), big)
    assert r.status == 201, r
    g = c.request("GET", path("api/big", True))
    assert g.status == 200 and g.header("Content-Length") == str(len(big))
    assert g.body == big


def test_awkward_keys_round_trip(c):
    keys = ["a/b/c", "with space", "quote\"'`", "ünïcødé/日本", "'; DROP TABLE data; --",
            "%percent%", "back\\slash", "semi;colon?&=#", "x" * 250, "/leading", "trailing/"]
    for k in keys:
        kb = k.encode()
        body = b"value of " + kb
        r = c.request("PUT", path(kb, True), body)
        assert r.status == 201, (k, r)
        g = c.request("GET", path(kb, True))
        assert g.status == 200 and g.body == body, (k, g)
        for i in range(c.n):
            assert c.row(i, kb)[0] == body


def test_key_length_limits(c):
    exact, over = "k" * 250, "k" * 251
    assert c.request("POST", path(exact), b"v").status == 201
    r = c.request("POST", path(over), b"v")
    assert r.status == 400 and r.header("Content-Type") == "application/problem+json"
    assert c.request("PUT", path(over), b"v").status == 400
    assert c.request("DELETE", path(over)).status == 400
    assert c.request("GET", path(over)).status == 404
    assert c.request("HEAD", path(over)).status == 404
    for i in range(c.n):
        assert c.row(i, over) is None


def test_bad_keys_are_400_and_store_nothing(c):
    for raw in ["/bucket/bad%2", "/bucket/bad%zz", "/bucket/nul%00byte", "/bucket/a/../b",
                "/bucket/./x", "/bucket/.."]:
        for method in ("POST", "GET"):
            r = c.request(method, raw, b"v" if method == "POST" else None)
            assert r.status == 400, (raw, method, r)
            assert r.json()["status"] == 400
    assert c.request("POST", "/bucket/", b"v").status == 400
    assert c.request("DELETE", "/canonicalbucket/").status == 400


def test_put_create_replace_and_preconditions(c):
    p = path("api/put")
    r1 = c.request("PUT", p, b"one", {"If-None-Match": "*"})
    assert r1.status == 201, r1
    e1 = r1.header("ETag")
    r2 = c.request("PUT", p, b"two", {"If-None-Match": "*"})
    assert r2.status == 412, r2
    assert c.request("GET", path("api/put", True)).body == b"one"
    r3 = c.request("PUT", p, b"three")
    assert r3.status == 200 and r3.json()["result"] == "replaced"
    e3 = r3.header("ETag")
    assert e3 != e1
    r4 = c.request("PUT", p, b"four", {"If-Match": e1})
    assert r4.status == 412
    assert c.request("GET", path("api/put", True)).body == b"three"
    r5 = c.request("PUT", p, b"five", {"If-Match": '"0000000000000001", ' + e3})
    assert r5.status == 200, r5
    assert c.request("PUT", path("api/put-missing"), b"x", {"If-Match": "*"}).status == 412
    assert c.request("GET", path("api/put-missing", True)).status == 404
    assert c.request("PUT", p, b"six", {"If-Match": "*"}).status == 200
    assert c.request("PUT", p, b"bad", {"If-Match": "not-an-etag"}).status == 400
    assert c.request("GET", path("api/put", True)).body == b"six"


def test_versions_strictly_increase(c):
    versions = []
    for i in range(20):
        r = c.request("POST", path("api/ver"), str(i).encode())
        versions.append(r.json()["version"])
    assert versions == sorted(versions) and len(set(versions)) == 20


def test_conditional_get_and_head(c):
    r = c.request("POST", path("api/cond"), b"abc", {"Content-Type": "text/plain"})
    etag = r.header("ETag")
    g = c.request("GET", path("api/cond", True), headers={"If-None-Match": etag})
    assert g.status == 304 and g.body == b"" and g.header("ETag") == etag
    g = c.request("GET", path("api/cond", True), headers={"If-None-Match": '"0000000000000000"'})
    assert g.status == 200 and g.body == b"abc"
    h = c.request("HEAD", path("api/cond", True))
    assert h.status == 200 and h.body == b""
    assert h.header("Content-Length") == "3" and h.header("ETag") == etag
    assert h.header("Content-Type") == "text/plain"
    assert c.request("HEAD", path("api/cond-missing", True)).status == 404


def test_delete(c):
    r = c.request("POST", path("api/del"), b"x")
    etag = r.header("ETag")
    assert c.request("DELETE", path("api/del"), headers={"If-Match": '"00000000000000ff"'}).status == 412
    assert c.request("GET", path("api/del", True)).status == 200
    d = c.request("DELETE", path("api/del"), headers={"If-Match": etag})
    assert d.status == 202, d
    assert d.json()["result"] == "deleted"
    assert c.request("GET", path("api/del", True)).status == 404
    assert c.request("DELETE", path("api/del")).status == 404
    master = r.json()["master"]
    row = c.row(master, "api/del")
    assert row[2] == 1 and row[1] > r.json()["version"], "a delete is a newer tombstone"
    # canonical delete reaches every partition synchronously
    c.request("POST", path("api/del2", True), b"x")
    d = c.request("DELETE", path("api/del2", True))
    assert d.status == 202 and d.header("X-Lazykv-Replicas") == "3/3"
    for i in range(c.n):
        assert c.row(i, "api/del2")[2] == 1
    # re-creating a deleted key gives a higher version than its tombstone
    p = c.request("PUT", path("api/del2"), b"back")
    assert p.status == 201 and p.json()["version"] > c.row(master, "api/del")[1] - 10**12


def test_list_prefix_pagination(c):
    names = ["list/%03d" % i for i in range(25)] + ["list/zz", "lisu", "lisz"]
    for k in names:
        assert c.request("POST", path(k, True), b"v").status == 201
    c.request("DELETE", path("list/zz", True))
    r = c.request("GET", "/canonicalbucket/?prefix=list/&limit=10")
    assert r.status == 200, r
    doc = r.json()
    assert doc["keys"] == ["list/%03d" % i for i in range(10)]
    assert doc["truncated"] is True and doc["next_start_after"] == "list/009"
    r = c.request("GET", "/canonicalbucket/?prefix=list/&limit=10&start_after=list/009")
    assert r.json()["keys"] == ["list/%03d" % i for i in range(10, 20)]
    r = c.request("GET", "/canonicalbucket/?prefix=list/&start_after=list/019")
    doc = r.json()
    assert doc["keys"] == ["list/%03d" % i for i in range(20, 25)]
    assert doc["truncated"] is False and "next_start_after" not in doc
    # lazy list reads one partition; canonical writes are everywhere
    lazy = c.request("GET", "/bucket/?prefix=list/&limit=100").json()
    assert lazy["keys"] == ["list/%03d" % i for i in range(25)]
    for bad in ("limit=0", "limit=10001", "limit=x", "prefix=%zz", "encoding=base64"):
        assert c.request("GET", "/bucket/?" + bad).status == 400, bad


def test_canonical_list_sees_lazy_writes_at_their_masters(c):
    keys = ["clist/%02d" % i for i in range(12)]
    for k in keys:
        assert c.request("POST", path(k), b"v").status == 201
    doc = c.request("GET", "/canonicalbucket/?prefix=clist/").json()
    assert doc["keys"] == keys and doc["count"] == 12
    # paging in small steps through the merge of the partitions
    got, after = [], ""
    while True:
        d = c.request("GET", "/canonicalbucket/?prefix=clist/&limit=5&start_after=" + q(after)).json()
        got += d["keys"]
        if not d["truncated"]:
            break
        after = d["next_start_after"]
    assert got == keys


def test_list_binary_keys_are_url_encoded(c):
    assert c.request("POST", path(b"bin/\xff\xfe", True), b"v").status == 201
    doc = c.request("GET", "/canonicalbucket/?prefix=bin/").json()
    assert doc["encoding"] == "url" and doc["keys"] == ["bin/%FF%FE"]


def test_negotiation(c):
    c.request("POST", path("neg/text", True), b"<a&b>", {"Content-Type": "text/plain"})
    c.request("POST", path("neg/bin", True), b"\xff\x00\x01", {"Content-Type": "image/png"})
    j = c.request("GET", path("neg/text", True), headers={"Accept": "application/json"})
    assert j.header("Content-Type") == "application/json"
    doc = j.json()
    assert doc["key"] == "neg/text" and doc["value"] == "<a&b>" and doc["encoding"] == "utf-8"
    assert doc["etag"] == j.header("ETag") and doc["content_type"] == "text/plain"
    b = c.request("GET", path("neg/bin", True), headers={"Accept": "application/json"}).json()
    assert b["encoding"] == "base64" and b["value"] == "/wAB"
    x = c.request("GET", path("neg/text", True), headers={"Accept": "application/xml"})
    assert x.header("Content-Type") == "application/xml; charset=utf-8"
    assert b"<value>&lt;a&amp;b&gt;</value>" in x.body and b"<a&b>" not in x.body
    h = c.request("GET", path("neg/text", True),
                  headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    assert h.header("Content-Type") == "text/html; charset=utf-8"
    assert b"&lt;a&amp;b&gt;" in h.body and b"<a&b>" not in h.body
    # raw wins when the stored type is acceptable at the same q
    t = c.request("GET", path("neg/text", True), headers={"Accept": "text/plain"})
    assert t.body == b"<a&b>" and t.header("Content-Type") == "text/plain"
    # q-values: JSON preferred over raw
    qv = c.request("GET", path("neg/bin", True),
                   headers={"Accept": "image/png;q=0.5, application/json;q=0.9"})
    assert qv.header("Content-Type") == "application/json"
    raw = c.request("GET", path("neg/bin", True), headers={"Accept": "image/*"})
    assert raw.body == b"\xff\x00\x01" and raw.header("Content-Type") == "image/png"
    n = c.request("GET", path("neg/bin", True), headers={"Accept": "audio/ogg"})
    assert n.status == 406 and n.json()["status"] == 406
    e = c.request("GET", path("neg/missing", True), headers={"Accept": "application/xml"})
    assert e.status == 404 and e.header("Content-Type") == "application/problem+xml"
    assert b"<status>404</status>" in e.body


def test_errors_and_methods(c):
    r = c.request("SEARCH", path("x"))
    assert r.status == 405
    r = c.request("PATCH", path("x"))
    assert r.status == 405 and r.header("Allow") == "GET, HEAD, POST, PUT, DELETE"
    r = c.request("POST", "/bucket/?prefix=a", b"")
    assert r.status == 400
    r = c.request("DELETE", "/health")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD"
    r = c.request("GET", "/nope")
    assert r.status == 404
    doc = r.json()
    assert set(doc) == {"type", "title", "status", "detail"} and doc["title"] == "Not Found"


def test_body_over_max_value_size_is_413(c):
    import socket
    s = socket.create_connection(("127.0.0.1", c.http_port))
    s.sendall(b"POST /bucket/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 16777217\r\n\r\n")
    data = s.recv(65536)
    s.close()
    assert data.startswith(b"HTTP/1.1 413 "), data[:100]
    assert c.request("GET", path("huge", True)).status == 404


def test_concurrent_writers_to_one_key(c):
    results, lock = [], threading.Lock()

    def writer(t):
        for i in range(25):
            body = ("%d-%d" % (t, i)).encode()
            r = c.request("POST", path("api/race"), body)
            assert r.status == 201
            with lock:
                results.append((r.json()["version"], body))
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 150
    versions = [v for v, _ in results]
    assert len(set(versions)) == 150, "every write gets its own version"
    last = max(results)
    g = c.request("GET", path("api/race", True))
    assert g.body == last[1] and g.header("ETag") == '"%016x"' % last[0]


def test_health(c):
    r = c.request("GET", "/health")
    assert r.status == 200
    doc = r.json()
    assert doc["status"] == "ok" and doc["mode"] == "test" and doc["reachable"] == 3
    assert [p["database"] for p in doc["partition"]] == ["test_store_1", "test_store_2", "test_store_3"]
    assert b"secret" not in r.body


def test_partition_down(c):
    # a key mastered on partition 1, written canonically (on every partition)
    key = None
    for i in range(100):
        r = c.request("POST", path("down/%d" % i, True), b"here")
        if r.json()["master"] == 1:
            key = "down/%d" % i
            break
    assert key
    other = next("down/o%d" % i for i in range(100)
                 if c.request("POST", path("down/o%d" % i), b"x").json()["master"] != 1)
    c.stop_node(1)
    try:
        for _ in range(10):
            g = c.request("GET", path(key))
            assert g.status == 200 and g.body == b"here", g
            assert g.header("X-Lazykv-Partition") != "1"
        cg = c.request("GET", path(key, True))
        assert cg.status == 503 and cg.header("Retry-After") == "2", cg
        w = c.request("POST", path(key), b"new")
        assert w.status == 503
        assert c.request("POST", path(other), b"y").status == 201
        cw = c.request("POST", path(other, True), b"z")
        assert cw.status == 201 and cw.header("X-Lazykv-Replicas") == "2/3"
        h = c.request("GET", "/health")
        assert h.status == 200
        doc = h.json()
        assert doc["status"] == "degraded" and doc["reachable"] == 2
        assert [p["reachable"] for p in doc["partition"]] == [True, False, True]
    finally:
        c.start_node(1)
    from harness import wait_for
    wait_for(lambda: c.request("GET", path(key, True)).status == 200, what="partition 1 back")
    assert c.request("GET", "/health").json()["status"] == "ok"


def test_no_partition_reachable_is_503_not_a_hang(c):
    import harness
    dead = {"port = %d" % p: "port = %d" % harness.free_port() for p in c.db_ports}
    cfg = open(c.config).read()
    for old, new in dead.items():
        cfg = cfg.replace(old, new)
    path_cfg = os.path.join(c.dir, "dead.cfg")
    with open(path_cfg, "w") as f:
        f.write(cfg)
    os.chmod(path_cfg, 0o600)
    args = [os.path.join(c.bindir, "lazykvd"), "-c", path_cfg, "--test", "--listen",
            "127.0.0.1:%d" % harness.free_port()]
    port = int(args[-1].rsplit(":", 1)[1])
    if os.geteuid() == 0:
        args.append("--allow-root")
    import subprocess
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        harness.wait_for(lambda: c._ping(port), what="lazykvd on dead partitions")
        h = c.request_to(port, "GET", "/health")
        assert h.status == 503 and h.header("Retry-After") == "2", h
        doc = h.json()
        assert doc["status"] == "unavailable" and doc["reachable"] == 0
        for method, body in (("GET", None), ("POST", b"x"), ("DELETE", None)):
            r = c.request_to(port, method, "/bucket/any", body)
            assert r.status == 503 and r.header("Retry-After") == "2", (method, r)
            assert r.json()["status"] == 503
        assert c.request_to(port, "GET", "/canonicalbucket/?prefix=a").status == 503
    finally:
        assert c.stop_extra(proc) == 0


def metrics(c, port=None):
    r = c.request("GET", "/metrics", port=port)
    assert r.status == 200 and r.header("Content-Type").startswith("text/plain; version=0.0.4"), r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            # the counters of every request and the two gauges; labelled
            # series (histograms, partitions) are test_metrics.py's
            if "{" not in name and (name.endswith("_total") or name in
                                    ("lazykv_http_connections", "lazykv_watches_waiting")):
                out[name] = int(value)
    return out


def test_metrics_count_every_response(c):
    before = metrics(c)
    assert c.request("POST", path("metrics/k"), b"12345").status == 201
    assert c.request("GET", path("metrics/k", True)).status == 200
    assert c.request("GET", path("metrics/missing", True)).status == 404
    assert c.request("PATCH", path("metrics/k")).status == 405
    after = metrics(c)
    delta = {k: after[k] - before[k] for k in before
             if k not in ("lazykv_http_connections", "lazykv_watches_waiting")}
    # the first /metrics response itself is counted once it is sent
    assert delta == {"lazykv_http_requests_total": 5, "lazykv_http_responses_2xx_total": 3,
                     "lazykv_http_responses_3xx_total": 0, "lazykv_http_responses_4xx_total": 2,
                     "lazykv_http_responses_5xx_total": 0, "lazykv_value_bytes_in_total": 5,
                     "lazykv_value_bytes_out_total": 5, "lazykv_db_reads_total": 2,
                     "lazykv_db_read_statements_total": 2, "lazykv_db_writes_total": 1,
                     "lazykv_db_write_batches_total": 1, "lazykv_db_copies_total": 0,
                     "lazykv_db_copy_statements_total": 0,
                     "lazykv_db_deadlock_retries_total": 0,
                     "lazykv_read_cache_hits_total": 0, "lazykv_watch_scans_total": 0,
                     "lazykv_watch_wakeups_total": 0}, delta
    assert after["lazykv_watches_waiting"] == 0
    assert after["lazykv_http_connections"] >= 1
    assert c.request("POST", "/metrics", b"").status == 405


def run_threads(fn, n):
    """Runs fn(0) .. fn(n - 1) in n threads at once; returns when all end."""
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_reads_share_statements_and_stay_exact(c):
    """GETs of one partition waiting at the same time are answered by one
    statement ([server] batch): every reply must still be exactly its
    own key's, whatever else was in the statement (the same key twice, a
    missing key, a tombstone, a value past the client library's 1 MiB)."""
    keys = {}
    for i in range(24):
        k = "batch/%d" % i
        v = os.urandom(i * 37) + k.encode()
        ctype = "application/x-batch-%d" % i
        assert c.request("POST", path(k), v, {"Content-Type": ctype}).status == 201
        keys[k] = (v, ctype)
    big = os.urandom((1 << 20) + 17)
    assert c.request("POST", path("batch/big"), big).status == 201
    keys["batch/big"] = (big, "application/octet-stream")
    empty = "batch/empty"
    assert c.request("POST", path(empty), b"", {"Content-Type": "text/plain"}).status == 201
    keys[empty] = (b"", "text/plain")
    assert c.request("POST", path("batch/gone"), b"x").status == 201
    assert c.request("DELETE", path("batch/gone", True)).status == 202
    keys["batch/gone"] = None
    keys["batch/never"] = None
    assert c.sync().returncode == 0
    names = sorted(keys)
    # One event loop, so that reads of a partition meet on one lane: with
    # the shared lazykvd's four they spread over four lanes a partition and
    # eight Python clients seldom overlap on one.
    proc, port, _ = c.extra_kvd({"threads": 1})
    try:
        reads_share_statements(c, port, keys, names)
    finally:
        c.stop_extra(proc)


def reads_share_statements(c, port, keys, names):
    before = metrics(c, port)
    failures = []
    done = []

    def reader(seed):
        for j in range(60):
            k = names[(seed * 7 + j * (seed + 1)) % len(names)]
            r = c.request("GET", path(k, canonical=j % 2 == 0), port=port)
            want = keys[k]
            if want is None:
                ok = r.status == 404
            else:
                ok = (r.status == 200 and r.body == want[0]
                      and r.header("Content-Type") == want[1])
            if not ok:
                failures.append((k, r.status, len(r.body)))
            done.append(k)
    run_threads(reader, 8)
    after = metrics(c, port)
    assert failures == [] and len(done) == 8 * 60, failures[:5]
    reads = after["lazykv_db_reads_total"] - before["lazykv_db_reads_total"]
    statements = after["lazykv_db_read_statements_total"] - before["lazykv_db_read_statements_total"]
    print("api: %d concurrent reads answered by %d statements" % (reads, statements))
    assert reads == 8 * 60, reads
    assert 0 < statements < reads, (statements, reads)


def test_concurrent_canonical_writes_share_statements_and_reach_every_partition(c):
    """The copies that canonical writes send to one partition at the same
    time go as one multi-row statement ([server] batch): each must still
    land whole, with its own version, and the newest write of a key must win
    on every partition (the version rule, whatever order the copies went in)."""
    # one event loop, as for reads: copies of a partition meet on one lane
    proc, port, _ = c.extra_kvd({"threads": 1})
    try:
        copies_share_statements(c, port)
    finally:
        c.stop_extra(proc)
    big_values_never_share_a_statement(c)


def copies_share_statements(c, port):
    before = metrics(c, port)
    last = {}           # key -> (version, value) of its newest acknowledged write
    lock = threading.Lock()
    failures = []

    def writer(seed):
        for j in range(30):
            k = "cbatch/%d" % ((seed * 30 + j) % 40)   # 40 keys, each written 6 times
            v = os.urandom(seed * 50 + j) + b"/%d/%d" % (seed, j)
            r = c.request("POST", path(k, True), v, port=port)
            if r.status != 201 or r.header("X-Lazykv-Replicas") != "3/3":
                failures.append((k, r.status, r.header("X-Lazykv-Replicas")))
                continue
            version = r.json()["version"]
            with lock:
                if k not in last or last[k][0] < version:
                    last[k] = (version, v)
    run_threads(writer, 8)
    after = metrics(c, port)
    assert failures == [], failures[:5]
    assert len(last) == 40
    for i in range(c.n):
        for k, (version, v) in last.items():
            assert c.row(i, k) == (v, version, 0), (i, k)
    copies = after["lazykv_db_copies_total"] - before["lazykv_db_copies_total"]
    statements = after["lazykv_db_copy_statements_total"] - before["lazykv_db_copy_statements_total"]
    print("api: %d concurrent copies written by %d statements" % (copies, statements))
    assert copies == 8 * 30 * (c.n - 1), copies
    assert 0 < statements < copies, (statements, copies)


def big_values_never_share_a_statement(c):
    """Large values at once: each is past the partitions' max_allowed_packet
    (4 MiB in tests, tools/cluster.sh), so each is streamed as 1 MiB chunks
    teed to every partition, and switched in a statement of its own."""
    big = {}
    failures = []

    def big_writer(i):
        k, v = "cbatch/big/%d" % i, os.urandom(12 << 20)
        r = c.request("POST", path(k, True), v, timeout=120)
        if r.status != 201 or r.header("X-Lazykv-Replicas") != "3/3":
            failures.append((k, r.status, r.header("X-Lazykv-Replicas")))
        else:
            big[k] = (v, r.json()["version"])
    run_threads(big_writer, 6)
    assert failures == [], failures
    for i in range(c.n):
        for k, (v, version) in big.items():
            kh = k.encode().hex()
            got = c.sql(i, "SELECT chunks, len, version, deleted FROM data "
                           "WHERE k = UNHEX('%s')" % kh)
            assert got == [[str(len(v) >> 20), str(len(v)), str(version), "0"]], (i, k, got)
            # compared by digest: the mariadb client cannot fetch MiBs of hex
            md5s = c.sql(i, "SELECT c.n, MD5(c.data) FROM data_chunks c JOIN data m"
                            " ON c.kh = UNHEX(SHA2(m.k, 256)) AND c.version = m.chunk_version"
                            " WHERE m.k = UNHEX('%s') ORDER BY c.n" % kh)
            want = [[str(n), hashlib.md5(v[n << 20:(n + 1) << 20]).hexdigest()]
                    for n in range(len(v) >> 20)]
            assert md5s == want, (i, k)
