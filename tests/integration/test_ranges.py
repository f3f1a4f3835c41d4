"""Byte ranges on GET of a key (issue 14): Range, If-Range, 206, 416,
Accept-Ranges, on the lazy and the canonical path.

Values are written canonically, so every partition holds them and a lazy
read answers the same whichever partition it reaches. Every answer is
checked to the byte: status, body, Content-Length, Content-Range.
"""
import base64
import hashlib
import json
import os
import urllib.parse

VALUE = b"0123456789abcdefghij"  # 20 bytes


def path(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + urllib.parse.quote(key, safe="/")


def put(c, key, value, ctype="application/octet-stream"):
    r = c.request("PUT", path(key, True), value, {"Content-Type": ctype})
    assert r.status in (200, 201), r
    assert r.header("X-Lazykv-Replicas") == "%d/%d" % (c.n, c.n), r
    return r.header("ETag")


def repr_digest(value):
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(value).digest()).decode()


def get(c, key, rng=None, canonical=False, method="GET", **headers):
    h = dict(headers)
    if rng is not None:
        h["Range"] = rng
    return c.request(method, path(key, canonical), headers=h)


def check_206(r, value, first, last, etag):
    assert r.status == 206, r
    assert r.body == value[first:last + 1], (r.body, first, last)
    assert r.header("Content-Length") == str(last - first + 1), r
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (first, last, len(value)), r
    assert r.header("Accept-Ranges") == "bytes", r
    assert r.header("ETag") == etag, r
    # the digest of the whole value, not of the part (RFC 9530 Repr-Digest)
    assert r.header("Repr-Digest") == repr_digest(value), r


def check_whole(r, value, etag):
    assert r.status == 200, r
    assert r.body == value, r
    assert r.header("Content-Length") == str(len(value)), r
    assert r.header("Content-Range") is None, r
    assert r.header("Accept-Ranges") == "bytes", r
    assert r.header("ETag") == etag, r


def check_416(r, length):
    assert r.status == 416, r
    assert r.header("Content-Range") == "bytes */%d" % length, r
    assert r.header("Accept-Ranges") == "bytes", r
    assert r.header("Content-Type") == "application/problem+json", r
    doc = json.loads(r.body)
    assert doc["status"] == 416 and doc["title"] == "Range Not Satisfiable", doc


def test_the_three_forms_at_the_edges(c):
    etag = put(c, "ranges/edges", VALUE, "text/plain")
    n = len(VALUE)
    cases = [
        ("bytes=0-0", 0, 0),            # the first byte
        ("bytes=19-19", 19, 19),        # the last byte
        ("bytes=5-9", 5, 9),
        ("bytes=0-19", 0, 19),          # all of it, still a part
        ("bytes=0-", 0, 19),
        ("bytes=7-", 7, 19),
        ("bytes=19-", 19, 19),
        ("bytes=15-100", 15, 19),       # past the end: cut to the last byte
        ("bytes=0-18446744073709551616", 0, 19),
        ("bytes=-1", 19, 19),           # a suffix: the last byte
        ("bytes=-5", 15, 19),
        ("bytes=-20", 0, 19),
        ("bytes=-1000", 0, 19),         # a suffix longer than the value: all of it
        ("BYTES=2-3", 2, 3),            # the unit is case-insensitive
        (" bytes=2-3 ", 2, 3),
    ]
    for canonical in (False, True):
        for rng, first, last in cases:
            r = get(c, "ranges/edges", rng, canonical)
            check_206(r, VALUE, first, last, etag)
            assert r.header("Content-Type") == "text/plain", r
    assert n == 20


def test_unsatisfiable_is_416_with_the_length(c):
    put(c, "ranges/416", VALUE)
    for canonical in (False, True):
        for rng in ("bytes=20-", "bytes=20-25", "bytes=100-", "bytes=-0",
                    "bytes=18446744073709551616-", "bytes=20-21, 30-"):
            check_416(get(c, "ranges/416", rng, canonical), len(VALUE))


def test_zero_length_value(c):
    etag = put(c, "ranges/empty", b"")
    for canonical in (False, True):
        check_whole(get(c, "ranges/empty", None, canonical), b"", etag)
        # no byte to send: 416 for every first-pos
        for rng in ("bytes=0-0", "bytes=0-", "bytes=-0"):
            check_416(get(c, "ranges/empty", rng, canonical), 0)
        # a suffix asks for the whole empty value, which no Content-Range
        # can describe: 200 with the empty body
        check_whole(get(c, "ranges/empty", "bytes=-5", canonical), b"", etag)


def test_malformed_or_other_units_are_ignored(c):
    etag = put(c, "ranges/malformed", VALUE)
    for rng in ("bytes=5-3", "bytes=abc", "bytes=", "bytes", "items=0-1", "bytes 0-1",
                "bytes=0 -1", "bytes=+1-2", "bytes=--1", "bytes=1-2-3", "bytes=0x1-2", ""):
        for canonical in (False, True):
            check_whole(get(c, "ranges/malformed", rng, canonical), VALUE, etag)


def test_several_ranges_answer_the_whole_value(c):
    etag = put(c, "ranges/several", VALUE)
    for rng in ("bytes=0-1,4-5", "bytes=0-1, 4-5", "bytes=-1,0-0", "bytes=0-0,100-"):
        for canonical in (False, True):
            check_whole(get(c, "ranges/several", rng, canonical), VALUE, etag)


