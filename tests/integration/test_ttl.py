"""TTL and the index of a key (issue 10), through the request path.

POST/PUT ?ttl=SECONDS stores an expiry instant computed at the write; from
that instant the key is absent on every partition, lazy and canonical, and
its X-Lazykv-Index (its version while live) becomes max(version + 1,
expires_at): an index only ever increases.
"""
import calendar
import time

from harness import wait_for

BAD_TTLS = ["", "0", "1.5", "2s", "-1", "+5", " 5", "315360001", "abc", "1e3"]


def expires_us(text):
    """X-Lazykv-Expires ("2026-11-29T16:40:00.123Z") in microseconds."""
    assert len(text) == 24 and text.endswith("Z") and text[19] == ".", text
    secs = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000000 + int(text[20:23]) * 1000


def sql_expiry(c, i, key):
    rows = c.sql(i, "SELECT IFNULL(expires_at, 0) FROM data WHERE k = '%s'" % key)
    return int(rows[0][0]) if rows else None


def test_bad_ttl_values_are_400_and_write_nothing(c):
    key = "ttl/bad"
    for method in ("POST", "PUT"):
        for v in BAD_TTLS:
            r = c.request(method, "/canonicalbucket/%s?ttl=%s" % (key, v.replace(" ", "%20")),
                          b"x")
            assert r.status == 400, (method, v, r)
            assert b"ttl" in r.body, r.body
    r = c.request("POST", "/bucket/%s?ttl=315360000" % key, b"x")  # the largest is valid
    assert r.status == 201, r
    r = c.request("DELETE", "/canonicalbucket/%s?ttl=5" % key)
    assert r.status == 400, r
    r = c.request("PUT", "/canonicalbucket/%s?wait=0" % key, b"x")
    assert r.status == 400, r
    assert c.request("DELETE", "/canonicalbucket/" + key).status == 202


def test_a_key_expires_everywhere_at_its_instant(c):
    key = "ttl/expiring"
    w = c.request("POST", "/canonicalbucket/%s?ttl=1" % key, b"short-lived",
                  {"Content-Type": "text/plain"})
    t_after_write = time.time()
    assert w.status == 201 and w.header("X-Lazykv-Replicas") == "3/3", w
    exp = expires_us(w.header("X-Lazykv-Expires"))
    body = w.json()
    assert body["expires_at"] == w.header("X-Lazykv-Expires")
    version = body["version"]
    # One second after the write, at the master, on the clock of versions.
    assert 0 <= version + 1000000 - exp < 1000, (exp, version)
    assert exp <= t_after_write * 1e6 + 1000000 + 1000
    for i in range(c.n):  # copied with its expiry
        assert 0 <= sql_expiry(c, i, key) - exp < 1000, i
    g = c.request("GET", "/canonicalbucket/" + key, headers={"Accept": "application/json"})
    assert g.status == 200 and g.json()["expires_at"] == w.header("X-Lazykv-Expires"), g
    assert g.header("X-Lazykv-Index") == str(version)
    # Poll canonical and lazy reads: never absent before the instant, and
    # absent no later than 1 s after it.
    first_absent = None
    while True:
        t0 = time.time()
        path = ("/canonicalbucket/" if int(t0 * 100) % 2 else "/bucket/") + key
        r = c.request("GET", path)
        t1 = time.time()
        if r.status == 200:
            assert r.body == b"short-lived"
            assert t0 * 1e6 < exp + 2000, "served %.3f s after its expiry" % (t0 - exp / 1e6)
            assert r.header("X-Lazykv-Expires") is not None
        else:
            assert r.status == 404, r
            assert t1 * 1e6 > exp - 2000, "absent %.3f s before its expiry" % (exp / 1e6 - t1)
            first_absent = first_absent or t1
            if t1 * 1e6 > exp + 200000:
                break
        assert t0 * 1e6 < exp + 1000000, "still present 1 s after its expiry"
        time.sleep(0.01)
    index = str(max(version + 1, sql_expiry(c, body["master"], key)))  # µs, not ms
    # Absent on every partition, with the expired index.
    seen = set()
    for _ in range(60):
        r = c.request("GET", "/bucket/" + key)
        assert r.status == 404 and r.header("X-Lazykv-Index") == index, (r, index)
        seen.add(r.header("X-Lazykv-Partition"))
        h = c.request("HEAD", "/bucket/" + key)
        assert h.status == 404 and h.header("X-Lazykv-Index") == index, h
    assert seen == {"0", "1", "2"}, seen
    r = c.request("GET", "/canonicalbucket/" + key)
    assert r.status == 404 and r.header("X-Lazykv-Index") == index, r
    # Not listed, lazily or canonically.
    for b in ("bucket", "canonicalbucket"):
        lst = c.request("GET", "/%s/?prefix=ttl/expiring" % b)
        assert lst.status == 200 and lst.json()["keys"] == [], lst
    # Preconditions see it absent: If-Match fails, DELETE is 404, and
    # If-None-Match: * creates it again with a higher index.
    etag = w.header("ETag")
    r = c.request("PUT", "/canonicalbucket/" + key, b"x", {"If-Match": etag})
    assert r.status == 412, r
    r = c.request("DELETE", "/canonicalbucket/" + key)
    assert r.status == 404, r
    r = c.request("DELETE", "/canonicalbucket/" + key, headers={"If-Match": "*"})
    assert r.status in (404, 412), r
    r = c.request("PUT", "/canonicalbucket/" + key, b"again", {"If-None-Match": "*"})
    assert r.status == 201 and r.header("X-Lazykv-Expires") is None, r
    assert r.json()["version"] > int(index), (r.json(), index)
    g = c.request("GET", "/canonicalbucket/" + key)
    assert g.status == 200 and g.body == b"again" and g.header("X-Lazykv-Expires") is None
    assert c.request("DELETE", "/canonicalbucket/" + key).status == 202


