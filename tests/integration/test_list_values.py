"""Values in lists (issue 10): GET /{bucket|canonicalbucket}/?prefix=P&values=1.

Each entry of "keys" is then an object: the key ("key"), its value (UTF-8 as
is, otherwise base64 with "encoding": "base64"), "content_type", "version"
and, for a key with an expiry, "expires_at" (the X-Lazykv-Expires value). A
page stops at limit keys or at 16 MiB of values, whichever comes first
(truncated and next_start_after as for any list). values=0 or no values is
the list of key names as before; any other value is 400. Every list response
carries X-Lazykv-Index, an opaque ASCII token of 1 KiB at most.
"""
import base64
import os
import urllib.parse

q = urllib.parse.quote

CAP = 16 << 20      # value bytes a page holds at most (unless one value is larger)


def path(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")


def listing(c, prefix, canonical=True, extra=""):
    r = c.request("GET", "%s?prefix=%s%s" % ("/canonicalbucket/" if canonical else "/bucket/",
                                            q(prefix.encode(), safe=""), extra), timeout=120)
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("application/json"), r
    token_of(r)
    return r.json()


def token_of(r):
    t = r.header("X-Lazykv-Index")
    assert t, ("a list response without X-Lazykv-Index", r)
    assert len(t) <= 1024 and all(32 <= ord(ch) < 127 for ch in t), t
    return t


def value_of(entry):
    """An entry's value as bytes: base64 when marked so, else UTF-8 text."""
    enc = entry.get("encoding")
    if enc == "base64":
        return base64.b64decode(entry["value"], validate=True)
    assert enc in (None, "utf-8"), entry
    return entry["value"].encode("utf-8")


def delete_keys(c, keys):
    for k in keys:
        assert c.request("DELETE", path(k, True)).status in (202, 404), k


# ---- the entries -------------------------------------------------------------------------

def test_values_entries_carry_value_type_version_and_expiry(c):
    p = "lv/basic/"
    values = {
        p + "a-text": ("hello wörld ✓".encode(), "text/plain; charset=utf-8"),
        p + "b-binary": (bytes(range(256)), "image/png"),
        p + "c-empty": (b"", "text/plain"),
        p + "d-json": (b'{"quote": "\\"", "nl": "\\n", "tab": "\t"}', "application/json"),
        p + "e-latin1": ("café".encode("latin-1"), "text/plain; charset=iso-8859-1"),
        p + "f-ttl": (b"expiring", "text/x-lock"),
    }
    written = {}
    for k, (v, ct) in values.items():
        ttl = "?ttl=600" if k.endswith("ttl") else ""
        r = c.request("POST", path(k, True) + ttl, v, {"Content-Type": ct})
        assert r.status == 201, (k, r)
        written[k] = r
    assert c.request("POST", path(p + "g-gone", True), b"x").status == 201
    assert c.request("DELETE", path(p + "g-gone", True)).status == 202

    docs = [listing(c, p, canonical, "&values=1") for canonical in (True, False)]
    for doc in docs:
        entries = doc["keys"]
        assert [e["key"] for e in entries] == sorted(values), entries
        assert doc["count"] == len(values) and doc["truncated"] is False, doc
        assert "next_start_after" not in doc
        for e in entries:
            v, ct = values[e["key"]]
            w = written[e["key"]]
            assert value_of(e) == v, e
            # UTF-8 values as they are; base64 only for the others
            is_utf8 = True
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                is_utf8 = False
            assert (e.get("encoding") == "base64") == (not is_utf8), e
            assert e["content_type"] == ct, e
            assert e["version"] == w.json()["version"], (e, w.json())
            if w.header("X-Lazykv-Expires"):
                assert e["expires_at"] == w.header("X-Lazykv-Expires"), (e, w)
            else:
                assert e.get("expires_at") is None, e
    # canonical writes: the lazy list (any partition) has the same entries
    assert docs[0]["keys"] == docs[1]["keys"]
    delete_keys(c, list(values))


def test_values_0_or_absent_is_the_plain_list_and_other_values_are_400(c):
    p = "lv/plain/"
    keys = [p + "%d" % i for i in range(3)]
    for k in keys:
        assert c.request("POST", path(k, True), b"v").status == 201
    for canonical in (True, False):
        plain = listing(c, p, canonical)
        assert plain["keys"] == keys and plain["count"] == 3, plain
        assert listing(c, p, canonical, "&values=0") == plain
        with_values = listing(c, p, canonical, "&values=1")
        assert [e["key"] for e in with_values["keys"]] == keys
        for bad in ("2", "", "true", "yes", "-1", "01x"):
            r = c.request("GET", "%s?prefix=%s&values=%s"
                          % ("/canonicalbucket/" if canonical else "/bucket/", q(p), bad))
            assert r.status == 400, (bad, r)
    delete_keys(c, keys)


# ---- pages of values -----------------------------------------------------------------------

def page_through(c, prefix, canonical, expect, extra=""):
    """Pages through prefix with values; checks every page holds at least
    one entry, at most CAP bytes of values (unless its one entry is larger)
    and stops only when the next value would pass CAP or at limit; returns
    the number of entries of each page. expect: {key: value}."""
    keys = sorted(expect)
    got, sizes, after = [], [], None
    while True:
        doc = listing(c, prefix, canonical, "&values=1" + extra +
                      ("&start_after=" + q(after.encode(), safe="") if after else ""))
        entries = doc["keys"]
        assert entries, doc.get("count")
        page_bytes = sum(len(value_of(e)) for e in entries)
        assert page_bytes <= CAP or len(entries) == 1, (len(entries), page_bytes)
        assert doc["count"] == len(entries)
        for e in entries:
            assert value_of(e) == expect[e["key"]], ("a value listed wrong", e["key"])
        got += [e["key"] for e in entries]
        sizes.append(len(entries))
        if not doc["truncated"]:
            assert "next_start_after" not in doc
            break
        assert doc["next_start_after"] == entries[-1]["key"], doc["next_start_after"]
        # the page stopped at its byte budget (or at limit), not before
        nxt = keys[len(got)]
        full = page_bytes + len(expect[nxt]) > CAP
        assert full or ("limit=%d" % len(entries)) in extra, (len(entries), page_bytes)
        after = doc["next_start_after"]
    assert got == keys, (got, keys)
    return sizes


def test_a_page_of_values_stops_at_16_mib(c):
    p = "lv/big/"
    # seventeen values of 1 MiB (ASCII, all different: the largest kept in
    # their rows, src/chunks.h): 16 fill 16 MiB exactly
    expect = {p + "%02d" % i: os.urandom(1 << 19).hex().encode() for i in range(17)}
    for k, v in expect.items():
        r = c.request("POST", path(k, True), v, {"Content-Type": "text/plain"})
        assert r.status == 201 and r.header("X-Lazykv-Replicas") == "3/3", r
    for canonical in (True, False):
        sizes = page_through(c, p, canonical, expect)
        assert sizes == [16, 1], sizes
        # limit first when it comes first
        assert page_through(c, p, canonical, expect, "&limit=8") == [8, 8, 1]
    delete_keys(c, list(expect))


def test_a_value_over_a_chunk_is_listed_without_its_bytes(c):
    """A value over 1 MiB is stored in chunks and never held whole: its entry
    has "value": null, "encoding": "none" and its "length", and costs the
    page's byte budget nothing."""
    p = "lv/huge/"
    expect = {p + "a": b"a" * (1 << 20),            # 1 MiB: in its row, listed
              p + "b": os.urandom(16 << 20),        # 16 MiB (max_value_size): chunks
              p + "c": b"c" * 1024}
    for k, v in expect.items():
        r = c.request("POST", path(k), v)          # lazy: at its master, listed canonically
        assert r.status == 201, r
    doc = listing(c, p, True, "&values=1")
    assert [e["key"] for e in doc["keys"]] == sorted(expect), doc["keys"]
    assert doc["truncated"] is False
    a, b, cc = doc["keys"]
    assert value_of(a) == expect[p + "a"] and value_of(cc) == expect[p + "c"]
    assert (b["value"], b["encoding"], b["length"]) == (None, "none", 16 << 20), b
    r = c.request("GET", path(p + "b", True), timeout=120)
    assert r.status == 200 and r.body == expect[p + "b"], r
    delete_keys(c, list(expect))


# ---- the index of a list -------------------------------------------------------------------

def test_every_list_response_carries_an_index(c):
    p = "lv/index/"
    keys = [p + "%d" % i for i in range(3)]
    for k in keys:
        assert c.request("POST", path(k, True), b"v").status == 201
    targets = []
    for root in ("/bucket/", "/canonicalbucket/"):
        targets += [root, root + "?prefix=" + q(p), root + "?prefix=" + q(p) + "&limit=1",
                    root + "?prefix=" + q(p) + "&values=1",
                    root + "?prefix=" + q(p) + "&values=0&limit=2&start_after=" + q(keys[0]),
                    root + "?prefix=lv/index/nothing/", root + "?prefix=" + q(p) + "&encoding=url",
                    root + "?limit=1"]
    for t in targets:
        r = c.request("GET", t)
        assert r.status == 200, (t, r)
        token_of(r)
    delete_keys(c, keys)
