"""Requests that wait (watches, blocking lock acquisitions), sent over raw
non-blocking sockets so that many can be parked at once, and the moments
their answers arrive: shared by test_watch.py and test_locks.py."""
import calendar
import select
import selectors
import socket
import threading
import time

from harness import Response, wait_for


def expires_us(text):
    """X-Lazykv-Expires ("2026-11-29T16:40:00.123Z") in microseconds."""
    assert text is not None and len(text) == 24 and text.endswith("Z") and text[19] == ".", text
    secs = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000000 + int(text[20:23]) * 1000


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, (99 * len(xs) + 99) // 100 - 1)]



def report(what, delays):
    """Prints the latency samples' median, p99 and maximum (ms)."""
    xs = sorted(delays)
    print("%s: %d samples, median %.1f ms, p99 %.1f ms, max %.1f ms"
          % (what, len(xs), xs[len(xs) // 2] * 1e3, p99(xs) * 1e3, xs[-1] * 1e3))


class Raw:
    """One request on its own connection, sent at once and read whenever
    lazykvd answers it. at / at_wall: when its first bytes arrived (set by
    whoever reads it: Raw.wait or a Collector)."""

    def __init__(self, port, method, target, body=None, headers=None):
        self.target = target
        self.body = body
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, target)
        for name, value in (headers or {}).items():
            head += "%s: %s\r\n" % (name, value)
        if body is not None:
            head += "Content-Length: %d\r\n" % len(body)
        self.sock.sendall(head.encode("latin-1") + b"\r\n" + (body or b""))
        self.sock.setblocking(False)
        self.sent = time.monotonic()
        self.data = b""
        self.at = None
        self.at_wall = None
        self.response = None
        self.eof = False

    @property
    def done(self):
        return self.response is not None or self.eof

    def pump(self):
        """Reads what has arrived; True once answered (or closed)."""
        while not self.done:
            try:
                chunk = self.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
            elif self.at is None:
                self.at, self.at_wall = time.monotonic(), time.time()
            self.data += chunk
            self._parse()
        return self.done

    def _parse(self):
        head, sep, body = self.data.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length")
        if length is None:
            if not self.eof:
                return
        elif len(body) < int(length):
            return
        else:
            body = body[:int(length)]
        self.response = Response(int(lines[0].split(" ", 2)[1]), headers, body)

    def wait(self, timeout):
        """The answer, once it comes (fails after timeout, or on a close
        without an answer)."""
        deadline = time.monotonic() + timeout
        while not self.pump():
            left = deadline - time.monotonic()
            assert left > 0, "no answer to %s within %.1f s" % (self.target, timeout)
            select.select([self.sock], [], [], left)
        assert self.response is not None, "closed without an answer: %s" % self.target
        return self.response

    def parked(self, secs):
        """True when nothing at all arrives for secs."""
        if self.at is not None or self.done:
            return False
        readable, _, _ = select.select([self.sock], [], [], secs)
        return not readable

    def describe(self):
        """What came back early, for an assertion message."""
        self.pump()
        return (self.target, self.response or self.data[:300])

    def took(self):
        return self.at - self.sent

    def close(self):
        self.sock.close()


class Collector:
    """Reads the answers of many Raw requests on one thread, each stamped
    with the moment its first bytes arrived."""

    def __init__(self, raws):
        self.raws = list(raws)
        self.sel = selectors.DefaultSelector()
        for r in self.raws:
            self.sel.register(r.sock, selectors.EVENT_READ, r)
        self.stopping = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stopping.is_set():
                for key, _ in self.sel.select(0.01):
                    if key.data.pump():
                        self.sel.unregister(key.fileobj)
        except Exception as e:  # noqa: BLE001 -- re-raised in close()
            self.errors.append(e)

    def answered(self):
        """The requests that got anything back (an answer, a part of one, a close)."""
        return [r for r in self.raws if r.at is not None or r.done]

    def finished(self):
        """The requests whose answer is complete (or whose connection closed)."""
        return [r for r in self.raws if r.done]

    def wait_all(self, timeout, what="every parked request's answer"):
        wait_for(lambda: all(r.done for r in self.raws), timeout, what)

    def close(self):
        self.stopping.set()
        self.thread.join()
        self.sel.close()
        for r in self.raws:
            r.close()
        if self.errors:
            raise self.errors[0]


def assert_parked(col, secs=0.3, why="answered while nothing changed"):
    """Nothing of col's requests is answered for secs (a negative: it must
    be waited for)."""
    time.sleep(secs)
    early = col.answered()
    assert not early, (why, [(r.target, r.response) for r in early[:3]])