def test_blind_post_over_an_expired_key_gets_a_higher_index(c):
    key = "ttl/blind"
    w = c.request("POST", "/bucket/%s?ttl=1" % key, b"a")
    assert w.status == 201, w
    exp = expires_us(w.header("X-Lazykv-Expires"))
    wait_for(lambda: c.request("GET", "/canonicalbucket/" + key).status == 404, 3,
             "expiry")
    r = c.request("POST", "/bucket/" + key, b"b")
    assert r.status == 201 and r.json()["version"] > max(w.json()["version"] + 1, exp), r
    assert c.request("DELETE", "/canonicalbucket/" + key).status == 202


def test_refresh_extends_the_expiry_and_keeps_the_value(c):
    key = "ttl/refresh"
    w = c.request("PUT", "/canonicalbucket/%s?ttl=5" % key, b"lock-owner",
                  {"Content-Type": "text/x-owner"})
    assert w.status == 201, w
    exp1 = expires_us(w.header("X-Lazykv-Expires"))
    etag = w.header("ETag")
    # Wrong uses of refresh.
    assert c.request("PUT", "/canonicalbucket/%s?ttl=5&refresh=1" % key, b"body").status == 400
    assert c.request("PUT", "/canonicalbucket/%s?refresh=1" % key, b"").status == 400
    assert c.request("POST", "/canonicalbucket/%s?ttl=5&refresh=1" % key, b"").status == 400
    assert c.request("PUT", "/canonicalbucket/%s?ttl=5&refresh=2" % key, b"").status == 400
    assert c.request("PUT", "/canonicalbucket/ttl/nobody?ttl=5&refresh=1", b"").status == 404
    r = c.request("PUT", "/canonicalbucket/%s?ttl=50&refresh=1" % key, b"",
                  {"If-Match": '"0000000000000001"'})
    assert r.status == 412, r
    # The right one, with the fencing token.
    r = c.request("PUT", "/canonicalbucket/%s?ttl=50&refresh=1" % key, b"", {"If-Match": etag})
    assert r.status == 200 and r.json()["result"] == "refreshed", r
    exp2 = expires_us(r.header("X-Lazykv-Expires"))
    assert exp2 >= exp1 + 44000000, (exp1, exp2)
    v2 = r.json()["version"]
    assert v2 > w.json()["version"]
    g = c.request("GET", "/canonicalbucket/" + key)
    assert g.status == 200 and g.body == b"lock-owner", g
    assert g.header("Content-Type") == "text/x-owner"
    assert g.header("X-Lazykv-Index") == str(v2)
    assert expires_us(g.header("X-Lazykv-Expires")) == exp2
    # Lazy reads see the refresh after the next sync pass.
    assert c.sync().returncode == 0
    for i in range(c.n):
        assert c.row(i, key) == (b"lock-owner", v2, 0)
    assert c.request("DELETE", "/canonicalbucket/" + key,
                     headers={"If-Match": r.header("ETag")}).status == 202


def test_a_write_without_ttl_clears_the_expiry(c):
    key = "ttl/cleared"
    w = c.request("POST", "/canonicalbucket/%s?ttl=100" % key, b"a")
    assert w.status == 201 and w.header("X-Lazykv-Expires"), w
    master = w.json()["master"]
    assert sql_expiry(c, master, key) > 0
    r = c.request("POST", "/canonicalbucket/" + key, b"b")
    assert r.status == 201 and r.header("X-Lazykv-Expires") is None, r
    assert "expires_at" not in r.json()
    for i in range(c.n):
        assert sql_expiry(c, i, key) == 0, i
    g = c.request("GET", "/canonicalbucket/" + key, headers={"Accept": "application/json"})
    assert g.status == 200 and "expires_at" not in g.json(), g
    assert c.request("DELETE", "/canonicalbucket/" + key).status == 202


def test_index_never_decreases_across_writes_deletes_and_purges(c):
    key = "index/walk"
    r = c.request("GET", "/canonicalbucket/" + key)
    assert r.status == 404 and r.header("X-Lazykv-Index") == "0", r
    seen = []
    for step in range(3):
        w = c.request("POST", "/canonicalbucket/" + key, b"v%d" % step)
        assert w.status == 201
        g = c.request("GET", "/canonicalbucket/" + key)
        assert g.header("X-Lazykv-Index") == str(w.json()["version"])
        seen.append(int(g.header("X-Lazykv-Index")))
    d = c.request("DELETE", "/canonicalbucket/" + key)
    assert d.status == 202
    g = c.request("GET", "/canonicalbucket/" + key)
    assert g.status == 404 and g.header("X-Lazykv-Index") == str(d.json()["version"]), g
    seen.append(int(g.header("X-Lazykv-Index")))
    # The sync (tombstone_grace = 0 here) purges the tombstone: the index is
    # 0 again, and a new write is above every index the key had.
    assert c.sync().returncode == 0
    assert c.sync().returncode == 0
    g = c.request("GET", "/canonicalbucket/" + key)
    assert g.status == 404 and g.header("X-Lazykv-Index") == "0", g
    w = c.request("POST", "/canonicalbucket/" + key, b"back")
    seen.append(w.json()["version"])
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen
    assert c.request("DELETE", "/canonicalbucket/" + key).status == 202
