"""Locks (issue 10): a lock is a key.

- acquire: PUT /canonicalbucket/L?ttl=N with If-None-Match: * (201);
- renew:   PUT ...?ttl=N&refresh=1, empty body, If-Match: <its ETag> (200);
- release: DELETE with If-Match: <its ETag> (202);
- the version (ETag) is the fencing token: it only grows.

Blocking acquisition, PUT ...?ttl=N&wait=S with If-None-Match: *, is held
while the key exists and creates it (201) as soon as it is deleted or
expires: within 50 ms of a release through the same lazykvd, 500 ms through
another (p99 over 100 samples), 1 s after an expiry; exactly one waiter wins
each release; 412 when wait passes, the existing lock untouched.

Waiters park, so they are sent on raw sockets (Raw) and read on one thread
(Collector) that stamps each answer with the moment it arrived.
"""
import random
import signal
import threading
import time
import urllib.parse

from harness import wait_for
from parked import Collector, Raw, assert_parked, expires_us, p99, report

q = urllib.parse.quote

SAME_LATENCY = 0.050
OTHER_LATENCY = 0.500
EXPIRY_LATENCY = 1.0


def path(key, canonical=True):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")


# ---- the recipe ---------------------------------------------------------------------------

ACQUIRE = {"If-None-Match": "*", "Content-Type": "text/x-owner"}


def acquire_target(key, ttl, wait=None, canonical=True):
    return path(key, canonical) + "?ttl=%d" % ttl + ("&wait=%d" % wait if wait else "")


def acquire(c, key, owner, ttl=30, wait=None, port=None, canonical=True):
    return c.request("PUT", acquire_target(key, ttl, wait, canonical), owner, ACQUIRE,
                     port=port, timeout=(wait or 0) + 30)


def renew(c, key, etag, ttl, port=None):
    return c.request("PUT", path(key) + "?ttl=%d&refresh=1" % ttl, b"", {"If-Match": etag},
                     port=port)


def release(c, key, etag, port=None):
    return c.request("DELETE", path(key), headers={"If-Match": etag}, port=port)


def holder_of(c, key, port=None):
    """(status, body, ETag, X-Lazykv-Expires, X-Lazykv-Index, Content-Type) of
    a canonical GET."""
    g = c.request("GET", path(key), port=port)
    return (g.status, g.body, g.header("ETag"), g.header("X-Lazykv-Expires"),
            g.header("X-Lazykv-Index"), g.header("Content-Type"))


# ---- raw requests that park ---------------------------------------------------------

def waiter(port, key, owner, ttl=30, wait=30, canonical=True):
    """A parked blocking acquisition of key."""
    return Raw(port, "PUT", acquire_target(key, ttl, wait, canonical), owner, ACQUIRE)


# ---- the recipe ---------------------------------------------------------------------

def test_acquire_renew_release_and_the_fencing_token(c):
    lock = "lock/recipe"
    a = acquire(c, lock, b"owner a", ttl=10)
    assert a.status == 201 and a.json()["result"] == "created", a
    assert a.header("X-Lazykv-Replicas") == "3/3", a
    e1, v1 = a.header("ETag"), a.json()["version"]
    exp1 = expires_us(a.header("X-Lazykv-Expires"))
    # held: a second acquisition fails and changes nothing
    b = acquire(c, lock, b"owner b", ttl=10)
    assert b.status == 412, b
    assert holder_of(c, lock)[:3] == (200, b"owner a", e1)
    # renew: same value and type, a new version, a later expiry
    r = renew(c, lock, e1, 20)
    assert r.status == 200 and r.json()["result"] == "refreshed", r
    e2, v2 = r.header("ETag"), r.json()["version"]
    assert v2 > v1 and e2 != e1
    assert expires_us(r.header("X-Lazykv-Expires")) >= exp1 + 9000000
    status, body, etag, exp, index, ctype = holder_of(c, lock)
    assert (status, body, etag, ctype) == (200, b"owner a", e2, "text/x-owner")
    assert exp == r.header("X-Lazykv-Expires") and index == str(v2)
    # the stale token renews nothing and releases nothing
    assert renew(c, lock, e1, 20).status == 412
    assert release(c, lock, e1).status == 412
    assert holder_of(c, lock)[:3] == (200, b"owner a", e2)
    # release with the current token
    d = release(c, lock, e2)
    assert d.status == 202, d
    assert holder_of(c, lock)[0] == 404
    assert renew(c, lock, e2, 20).status in (404, 412)
    # the next holder's fencing token is above every earlier one
    b = acquire(c, lock, b"owner b", ttl=10)
    assert b.status == 201, b
    assert b.json()["version"] > d.json()["version"] > v2, (b.json(), d.json(), v2)
    assert release(c, lock, b.header("ETag")).status == 202


