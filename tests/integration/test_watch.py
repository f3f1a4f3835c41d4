"""Watches on a key and on a prefix (issue 10).

GET /{bucket|canonicalbucket}/KEY?index=N[&wait=S] answers at once, exactly
as a plain GET, when the key's X-Lazykv-Index differs from N; otherwise it
is held (parked) until the key's state changes (create, update, refresh,
delete, expiry: then it answers as a GET after the change) or until wait
passes (then it answers as a GET with the unchanged index). Watches are
answered from the key's master on both paths, so every answer here is
compared with a canonical GET made right after it.

GET /{...}/?prefix=P&index=TOKEN[&wait=S], TOKEN from the X-Lazykv-Index of a
list: the same for any change of a key starting with P since that list; the
answer is the list (first page) with a new token; on timeout, the same token.

Watches park, so they are sent on raw sockets and read when lazykvd answers
(Raw, Collector): no thread per watch, and each answer is stamped with the
moment its first bytes arrived. Latency bounds are the contract's (p99 over
100 samples): 50 ms from a write's acknowledgement through the same lazykvd,
500 ms through another lazykvd on the same partitions, 1 s after an expiry.
"""
import http.client
import os
import random
import resource
import signal
import time
import urllib.parse

from harness import SANITIZED, Response, wait_for
from parked import Collector, Raw, assert_parked, expires_us, p99, report

q = urllib.parse.quote

SAME_LATENCY = 0.050     # s: a write through the same lazykvd -> its watchers
OTHER_LATENCY = 0.500    # s: a write through another lazykvd -> its watchers
EXPIRY_LATENCY = 1.0     # s: an expiry instant -> its watchers


