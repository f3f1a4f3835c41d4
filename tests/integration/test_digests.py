"""Digests (issue 14, RFC 9530): Repr-Digest on reads and writes, and the
digests a write sends (Content-Digest, Repr-Digest, Content-MD5) checked
against its body: a mismatch stores nothing and says which digest failed.
"""
import base64
import hashlib
import json
import os
import urllib.parse

import harness


def path(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + urllib.parse.quote(key, safe="/")


def b64(data):
    return base64.b64encode(data).decode()


def sf(alg, data):
    """A structured-field dictionary member: alg=:BASE64:."""
    return "%s=:%s:" % (alg, b64(data))


def repr_digest(value):
    return sf("sha-256", hashlib.sha256(value).digest())


def test_writes_and_reads_carry_repr_digest(c):
    value = os.urandom(100000)
    want = repr_digest(value)
    for canonical in (False, True):
        key = "digests/rw-%d" % canonical
        r = c.request("POST", path(key, canonical), value)
        assert r.status == 201, r
        assert r.header("Repr-Digest") == want, r
        r = c.request("PUT", path(key, canonical), value)
        assert r.status == 200 and r.json()["result"] == "replaced", r
        assert r.header("Repr-Digest") == want, r
        etag = r.header("ETag")
        g = c.request("GET", path(key, True))
        assert g.status == 200 and g.body == value, g
        assert g.header("Repr-Digest") == want, g
        assert g.header("ETag") == etag, g
        # a part carries the digest of the whole value
        g = c.request("GET", path(key, True), headers={"Range": "bytes=10-19"})
        assert g.status == 206 and g.body == value[10:20], g
        assert g.header("Repr-Digest") == want, g
    # an empty value has a digest too
    r = c.request("PUT", path("digests/empty", True), b"")
    assert r.header("Repr-Digest") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", r
    g = c.request("GET", path("digests/empty", True))
    assert g.status == 200 and g.header("Repr-Digest") == r.header("Repr-Digest"), g


def test_lazy_reads_carry_repr_digest(c):
    value = b"replicated everywhere"
    assert c.request("PUT", path("digests/lazy", True), value).status == 201
    for _ in range(12):
        g = c.request("GET", path("digests/lazy"))
        assert g.status == 200 and g.body == value, g
        assert g.header("Repr-Digest") == repr_digest(value), g


def test_documents_carry_no_repr_digest_of_the_value(c):
    # Repr-Digest describes the representation sent: the JSON document is
    # not the value, so it carries none (rather than the value's)
    c.request("PUT", path("digests/doc", True), b"text", {"Content-Type": "text/plain"})
    g = c.request("GET", path("digests/doc", True), headers={"Accept": "application/json"})
    assert g.status == 200 and g.header("Content-Type") == "application/json", g
    assert g.header("Repr-Digest") is None, g


def test_head_carries_repr_digest(c):
    # A HEAD reads no value: the digest comes from the row (the storage
    # layer's stored digest). Passes once reads fill record.has_digest.
    value = b"head of a value"
    c.request("PUT", path("digests/head", True), value)
    for canonical in (False, True):
        h = c.request("HEAD", path("digests/head", canonical))
        assert h.status == 200 and h.header("Content-Length") == str(len(value)), h
        assert h.header("Repr-Digest") == repr_digest(value), h


def wrong(alg):
    return hashlib.new(alg, b"not the body").digest()


# (headers of a write whose body is BODY, the name the problem document gives)
BODY = b"the new value"
MISMATCHES = [
    ({"Content-Digest": sf("sha-256", wrong("sha256"))}, "Content-Digest sha-256"),
    ({"Content-Digest": sf("sha-512", wrong("sha512"))}, "Content-Digest sha-512"),
    ({"Repr-Digest": sf("sha-256", wrong("sha256"))}, "Repr-Digest sha-256"),
    ({"Repr-Digest": sf("sha-512", wrong("sha512"))}, "Repr-Digest sha-512"),
    ({"Content-MD5": b64(wrong("md5"))}, "Content-MD5"),
    # one right and one wrong: the wrong one is named
    ({"Content-Digest": "%s, %s" % (sf("sha-256", hashlib.sha256(BODY).digest()),
                                    sf("sha-512", wrong("sha512")))}, "Content-Digest sha-512"),
    ({"Content-Digest": sf("sha-256", hashlib.sha256(BODY).digest()),
      "Content-MD5": b64(wrong("md5"))}, "Content-MD5"),
]


def test_a_mismatch_on_each_algorithm_stores_nothing(c):
    for canonical in (False, True):
        key = "digests/mismatch-%d" % canonical
        r = c.request("PUT", path(key, True), b"the old value")
        assert r.status in (200, 201), r
        old_etag = r.header("ETag")
        for method in ("POST", "PUT"):
            for headers, name in MISMATCHES:
                r = c.request(method, path(key, canonical), BODY, headers)
                assert r.status == 400, (method, headers, r)
                assert r.header("Content-Type") == "application/problem+json", r
                doc = r.json()
                assert doc["status"] == 400, doc
                assert doc["detail"] == ("the body does not match its %s; nothing was written"
                                         % name), doc
                assert r.header("ETag") is None and r.header("Repr-Digest") is None, r
                g = c.request("GET", path(key, True))
                assert g.status == 200 and g.body == b"the old value", g
                assert g.header("ETag") == old_etag, g
        for p in range(c.n):
            assert c.row(p, key)[0] == b"the old value"


def test_a_mismatch_on_a_new_key_creates_nothing(c):
    r = c.request("PUT", path("digests/never", True), BODY,
                  {"Content-Digest": sf("sha-256", wrong("sha256"))})
    assert r.status == 400, r
    assert c.request("GET", path("digests/never", True)).status == 404
    for p in range(c.n):
        assert c.row(p, "digests/never") is None


def test_matching_digests_store(c):
    body = os.urandom(70000)
    good = {
        "Content-Digest": "%s, %s" % (sf("sha-256", hashlib.sha256(body).digest()),
                                      sf("sha-512", hashlib.sha512(body).digest())),
        "Repr-Digest": sf("sha-512", hashlib.sha512(body).digest()) + ", "
                       + sf("sha-256", hashlib.sha256(body).digest()),
        "Content-MD5": b64(hashlib.md5(body).digest()),
    }
    for canonical in (False, True):
        key = "digests/good-%d" % canonical
        for headers in ({name: value} for name, value in good.items()):
            r = c.request("PUT", path(key, canonical), body, headers)
            assert r.status in (200, 201), (headers, r)
            assert r.header("Repr-Digest") == repr_digest(body), r
        r = c.request("POST", path(key, canonical), body, good)
        assert r.status == 201, r
        etag = r.header("ETag")
        g = c.request("GET", path(key, True))
        assert g.status == 200 and g.body == body and g.header("ETag") == etag, g


def test_unknown_algorithms_are_ignored(c):
    # RFC 9530 lets a recipient ignore algorithms it does not support
    body = b"only known algorithms are checked"
    for headers in ({"Content-Digest": "md5=:AAAAAAAAAAAAAAAAAAAAAA==:"},
                    {"Content-Digest": "crc32c=:AAAAAA==:, unixsum=:AAA=:"},
                    {"Repr-Digest": "sha=:AAAA:"},
                    {"Content-Digest": ""}):
        r = c.request("PUT", path("digests/unknown", True), body, headers)
        assert r.status in (200, 201), (headers, r)
        assert r.header("Repr-Digest") == repr_digest(body), r


def test_malformed_digest_fields_are_400_and_store_nothing(c):
    c.request("PUT", path("digests/malformed", True), b"kept")
    for headers in ({"Content-Digest": "sha-256=abc"},
                    {"Content-Digest": "sha-256=:AAAA:"},              # not 32 bytes
                    {"Content-Digest": "sha-512=:%s:" % b64(b"x" * 32)},
                    {"Content-Digest": "sha-256=:%s" % b64(b"x" * 32)},
                    {"Content-Digest": "SHA-256=:%s:" % b64(b"x" * 32)},  # keys are lowercase
                    {"Repr-Digest": "sha-256"},                      # a boolean, not bytes
                    {"Repr-Digest": "sha-256=:!!!:"},
                    {"Content-MD5": "not base64"},
                    {"Content-MD5": b64(b"x" * 15)}):
        for method in ("POST", "PUT"):
            r = c.request(method, path("digests/malformed"), b"replacement", headers)
            assert r.status == 400, (headers, r)
            assert r.json()["status"] == 400 and r.json()["detail"], r
        g = c.request("GET", path("digests/malformed", True))
        assert g.status == 200 and g.body == b"kept", (headers, g)


def test_a_malformed_digest_is_refused_before_the_body(c):
    # The headers alone decide: the answer comes while the body (1000
    # bytes announced, none sent) is still awaited, and the connection is
    # then closed.
    head = ("PUT /bucket/digests/early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            "Content-Digest: sha-256=:AAAA:\r\n\r\n").encode()
    out = harness.raw_exchange(c.http_port, head)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert b"Content-Digest" in out.split(b"\r\n\r\n", 1)[1], out
    assert c.request("GET", path("digests/early", True)).status == 404


def test_a_chunked_body_over_max_value_size_with_a_digest_is_413(c):
    # The 413 path: the body passes max_value_size (16 MiB here) while it
    # arrives; the rest is discarded unhashed and the answer is 413 (not a
    # 400 for a digest of bytes nobody kept), storing nothing.
    piece = b"y" * (1 << 20)
    body = piece * 17
    head = ("PUT /bucket/digests/toolarge HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\nContent-Digest: %s\r\n\r\n"
            % sf("sha-256", hashlib.sha256(body).digest())).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(17)) + b"0\r\n\r\n"
    out = harness.raw_exchange(c.http_port, head + chunks)
    assert out.startswith(b"HTTP/1.1 413 "), out[:200]
    assert c.request("GET", path("digests/toolarge", True)).status == 404


def test_digests_on_a_refresh_and_a_delete(c):
    value = b"lives a while"
    r = c.request("PUT", path("digests/ttl", True) + "?ttl=600", value)
    assert r.status == 201 and r.header("Repr-Digest") == repr_digest(value), r
    # a refresh keeps the value: no digest of its empty body is claimed
    r = c.request("PUT", path("digests/ttl", True) + "?ttl=600&refresh=1", b"")
    assert r.status == 200 and r.json()["result"] == "refreshed", r
    assert r.header("Repr-Digest") in (None, repr_digest(value)), r
    g = c.request("GET", path("digests/ttl", True))
    assert g.body == value and g.header("Repr-Digest") == repr_digest(value), g
    d = c.request("DELETE", path("digests/ttl", True))
    assert d.status == 202 and d.header("Repr-Digest") is None, d
    # digest fields on a GET or DELETE are not checked (there is no body to store)
    c.request("PUT", path("digests/ttl", True), value)
    g = c.request("GET", path("digests/ttl", True), headers={"Content-Digest": "garbage"})
    assert g.status == 200, g
    d = c.request("DELETE", path("digests/ttl", True), headers={"Content-MD5": "garbage"})
    assert d.status == 202, d
    assert json.loads(d.body)["result"] == "deleted"
    # nor where nothing is stored: the route's own answer comes first
    r = c.request("POST", "/health", b"x", {"Content-Digest": "garbage"})
    assert r.status == 405, r
    r = c.request("POST", "/bucket/", b"x", {"Content-MD5": "garbage"})
    assert r.status == 400 and "key is empty" in r.json()["detail"], r


def test_a_digest_field_on_several_lines_is_one_dictionary(c):
    # RFC 9110 5.3: the lines of a field make one list; a member on the
    # second line is checked as well as one on the first.
    body = b"two lines of digests"
    c.request("PUT", path("digests/lines", True), b"before")

    def put(lines):
        head = "PUT /bucket/digests/lines HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" \
               "Content-Length: %d\r\n%s\r\n" % (len(body), "".join(l + "\r\n" for l in lines))
        out = harness.raw_exchange(c.http_port, head.encode() + body)
        status = int(out.split(b" ", 2)[1])
        return status, out.split(b"\r\n\r\n", 1)[1]
    good256 = "Content-Digest: " + sf("sha-256", hashlib.sha256(body).digest())
    bad512 = "Content-Digest: " + sf("sha-512", wrong("sha512"))
    status, doc = put([good256, bad512])
    assert status == 400, (status, doc)
    assert json.loads(doc)["detail"] == \
        "the body does not match its Content-Digest sha-512; nothing was written", doc
    assert c.request("GET", path("digests/lines", True)).body == b"before"
    good512 = "Repr-Digest: " + sf("sha-512", hashlib.sha512(body).digest())
    status, doc = put([good256, "Repr-Digest: " + sf("sha-256", hashlib.sha256(body).digest()),
                       good512])
    assert status == 200, (status, doc)
    assert c.request("GET", path("digests/lines", True)).body == body
    # two Content-MD5 lines are not one base64 value
    status, doc = put(["Content-MD5: " + b64(hashlib.md5(body).digest())] * 2)
    assert status == 400, (status, doc)


def test_large_bodies_are_checked_whole(c):
    # Bodies past one chunk (1 MiB; streamed to the database once large
    # values are chunked): every byte is hashed, a mismatch stores nothing.
    old = os.urandom((1 << 20) + 1)
    r = c.request("PUT", path("digests/large", True), old)
    assert r.status in (200, 201) and r.header("Repr-Digest") == repr_digest(old), r
    old_etag = r.header("ETag")
    new = os.urandom(3 * (1 << 20) + 5)
    for headers, name in ((
            {"Content-Digest": sf("sha-256", hashlib.sha256(new[:-1]).digest())},
            "Content-Digest sha-256"),
            ({"Repr-Digest": sf("sha-512", hashlib.sha512(new + b"x").digest())},
             "Repr-Digest sha-512"),
            ({"Content-MD5": b64(hashlib.md5(old).digest())}, "Content-MD5")):
        for canonical in (False, True):
            r = c.request("PUT", path("digests/large", canonical), new, headers)
            assert r.status == 400, r
            assert r.json()["detail"] == ("the body does not match its %s; nothing was written"
                                          % name), r
            g = c.request("GET", path("digests/large", True))
            assert g.status == 200 and g.body == old and g.header("ETag") == old_etag, g
    good = {"Content-Digest": sf("sha-512", hashlib.sha512(new).digest()),
            "Content-MD5": b64(hashlib.md5(new).digest())}
    r = c.request("PUT", path("digests/large", True), new, good)
    assert r.status == 200 and r.header("Repr-Digest") == repr_digest(new), r
    for canonical in (False, True):
        g = c.request("GET", path("digests/large", canonical))
        assert g.status == 200 and g.body == new, g
        assert g.header("Repr-Digest") == repr_digest(new), g
        g = c.request("GET", path("digests/large", canonical), headers={"Range": "bytes=-2"})
        assert g.status == 206 and g.body == new[-2:], g
        assert g.header("Repr-Digest") == repr_digest(new), g