# ---- blocking acquisition -------------------------------------------------------------

def test_a_blocking_acquire_waits_while_the_lock_exists_and_wins_on_release(c):
    lock = "lock/block"
    # free: a blocking acquisition is answered at once
    t0 = time.monotonic()
    a = acquire(c, lock, b"holder", wait=10)
    assert a.status == 201, a
    assert time.monotonic() - t0 < 1.0
    etag = a.header("ETag")
    raw = waiter(c.http_port, lock, b"waiter", wait=20)
    try:
        assert raw.parked(0.3), raw.describe()
        # renewed and rewritten, the key still exists: still held
        r = renew(c, lock, etag, 30)
        assert r.status == 200, r
        etag = r.header("ETag")
        assert raw.parked(0.3), raw.describe()
        r = c.request("PUT", path(lock) + "?ttl=30", b"holder, still", {"If-Match": etag})
        assert r.status == 200, r
        etag = r.header("ETag")
        assert raw.parked(0.3), raw.describe()
        d = release(c, lock, etag)
        assert d.status == 202, d
        w = raw.wait(5)
        assert w.status == 201 and w.json()["result"] == "created", w
        assert w.json()["version"] > d.json()["version"], (w.json(), d.json())
        assert w.header("X-Lazykv-Expires"), w
        status, body, etag, exp, _, ctype = holder_of(c, lock)
        assert (status, body, etag, exp, ctype) == \
            (200, b"waiter", w.header("ETag"), w.header("X-Lazykv-Expires"), "text/x-owner")
    finally:
        raw.close()
    assert release(c, lock, w.header("ETag")).status == 202


def test_a_blocking_acquire_gives_up_with_412_and_leaves_the_lock_untouched(c):
    lock = "lock/busy"
    a = acquire(c, lock, b"holder", ttl=60)
    assert a.status == 201, a
    before = holder_of(c, lock)
    rows = [c.row(i, lock) for i in range(c.n)]
    for canonical in (True, False):
        t0 = time.monotonic()
        r = acquire(c, lock, b"intruder", ttl=60, wait=1, canonical=canonical)
        took = time.monotonic() - t0
        assert r.status == 412, r
        assert r.header("Content-Type").startswith("application/problem+json"), r
        assert 0.95 <= took < 2.5, ("wait=1 gave up after %.2f s" % took)
    assert holder_of(c, lock) == before, (holder_of(c, lock), before)
    assert [c.row(i, lock) for i in range(c.n)] == rows
    assert release(c, lock, a.header("ETag")).status == 202


def test_each_release_hands_the_lock_to_exactly_one_waiter(c):
    proc, port, _ = c.extra_kvd({})
    lock = "lock/one"
    try:
        a = acquire(c, lock, b"holder")
        assert a.status == 201, a
        # four waiters: two per lazykvd, on both paths
        raws = [waiter(c.http_port if i % 2 == 0 else port, lock, b"waiter %d" % i,
                       canonical=i < 2) for i in range(4)]
        col = Collector(raws)
        winners = []
        etag, version = a.header("ETag"), a.json()["version"]
        try:
            assert_parked(col, why="answered while the lock was held")
            for turn in range(4):
                d = release(c, lock, etag)
                assert d.status == 202, d
                wait_for(lambda: len(col.finished()) > turn, 3, "a waiter to win the lock")
                time.sleep(0.7)        # longer than a handover through another lazykvd
                answered = col.answered()
                assert len(answered) == turn + 1, ("one release, %d winners"
                                                   % (len(answered) - turn))
                (w,) = [r for r in answered if r not in winners]
                r = w.response
                assert r.status == 201, r
                assert r.json()["version"] > d.json()["version"] > version
                assert holder_of(c, lock)[:3] == (200, w.body, r.header("ETag"))
                winners.append(w)
                etag, version = r.header("ETag"), r.json()["version"]
        finally:
            col.close()
        assert release(c, lock, etag).status == 202
    finally:
        assert c.stop_extra(proc) == 0