def path(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")


def root(canonical):
    return "/canonicalbucket/" if canonical else "/bucket/"


def key_watch(key, index, wait, canonical=False):
    return "%s?index=%s&wait=%d" % (path(key, canonical), index, wait)


def prefix_list(prefix, canonical=True, extra=""):
    return "%s?prefix=%s%s" % (root(canonical), q(prefix.encode(), safe=""), extra)


def prefix_watch(prefix, token, wait, canonical=True, extra=""):
    return "%s?prefix=%s&index=%s&wait=%d%s" % (root(canonical), q(prefix.encode(), safe=""),
                                                q(token.encode(), safe=""), wait, extra)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- what a watch answers ---------------------------------------------------------

# A GET answer is its status, its bytes and these headers: a watch answers
# exactly that (X-Lazykv-Partition: the master, as a canonical GET says).
SAME = ("content-type", "etag", "last-modified", "x-lazykv-index", "x-lazykv-expires",
        "x-lazykv-partition")


def as_get(r):
    return (r.status, r.body) + tuple(r.header(h) for h in SAME)


def assert_same_as_get(c, r, key, port=None):
    """r (a watch's answer) is exactly what a canonical GET of key answers now."""
    g = c.request("GET", path(key, True), port=port)
    assert as_get(r) == as_get(g), ("watch answer differs from a GET", key, r, g)
    return g


def index_of(c, key, port=None):
    r = c.request("GET", path(key, True), port=port)
    assert r.status in (200, 404), r
    idx = r.header("X-Lazykv-Index")
    assert idx is not None and idx.isdigit(), r
    return int(idx)


def token_of(r):
    """A list response's X-Lazykv-Index: an opaque ASCII token of 1 KiB at most."""
    t = r.header("X-Lazykv-Index")
    assert t, ("a list response without X-Lazykv-Index", r)
    assert len(t) <= 1024 and all(32 <= ord(ch) < 127 for ch in t), t
    return t


def listing(c, prefix, canonical=True, port=None, extra=""):
    """(Response, token) of a plain list of prefix."""
    r = c.request("GET", prefix_list(prefix, canonical, extra), port=port)
    assert r.status == 200, r
    return r, token_of(r)


def delete_keys(c, keys, port=None):
    for k in keys:
        r = c.request("DELETE", path(k, True), port=port)
        assert r.status in (202, 404), (k, r)


# ---- raw requests that park ---------------------------------------------------------

# ---- answered at once ---------------------------------------------------------------

def test_key_watch_answers_at_once_when_the_index_differs(c):
    key = "watch/now/k"
    w = c.request("POST", path(key, True), b"current", {"Content-Type": "text/plain"})
    assert w.status == 201, w
    v = w.json()["version"]
    assert index_of(c, key) == v
    for canonical in (False, True):
        for n in (0, 1, v - 1, v + 1, v * 2):
            t0 = time.monotonic()
            r = c.request("GET", key_watch(key, n, 30, canonical))
            took = time.monotonic() - t0
            assert r.status == 200 and r.body == b"current", (n, r)
            assert r.header("X-Lazykv-Index") == str(v), (n, r)
            assert took < 1.0, ("not answered at once", n, took)
            assert_same_as_get(c, r, key)
    # A deleted key: a watch from its live index gets the 404 of its tombstone.
    d = c.request("DELETE", path(key, True))
    assert d.status == 202, d
    for canonical in (False, True):
        r = c.request("GET", key_watch(key, v, 30, canonical))
        assert r.status == 404 and r.header("X-Lazykv-Index") == str(d.json()["version"]), r
        assert_same_as_get(c, r, key)
    # A key that never existed has index 0: any other index answers at once.
    missing = "watch/now/never"
    for canonical in (False, True):
        t0 = time.monotonic()
        r = c.request("GET", key_watch(missing, 7, 30, canonical))
        assert time.monotonic() - t0 < 1.0
        assert r.status == 404 and r.header("X-Lazykv-Index") == "0", r
        assert_same_as_get(c, r, missing)


def test_bad_wait_values_are_400(c):
    key = "watch/badwait"
    w = c.request("POST", path(key, True), b"x")
    assert w.status == 201, w
    _, token = listing(c, "watch/badwait")
    for bad in ("0", "601", "1.5", "", "x", "-1", "2s"):
        r = c.request("GET", path(key, True) + "?index=1&wait=" + bad)
        assert r.status == 400, (bad, r)
        r = c.request("GET", path(key) + "?index=1&wait=" + bad)
        assert r.status == 400, (bad, r)
        r = c.request("GET", prefix_list("watch/badwait", True, "&index=%s&wait=%s"
                                         % (q(token, safe=""), bad)))
        assert r.status == 400, (bad, r)
    # The bounds themselves are valid (answered at once: the index differs).
    for ok in ("1", "600"):
        assert c.request("GET", path(key, True) + "?index=1&wait=" + ok).status == 200
    delete_keys(c, [key])


# ---- woken by every kind of change ------------------------------------------------

def watch_then(c, key, canonical, change, timeout=5.0):
    """Parks a watch of key from its current index, checks it stays parked,
    runs change() (which returns its acknowledged Response), and returns
    (watch answer, seconds from the acknowledgement to the answer)."""
    idx = index_of(c, key)
    raw = Raw(c.http_port, "GET", key_watch(key, idx, 30, canonical))
    try:
        assert raw.parked(0.3), ("answered while nothing changed", raw.describe())
        ack = change()
        t_ack = time.monotonic()
        r = raw.wait(timeout)
        assert int(r.header("X-Lazykv-Index")) > idx, (idx, r)
        return r, raw.at - t_ack, ack
    finally:
        raw.close()


def test_key_watch_is_woken_by_create_update_refresh_delete_and_expiry(c):
    for canonical in (False, True):
        key = "watch/wake/%s" % ("canonical" if canonical else "lazy")
        # create (a lazy write: only its master has it; the watch sees it)
        r, _, w = watch_then(c, key, canonical, lambda: c.request(
            "POST", path(key), b"created", {"Content-Type": "text/x-one"}))
        assert w.status == 201, w
        assert r.status == 200 and r.body == b"created", r
        assert r.header("X-Lazykv-Index") == str(w.json()["version"])
        assert_same_as_get(c, r, key)
        # update (a compare-and-swap PUT, with a TTL)
        etag = w.header("ETag")
        r, _, w = watch_then(c, key, canonical, lambda: c.request(
            "PUT", path(key) + "?ttl=300", b"updated",
            {"Content-Type": "text/x-two", "If-Match": etag}))
        assert w.status == 200, w
        assert r.status == 200 and r.body == b"updated", r
        assert r.header("Content-Type") == "text/x-two" and r.header("X-Lazykv-Expires"), r
        assert_same_as_get(c, r, key)
        # refresh: same value, new version and expiry
        etag = w.header("ETag")
        r, _, w = watch_then(c, key, canonical, lambda: c.request(
            "PUT", path(key, True) + "?ttl=600&refresh=1", b"", {"If-Match": etag}))
        assert w.status == 200 and w.json()["result"] == "refreshed", w
        assert r.status == 200 and r.body == b"updated" and r.header("ETag") == w.header("ETag")
        assert r.header("X-Lazykv-Expires") == w.header("X-Lazykv-Expires"), (r, w)
        assert_same_as_get(c, r, key)
        # delete
        r, _, w = watch_then(c, key, canonical, lambda: c.request("DELETE", path(key)))
        assert w.status == 202, w
        assert r.status == 404 and r.header("X-Lazykv-Index") == str(w.json()["version"]), r
        assert_same_as_get(c, r, key)
        # expiry: no write at all; answered at the instant, not before
        w = c.request("PUT", path(key) + "?ttl=2", b"short-lived")
        assert w.status == 201, w
        exp = expires_us(w.header("X-Lazykv-Expires")) / 1e6
        raw = Raw(c.http_port, "GET", key_watch(key, w.json()["version"], 30, canonical))
        try:
            assert raw.parked(0.3), raw.describe()
            r = raw.wait(exp - time.time() + 3)
            assert r.status == 404, r
            assert exp - 0.002 <= raw.at_wall <= exp + EXPIRY_LATENCY + 0.002, \
                ("expiry answered %.3f s after the instant" % (raw.at_wall - exp))
            assert int(r.header("X-Lazykv-Index")) > w.json()["version"], r
            assert_same_as_get(c, r, key)
        finally:
            raw.close()


def test_key_watch_times_out_with_the_unchanged_index(c):
    live, gone, never = "watch/timeout/live", "watch/timeout/gone", "watch/timeout/never"
    w = c.request("POST", path(live, True), b"stays", {"Content-Type": "text/plain"})
    assert w.status == 201
    assert c.request("POST", path(gone, True), b"x").status == 201
    d = c.request("DELETE", path(gone, True))
    assert d.status == 202
    cases = [(live, w.json()["version"], 200), (gone, d.json()["version"], 404), (never, 0, 404)]
    raws = []
    try:
        for key, idx, _ in cases:
            for canonical in (False, True):
                raws.append((key, idx, Raw(c.http_port, "GET", key_watch(key, idx, 1, canonical))))
        for key, idx, _ in cases:
            assert index_of(c, key) == idx
        for (key, idx, raw), status in zip(raws, [s for _, _, s in cases for _ in (0, 1)]):
            r = raw.wait(5)
            assert 0.95 <= raw.took() < 2.5, ("wait=1 answered after %.2f s" % raw.took(), key)
            assert r.status == status and r.header("X-Lazykv-Index") == str(idx), (key, r)
            assert_same_as_get(c, r, key)
    finally:
        for _, _, raw in raws:
            raw.close()
    delete_keys(c, [live])


# ---- latency ------------------------------------------------------------------------

def watch_round(c, tag, n, watch_port, write_port, rnd):
    """n keys, one parked watch each (on watch_port), then one write per
    key (through write_port), a few ms apart. Returns each answer's delay
    after its write's acknowledgement."""
    keys = ["watch/lat/%s/%d" % (tag, i) for i in range(n)]
    versions = []
    for k in keys:
        r = c.request("POST", path(k, True), b"before", port=write_port)
        assert r.status == 201, r
        versions.append(r.json()["version"])
    raws = [Raw(watch_port, "GET", key_watch(k, v, 20, i % 2 == 1))
            for i, (k, v) in enumerate(zip(keys, versions))]
    col = Collector(raws)
    acks = []
    try:
        assert_parked(col)
        for k in keys:
            w = c.request("POST", path(k), b"after " + k.encode(), port=write_port)
            acks.append(time.monotonic())
            assert w.status == 201, w
            time.sleep(rnd.uniform(0, 0.03))
        col.wait_all(5)
    finally:
        col.close()
    delays = []
    for k, raw, t in zip(keys, raws, acks):
        r = raw.response
        assert r is not None and r.status == 200 and r.body == b"after " + k.encode(), (k, r)
        assert_same_as_get(c, r, k)
        delays.append(raw.at - t)
    delete_keys(c, keys)
    return delays


def test_watch_latency_through_the_same_lazykvd(c):
    rnd = random.Random(10)
    delays = []
    for rnd_no in range(5):
        delays += watch_round(c, "same%d" % rnd_no, 20, c.http_port, c.http_port, rnd)
    report("watch: write through the same lazykvd -> watcher", delays)
    assert p99(delays) <= SAME_LATENCY, sorted(delays)[-5:]


def test_watch_latency_through_another_lazykvd(c):
    proc, port, _ = c.extra_kvd({})
    rnd = random.Random(11)
    delays = []
    try:
        for rnd_no in range(5):
            # both ways: watchers on the second lazykvd, then on the first
            watch_port, write_port = (port, c.http_port) if rnd_no % 2 == 0 \
                else (c.http_port, port)
            delays += watch_round(c, "other%d" % rnd_no, 20, watch_port, write_port, rnd)
    finally:
        assert c.stop_extra(proc) == 0
    report("watch: write through another lazykvd -> watcher", delays)
    assert p99(delays) <= OTHER_LATENCY, sorted(delays)[-5:]


def test_watch_latency_after_an_expiry(c):
    proc, port, _ = c.extra_kvd({})
    rnd = random.Random(12)
    keys, exps, raws = [], [], []
    try:
        for i in range(20):
            k = "watch/lat/expiry/%d" % i
            w = c.request("PUT", path(k) + "?ttl=2", b"soon gone")
            assert w.status == 201, w
            keys.append(k)
            exps.append(expires_us(w.header("X-Lazykv-Expires")) / 1e6)
            # half watched through the lazykvd that wrote it, half through the other
            raws.append(Raw(port if i % 2 else c.http_port, "GET",
                            key_watch(k, w.json()["version"], 20, i % 4 < 2)))
            time.sleep(rnd.uniform(0, 0.03))
        col = Collector(raws)
        try:
            assert_parked(col)
            col.wait_all(max(exps) - time.time() + 3)
        finally:
            col.close()
        late = []
        for k, raw, exp in zip(keys, raws, exps):
            r = raw.response
            assert r is not None and r.status == 404, (k, r)
            assert raw.at_wall >= exp - 0.002, ("answered before the expiry", k,
                                                exp - raw.at_wall)
            late.append(raw.at_wall - exp)
            assert_same_as_get(c, r, k)
        report("watch: expiry instant -> watcher", late)
        assert max(late) <= EXPIRY_LATENCY + 0.002, sorted(late)[-5:]
    finally:
        assert c.stop_extra(proc) == 0


# ---- prefix watches -------------------------------------------------------------------

def prefix_watch_then(c, prefix, change, canonical=True, extra="", timeout=5.0):
    """A list of prefix, a parked prefix watch from its token, change();
    returns (answer, old token, raw)."""
    _, token = listing(c, prefix, canonical, extra=extra)
    raw = Raw(c.http_port, "GET", prefix_watch(prefix, token, 30, canonical, extra))
    try:
        assert raw.parked(0.3), ("answered while nothing changed", raw.describe())
        change()
        r = raw.wait(timeout)
        assert r.status == 200, r
        assert token_of(r) != token, ("a changed prefix answered with the same token", r)
        return r, token, raw
    finally:
        raw.close()


def assert_list_now(c, prefix, r, canonical=True, extra=""):
    """r (a prefix watch's answer) is the list of prefix as it is now: the
    masters' list on both paths, as a watch is answered from the masters."""
    now, _ = listing(c, prefix, True, extra=extra)
    assert r.json() == now.json(), (canonical, r.json(), now.json())
    assert r.header("Content-Type") == now.header("Content-Type")


def assert_times_out_with(c, prefix, token, body, canonical=True, extra=""):
    """A watch from token on an unchanged prefix: answered after wait (1 s)
    with the same token and the same list."""
    raw = Raw(c.http_port, "GET", prefix_watch(prefix, token, 1, canonical, extra))
    try:
        r = raw.wait(5)
        assert 0.95 <= raw.took() < 2.5, ("wait=1 answered after %.2f s" % raw.took())
        assert r.status == 200 and token_of(r) == token, (token, r)
        assert r.json() == body, (r.json(), body)
    finally:
        raw.close()


def test_prefix_watch_is_woken_by_create_update_delete_and_expiry(c):
    p = "pwatch/wake/"
    base = p + "base"
    assert c.request("POST", path(base, True), b"base").status == 201

    # create (a lazy write: seen at its master)
    r, _, _ = prefix_watch_then(c, p, lambda: c.request("POST", path(p + "new"), b"1"))
    assert r.json()["keys"] == [p + "base", p + "new"], r.json()
    assert_list_now(c, p, r)
    # the new token is current: nothing changed since, so it times out with it
    assert_times_out_with(c, p, token_of(r), r.json())

    # update (same keys, new state)
    r, _, _ = prefix_watch_then(c, p, lambda: c.request("POST", path(p + "new", True), b"2"))
    assert r.json()["keys"] == [p + "base", p + "new"], r.json()
    assert_list_now(c, p, r)

    # delete (canonical: every partition agrees again, for the lazy list below)
    r, _, _ = prefix_watch_then(c, p, lambda: c.request("DELETE", path(p + "new", True)))
    assert r.json()["keys"] == [p + "base"], r.json()
    assert_list_now(c, p, r)

    # expiry, answered at the instant and not before
    w = c.request("PUT", path(p + "ttl", True) + "?ttl=2", b"brief")
    assert w.status == 201, w
    exp = expires_us(w.header("X-Lazykv-Expires")) / 1e6
    r, _, raw = prefix_watch_then(c, p, lambda: None, timeout=exp - time.time() + 3)
    assert exp - 0.002 <= raw.at_wall <= exp + EXPIRY_LATENCY + 0.002, raw.at_wall - exp
    assert r.json()["keys"] == [p + "base"], r.json()
    assert_list_now(c, p, r)

    # the lazy path: a lazy list's token, woken by a canonical write
    r, _, _ = prefix_watch_then(c, p, lambda: c.request("POST", path(p + "lazy", True), b"l"),
                                canonical=False)
    assert p + "lazy" in r.json()["keys"], r.json()
    delete_keys(c, [base, p + "lazy"])


def test_prefix_watch_ignores_changes_outside_the_prefix(c):
    p = "pwatch/out/dir/"
    inside = p + "a"
    assert c.request("POST", path(inside, True), b"in").status == 201
    outside = ["pwatch/out/dir",         # a prefix of P
               "pwatch/out/di",
               "pwatch/out/dir0/x",      # shares P's first bytes, not P
               "pwatch/out/dirx",
               "pwatch/out/dir.x",
               "pwatch/out/Dir/a",
               "pwatch/out/dis/a"]
    for k in outside[:2]:
        assert c.request("POST", path(k, True), b"before").status == 201
    watches = []
    try:
        for canonical in (True, False):
            r, token = listing(c, p, canonical)
            watches.append((canonical, token, r.json(),
                            Raw(c.http_port, "GET", prefix_watch(p, token, 3, canonical))))
        # creates, updates, a delete and an expiry, all outside P
        assert c.request("PUT", path("pwatch/out/dir0/ttl", True) + "?ttl=1", b"t").status == 201
        for k in outside:
            assert c.request("POST", path(k, True), b"outside").status == 201
        assert c.request("POST", path(outside[0]), b"lazy outside").status == 201
        assert c.request("DELETE", path(outside[1], True)).status == 202
        for canonical, token, body, raw in watches:
            r = raw.wait(8)
            assert raw.took() >= 2.95, ("woken by a change outside the prefix", canonical,
                                        raw.took(), r)
            assert r.status == 200 and token_of(r) == token, (canonical, token, r)
            # the same list, from the masters on both paths
            assert r.json() == dict(body, consistency="canonical"), (canonical, r.json(), body)
    finally:
        for _, _, _, raw in watches:
            raw.close()
    wait_for(lambda: c.request("GET", path("pwatch/out/dir0/ttl", True)).status == 404, 5,
             "the outside key's expiry")
    delete_keys(c, [inside] + outside)


def test_a_change_between_list_and_watch_is_never_missed(c):
    p = "pwatch/gap/"
    assert c.request("POST", path(p + "base", True), b"base").status == 201

    def watch_from(token, canonical=True):
        t0 = time.monotonic()
        r = c.request("GET", prefix_watch(p, token, 20, canonical))
        took = time.monotonic() - t0
        assert took < 1.0, ("a change since the token was not answered at once", took)
        assert r.status == 200 and token_of(r) != token, (token, r)
        assert_list_now(c, p, r, canonical)
        return r

    changes = [
        ("create", lambda: c.request("POST", path(p + "k", True), b"1")),
        ("update", lambda: c.request("PUT", path(p + "k", True), b"2")),
        ("delete", lambda: c.request("DELETE", path(p + "k", True))),
        # the list looks the same after these two, but the prefix changed
        ("create and delete", lambda: (c.request("POST", path(p + "k2", True), b"x"),
                                       c.request("DELETE", path(p + "k2", True)))),
    ]
    for canonical in (True, False):
        for what, change in changes:
            _, token = listing(c, p, canonical)
            change()
            r = watch_from(token, canonical)
            assert p + "base" in r.json()["keys"], (what, r.json())
    # an expiry between the list and the watch
    w = c.request("PUT", path(p + "ttl", True) + "?ttl=1", b"brief")
    assert w.status == 201
    r, token = listing(c, p)
    assert p + "ttl" in r.json()["keys"], r.json()
    wait_for(lambda: c.request("GET", path(p + "ttl", True)).status == 404, 3, "the expiry")
    r = watch_from(token)
    assert p + "ttl" not in r.json()["keys"], r.json()
    delete_keys(c, [p + "base"])


def test_prefix_watch_answers_the_first_page_and_wakes_for_any_key_under_it(c):
    p = "pwatch/page/"
    keys = [p + "%02d" % i for i in range(5)]
    for k in keys:
        assert c.request("POST", path(k, True), b"v").status == 201
    # a change beyond the first page (limit=2) still wakes the watch
    r, _, _ = prefix_watch_then(c, p, lambda: c.request("POST", path(p + "99", True), b"v"),
                                extra="&limit=2")
    doc = r.json()
    assert doc["keys"] == keys[:2] and doc["truncated"] is True, doc
    assert doc["next_start_after"] == keys[1], doc
    assert_list_now(c, p, r, extra="&limit=2")
    delete_keys(c, keys + [p + "99"])


# ---- index across deletes and restarts ---------------------------------------------------

def test_index_never_decreases_across_deletes_and_a_kill_9_of_lazykvd(c):
    key, p, quiet = "watch/restart/k", "watch/restart/", "watch/restart-quiet/"
    assert c.request("POST", path(quiet + "q", True), b"q").status == 201
    seen = []
    for n in range(2):
        w = c.request("POST", path(key, True), b"v%d" % n)
        assert w.status == 201
        assert index_of(c, key) == w.json()["version"]
        seen.append(w.json()["version"])
    d = c.request("DELETE", path(key, True))
    assert d.status == 202
    tomb = d.json()["version"]
    assert index_of(c, key) == tomb
    seen.append(tomb)
    _, token = listing(c, p)
    quiet_list, quiet_token = listing(c, quiet)

    # kill -9 of lazykvd; a write through another lazykvd while it is down
    c.stop_kvd(signal.SIGKILL)
    try:
        proc, port, _ = c.extra_kvd({})
        try:
            w = c.request("POST", path(key), b"while down", port=port)
            assert w.status == 201, w
        finally:
            assert c.stop_extra(proc) == 0
    finally:
        c.start_kvd()
    assert index_of(c, key) == w.json()["version"]
    seen.append(w.json()["version"])
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen

    # clients re-watch with what they had: the change is answered at once ...
    t0 = time.monotonic()
    r = c.request("GET", key_watch(key, tomb, 20))
    assert time.monotonic() - t0 < 1.0
    assert r.status == 200 and r.body == b"while down", r
    assert_same_as_get(c, r, key)
    t0 = time.monotonic()
    r = c.request("GET", prefix_watch(p, token, 20))
    assert time.monotonic() - t0 < 1.0
    assert r.status == 200 and token_of(r) != token and key in r.json()["keys"], r
    # ... and what did not change still parks (tokens and indexes outlive
    # the process that issued them)
    assert_times_out_with(c, quiet, quiet_token, quiet_list.json())
    raw = Raw(c.http_port, "GET", key_watch(key, w.json()["version"], 1))
    try:
        r = raw.wait(5)
        assert raw.took() >= 0.95 and r.header("X-Lazykv-Index") == str(w.json()["version"]), r
    finally:
        raw.close()
    d = c.request("DELETE", path(key, True))
    assert d.status == 202 and d.json()["version"] > seen[-1]
    delete_keys(c, [quiet + "q"])


# ---- faults -----------------------------------------------------------------------

def test_a_watched_master_going_down_answers_its_watchers_503(c):
    down, other = None, None
    i = 0
    while down is None or other is None:
        k = "watch/down/%d" % i
        i += 1
        w = c.request("POST", path(k, True), b"here")
        assert w.status == 201, w
        if w.json()["master"] == 1 and down is None:
            down = (k, w.json()["version"])
        elif w.json()["master"] == 0 and other is None:
            other = (k, w.json()["version"])
    raws = [Raw(c.http_port, "GET", key_watch(down[0], down[1], 30, canonical))
            for canonical in (False, True)]
    bystander = Raw(c.http_port, "GET", key_watch(other[0], other[1], 30))
    try:
        for raw in raws + [bystander]:
            assert raw.parked(0.1), raw.describe()
        c.stop_node(1)
        try:
            stopped = time.monotonic()
            for raw in raws:
                r = raw.wait(10)
                assert r.status == 503 and r.header("Retry-After"), r
                assert r.header("Retry-After").isdigit(), r
                assert raw.at - stopped <= 3.0, ("503 %.2f s after the partition went down"
                                                 % (raw.at - stopped))
            # a new watch of it fails at once too
            t0 = time.monotonic()
            r = c.request("GET", key_watch(down[0], down[1], 30, True))
            assert r.status == 503 and r.header("Retry-After"), r
            assert time.monotonic() - t0 < 3.0
            # the watcher of a key on another master is still parked, and
            # answered normally
            assert bystander.parked(0.5), bystander.describe()
            w = c.request("POST", path(other[0]), b"moved on")
            assert w.status == 201, w
            r = bystander.wait(5)
            assert r.status == 200 and r.body == b"moved on", r
            assert_same_as_get(c, r, other[0])
        finally:
            c.start_node(1)
    finally:
        for raw in raws + [bystander]:
            raw.close()
    wait_for(lambda: c.request("GET", path(down[0], True)).status == 200, 30,
             "partition 1 to answer again")
    # watches of its keys work again
    raw = Raw(c.http_port, "GET", key_watch(down[0], down[1], 1, True))
    try:
        r = raw.wait(5)
        assert r.status == 200 and r.header("X-Lazykv-Index") == str(down[1]), r
    finally:
        raw.close()
    delete_keys(c, [down[0], other[0]])


def test_sigterm_answers_every_parked_watch_503(c):
    proc, port, log = c.extra_kvd({})
    keys = ["watch/term/%d" % i for i in range(10)]
    raws = []
    try:
        versions = []
        for k in keys:
            w = c.request("POST", path(k, True), b"v")
            assert w.status == 201
            versions.append(w.json()["version"])
        for i, (k, v) in enumerate(zip(keys, versions)):
            raws.append(Raw(port, "GET", key_watch(k, v, 60, i % 2 == 0)))
        for i in range(10):
            _, token = listing(c, "watch/term/", canonical=i % 2 == 0, port=port)
            raws.append(Raw(port, "GET", prefix_watch("watch/term/", token, 60, i % 2 == 0)))
        col = Collector(raws)
        try:
            assert_parked(col)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            col.wait_all(10)
        finally:
            col.close()
        rc = proc.wait(timeout=10)
        exited = time.monotonic() - t0
        slowest = max(r.at - t0 for r in raws if r.at is not None) if raws else 0
        print("watch: SIGTERM with 20 parked watches: all answered within %.2f s, exit %d"
              " after %.2f s" % (slowest, rc, exited))
        for r in raws:
            assert r.response is not None, ("closed without an answer", r.target)
            assert r.response.status == 503, (r.target, r.response)
            assert r.at - t0 <= 2.0, ("answered %.2f s after SIGTERM" % (r.at - t0), r.target)
        assert rc == 0, open(log).read()[-2000:]
    finally:
        if proc.poll() is None:
            c.stop_extra(proc)
    delete_keys(c, keys)


# ---- many parked watches ---------------------------------------------------------------

class KeepAlive:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method, target, body=None):
        self.conn.request(method, target, body=body)
        r = self.conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())

    def close(self):
        self.conn.close()