def test_if_range(c):
    old = put(c, "ranges/ifrange", b"old value, long enough")
    etag = put(c, "ranges/ifrange", VALUE)
    assert old != etag
    for canonical in (False, True):
        # the current strong ETag: the range
        check_206(get(c, "ranges/ifrange", "bytes=2-4", canonical, **{"If-Range": etag}),
                  VALUE, 2, 4, etag)
        # a stale ETag, a weak one, a date: the whole value
        g = get(c, "ranges/ifrange", None, canonical)
        for validator in (old, "W/" + etag, g.header("Last-Modified"),
                          '"0000000000000001"', "garbage"):
            r = get(c, "ranges/ifrange", "bytes=2-4", canonical, **{"If-Range": validator})
            check_whole(r, VALUE, etag)
        # a stale If-Range ignores even an unsatisfiable range
        check_whole(get(c, "ranges/ifrange", "bytes=500-", canonical, **{"If-Range": old}),
                    VALUE, etag)
        check_416(get(c, "ranges/ifrange", "bytes=500-", canonical, **{"If-Range": etag}),
                  len(VALUE))
        # If-Range without Range: nothing to do
        check_whole(get(c, "ranges/ifrange", None, canonical, **{"If-Range": old}),
                    VALUE, etag)


def test_preconditions_come_first(c):
    etag = put(c, "ranges/precond", VALUE)
    for canonical in (False, True):
        r = get(c, "ranges/precond", "bytes=2-4", canonical, **{"If-None-Match": etag})
        assert r.status == 304 and r.body == b"", r
        assert r.header("Accept-Ranges") == "bytes", r
        assert r.header("Content-Range") is None, r
        r = get(c, "ranges/precond", "bytes=500-", canonical, **{"If-Match": '"0000000000000001"'})
        assert r.status == 412, r
        check_206(get(c, "ranges/precond", "bytes=2-4", canonical, **{"If-Match": etag}),
                  VALUE, 2, 4, etag)
        r = get(c, "ranges/missing", "bytes=0-1", canonical)
        assert r.status == 404 and r.header("Content-Range") is None, r


def test_head_ignores_range(c):
    etag = put(c, "ranges/head", VALUE, "text/plain")
    for canonical in (False, True):
        for rng in ("bytes=2-4", "bytes=500-", "bytes=-0"):
            r = get(c, "ranges/head", rng, canonical, method="HEAD")
            assert r.status == 200 and r.body == b"", r
            assert r.header("Content-Length") == str(len(VALUE)), r
            assert r.header("Content-Range") is None, r
            assert r.header("Accept-Ranges") == "bytes", r
            assert r.header("ETag") == etag, r


def test_documents_ignore_range_and_raw_honours_it(c):
    etag = put(c, "ranges/doc", VALUE, "text/plain")
    for canonical in (False, True):
        r = get(c, "ranges/doc", "bytes=2-4", canonical, Accept="application/json")
        assert r.status == 200, r
        assert r.header("Content-Type") == "application/json", r
        assert r.header("Content-Range") is None, r
        assert r.header("Accept-Ranges") == "bytes", r
        assert json.loads(r.body)["value"] == VALUE.decode(), r
        r = get(c, "ranges/doc", "bytes=500-", canonical, Accept="text/html")
        assert r.status == 200 and r.header("Content-Type").startswith("text/html"), r
        # ?raw=1 serves the value itself: ranges apply
        r = c.request("GET", path("ranges/doc", canonical) + "?raw=1",
                      headers={"Range": "bytes=-3", "Accept": "text/html"})
        check_206(r, VALUE, 17, 19, etag)


def test_a_range_of_a_large_binary_value(c):
    value = os.urandom(3 * 1024 * 1024 + 17)
    etag = put(c, "ranges/large", value)
    n = len(value)
    for canonical in (False, True):
        for first, last in ((0, 0), (1 << 20, (2 << 20) - 1), (n - 1, n - 1), (12345, n - 1)):
            check_206(get(c, "ranges/large", "bytes=%d-%d" % (first, last), canonical),
                      value, first, last, etag)
        check_206(get(c, "ranges/large", "bytes=-%d" % (n - 5), canonical), value, 5, n - 1, etag)
        check_whole(get(c, "ranges/large", None, canonical), value, etag)


MIB = 1 << 20  # chunks.h: CHUNKS_SIZE, where a value starts to be stored in chunks


def test_ranges_across_chunk_boundaries(c):
    # Values of one chunk, one chunk + 1 byte and three chunks and a bit:
    # inline, or (once large values are chunked) read chunk by chunk. Every
    # range that starts, ends or straddles a boundary is the exact bytes.
    for size in (MIB, MIB + 1, 3 * MIB + 3):
        value = os.urandom(size)
        key = "ranges/chunks-%d" % size
        etag = put(c, key, value)
        spans = [(0, 0), (MIB - 1, MIB - 1), (MIB - 1, min(MIB, size - 1)), (size - 1, size - 1),
                 (0, MIB - 1), (1, size - 2)]
        if size > 2 * MIB:
            spans += [(MIB, MIB), (MIB, 2 * MIB - 1), (MIB - 10, 2 * MIB + 10),
                      (2 * MIB, size - 1), (3 * MIB, size - 1)]
        for canonical in (False, True):
            for first, last in spans:
                check_206(get(c, key, "bytes=%d-%d" % (first, last), canonical),
                          value, first, last, etag)
            check_206(get(c, key, "bytes=-%d" % (MIB + 1), canonical),
                      value, max(0, size - MIB - 1), size - 1, etag)
            check_416(get(c, key, "bytes=%d-" % size, canonical), size)
            r = get(c, key, None, canonical)
            check_whole(r, value, etag)
            assert r.header("Repr-Digest") == repr_digest(value), r
