"""Abusive HTTP against the real server: every abuse gets a clear status, and
the server keeps serving others afterwards (issue 5)."""
import os
import re
import resource
import select
import socket
import struct
import threading
import time

from harness import SANITIZED, raw_exchange, wait_for


def raw(c, data, port=None, read_timeout=10):
    """Sends bytes on a fresh connection; returns what comes back until close
    or read_timeout."""
    return raw_exchange(port or c.http_port, data, read_timeout)


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


def still_serving(c):
    r = c.request("GET", "/health")
    assert r.status == 200, r


def send_chunked(c, key, mib):
    """Sends a chunked POST of mib MiB; returns (response bytes, MiB sent)."""
    s = socket.create_connection(("127.0.0.1", c.http_port))
    s.settimeout(10)
    s.sendall(b"POST /bucket/%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              % key.encode())
    chunk = b"%x\r\n" % (1 << 20) + b"a" * (1 << 20) + b"\r\n"
    sent = 0
    try:
        for _ in range(mib):
            s.sendall(chunk)
            sent += 1
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    resp = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            resp += d
            if b"\r\n\r\n" in resp and b"}" in resp:
                break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return resp, sent


def test_chunked_body_over_max_is_413_and_never_buffered(c):
    rss0 = c.kvd_rss_kib()
    resp, sent = send_chunked(c, "abuse/chunked", 20)   # the limit is 16 MiB
    assert status_of(resp) == 413, resp[:200]
    assert SANITIZED or c.kvd_rss_kib() < rss0 + 24 * 1024, "the excess was kept in memory"
    # a body that goes on past twice the limit is cut off: not read whole
    resp, sent = send_chunked(c, "abuse/chunked", 200)
    assert sent < 200, "the server read a 200 MiB body"
    assert c.request("GET", "/canonicalbucket/abuse/chunked").status == 404
    still_serving(c)


def test_lying_content_length_stores_nothing(c):
    # promises 100 bytes, sends 10, hangs up
    s = socket.create_connection(("127.0.0.1", c.http_port))
    s.sendall(b"POST /bucket/abuse/liar HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    s.close()
    # promises 5, sends 10: the rest is a malformed next request
    resp = raw(c, b"POST /bucket/abuse/liar2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                  b"01234GARBAGE\r\n\r\n")
    assert status_of(resp) == 201, resp[:200]
    g = c.request("GET", "/canonicalbucket/abuse/liar2")
    assert g.body == b"01234"
    assert c.request("GET", "/canonicalbucket/abuse/liar").status == 404
    still_serving(c)


def test_huge_headers_and_request_lines(c):
    big_header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    assert status_of(raw(c, big_header)) == 431
    many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(10000)) + b"\r\n"
    assert status_of(raw(c, many)) == 431
    long_line = b"GET /bucket/" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(raw(c, long_line)) == 414
    assert status_of(raw(c, b"NOT A REQUEST\r\n\r\n")) == 400
    still_serving(c)


def test_injection_strings_are_data(c):
    evil = ["'; DROP TABLE data; --", "\" OR 1=1 --", "x' UNION SELECT password FROM mysql.user --",
            "\\'; SHUTDOWN; --", "%27%3B"]
    for i, e in enumerate(evil):
        key = "abuse/sql/" + e
        value = (e * 3).encode()
        from urllib.parse import quote
        p = "/canonicalbucket/" + quote(key.encode(), safe="/")
        assert c.request("PUT", p, value, {"Content-Type": e[:40]}).status == 201
        g = c.request("GET", p)
        assert g.status == 200 and g.body == value and g.header("Content-Type") == e[:40]
    assert int(c.sql(0, "SELECT COUNT(*) FROM data WHERE k LIKE 'abuse/sql/%'")[0][0]) == len(evil)


def test_pipelined_requests_and_keep_alive(c):
    c.request("POST", "/canonicalbucket/abuse/pipe", b"piped")
    reqs = b"".join(b"GET /canonicalbucket/abuse/pipe HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(5))
    s = socket.create_connection(("127.0.0.1", c.http_port))
    s.settimeout(10)
    s.sendall(reqs)
    data = b""
    deadline = time.monotonic() + 10
    while data.count(b"piped") < 5 and time.monotonic() < deadline:
        data += s.recv(65536)
    # the same connection still serves a sixth request afterwards
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    tail = b""
    while b"\"status\"" not in tail and time.monotonic() < deadline:
        tail += s.recv(65536)
    s.close()
    assert data.count(b"HTTP/1.1 200 OK") == 5 and data.count(b"piped") == 5, data
    assert tail.startswith(b"HTTP/1.1 200 OK")


def test_abrupt_disconnects_are_reaped_within_a_second(c):
    # The default idle timeout: what is reaped must be reaped because the
    # client went away, not because the connection idled out. (With
    # libmicrohttpd 0.9.75 in epoll mode, an upload whose last data and FIN
    # arrived together waited for this timeout: see server.c.)
    proc, port, _ = c.extra_kvd({"connection_timeout": 30})
    try:
        value = os.urandom(512 << 10)
        assert c.request_to(port, "PUT", "/canonicalbucket/abuse/big", value).status in (200, 201)
        # warm every worker thread's database connections, so they do not count
        threads = [threading.Thread(target=lambda: [c.request_to(port, "GET", "/health")
                                                    for _ in range(20)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fds0 = c.kvd_fds(proc.pid)
        rss0 = c.kvd_rss_kib(proc.pid)
        open_socks = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /bucket/abuse/cut-%d HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: %d\r\n\r\n" % (i, len(value)))
            s.sendall(value[: len(value) // 2])
            if i % 2:  # a reset
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # else a normal close: FIN right behind the data
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /canonicalbucket/abuse/big HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < 64 << 10:
                chunk = s.recv(65536)
                assert chunk, "the download ended early"
                got += len(chunk)
            open_socks.append(s)
        for s in open_socks:
            s.close()  # unread data: the kernel sends a reset
        t0 = time.monotonic()
        try:
            wait_for(lambda: c.kvd_fds(proc.pid) <= fds0 + 5, timeout=1.0,
                     what="descriptors back to baseline %d +- 5 within 1 s" % fds0)
        except AssertionError as e:
            raise AssertionError("%s: %d open" % (e, c.kvd_fds(proc.pid)))
        took = time.monotonic() - t0
        rss1 = c.kvd_rss_kib(proc.pid)
        print("abuse: 200 cut uploads + 50 cut downloads: fds %d -> %d after %.2f s, "
              "rss %d -> %d KiB" % (fds0, c.kvd_fds(proc.pid), took, rss0, rss1))
        assert SANITIZED or rss1 < rss0 + 8 * 1024, (rss0, rss1)
        listed = c.request_to(port, "GET", "/canonicalbucket/?prefix=abuse/cut-").json()
        assert listed["keys"] == [], listed
        assert c.request_to(port, "GET", "/canonicalbucket/abuse/big").body == value
    finally:
        assert c.stop_extra(proc) == 0


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def test_5000_idle_connections_while_others_are_served(c):
    raise_nofile(12000)
    rss0 = c.kvd_rss_kib()
    socks = []
    try:
        for _ in range(5000):
            s = socket.socket()
            s.setblocking(True)
            s.connect(("127.0.0.1", c.http_port))
            socks.append(s)
        wait_for(lambda: c.kvd_fds() >= 5000, what="lazykvd to accept 5000 connections")
        t0 = time.monotonic()
        for _ in range(20):
            still_serving(c)
        per_req = (time.monotonic() - t0) / 20
        rss = c.kvd_rss_kib()
        print("abuse: 5000 idle connections: rss %d -> %d KiB, %.1f ms per request meanwhile"
              % (rss0, rss, per_req * 1000))
        assert per_req < 0.5
    finally:
        for s in socks:
            s.close()


def http_get_on(s, path):
    """One GET on an open keep-alive socket; returns the whole response."""
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, "connection closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(65536)
    return head, body


def open_connections_seen_by(s):
    _, body = http_get_on(s, "/metrics")
    return int(re.search(rb"(?m)^lazykv_http_connections (\d+)$", body).group(1))


def test_connections_past_max_are_refused_cleanly(c):
    raise_nofile(4000)
    proc, port, _ = c.extra_kvd({"max_connections": 50})
    first = socket.create_connection(("127.0.0.1", port))
    first.settimeout(10)
    socks = [first]
    try:
        # Start from a known count: the start-up probe's connection may not
        # have been reaped yet, and it holds a slot until it is.
        wait_for(lambda: open_connections_seen_by(first) == 1,
                 what="only this connection to be open")
        for _ in range(79):
            socks.append(socket.create_connection(("127.0.0.1", port)))
        # The ones past the limit are closed by the server at once. Which
        # ones they are is not fixed: the pool's threads accept from one
        # listening socket and reserve slots in whatever order they run.
        def closed_by_server():
            readable, _, _ = select.select(socks, [], [], 0.1)
            return [s for s in readable if peer_closed(s)]
        refused = wait_for(lambda: (lambda r: r if len(r) >= 30 else None)(closed_by_server()),
                           what="30 connections past the limit to be closed")
        assert len(refused) == 30, len(refused)
        assert first not in refused
        # the other 50 are open and served
        admitted = [s for s in socks if s not in refused]
        for s in admitted:
            s.settimeout(10)
            head, _ = http_get_on(s, "/health")
            assert head.startswith(b"HTTP/1.1 200 OK"), head
        assert open_connections_seen_by(first) == 50
        # Closed connections free their slots once the server reaps them.
        for s in socks:
            s.close()
        socks = []
        wait_for(lambda: c.serves(port), what="the server to serve again")
    finally:
        for s in socks:
            s.close()
        assert c.stop_extra(proc) == 0


def peer_closed(s):
    """True when s, already readable, was closed by its peer (EOF or RST)."""
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def test_slowloris_connections_time_out(c):
    raise_nofile(4000)
    proc, port, _ = c.extra_kvd({"connection_timeout": 2})
    socks = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /")
            socks.append(s)
        stop = threading.Event()

        def dribble():
            # a byte a second on every connection, for as long as it is open
            while not stop.is_set():
                for s in socks:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass
                stop.wait(1.0)
        t = threading.Thread(target=dribble)
        t.start()
        try:
            lat = []
            for _ in range(20):
                t0 = time.monotonic()
                assert c.request_to(port, "GET", "/health").status == 200
                lat.append(time.monotonic() - t0)
            assert max(lat) < 1.0, lat
            # MHD's timeout counts from the last byte received... a dribbler
            # that keeps sending is still bounded by the header size limit;
            # one that stops is dropped after connection_timeout.
            stop.set()
            t.join()

            open_socks = set(socks)

            def all_closed():
                p = select.poll()
                for s in open_socks:
                    p.register(s, select.POLLIN)
                for fd, _ in p.poll(100):
                    s = next(x for x in open_socks if x.fileno() == fd)
                    try:
                        if s.recv(65536) == b"":
                            open_socks.discard(s)
                    except ConnectionResetError:
                        open_socks.discard(s)
                return not open_socks
            wait_for(all_closed, timeout=20, what="slow connections to be dropped")
            print("abuse: slowloris: 1000 connections dropped; max latency meanwhile %.1f ms"
                  % (max(lat) * 1000))
        finally:
            stop.set()
            t.join()
    finally:
        for s in socks:
            s.close()
        assert c.stop_extra(proc) == 0
