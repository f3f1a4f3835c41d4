"""SIGTERM under load (issue 9): lazykvd stops accepting, answers what is in
flight, and exits 0; a request on a kept-alive connection that arrives while
it stops gets an answer or a closed connection, never a hang or a crash."""
import http.client
import signal
import threading
import time


def test_sigterm_under_keep_alive_load_exits_cleanly(c):
    proc, port, log = c.extra_kvd({"threads": 2})
    stop = threading.Event()
    answered, broken, bad = [0], [0], []

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while not stop.is_set():
            n += 1
            method, body = ("POST", b"v%d" % n) if n % 3 == 0 else ("GET", None)
            try:
                conn.request(method, "/bucket/shutdown/%d/%d" % (i, n % 7), body=body)
                r = conn.getresponse()
                r.read()
                if r.status not in (200, 201, 404, 503):
                    bad.append(r.status)
                answered[0] += 1
            except (OSError, http.client.HTTPException):
                broken[0] += 1  # closed by the stopping server: reconnecting is refused
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                time.sleep(0.01)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 10
        while answered[0] < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert answered[0] >= 500, answered
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        stop.set()
        for t in threads:
            t.join()
    print("shutdown: SIGTERM under 16 keep-alive clients: exit %d after %.2f s; %d answered, "
          "%d connections closed" % (rc, took, answered[0], broken[0]))
    assert rc == 0, open(log).read()[-2000:]
    assert took < 5, took
    assert bad == [], bad
