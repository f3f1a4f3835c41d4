"""The event-driven request path (issue 9): libmicrohttpd's thread suspends
each request and a worker's event loop drives the partitions with
Connector/C's non-blocking API, group-committing the writes of a partition
and sending the copies of a canonical write to every other partition at once.

What that design promises, and what these tests hold it to:

- one worker loop keeps hundreds of requests in flight, each answered with
  exactly its own key's bytes;
- a hung partition holds no thread: a thousand requests waiting for it cost
  no threads and no latency to the other partitions, and all get 503 within
  read_timeout;
- group commit answers every write as if the writes of a key had run one at
  a time (checked against a sequential model, and against real time);
- a canonical write waits for its copies side by side, not one after the
  other.

Each test prints one `loop:` line with its figures.
"""
import asyncio
import bisect
import collections
import http.client
import os
import random
import resource
import signal
import subprocess
import threading
import time
import urllib.parse

from harness import Response, wait_for

q = urllib.parse.quote


def path(key, canonical=False):
    return ("/canonicalbucket/" if canonical else "/bucket/") + q(key.encode(), safe="/")


def etag(version):
    return '"%016x"' % version


def version_of(r):
    return int(r.header("ETag").strip('"'), 16)


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, (99 * len(xs) + 99) // 100 - 1)]


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def metric(c, name, port=None):
    for line in c.request("GET", "/metrics", port=port).body.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(name + " missing from /metrics")


def find_masters(c, prefix, want, port=None):
    """Canonical POSTs of prefix/0, prefix/1, ... (each key's name as its
    value) until want(master_counts) is true; returns {partition: [keys]}."""
    masters = collections.defaultdict(list)
    i = 0
    while not want(masters):
        k = "%s/%d" % (prefix, i)
        r = c.request("POST", path(k, True), k.encode(), port=port)
        assert r.status == 201 and r.header("X-Lazykv-Replicas") == "3/3", r
        masters[r.json()["master"]].append(k)
        i += 1
    return masters


