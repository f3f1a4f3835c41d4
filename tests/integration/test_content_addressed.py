"""Content-addressed keys (issue 14, as dtfc does): POST
/{bucket|canonicalbucket}/?key=sha256 stores the body under the lowercase hex
SHA-256 of its bytes; the same content again is the same key, answered 200
with nothing rewritten.
"""
import base64
import hashlib
import os

import harness
from test_auth import matrix_server


def target(canonical=False, query="key=sha256"):
    return ("/canonicalbucket/" if canonical else "/bucket/") + "?" + query


def repr_digest(value):
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(value).digest()).decode()


def check_created(c, r, body, canonical):
    hexkey = hashlib.sha256(body).hexdigest()
    assert r.status == 201, r
    doc = r.json()
    assert doc["result"] == "created", doc
    assert doc["key"] == hexkey and len(hexkey) == 64, doc
    assert doc["consistency"] == ("canonical" if canonical else "lazy"), doc
    assert r.header("Location") == ("/canonicalbucket/" if canonical else "/bucket/") + hexkey, r
    assert r.header("ETag") == doc["etag"], r
    assert r.header("Repr-Digest") == repr_digest(body), r
    if canonical:
        assert r.header("X-Lazykv-Replicas") == "%d/%d" % (c.n, c.n), r
    g = c.request("GET", "/canonicalbucket/" + hexkey)
    assert g.status == 200 and g.body == body, g
    assert g.header("ETag") == doc["etag"], g
    assert g.header("Content-Type") == "image/png", g
    return doc


def test_a_content_addressed_write_is_stored_under_its_sha256(c):
    for canonical in (False, True):
        body = os.urandom(5000) + (b"canonical" if canonical else b"lazy")
        r = c.request("POST", target(canonical), body, {"Content-Type": "image/png"})
        doc = check_created(c, r, body, canonical)
        for p in range(c.n):
            row = c.row(p, doc["key"])
            if canonical or p == doc["master"]:
                assert row == (body, doc["version"], 0), (p, row)
            else:
                assert row is None, (p, row)


def test_the_same_content_twice_is_200_unchanged(c):
    # Needs the storage layer's content-addressed write (lane.c: a live row
    # with the same digest is left alone and op->unchanged set).
    for canonical in (False, True):
        body = b"twice " + os.urandom(64) + (b"canonical" if canonical else b"lazy")
        first = check_created(c, c.request("POST", target(canonical), body,
                                           {"Content-Type": "image/png"}), body, canonical)
        for again_canonical in (canonical, not canonical):
            r = c.request("POST", target(again_canonical), body, {"Content-Type": "image/png"})
            assert r.status == 200, r
            doc = r.json()
            assert doc["result"] == "unchanged", doc
            assert doc["key"] == first["key"], doc
            assert doc["version"] == first["version"], (doc, first)
            assert r.header("ETag") == first["etag"], r
            assert r.header("Location").endswith("/" + first["key"]), r
            assert r.header("Repr-Digest") == repr_digest(body), r
        g = c.request("GET", "/canonicalbucket/" + first["key"])
        assert g.status == 200 and g.body == body and g.header("ETag") == first["etag"], g
        assert c.row(first["master"], first["key"])[1] == first["version"]


def test_empty_and_binary_bodies(c):
    for body in (b"", bytes(range(256))):
        r = c.request("POST", target(True), body, {"Content-Type": "image/png"})
        check_created(c, r, body, True)
    assert hashlib.sha256(b"").hexdigest() == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_digests_are_checked_before_the_key_is_taken(c):
    body = b"checked content " + os.urandom(16)
    hexkey = hashlib.sha256(body).hexdigest()
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    r = c.request("POST", target(True), body, {"Content-Digest": "sha-256=:%s:" % bad})
    assert r.status == 400, r
    assert r.json()["detail"] == "the body does not match its Content-Digest sha-256; " \
                                 "nothing was written", r
    assert c.request("GET", "/canonicalbucket/" + hexkey).status == 404
    good = base64.b64encode(hashlib.sha256(body).digest()).decode()
    r = c.request("POST", target(), body, {"Repr-Digest": "sha-256=:%s:" % good})
    assert r.status == 201 and r.json()["key"] == hexkey, r


def test_key_parameter_elsewhere_is_400(c):
    body = b"nowhere " + os.urandom(16)
    hexkey = hashlib.sha256(body).hexdigest()
    for method, tgt, detail in [
            ("POST", target(query="key=md5"), "key must be sha256"),
            ("POST", target(True, "key="), "key must be sha256"),
            ("POST", target(query="key=SHA256"), "key must be sha256"),
            ("PUT", target(), "key=sha256 applies to a POST"),
            ("GET", target(), "key=sha256 applies to a POST"),
            ("DELETE", target(True, "prefix=x&key=sha256"), "key=sha256 applies to a POST"),
            ("POST", "/bucket/some/key?key=sha256", "key=sha256 applies to a POST"),
            ("PUT", "/canonicalbucket/some/key?key=sha256", "key=sha256 applies to a POST"),
            ("GET", "/bucket/some/key?key=sha256", "key=sha256 applies to a POST")]:
        r = c.request(method, tgt, body if method in ("POST", "PUT") else None)
        assert r.status == 400, (method, tgt, r)
        assert r.json()["detail"].startswith(detail), (method, tgt, r.json())
    assert c.request("GET", "/canonicalbucket/" + hexkey).status == 404
    assert c.request("GET", "/canonicalbucket/some/key").status == 404
    # a POST to a list path without it is still "the key is empty"
    r = c.request("POST", "/bucket/", b"v")
    assert r.status == 400 and "key is empty" in r.json()["detail"], r


def test_key_length_below_64_is_400(c):
    proc, port, _ = c.extra_kvd({"key_length": "63"})
    try:
        body = b"too long a key " + os.urandom(8)
        for canonical in (False, True):
            r = c.request_to(port, "POST", target(canonical), body)
            assert r.status == 400, r
            assert r.json()["detail"] == ("key=sha256 needs key_length >= 64 (the key is the "
                                          "body's SHA-256 in hex); this server's key_length "
                                          "is 63"), r
        assert c.request("GET", "/canonicalbucket/" + hashlib.sha256(body).hexdigest()) \
            .status == 404
        # refused on the headers alone, before the body
        out = harness.raw_exchange(port, b"POST /bucket/?key=sha256 HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Length: 1000\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    finally:
        assert c.stop_extra(proc) == 0


def test_auth_a_content_addressed_write_needs_a_token_for_every_key(c):
    # The key is known only once the body is in: the token must write
    # every key ('*'); a token for some prefixes is refused before the body.
    body = b"authorised content " + os.urandom(8)
    with matrix_server(c) as a:
        for who, status in (("none", 401), ("unknown", 401), ("ro", 403), ("rw", 403),
                            ("wo", 403), ("multi", 403), ("adm", 403)):
            token = None if who == "none" else \
                "x" * 43 if who == "unknown" else who
            r = a.req("POST", target(True), token, body)
            assert r.status == status, (who, r)
        r = a.req("POST", target(True), "star", body)
        assert r.status == 201, r
        assert r.json()["key"] == hashlib.sha256(body).hexdigest(), r