def contend(c, tag, ports, hold=0.05):
    """len(ports) clients, each: acquire (wait=30), hold, read the counter
    and write it + 1 with If-Match, release. Returns the acquisitions as
    (acknowledged at, release sent at, fencing token, counter written)."""
    lock, counter = "lock/contend/%s" % tag, "lock/contend/%s-counter" % tag
    w = c.request("POST", path(counter), b"0")
    assert w.status == 201, w
    n = len(ports)
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def client(i):
        port, mine = ports[i], None
        try:
            barrier.wait(timeout=30)
            a = acquire(c, lock, b"holder %d" % i, ttl=30, wait=30, port=port)
            t_acquired = time.monotonic()
            assert a.status == 201, ("client %d never acquired" % i, a)
            mine = a.header("ETag")
            time.sleep(hold)
            g = c.request("GET", path(counter), port=port)
            assert g.status == 200, g
            value = int(g.body) + 1
            u = c.request("PUT", path(counter), b"%d" % value, {"If-Match": g.header("ETag")},
                          port=port)
            assert u.status == 200, ("two holders: the counter changed under holder %d" % i, u)
            assert holder_of(c, lock, port)[:3] == (200, b"holder %d" % i, mine), \
                ("the lock changed hands while held", i)
            t_release = time.monotonic()
            d = release(c, lock, mine, port=port)
            mine = None
            assert d.status == 202, d
            results[i] = (t_acquired, t_release, a.json()["version"], value)
        except Exception as e:  # noqa: BLE001 -- re-raised below
            errors.append(e)
            barrier.abort()
            if mine:     # let the others go on (and fail) at once
                try:
                    release(c, lock, mine, port=port)
                except OSError:
                    pass

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    if errors:
        raise errors[0]
    g = c.request("GET", path(counter))
    assert g.status == 200 and g.body == b"%d" % n, ("counter", g.body, n)
    held = sorted(results)
    # the holds never overlap: each acquisition was acknowledged after the
    # previous holder sent its release, and the fencing tokens grow with them
    for prev, nxt in zip(held, held[1:]):
        assert nxt[0] > prev[1], ("two holders at once", prev, nxt)
        assert nxt[2] > prev[2], ("a fencing token went backwards", prev, nxt)
    assert [h[3] for h in held] == list(range(1, n + 1)), [h[3] for h in held]
    assert holder_of(c, lock)[0] == 404
    assert c.request("DELETE", path(counter)).status == 202
    print("locks: %d clients contending (%s): all acquired, counter %d, %.2f s"
          % (n, tag, n, took))


def test_20_clients_contending_with_wait_never_hold_it_together(c):
    contend(c, "one-kvd", [c.http_port] * 20)


def test_10_clients_on_two_lazykvd_contending_never_hold_it_together(c):
    proc, port, _ = c.extra_kvd({})
    try:
        contend(c, "two-kvd", [c.http_port if i % 2 else port for i in range(10)])
    finally:
        assert c.stop_extra(proc) == 0


# ---- latency of a handover ----------------------------------------------------------

def handover_round(c, tag, n, wait_port, release_port, rnd):
    """n locks held, one parked waiter each (on wait_port), released one by
    one (through release_port). Returns each waiter's delay after its
    release's acknowledgement."""
    locks = ["lock/lat/%s/%d" % (tag, i) for i in range(n)]
    etags = []
    for k in locks:
        a = acquire(c, k, b"first")
        assert a.status == 201, a
        etags.append(a.header("ETag"))
    raws = [waiter(wait_port, k, b"second", wait=20, canonical=i % 2 == 0)
            for i, k in enumerate(locks)]
    col = Collector(raws)
    acks = []
    try:
        assert_parked(col, why="answered while the lock was held")
        for k, e in zip(locks, etags):
            d = release(c, k, e, port=release_port)
            acks.append(time.monotonic())
            assert d.status == 202, d
            time.sleep(rnd.uniform(0, 0.03))
        col.wait_all(5)
    finally:
        col.close()
    delays = []
    for k, raw, t in zip(locks, raws, acks):
        r = raw.response
        assert r is not None and r.status == 201, (k, r)
        assert holder_of(c, k)[:3] == (200, b"second", r.header("ETag"))
        delays.append(raw.at - t)
        assert release(c, k, r.header("ETag")).status == 202
    return delays


def test_handover_latency_through_the_same_lazykvd(c):
    rnd = random.Random(20)
    delays = []
    for n in range(5):
        delays += handover_round(c, "same%d" % n, 20, c.http_port, c.http_port, rnd)
    report("locks: release through the same lazykvd -> waiter", delays)
    assert p99(delays) <= SAME_LATENCY, sorted(delays)[-5:]


