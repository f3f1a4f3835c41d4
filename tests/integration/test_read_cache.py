"""The optional lazy read cache ([server] read_cache_ms, issue 9).

A lazy GET of a key read less than read_cache_ms ago is answered from
lazykvd's memory (X-Lazykv-Cache: hit): it may be older than the partitions
by at most read_cache_ms. A write through the same lazykvd invalidates the
key at once; canonical GETs never use the cache.
"""
import re
import time

from harness import wait_for

TTL_S = 1.0


def hits(c, port):
    body = c.request_to(port, "GET", "/metrics").body.decode()
    return int(re.search(r"(?m)^lazykv_read_cache_hits_total (\d+)$", body).group(1))


def set_everywhere_in_sql(c, key, value, version):
    """Changes key on every partition behind lazykvd's back."""
    for i in range(c.n):
        c.sql(i, "UPDATE data SET v = '%s', version = %d WHERE k = '%s'" % (value, version, key))


def test_cached_reads_are_never_older_than_read_cache_ms(c):
    proc, port, _ = c.extra_kvd({"read_cache_ms": int(TTL_S * 1000), "threads": 1})
    try:
        key = "cache/bound"
        w = c.request_to(port, "POST", "/canonicalbucket/" + key, b"one")
        assert w.status == 201 and w.header("X-Lazykv-Replicas") == "3/3", w
        version = w.json()["version"]
        first = c.request_to(port, "GET", "/bucket/" + key)
        t_read = time.monotonic()  # the value was read before this instant
        assert first.status == 200 and first.body == b"one" and first.header("X-Lazykv-Cache") is None
        h0 = hits(c, port)
        second = c.request_to(port, "GET", "/bucket/" + key)
        assert second.status == 200 and second.body == b"one", second
        assert second.header("X-Lazykv-Cache") == "hit", second.headers
        assert second.header("ETag") == first.header("ETag")
        assert hits(c, port) == h0 + 1
        # The partitions change behind lazykvd's back: the cache may serve the
        # old value, but never once read_cache_ms has passed since it was read.
        set_everywhere_in_sql(c, key, "two", version + 1)
        stale = 0
        while True:
            t0 = time.monotonic()
            g = c.request_to(port, "GET", "/bucket/" + key)
            assert g.status == 200, g
            if g.body == b"two":
                assert g.header("X-Lazykv-Cache") is None, g.headers
                break
            assert g.body == b"one" and g.header("X-Lazykv-Cache") == "hit", g
            assert t0 - t_read < TTL_S, "a cached answer %.3f s after the read" % (t0 - t_read)
            stale += 1
        took = time.monotonic() - t_read
        print("cache: %d cached answers, fresh again %.2f s after the read (read_cache_ms %d)"
              % (stale, took, TTL_S * 1000))
        assert stale > 0
        # canonical reads never come from the cache
        cg = c.request_to(port, "GET", "/canonicalbucket/" + key)
        assert cg.body == b"two" and cg.header("X-Lazykv-Cache") is None
    finally:
        assert c.stop_extra(proc) == 0


def test_a_write_through_the_same_lazykvd_invalidates_at_once(c):
    proc, port, _ = c.extra_kvd({"read_cache_ms": 60000, "threads": 1})
    try:
        key = "cache/inval"
        assert c.request_to(port, "PUT", "/canonicalbucket/" + key, b"before").status == 201
        assert c.request_to(port, "GET", "/bucket/" + key).body == b"before"
        wait_for(lambda: c.request_to(port, "GET", "/bucket/" + key).header("X-Lazykv-Cache")
                 == "hit", what="the value to be cached")
        for i, method in enumerate(("PUT", "POST", "PUT")):
            value = b"after %d" % i
            w = c.request_to(port, method, "/canonicalbucket/" + key, value)
            assert w.status in (200, 201) and w.header("X-Lazykv-Replicas") == "3/3", w
            for _ in range(5):
                g = c.request_to(port, "GET", "/bucket/" + key)
                assert g.status == 200 and g.body == value, (g, value)
                assert g.header("ETag") == w.header("ETag")
        d = c.request_to(port, "DELETE", "/canonicalbucket/" + key)
        assert d.status == 202 and d.header("X-Lazykv-Replicas") == "3/3", d
        for _ in range(5):
            assert c.request_to(port, "GET", "/bucket/" + key).status == 404
        # a HEAD of a cached value has the value's length and no body
        assert c.request_to(port, "PUT", "/canonicalbucket/" + key, b"12345").status == 201
        c.request_to(port, "GET", "/bucket/" + key)
        h = c.request_to(port, "HEAD", "/bucket/" + key)
        assert h.status == 200 and h.body == b"" and h.header("Content-Length") == "5", h
    finally:
        assert c.stop_extra(proc) == 0


def test_cache_off_by_default(c):
    key = "cache/off"
    assert c.request("POST", "/canonicalbucket/" + key, b"x").status == 201
    for _ in range(5):
        g = c.request("GET", "/bucket/" + key)
        assert g.status == 200 and g.header("X-Lazykv-Cache") is None