class KeepAlive:
    """One keep-alive connection. Nothing is retried: a retried write could
    be applied twice, and lazykvd has no reason to drop the connection."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method, target, body=None, headers=None):
        """(Response, time sent, time answered)"""
        t0 = time.monotonic()
        self.conn.request(method, target, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        return (Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data),
                t0, time.monotonic())

    def close(self):
        self.conn.close()


async def read_response(reader):
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    assert "content-length" in headers, head
    body = await reader.readexactly(int(headers["content-length"]))
    return Response(int(head[0].split(" ", 2)[1]), headers, body)


def get_all_at_once(port, targets, sent=None, answered=None, timeout=60):
    """Opens one connection per GET target, then sends all the requests at
    the same moment (raw HTTP/1.1 over asyncio streams, so no thread per
    request). Returns, in order, (Response, seconds from its send to its
    answer). sent (a threading.Event) is set once every request is sent;
    answered (a list) gets an item per answer as it comes."""
    async def run():
        gate = asyncio.Semaphore(100)   # a SYN burst past the listen backlog would stall

        async def connect():
            async with gate:
                return await asyncio.open_connection("127.0.0.1", port)
        conns = await asyncio.gather(*(connect() for _ in targets))

        async def answer(reader, t0):
            r = await read_response(reader)
            took = time.monotonic() - t0
            if answered is not None:
                answered.append(took)
            return r, took
        try:
            starts = []
            for (_, writer), target in zip(conns, targets):
                starts.append(time.monotonic())
                writer.write(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % target.encode())
            if sent is not None:
                sent.set()
            return await asyncio.wait_for(
                asyncio.gather(*(answer(reader, t0) for (reader, _), t0 in zip(conns, starts))),
                timeout)
        finally:
            for _, writer in conns:
                writer.close()
    return asyncio.run(run())


# ---- 1. one worker, many requests in flight -----------------------------------

def test_many_requests_in_flight_on_one_worker(c):
    proc, port, _ = c.extra_kvd({"threads": 1})
    try:
        rnd = random.Random(91)
        stored = {}    # key -> (value, content type, version, master)
        for i in range(300):
            k = "loop/many/%d" % i
            n = (0 if i == 0 else [65537, 100000, 300000, (1 << 20) + 3][i - 1] if i <= 4
                 else rnd.randrange(1, 4000))
            v, ctype = os.urandom(n), "application/x-loop-%d" % i
            r = c.request("POST", path(k, True), v, {"Content-Type": ctype}, port=port)
            assert r.status == 201 and r.header("X-Lazykv-Replicas") == "3/3", r
            stored[k] = (v, ctype, r.json()["version"], r.json()["master"])
        names = sorted(stored) + ["loop/many/missing/%d" % i for i in range(50)]
        asked = [(names[i % len(names)], rnd.random() < 0.5) for i in range(500)]
        rnd.shuffle(asked)

        reads0 = metric(c, "lazykv_db_reads_total", port)
        statements0 = metric(c, "lazykv_db_read_statements_total", port)
        t0 = time.monotonic()
        answers = get_all_at_once(port, [path(k, canonical) for k, canonical in asked])
        took = time.monotonic() - t0
        reads = metric(c, "lazykv_db_reads_total", port) - reads0
        statements = metric(c, "lazykv_db_read_statements_total", port) - statements0

        wrong = []
        for (k, canonical), (r, _) in zip(asked, answers):
            if k not in stored:
                ok = r.status == 404
            else:
                v, ctype, version, master = stored[k]
                ok = (r.status == 200 and r.body == v and r.header("Content-Type") == ctype
                      and r.header("ETag") == etag(version))
                # a canonical read is answered by the key's master
                ok = ok and (not canonical or r.header("X-Lazykv-Partition") == str(master))
            if not ok:
                wrong.append((k, canonical, r))
        statuses = collections.Counter(r.status for r, _ in answers)
        print("loop: 500 concurrent GETs on one worker: %s in %.2f s (slowest %.3f s);"
              " %d key reads in %d statements"
              % (" ".join("%d=%d" % s for s in sorted(statuses.items())), took,
                 max(t for _, t in answers), reads, statements))
        assert wrong == [], wrong[:3]
    finally:
        assert c.stop_extra(proc) == 0


# ---- 2. a hung partition holds requests, not threads ------------------------

def test_hung_partition_holds_1000_requests_without_slowing_others(c):
    """On a fresh lazykvd (4 worker loops) whose read connections to
    partition 2 were never opened: the held requests wait for connections
    (connect_timeout), which a partition that hangs while idle costs.
    test_faults covers requests waiting on a statement in flight."""
    raise_nofile(8192)
    proc, port, _ = c.extra_kvd({"threads": 4})
    client = KeepAlive(port)
    try:
        masters = find_masters(c, "loop/hang", lambda m: len(m[2]) >= 40
                               and len(m[0]) + len(m[1]) >= 40, port=port)
        hung, others = masters[2], masters[0] + masters[1]

        def timed_gets(n):
            took = []
            for i in range(n):
                k = others[i % len(others)]
                r, t0, t1 = client.request("GET", path(k, True))
                assert r.status == 200 and r.body == k.encode(), (k, r)
                took.append(t1 - t0)
            return took

        timed_gets(20)                   # warm: connections, statement caches
        unloaded = p99(timed_gets(50))
        threads_before = threads_of(proc.pid)
        pid = c.freeze_node(2)
        try:
            sent, answered, result = threading.Event(), [], []

            def hold():
                try:
                    result.extend(get_all_at_once(
                        port, [path(hung[i % len(hung)], True) for i in range(1000)],
                        sent=sent, answered=answered))
                except Exception as e:  # noqa: BLE001 -- reported below
                    result.append(e)
                    sent.set()
            held = threading.Thread(target=hold)
            held.start()
            try:
                assert sent.wait(60), "the 1000 requests were never all sent"
                t0 = time.monotonic()
                loaded = timed_gets(100)
                threads_during = threads_of(proc.pid)
                measured_in = time.monotonic() - t0
                answered_meanwhile = len(answered)
            finally:
                held.join(90)
            assert not held.is_alive() and len(result) == 1000, result[:1]
        finally:
            os.kill(pid, signal.SIGCONT)
            wait_for(lambda: all(c.request("GET", path(hung[0], True), port=p).status == 200
                                 for p in (port, c.http_port)),
                     what="partition 2 to answer both lazykvd again")
    finally:
        client.close()
        assert c.stop_extra(proc) == 0

    base = max(unloaded, 0.002)
    wrong = [r for r, _ in result
             if r.status != 503 or r.header("Retry-After") != "2"
             or not r.header("Content-Type").startswith("application/problem+json")]
    took = sorted(t for _, t in result)
    late = sum(1 for t in took if t >= 5 + 1)           # read_timeout + 1 s
    print("loop: 1000 requests held by a hung partition: 503 after %.2f / %.2f / %.2f s"
          " (min / median / max), %d after 6 s; others meanwhile p99 %.2f ms (unloaded"
          " %.2f ms), 100 in %.2f s with %d answered; threads %d -> %d"
          % (took[0], took[500], took[-1], late, p99(loaded) * 1e3, unloaded * 1e3,
             measured_in, answered_meanwhile, threads_before, threads_during))
    assert wrong == [], wrong[:3]
    assert late == 0, took[-1]
    assert answered_meanwhile == 0, answered_meanwhile  # measured while all were held
    assert p99(loaded) < 10 * base, (p99(loaded), unloaded)
    assert threads_during <= threads_before + 2, (threads_before, threads_during)


# ---- 3. group commit against a sequential model -------------------------------

# What a request may answer: (method, precondition) -> statuses.
ALLOWED = {("POST", None): {201}, ("PUT", "If-None-Match"): {201, 412},
           ("PUT", "If-Match"): {200, 412}, ("DELETE", None): {202, 404},
           ("DELETE", "If-Match"): {202, 412}, ("GET", None): {200, 404}}
MIX = [("POST", None)] * 3 + [("PUT", "If-None-Match")] * 2 + [("PUT", "If-Match")] * 3 + \
      [("DELETE", None), ("DELETE", "If-Match")]

# One request as the client saw it. version: the write's (acknowledged) or
# the value read (GET 200), else None; etag: the If-Match version sent.
Op = collections.namedtuple("Op", "writer method cond etag status version send recv value ctype")


def acknowledged(o):
    return o.method != "GET" and o.status in (200, 201, 202)


def running_max(pairs):
    """(time, index) pairs -> (times sorted, the highest index up to each)."""
    times, best, m = [], [], -1
    for t, i in sorted(pairs):
        m = max(m, i)
        times.append(t)
        best.append(m)
    return times, best


def last_before(table, t):
    """The highest index of a running_max table with a time before t, or -1."""
    times, best = table
    n = bisect.bisect_left(times, t)
    return best[n - 1] if n else -1


def could_answer(o, s):
    """Whether the refusal or read o is what state s (a write) answers."""
    live = s.method != "DELETE"
    if o.method == "GET":
        return (o.status, o.version) == ((200, s.version) if live else (404, None))
    if o.status == 412 and o.cond == "If-Match":
        return not (live and s.version == o.etag)
    if o.status == 412:
        return live
    return not live      # a DELETE's 404


def check_key(key, ops, final):
    """Checks every request on key (in each writer's order, the probe that
    created the key first) against one sequential history: the acknowledged
    writes in version order. final: the canonical GET after all ended."""
    for o in ops:
        assert o.status in ALLOWED[o.method, o.cond], (key, o)
    history = sorted((o for o in ops if acknowledged(o)), key=lambda o: o.version)
    versions = [o.version for o in history]
    assert len(set(versions)) == len(versions), (key, "a version acknowledged twice")

    # Replayed one at a time, each acknowledged write found the state its
    # answer and its precondition say it found.
    prev = None
    for o in history:
        was_live = prev is not None and prev.method != "DELETE"
        if o.method == "PUT":
            assert (o.status == 200) == was_live, (key, prev, o)
        if o.method == "DELETE" or o.cond == "If-Match":
            assert was_live, (key, prev, o)
        if o.cond == "If-Match":
            assert prev.version == o.etag < o.version, (key, prev, o)
        if o.cond == "If-None-Match":
            assert not was_live, (key, prev, o)
        prev = o

    # Each writer's acknowledged versions grow.
    for w in {o.writer for o in ops}:
        mine = [o.version for o in ops if o.writer == w and acknowledged(o)]
        assert mine == sorted(set(mine)), (key, w)

    # Real time: a write acknowledged before another was sent has the lower
    # version.
    first_recv_after = float("inf")
    for o in reversed(history):
        assert first_recv_after > o.send, (key, "a later version acknowledged first", o)
        first_recv_after = min(first_recv_after, o.recv)

    # Refusals and reads: each was judged on a state that may have been
    # current while it ran, one written (sent) before it was answered and
    # not replaced by a write seen (answered, or read) before it was sent.
    # (So a 412 for If-Match E had a newer write or an E that was not live;
    # a 412 for If-None-Match, a live state; a read, no stale value.)
    index = {o.version: i for i, o in enumerate(history)}
    seen_at = [o.recv for o in history]
    for o in ops:
        if o.method == "GET" and o.status == 200:
            assert o.version in index, (key, "read a version never acknowledged", o)
            seen_at[index[o.version]] = min(seen_at[index[o.version]], o.recv)
    seen = running_max([(t, i) for i, t in enumerate(seen_at)])
    sent = running_max([(o.send, i) for i, o in enumerate(history)])
    for o in ops:
        if acknowledged(o):
            continue
        lo, hi = last_before(seen, o.send), last_before(sent, o.recv)
        states = [history[i] for i in range(lo, hi + 1)
                  if i + 1 == len(history) or seen_at[i + 1] > o.send]
        assert any(could_answer(o, s) for s in states), (key, o, states)

    # The key holds the newest acknowledged write, whole.
    last = history[-1]
    if last.method == "DELETE":
        assert final.status == 404, (key, final)
    else:
        assert (final.status, final.body, final.header("Content-Type"), final.header("ETag")) == \
            (200, last.value, last.ctype, etag(last.version)), (key, final, last)


def test_group_commit_matches_a_sequential_model(c):
    writers, per_writer = 64, 200
    proc, port, _ = c.extra_kvd({"threads": 2})
    try:
        # 16 keys mastered on one partition; each probe write starts its history
        ops = collections.defaultdict(list)      # key -> [Op]
        keys, partition, i = [], None, 0
        probe = KeepAlive(port)
        while len(keys) < 16:
            k = "loop/gc/%d" % i
            i += 1
            r, t0, t1 = probe.request("POST", path(k), k.encode(),
                                      {"Content-Type": "text/x-probe"})
            assert r.status == 201, r
            partition = r.json()["master"] if partition is None else partition
            if r.json()["master"] == partition:
                keys.append(k)
                ops[k].append(Op(-1, "POST", None, None, 201, r.json()["version"], t0, t1,
                                 k.encode(), "text/x-probe"))
        probe.close()
        retries0 = metric(c, "lazykv_db_deadlock_retries_total", port)

        barrier = threading.Barrier(writers)
        mine = [collections.defaultdict(list) for _ in range(writers)]   # writer -> key -> [Op]
        errors = []

        def writer(w):
            rnd = random.Random(w)
            seen = {k: ops[k][0].version for k in keys}
            cl = KeepAlive(port)
            try:
                barrier.wait(timeout=30)
                for n in range(per_writer):
                    k = rnd.choice(keys)
                    method, cond = rnd.choice(MIX)
                    value = b"w%d n%d %s" % (w, n, k.encode())
                    ctype = "application/x-w%d-n%d" % (w, n)
                    headers = {} if method == "DELETE" else {"Content-Type": ctype}
                    sent_etag = seen[k] if cond == "If-Match" else None
                    if cond:
                        headers[cond] = "*" if cond == "If-None-Match" else etag(sent_etag)
                    r, t0, t1 = cl.request(method, path(k, canonical=rnd.random() < 0.25),
                                           None if method == "DELETE" else value, headers)
                    version = r.json()["version"] if r.status in (200, 201, 202) else None
                    mine[w][k].append(Op(w, method, cond, sent_etag, r.status, version, t0, t1,
                                         value, ctype))
                    if version:
                        seen[k] = version
                    elif r.status in (404, 412):
                        # learn the current version, as a client would
                        g, t0, t1 = cl.request("GET", path(k, True))
                        version = version_of(g) if g.status == 200 else None
                        mine[w][k].append(Op(w, "GET", None, None, g.status, version, t0, t1,
                                             None, None))
                        seen[k] = version or seen[k]
            except Exception as e:  # noqa: BLE001 -- re-raised below
                errors.append(e)
                barrier.abort()
            finally:
                cl.close()

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        if errors:
            raise errors[0]
        retries = metric(c, "lazykv_db_deadlock_retries_total", port) - retries0

        for w in range(writers):
            for k, lst in mine[w].items():
                ops[k] += lst
        writes = collections.Counter(o.status for k in keys for o in ops[k][1:]
                                     if o.method != "GET")
        gets = sum(1 for k in keys for o in ops[k] if o.method == "GET")
        print("loop: group commit: %d writes by %d writers to %d keys of partition %d"
              " in %.1f s: %s; %d GETs after a refusal; deadlock retries %d"
              % (sum(writes.values()), writers, len(keys), partition, took,
                 " ".join("%d=%d" % s for s in sorted(writes.items())), gets, retries))
        assert sum(writes.values()) == writers * per_writer
        for k in keys:
            check_key(k, ops[k], c.request("GET", path(k, True), port=port))
    finally:
        assert c.stop_extra(proc) == 0


# ---- 4. the copies of a canonical write go side by side -----------------------

def poll_innodb_trx(c, i, where, stop=None, timeout=15):
    """Polls partition i until information_schema.INNODB_TRX has a
    transaction matching where; returns when it saw one, or None on timeout
    or once stop is set. MariaDB refreshes that table only when it was last
    read over 0.1 s before (read more often, it never changes): one read
    every 0.15 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        query = "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE " + where
        if c.sql(i, query) != [["0"]]:
            return time.monotonic()
        time.sleep(0.15)
    return None


