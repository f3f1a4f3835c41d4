"""Concurrent writes of one key: contention is never a 5xx (issue 8, defect 2).

InnoDB answers some interleavings of writes to one key (a locking read of a
missing key takes a gap lock; two such locks block each other's inserts)
with a deadlock error for one of them. That is contention, not a backend
fault: lazykvd must resolve it (order its own writes of a key, retry a
victim) and answer each request as if the writes had run one at a time.
"""
import http.client
import re
import threading
import urllib.parse

q = urllib.parse.quote


class Client:
    """One keep-alive connection, as a real client would hold."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle keep-alive connection: reconnect once
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise

    def close(self):
        self.conn.close()


def run_together(clients, fn):
    """Runs fn(i, client) on every client at the same moment; returns the
    results in client order (a failure in any thread is raised here)."""
    barrier = threading.Barrier(len(clients))
    results = [None] * len(clients)
    errors = []

    def body(i):
        try:
            barrier.wait(timeout=30)
            results[i] = fn(i, clients[i])
        except Exception as e:  # noqa: BLE001 -- re-raised below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def ports_for(c, extra_port, n):
    """n client ports: all on the main lazykvd, or split over two."""
    if extra_port is None:
        return [c.http_port] * n
    return [c.http_port if i % 2 == 0 else extra_port for i in range(n)]


def deadlock_retries(c, port=None):
    body = c.request("GET", "/metrics", port=port).body.decode()
    m = re.search(r"(?m)^lazykv_db_deadlock_retries_total (\d+)$", body)
    assert m, "lazykv_db_deadlock_retries_total missing from /metrics"
    return int(m.group(1))


def create_only_rounds(c, ports, rounds, tag):
    clients = [Client(p) for p in ports]
    try:
        for r in range(rounds):
            key = "/bucket/" + q("contend/%s/create/%d" % (tag, r))

            def put(i, cl):
                return cl.request("PUT", key, b"writer %d" % i, {"If-None-Match": "*"})[0]
            statuses = run_together(clients, put)
            assert sorted(statuses) == [201] + [412] * (len(ports) - 1), (r, statuses)
    finally:
        for cl in clients:
            cl.close()


def if_match_rounds(c, ports, rounds, tag):
    clients = [Client(p) for p in ports]
    try:
        key = "/bucket/" + q("contend/%s/ifmatch" % tag)
        status, headers, _ = clients[0].request("PUT", key, b"start")
        assert status in (200, 201)
        etag = headers["etag"]
        for r in range(rounds):
            def put(i, cl):
                return cl.request("PUT", key, b"round %d writer %d" % (r, i), {"If-Match": etag})
            results = run_together(clients, put)
            statuses = sorted(s for s, _, _ in results)
            assert statuses == [200] + [412] * (len(ports) - 1), (r, statuses)
            etag = next(h["etag"] for s, h, _ in results if s == 200)
    finally:
        for cl in clients:
            cl.close()


def blind_posts(c, ports, keys, per_writer, tag):
    """Each writer POSTs per_writer times, to keys[i % len(keys)] in turn;
    checks every answer is 201 and versions only grow, per key."""
    clients = [Client(p) for p in ports]
    names = ["/bucket/" + q("contend/%s/blind/%s" % (tag, k)) for k in keys]
    try:
        def writer(i, cl):
            seen = {}
            for n in range(per_writer):
                k = names[(i + n) % len(names)]
                status, _, body = cl.request("POST", k, b"w%d n%d" % (i, n))
                assert status == 201, (k, status, body)
                v = int(re.search(rb'"version":\s*(\d+)', body).group(1))
                assert v > seen.get(k, 0), (k, seen.get(k), v)
                seen[k] = v
            return seen
        results = run_together(clients, writer)
    finally:
        for cl in clients:
            cl.close()
    # Every acknowledged version of a key is distinct, and the newest is
    # what the key holds now.
    for k in names:
        last = max(r[k] for r in results if k in r)
        g = c.request("GET", k.replace("/bucket/", "/canonicalbucket/", 1))
        assert g.status == 200 and int(g.header("ETag").strip('"'), 16) == last, (k, g, last)


def on_one_partition(c, tag, count):
    """count key names k for which "contend/<tag>/blind/<k>" share one master
    partition (placement is lazykvd's: a write's answer names the master)."""
    found, want, i = [], None, 0
    while len(found) < count:
        k = "p%d" % i
        m = c.request("PUT", "/bucket/" + q("contend/%s/blind/%s" % (tag, k)), b"probe").json()["master"]
        want = m if want is None else want
        if m == want:
            found.append(k)
        i += 1
    return found


def test_simultaneous_create_only_puts_give_one_201_and_seven_412(c):
    before = deadlock_retries(c)
    create_only_rounds(c, ports_for(c, None, 8), 200, "one")
    print("contention: 200 rounds of 8 create-only PUTs, deadlock retries %d"
          % (deadlock_retries(c) - before))


def test_simultaneous_if_match_puts_give_one_200_and_seven_412(c):
    if_match_rounds(c, ports_for(c, None, 8), 200, "one")


def test_blind_posts_to_one_key_and_to_one_partition_never_fail(c):
    blind_posts(c, ports_for(c, None, 8), ["k"], 500, "one")
    blind_posts(c, ports_for(c, None, 8), on_one_partition(c, "one", 8), 500, "one")


def test_contention_across_two_lazykvd_processes(c):
    proc, port, _ = c.extra_kvd({})
    try:
        ports = ports_for(c, port, 8)
        create_only_rounds(c, ports, 200, "two")
        if_match_rounds(c, ports, 200, "two")
        blind_posts(c, ports, ["k"], 500, "two")
        retries = deadlock_retries(c) + deadlock_retries(c, port)
        print("contention: two lazykvd processes, deadlock retries %d" % retries)
    finally:
        assert c.stop_extra(proc) == 0
