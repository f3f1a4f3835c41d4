"""TLS to the partitions (issue 12): [partition-N] tls = off | on | verify.

One extra mariadbd of this test's own (not one of the cluster's), started
with --require-secure-transport=ON and a server certificate from tlsutil
(SAN IP:127.0.0.1; it also listens on 127.0.0.2, which the certificate does
not name), with the lazykv account created over its socket; stopped in a
finally. A one-partition configuration (written here in full: the cluster's
has three) points at it:

- tls = verify, tls_ca = the right CA: lazykv-admin init, lazykvd PUT/GET
  (the row read back with `mariadb --ssl-ca`), lazykv-sync all work;
- tls = verify, tls_ca = another CA, or host = 127.0.0.2 (name not in the
  certificate): lazykv-admin and lazykv-sync exit 1 with one stderr line
  naming TLS/SSL or the certificate; lazykvd answers 503 to a PUT, writes
  nothing, and logs such a line;
- tls = off: refused by the server (exit 1 with one line, 503);
- tls = on without a CA: encrypted without a check, so it works;
- a relative tls_ca is read from the configuration file's directory.

The checks run one after another against the same mariadbd, and every
failure among them is reported (one test, so the server is started once).
"""
import os
import re
import shutil
import subprocess
import time
import traceback
import urllib.parse

import tlsutil
from harness import free_port, wait_for

USER, PASSWORD = "lazykv", "tls-secret"
DB = "test_store_1"                      # partition-0's name in test mode
WORDS = re.compile(rb"(?i)\btls\b|\bssl\b|tls/ssl|certificate")
q = urllib.parse.quote


