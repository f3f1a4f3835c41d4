"""Test harness: a throwaway lazykv cluster in test mode.

One Cluster serves a whole run: three mariadbd processes on free ports
(tools/cluster.sh), `lazykv-admin init`, and lazykvd on a free port. Every
database name carries the test_ prefix (lazykv's test mode), so a test run
cannot touch real data. Teardown runs whatever happens (see run.py).
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SH = os.path.join(ROOT, "tools", "cluster.sh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_exchange(port, data, read_timeout=10):
    """Sends bytes on a fresh connection to 127.0.0.1:port; returns what
    comes back until the server closes it (or resets it) or read_timeout
    passes without a byte."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(read_timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def wait_for(cond, timeout=30.0, what="condition"):
    """Polls cond() until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:200])


# Under AddressSanitizer freed memory sits in a quarantine: RSS bounds are
# only checked on the plain build.
SANITIZED = os.environ.get("LAZYKV_SANITIZER") == "1"


class Cluster:
    def __init__(self, bindir, partitions=3, extra_config=""):
        self.bindir = os.path.abspath(bindir)
        self.n = partitions
        self.dir = tempfile.mkdtemp(prefix="lazykv-test-")
        self.db_ports = [free_port() for _ in range(partitions)]
        self.http_port = None
        self.kvd = None
        self.kvd_log = os.path.join(self.dir, "lazykvd.log")
        self.extra_config = extra_config
        self.config = os.path.join(self.dir, "lazykv.cfg")

    # ---- setup / teardown ------------------------------------------------
    def write_config(self, partitions=None, path=None):
        n = partitions or self.n
        lines = ["[store]", "key_length = 250", "partitions = %d" % n,
                 "table_name = data", "max_value_size = 16777216",
                 "connect_timeout = 2", "read_timeout = 5", "write_timeout = 5",
                 "[server]", "listen = 127.0.0.1:0", "threads = 4",
                 "max_connections = 10000", "connection_timeout = 30", "batch = 16",
                 "read_cache_ms = 0", "read_cache_bytes = 67108864",
                 "log_level = info", "[sync]", "batch_size = 100",
                 "tombstone_grace = 0"]
        lines.append(self.extra_config)
        for i in range(n):
            lines += ["[partition-%d]" % i, "name = store_%d" % (i + 1),
                      "host = 127.0.0.1", "port = %d" % self.db_ports[i],
                      "user = lazykv", "password = secret"]
        with open(path or self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path or self.config, 0o600)

    def start(self):
        env = dict(os.environ, LAZYKV_DB_FAST="1")
        subprocess.run([CLUSTER_SH, "start", self.dir] + [str(p) for p in self.db_ports],
                       check=True, env=env)
        self.write_config()
        self.admin("init", check=True)
        self.start_kvd()

    def start_kvd(self):
        self.http_port = free_port()
        args = [os.path.join(self.bindir, "lazykvd"), "-c", self.config, "--test",
                "--listen", "127.0.0.1:%d" % self.http_port]
        if os.geteuid() == 0:
            args.append("--allow-root")
        log = open(self.kvd_log, "ab")
        self.kvd = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()
        wait_for(lambda: self._health_ok(), what="lazykvd to answer /health")

    def _health_ok(self):
        if self.kvd.poll() is not None:
            raise AssertionError("lazykvd exited: %s" % open(self.kvd_log).read()[-2000:])
        try:
            return self.request("GET", "/health").status in (200, 503)
        except OSError:
            return False

    def extra_kvd(self, overrides, append="", ready=None, server_lines=()):
        """Starts a second lazykvd on its own port with some [server] or
        [store] keys overridden (a dict) and text appended to its
        configuration (new sections such as [auth]); returns (Popen, port,
        log path). ready(port) says when it answers (default: plain HTTP
        /health). The caller stops it (stop_extra)."""
        return self.spawn_kvd(self.kvd_config(overrides, append, server_lines=server_lines),
                              ready=ready)

    def kvd_config(self, overrides=None, append="", name="extra.cfg", server_lines=()):
        """Writes a copy of the test configuration with keys overridden (a
        dict), lines added to [server] (e.g. "tls_cert = ...") and text
        appended; returns its path (mode 0600)."""
        cfg = os.path.join(self.dir, name)
        text = open(self.config).read()
        for key, value in (overrides or {}).items():
            text, n = re.subn(r"(?m)^%s = .*$" % re.escape(key), "%s = %s" % (key, value), text)
            # an override of a key the test config does not list would be
            # silently ignored: list it in write_config, or append it
            assert n == 1, "kvd_config: %r is not in the test config" % key
        if server_lines:
            text = text.replace("[server]\n", "[server]\n" + "".join(
                line + "\n" for line in server_lines), 1)
        if append:
            text += "\n" + append + "\n"
        with open(cfg, "w") as f:
            f.write(text)
        os.chmod(cfg, 0o600)
        return cfg

    def kvd_args(self, cfg, port):
        args = [os.path.join(self.bindir, "lazykvd"), "-c", cfg, "--test",
                "--listen", "127.0.0.1:%d" % port]
        if os.geteuid() == 0:
            args.append("--allow-root")
        return args

    def spawn_kvd(self, cfg, ready=None):
        """Starts lazykvd with configuration file cfg on a free port and
        waits until ready(port) (default: plain HTTP /health answers);
        returns (Popen, port, log path)."""
        port = free_port()
        logpath = os.path.join(self.dir, "extra-%d.log" % port)
        log = open(logpath, "ab")
        proc = subprocess.Popen(self.kvd_args(cfg, port), stdout=log, stderr=log)
        log.close()
        ready = ready or self._ping

        def up():
            if proc.poll() is not None:
                raise AssertionError("lazykvd exited: %s" % open(logpath).read()[-2000:])
            return ready(port)
        try:
            wait_for(up, what="the extra lazykvd")
        except BaseException:
            self.stop_extra(proc)  # never leave it running behind a failed test
            raise
        return proc, port, logpath

    # The User-Agent of the readiness checks, so that tests reading access
    # logs can tell them from their own requests.
    READY_AGENT = "lazykv-harness-ready"

    def _ping(self, port):
        try:
            self.request("GET", "/health", headers={"User-Agent": self.READY_AGENT}, port=port)
            return True
        except OSError:
            return False

    def serves(self, port):
        """True when the lazykvd on port answers /health with 200; False
        when it refuses or drops the connection (e.g. at max_connections)."""
        try:
            return self.request("GET", "/health", port=port).status == 200
        except OSError:
            return False

    @staticmethod
    def stop_extra(proc):
        proc.terminate()
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def request_to(self, port, *args, **kw):
        return self.request(*args, port=port, **kw)

    def kvd_rss_kib(self, pid=None):
        with open("/proc/%d/status" % (pid or self.kvd.pid)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def kvd_fds(self, pid=None):
        return len(os.listdir("/proc/%d/fd" % (pid or self.kvd.pid)))

    def stop_kvd(self, sig=signal.SIGTERM):
        if self.kvd and self.kvd.poll() is None:
            self.kvd.send_signal(sig)
            try:
                self.kvd.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kvd.kill()
                self.kvd.wait()
        rc = self.kvd.returncode if self.kvd else None
        self.kvd = None
        return rc

    def stop(self):
        try:
            self.stop_kvd()
        finally:
            subprocess.run([CLUSTER_SH, "stop", self.dir], check=False)
            if os.environ.get("LAZYKV_KEEP_TMP") != "1":
                shutil.rmtree(self.dir, ignore_errors=True)

    def stop_node(self, i):
        subprocess.run([CLUSTER_SH, "stop-node", self.dir, str(i)], check=True)

    def start_node(self, i):
        env = dict(os.environ, LAZYKV_DB_FAST="1")
        subprocess.run([CLUSTER_SH, "start-node", self.dir, str(i), str(self.db_ports[i])],
                       check=True, env=env)

    def freeze_node(self, i):
        """SIGSTOPs node i and waits until every thread of it is stopped
        (signal delivery to a multi-threaded process is not instant)."""
        pid = self.node_pid(i)
        os.kill(pid, signal.SIGSTOP)

        def stopped():
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                        return False
            return True
        wait_for(stopped, what="node %d to stop" % i)
        return pid

    def node_pid(self, i):
        with open(os.path.join(self.dir, "node-%d" % i, "mysqld.pid")) as f:
            return int(f.read().strip())

    # ---- programs ----------------------------------------------------------
    def tool(self, name, *args, check=False, timeout=120, config=None):
        cmd = [os.path.join(self.bindir, name), "-c", config or self.config, "--test"] + list(args)
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (cmd, p.returncode, p.stderr.decode()))
        return p

    def admin(self, *args, **kw):
        return self.tool("lazykv-admin", *args, **kw)

    def sync(self, *args, **kw):
        return self.tool("lazykv-sync", *args, **kw)

    # ---- HTTP --------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=30, port=None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.http_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    # ---- direct SQL (to check what each partition holds) -------------------
    def sql(self, i, query, db=True):
        cmd = ["mariadb", "--no-defaults", "-h127.0.0.1", "-P%d" % self.db_ports[i],
               "-ulazykv", "-psecret", "-N", "-B", "-e", query]
        if db:
            cmd.append("test_store_%d" % (i + 1))
        p = subprocess.run(cmd, capture_output=True, check=True)
        return [line.split("\t") for line in p.stdout.decode().splitlines()]

    def row(self, i, key):
        """(hex value, version, deleted) of key on partition i, or None."""
        khex = key.encode().hex() if isinstance(key, str) else key.hex()
        rows = self.sql(i, "SELECT HEX(v), version, deleted FROM data WHERE k = UNHEX('%s')"
                        % khex)
        if not rows:
            return None
        return (bytes.fromhex(rows[0][0]), int(rows[0][1]), int(rows[0][2]))