def test_10000_parked_watches_wake_exactly_their_own(c):
    raise_nofile(12000)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 12000, "descriptors for 10,000 watches"
    t_start = time.monotonic()
    groups = ["many/g%03d/" % g for g in range(500)]
    keys = [g + "k%d" % i for g in groups for i in range(10)]     # 5,000 keys
    # 10,000 watches and this test's own connections
    proc, port, _ = c.extra_kvd({"max_connections": 10100})
    cl = KeepAlive(c.http_port)
    raws, col = [], None
    try:
        versions = {}
        for k in keys:
            r = cl.request("POST", path(k), b"start")
            assert r.status == 201, r
            versions[k] = r.json()["version"]
        tokens = {}
        for g in groups:
            _, tokens[g] = listing(c, g, port=port)
        threads0, rss0 = threads_of(proc.pid), rss_kib(proc.pid)
        # 5,000 key watches and 5,000 prefix watches (10 per group), mixed
        kinds = {}
        for i in range(10000):
            if i % 2 == 0:
                k = keys[i // 2]
                raw = Raw(port, "GET", key_watch(k, versions[k], 30, i % 4 == 0))
                kinds[raw] = ("key", k)
            else:
                g = groups[(i // 2) % 500]
                raw = Raw(port, "GET", prefix_watch(g, tokens[g], 30, True))
                kinds[raw] = ("prefix", g)
            raws.append(raw)
        col = Collector(raws)
        assert_parked(col, 0.5)
        threads1, rss1 = threads_of(proc.pid), rss_kib(proc.pid)
        # one write per 100 keys: two updates, a delete, a refresh and a create
        changed_keys = {keys[300 + 1]: "POST", keys[1400 + 2]: "POST", keys[2500 + 3]: "DELETE",
                        keys[3600 + 4]: "REFRESH"}
        new_key = groups[47] + "new"
        for k, how in changed_keys.items():
            if how == "POST":
                r = cl.request("POST", path(k), b"changed")
            elif how == "DELETE":
                r = cl.request("DELETE", path(k))
            else:
                r = c.request("PUT", path(k) + "?ttl=300&refresh=1", b"")
            assert r.status in (200, 201, 202), (k, r)
        r = cl.request("POST", path(new_key), b"new")
        assert r.status == 201
        woken_groups = {k[:len("many/g000/")] for k in changed_keys} | {groups[47]}
        expect = {raw for raw, (kind, what) in kinds.items()
                  if (kind == "key" and what in changed_keys)
                  or (kind == "prefix" and what in woken_groups)}
        assert len(expect) == 4 + 5 * 10, len(expect)
        wait_for(lambda: len(col.finished()) >= len(expect), 10, "the woken watchers")
        time.sleep(0.5)    # and no other
        answered = set(col.answered())
        assert answered == expect, ("woken: %d, expected %d; %d wrongly woken"
                                    % (len(answered), len(expect), len(answered - expect)))
        for raw in answered:
            r = raw.response
            assert r is not None, raw.target
            kind, what = kinds[raw]
            if kind == "key":
                assert r.status == (404 if changed_keys[what] == "DELETE" else 200), (what, r)
                assert_same_as_get(c, r, what, port=port)
            else:
                assert r.status == 200 and token_of(r) != tokens[what], (what, r)
                assert_list_now(c, what, r)
        took = time.monotonic() - t_start
        print("watch: 10000 parked watches on one lazykvd: threads %d -> %d, rss %d -> %d KiB;"
              " %d woken by 5 writes, none other; %.1f s in all"
              % (threads0, threads1, rss0, rss1, len(answered), took))
        assert threads1 <= threads0 + 2, (threads0, threads1)
        if not SANITIZED:
            assert rss1 <= 128 * 1024, rss1
    finally:
        if col is not None:
            col.close()
        else:
            for raw in raws:
                raw.close()
        cl.close()
        assert c.stop_extra(proc) == 0
    r = c.request("DELETE", "/canonicalbucket/?prefix=many/")
    assert r.status == 202 and r.json()["deleted"] == len(keys), r