class TlsNode:
    """A mariadbd that accepts only TLS connections over TCP."""

    def __init__(self, c, certs):
        self.c, self.certs = c, certs
        self.dir = os.path.join(c.dir, "tls-node")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mysqld.sock")
        self.error_log = os.path.join(self.dir, "error.log")
        self.port = None
        self.proc = None

    def start(self):
        os.makedirs(self.data, exist_ok=True)
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        p = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + self.data]
                           + as_root + ["--auth-root-authentication-method=socket",
                                        "--skip-test-db"],
                           capture_output=True, timeout=180)
        assert p.returncode == 0, p
        self.port = free_port()
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.proc = subprocess.Popen(
            [mariadbd, "--no-defaults"] + as_root +
            ["--datadir=" + self.data, "--socket=" + self.sock,
             "--pid-file=" + os.path.join(self.dir, "mysqld.pid"),
             "--port=%d" % self.port, "--bind-address=127.0.0.1,127.0.0.2",
             "--log-error=" + self.error_log, "--skip-name-resolve", "--skip-log-bin",
             "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=2",
             "--innodb-doublewrite=0",
             "--ssl-cert=" + self.certs.server_cert, "--ssl-key=" + self.certs.server_key,
             "--ssl-ca=" + self.certs.ca, "--require-secure-transport=ON"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._pings, timeout=120, what="the TLS mariadbd")
        for host in ("127.0.0.1", "127.0.0.2", "localhost"):
            self.root_sql("CREATE USER '%s'@'%s' IDENTIFIED BY '%s';"
                          "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%s';"
                          % (USER, host, PASSWORD, USER, host))
        # the server itself: TCP without TLS is refused, with it accepted
        assert self.sql("SHOW SESSION STATUS LIKE 'Ssl_version'", db=None)[0][1] in (
            "TLSv1.2", "TLSv1.3")
        plain = subprocess.run(self._client(tls=False) + ["-e", "SELECT 1"],
                               capture_output=True, timeout=60)
        assert plain.returncode == 1, plain

    def _pings(self):
        if self.proc.poll() is not None:
            raise AssertionError("mariadbd exited (%s): %s" % (
                self.proc.returncode, open(self.error_log, errors="replace").read()[-2000:]))
        return subprocess.run(["mariadb-admin", "--no-defaults", "--socket=" + self.sock,
                               "-uroot", "ping"], capture_output=True).returncode == 0

    def root_sql(self, text):
        subprocess.run(["mariadb", "--no-defaults", "--socket=" + self.sock, "-uroot",
                        "-e", text], check=True, capture_output=True, timeout=60)

    def _client(self, tls=True):
        cmd = ["mariadb", "--no-defaults", "-h127.0.0.1", "-P%d" % self.port, "-u" + USER,
               "-p" + PASSWORD, "-N", "-B"]
        if tls:
            cmd += ["--ssl-ca=" + self.certs.ca, "--ssl-verify-server-cert"]
        else:
            cmd += ["--skip-ssl"]
        return cmd

    def sql(self, query, db=DB):
        """Rows of query, run as the lazykv account over verified TLS."""
        p = subprocess.run(self._client() + ["-e", query] + ([db] if db else []),
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p
        return [line.split("\t") for line in p.stdout.decode().splitlines()]

    def value(self, key):
        rows = self.sql("SELECT HEX(v) FROM data WHERE k = UNHEX('%s')" % key.encode().hex())
        return bytes.fromhex(rows[0][0]) if rows else None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def config(c, node, name, tls_lines, host="127.0.0.1"):
    """A one-partition configuration (harness.write_config's keys) for node."""
    lines = ["[store]", "key_length = 250", "partitions = 1", "table_name = data",
             "max_value_size = 16777216", "connect_timeout = 2", "read_timeout = 5",
             "write_timeout = 5",
             "[server]", "listen = 127.0.0.1:0", "threads = 2", "max_connections = 1000",
             "connection_timeout = 30", "batch = 16", "read_cache_ms = 0",
             "read_cache_bytes = 67108864", "log_level = info",
             "[sync]", "batch_size = 100", "tombstone_grace = 0",
             "[partition-0]", "name = store_1", "host = " + host, "port = %d" % node.port,
             "user = " + USER, "password = " + PASSWORD] + tls_lines
    path = os.path.join(c.dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


def canon(key):
    return "/canonicalbucket/" + q(key.encode(), safe="/")


def one_line(err, program, words=True):
    """err is exactly one line from program (and, with words, it names TLS,
    SSL or the certificate)."""
    assert re.fullmatch(rb"%s: [^\n]+\n" % program.encode(), err), err
    if words:
        assert WORDS.search(err), err


def tools_refused(c, cfg, words=True):
    r = c.admin("init", config=cfg, timeout=60)
    assert r.returncode == 1, r
    one_line(r.stderr, "lazykv-admin", words)
    r = c.sync(config=cfg, timeout=60)
    assert r.returncode == 1, r
    one_line(r.stderr, "lazykv-sync", words)


def kvd_refused(c, node, cfg, key, words=True):
    """lazykvd on cfg: a PUT is 503 and writes nothing; with words, its log
    names TLS/SSL or the certificate."""
    proc, port, log = c.spawn_kvd(cfg)
    try:
        r = c.request_to(port, "PUT", canon(key), b"must not be written")
        assert r.status == 503, r
        assert r.header("Content-Type") == "application/problem+json", r
        g = c.request_to(port, "GET", canon(key))
        assert g.status == 503, g
        assert node.value(key) is None
        if words:
            wait_for(lambda: WORDS.search(open(log, "rb").read()), timeout=10,
                     what="a log line naming TLS or the certificate in %s" % log)
    finally:
        assert c.stop_extra(proc) == 0


# ---- the checks -------------------------------------------------------------------------

def verify_with_the_right_ca(c, node, certs):
    cfg = config(c, node, "ptls-verify.cfg", ["tls = verify", "tls_ca = " + certs.ca])
    r = c.admin("init", config=cfg, timeout=60)
    assert (r.returncode, r.stderr) == (0, b""), r
    tables = sorted(row[0] for row in node.sql("SHOW TABLES"))
    assert tables == ["data", "data_chunks", "data_chunks_gc", "data_meta", "data_sync"], tables
    proc, port, _ = c.spawn_kvd(cfg)
    try:
        assert c.request_to(port, "GET", "/health").status == 200
        key, value = "ptls/one", b"written over verified TLS"
        r = c.request_to(port, "PUT", canon(key), value)
        assert r.status == 201, r
        assert r.json()["master"] == 0, r
        g = c.request_to(port, "GET", canon(key))
        assert g.status == 200 and g.body == value, g
        assert g.header("X-Lazykv-Partition") == "0", g
        assert node.value(key) == value
    finally:
        assert c.stop_extra(proc) == 0
    r = c.sync(config=cfg, timeout=60)
    assert (r.returncode, r.stderr) == (0, b""), r
    assert b" unreachable=0" in r.stdout, r


def verify_with_another_ca(c, node, certs):
    cfg = config(c, node, "ptls-other-ca.cfg", ["tls = verify", "tls_ca = " + certs.other_ca])
    tools_refused(c, cfg)
    kvd_refused(c, node, cfg, "ptls/other-ca")


def verify_checks_the_host_name(c, node, certs):
    # 127.0.0.2 reaches the same mariadbd; its certificate names 127.0.0.1 only
    cfg = config(c, node, "ptls-name.cfg", ["tls = verify", "tls_ca = " + certs.ca],
                 host="127.0.0.2")
    tools_refused(c, cfg)
    kvd_refused(c, node, cfg, "ptls/wrong-name")


def off_is_refused_by_the_server(c, node, certs):
    cfg = config(c, node, "ptls-off.cfg", ["tls = off"])
    tools_refused(c, cfg, words=False)
    kvd_refused(c, node, cfg, "ptls/off", words=False)


def on_encrypts_without_checking(c, node, certs):
    cfg = config(c, node, "ptls-on.cfg", ["tls = on"], host="127.0.0.2")
    r = c.admin("init", config=cfg, timeout=60)
    assert (r.returncode, r.stderr) == (0, b""), r
    r = c.sync(config=cfg, timeout=60)
    assert (r.returncode, r.stderr) == (0, b""), r


def a_relative_ca_path_is_relative_to_the_config(c, node, certs):
    rel = os.path.relpath(certs.ca, c.dir)
    assert not os.path.isabs(rel) and not os.path.exists(rel), rel   # not from our cwd
    cfg = config(c, node, "ptls-relative.cfg", ["tls = verify", "tls_ca = " + rel])
    r = c.admin("init", config=cfg, timeout=60)
    assert (r.returncode, r.stderr) == (0, b""), r
    r = c.sync(config=cfg, timeout=60)
    assert (r.returncode, r.stderr) == (0, b""), r


def test_partition_tls(c):
    certs = tlsutil.certs_for(c)
    node = TlsNode(c, certs)
    t0 = time.monotonic()
    try:
        node.start()
        problems = []
        for check in (verify_with_the_right_ca, verify_with_another_ca,
                      verify_checks_the_host_name, off_is_refused_by_the_server,
                      on_encrypts_without_checking, a_relative_ca_path_is_relative_to_the_config):
            try:
                check(c, node, certs)
            except Exception:
                problems.append("%s:\n%s" % (check.__name__, traceback.format_exc()))
        assert not problems, "\n".join(problems)
    finally:
        node.stop()
        print("partition tls: %.1f s" % (time.monotonic() - t0))