def test_handover_latency_through_another_lazykvd(c):
    proc, port, _ = c.extra_kvd({})
    rnd = random.Random(21)
    delays = []
    try:
        for n in range(5):
            wait_port, release_port = (port, c.http_port) if n % 2 == 0 else (c.http_port, port)
            delays += handover_round(c, "other%d" % n, 20, wait_port, release_port, rnd)
    finally:
        assert c.stop_extra(proc) == 0
    report("locks: release through another lazykvd -> waiter", delays)
    assert p99(delays) <= OTHER_LATENCY, sorted(delays)[-5:]


# ---- expiry ------------------------------------------------------------------------------

def test_a_holder_that_stops_renewing_loses_the_lock_at_expiry(c):
    lock = "lock/lapse"
    a = acquire(c, lock, b"holder", ttl=2)
    assert a.status == 201, a
    etag = a.header("ETag")
    raw = waiter(c.http_port, lock, b"waiter", wait=30)
    try:
        # renewing at a third of the TTL keeps the lock
        for _ in range(4):
            assert raw.parked(0.6), raw.describe()
            r = renew(c, lock, etag, 2)
            assert r.status == 200, r
            etag = r.header("ETag")
        # the last renewal, then silence
        r = renew(c, lock, etag, 1)
        assert r.status == 200, r
        etag, last = r.header("ETag"), r.json()["version"]
        exp = expires_us(r.header("X-Lazykv-Expires")) / 1e6
        w = raw.wait(exp - time.time() + 3)
        assert w.status == 201, w
        print("locks: the waiter got an unrenewed lock %.0f ms after its expiry"
              % ((raw.at_wall - exp) * 1e3))
        assert raw.at_wall >= exp - 0.002, ("acquired %.3f s before the expiry"
                                            % (exp - raw.at_wall))
        assert raw.at_wall <= exp + EXPIRY_LATENCY + 0.002, raw.at_wall - exp
        assert w.json()["version"] > last
    finally:
        raw.close()
    # the old holder has lost it: its token renews and releases nothing
    assert renew(c, lock, etag, 2).status == 412
    assert release(c, lock, etag).status == 412
    assert holder_of(c, lock)[:3] == (200, b"waiter", w.header("ETag"))
    assert release(c, lock, w.header("ETag")).status == 202


def test_expired_locks_are_handed_over_within_a_second(c):
    proc, port, _ = c.extra_kvd({})
    rnd = random.Random(22)
    locks, exps, raws = [], [], []
    try:
        for i in range(10):
            k = "lock/lat/expiry/%d" % i
            a = acquire(c, k, b"forgetful", ttl=2)
            assert a.status == 201, a
            locks.append(k)
            exps.append(expires_us(a.header("X-Lazykv-Expires")) / 1e6)
            raws.append(waiter(port if i % 2 else c.http_port, k, b"next", wait=20))
            time.sleep(rnd.uniform(0, 0.05))
        col = Collector(raws)
        try:
            assert_parked(col, why="answered while the lock was held")
            col.wait_all(max(exps) - time.time() + 3)
        finally:
            col.close()
        late = []
        for k, raw, exp in zip(locks, raws, exps):
            r = raw.response
            assert r is not None and r.status == 201, (k, r)
            assert raw.at_wall >= exp - 0.002, ("acquired before the expiry", k)
            late.append(raw.at_wall - exp)
            assert holder_of(c, k)[:3] == (200, b"next", r.header("ETag"))
            assert release(c, k, r.header("ETag")).status == 202
        report("locks: expiry instant -> waiter", late)
        assert max(late) <= EXPIRY_LATENCY + 0.002, sorted(late)[-3:]
    finally:
        assert c.stop_extra(proc) == 0


# ---- shutdown ------------------------------------------------------------------------------

def test_sigterm_answers_parked_acquisitions_503_and_leaves_the_lock(c):
    proc, port, log = c.extra_kvd({})
    lock = "lock/term"
    a = acquire(c, lock, b"holder")
    assert a.status == 201, a
    try:
        before = holder_of(c, lock)
        raws = [waiter(port, lock, b"w%d" % i, wait=60, canonical=i % 2 == 0) for i in range(4)]
        col = Collector(raws)
        try:
            assert_parked(col, why="answered while the lock was held")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            col.wait_all(10)
        finally:
            col.close()
        rc = proc.wait(timeout=10)
        for r in raws:
            assert r.response is not None and r.response.status == 503, (r.target, r.response)
            assert r.at - t0 <= 2.0, ("answered %.2f s after SIGTERM" % (r.at - t0))
        assert rc == 0, open(log).read()[-2000:]
        assert holder_of(c, lock) == before
    finally:
        if proc.poll() is None:
            c.stop_extra(proc)
        assert release(c, lock, a.header("ETag")).status == 202