def test_canonical_copies_are_sent_in_parallel(c):
    """A `mariadb` session on each of partitions 1 and 2 holds the key's row
    lock until 1.5 s after a copy starts waiting for it. Copies sent side by
    side wait together (1.5 s in all); copies sent one after the other wait
    in turn (3 s), the second starting to wait only once the first lock is
    gone. (Locks held for a fixed time from when they were taken could not
    tell the two apart: the second copy would find its lock gone too.)"""
    hold = 1.5
    key = find_masters(c, "loop/copy", lambda m: m[0])[0][-1]
    holders, waited, released, errors = {}, {}, {}, []
    posted = threading.Event()

    def release(i):
        if holders[i].poll() is None and not holders[i].stdin.closed:
            holders[i].stdin.write(b"ROLLBACK;\n")
            holders[i].stdin.close()
        released.setdefault(i, time.monotonic())

    def release_after_wait(i):
        try:
            seen = poll_innodb_trx(c, i, "trx_state = 'LOCK WAIT'", stop=posted)
            if seen is not None:
                waited[i] = seen
                time.sleep(max(0.0, seen + hold - time.monotonic()))
        except Exception as e:  # noqa: BLE001 -- re-raised below
            errors.append(e)
        finally:
            release(i)

    try:
        for i in (1, 2):
            holders[i] = subprocess.Popen(
                ["mariadb", "--no-defaults", "-h127.0.0.1", "-P%d" % c.db_ports[i], "-ulazykv",
                 "-psecret", "test_store_%d" % (i + 1)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            holders[i].stdin.write(b"START TRANSACTION;\nSELECT k FROM data WHERE k = UNHEX('%s')"
                                   b" FOR UPDATE;\n" % key.encode().hex().encode())
            holders[i].stdin.flush()
        for i in (1, 2):
            assert poll_innodb_trx(c, i, "trx_state = 'RUNNING' AND trx_rows_locked > 0"), \
                "the row lock on partition %d was never taken" % i
        watchers = [threading.Thread(target=release_after_wait, args=(i,)) for i in (1, 2)]
        for t in watchers:
            t.start()
        value = os.urandom(1000)
        t0 = time.monotonic()
        try:
            r = c.request("POST", path(key, True), value)
        finally:
            t1 = time.monotonic()
            posted.set()
            for t in watchers:
                t.join()
        for i in (1, 2):
            assert holders[i].wait(timeout=15) == 0, holders[i].stderr.read()
    finally:
        for i, p in holders.items():
            release(i)
            if p.poll() is None:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    if errors:
        raise errors[0]
    print("loop: canonical POST with both copies' locks held %.1f s from their wait: %.2f s;"
          " waits seen at +%s s, locks released at +%s s"
          % (hold, t1 - t0, "/".join("%.2f" % (waited[i] - t0) for i in sorted(waited)),
             "/".join("%.2f" % (released[i] - t0) for i in sorted(released))))
    assert r.status == 201 and r.header("X-Lazykv-Replicas") == "3/3", r
    assert sorted(waited) == [1, 2], ("a copy never waited for its lock", waited)
    assert max(waited.values()) < min(released.values()), \
        ("the second copy was sent only once the first was done", waited, released)
    assert t1 - t0 >= 1.0, t1 - t0
    assert t1 < max(released.values()) + 0.8 and t1 - t0 < 2.6, (t1 - t0, released)
    version = r.json()["version"]
    for i in range(c.n):
        assert c.row(i, key) == (value, version, 0), i
