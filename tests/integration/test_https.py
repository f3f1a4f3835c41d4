"""HTTPS (issue 12): lazykvd with [server] tls_cert/tls_key (and
tls_client_ca for mutual TLS), through curl, Python's ssl module and the
lazykv command, with certificates made by tlsutil (openssl).

Each test starts its own lazykvd on the cluster's partitions (spawn_kvd,
ready when GET /health answers over HTTPS) and stops it in a finally (exit
status 0). Asserted exactly: statuses and bodies over HTTPS; curl's exit
status without the CA (60); TLS 1.1 refused by the server (the client
context is first shown able to speak TLS 1.1 to a local server), 1.2 and 1.3
negotiated, and a tls_priorities of TLS 1.2 only is applied; relative
paths read from the configuration's directory, a 0640 key accepted; plain
HTTP to the HTTPS port closed within 10 s with no status
line and nothing stored; mutual TLS: no HTTP response at all (handshake
failure or a closed connection) without a client certificate or with one
from another CA, over TLS 1.2 and 1.3, and nothing stored; each start-up
refusal exits 2 with one stderr line carrying the contract's words;
`lazykvd -t` shows the certificate's subject and exact expiry.
"""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import warnings
from contextlib import contextmanager

import tlsutil
from harness import free_port, wait_for

q = urllib.parse.quote
PREFIX = "https/"
# Environment that could hand curl, OpenSSL or the lazykv command a CA or a proxy.
LEAKY_ENV = ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "https_proxy", "HTTPS_PROXY",
             "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "LAZYKV_TOKEN",
             "LAZYKV_LOCK_TOKEN", "LAZYKV_ENDPOINTS")
# A request over TLS that the server refuses ends in one of these, before
# any status line (http.client's RemoteDisconnected is a ConnectionResetError).
REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


# ---- helpers ---------------------------------------------------------------------------

def canon(key):
    return "/canonicalbucket/" + q(key.encode(), safe="/")


def tls_lines(certs, mutual=False):
    """[server] lines for HTTPS (mutual: and client certificates)."""
    lines = ["tls_cert = " + certs.server_cert, "tls_key = " + certs.server_key]
    if mutual:
        lines.append("tls_client_ca = " + certs.ca)
    return lines


@contextmanager
def https_kvd(c, mutual=False, name="https.cfg"):
    """A lazykvd serving HTTPS (mutual: requiring a client certificate signed
    by the test CA); yields (port, certs, a client context it accepts)."""
    certs = tlsutil.certs_for(c)
    cfg = c.kvd_config(server_lines=tls_lines(certs, mutual), name=name)
    ctx = tlsutil.client_context(certs, "good" if mutual else None)
    proc, port, _ = c.spawn_kvd(cfg, ready=tlsutil.ready(ctx))
    try:
        yield port, certs, ctx
    finally:
        assert c.stop_extra(proc) == 0


def stored_nowhere(c, port, ctx, key):
    for i in range(c.n):
        assert c.row(i, key) is None, (key, i, c.row(i, key))
    r = tlsutil.request(port, "GET", canon(key), ctx=ctx)
    assert r.status == 404, r


def refused(port, ctx, method, path, body=None, timeout=10):
    """One request over TLS with ctx that must get no HTTP response at all:
    the handshake fails or the connection is closed before a status line.
    Returns the exception that ended it."""
    t0 = time.monotonic()
    try:
        r = tlsutil.request(port, method, path, body, ctx=ctx, timeout=timeout)
    except ssl.SSLCertVerificationError as e:
        raise AssertionError("%s %s: the client refused the server's certificate: %s"
                             % (method, path, e))
    except REFUSED as e:
        return e
    except socket.timeout:
        raise AssertionError("%s %s: neither an answer nor a close within %.1f s"
                             % (method, path, time.monotonic() - t0))
    raise AssertionError("%s %s: an HTTP response came back: %r" % (method, path, r))


def clean_env():
    env = dict(os.environ)
    for name in LEAKY_ENV:
        env.pop(name, None)
    return env


def curl(c, url, *args):
    """Runs curl; returns (exit status, HTTP code as curl reports it, body
    bytes or None, stderr)."""
    out = os.path.join(c.dir, "curl-body")
    if os.path.exists(out):
        os.unlink(out)
    p = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "15", "-o", out,
                        "-w", "%{http_code}"] + list(args) + [url],
                       capture_output=True, timeout=60, env=clean_env())
    body = open(out, "rb").read() if os.path.exists(out) else None
    return p.returncode, p.stdout.decode(), body, p.stderr.decode(errors="replace")


def lazykv(c, *args):
    return subprocess.run([os.path.join(c.bindir, "lazykv")] + list(args), capture_output=True,
                          timeout=60, env=clean_env())


def cli_ok(r, stdout=b""):
    assert (r.returncode, r.stdout, r.stderr) == (0, stdout, b""), r


def cli_failed(r, command, key):
    """lazykv failed on a TLS problem: 69 (unreachable) or 76 (any other
    failure; a write that may have been sent is not retried), nothing on
    stdout, one line "lazykv: COMMAND KEY: detail" on stderr."""
    assert r.returncode in (69, 76), r
    assert r.stdout == b"", r
    assert re.fullmatch(rb"lazykv: %s %s: [^\n]+\n" % (command.encode(), re.escape(key.encode())),
                        r.stderr), r.stderr


def section(text, name):
    """The lines of [name] in a configuration dump."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line == "[%s]" % name
        elif inside:
            lines.append(line)
    return lines


# ---- clients with and without the CA -----------------------------------------------------

def test_curl_with_the_ca_gets_through_and_without_it_fails(c):
    with https_kvd(c) as (port, certs, ctx):
        url = "https://127.0.0.1:%d%s" % (port, canon(PREFIX + "curl"))
        value = b"value sent by curl over https"
        rc, code, body, err = curl(c, url, "--cacert", certs.ca, "-X", "PUT",
                                   "-H", "Content-Type: text/plain", "--data-binary", value)
        assert (rc, code) == (0, "201"), (rc, code, body, err)
        doc = json.loads(body)
        assert doc["result"] == "created" and doc["key"] == PREFIX + "curl", doc
        rc, code, body, err = curl(c, url, "--cacert", certs.ca)
        assert (rc, code, body) == (0, "200", value), (rc, code, body, err)
        # the same server over the name in the certificate's DNS SAN
        rc, code, body, err = curl(c, url.replace("127.0.0.1", "localhost"), "--cacert", certs.ca)
        assert (rc, code, body) == (0, "200", value), (rc, code, body, err)
        # without the CA: curl's "peer certificate cannot be authenticated"
        rc, code, body, err = curl(c, url, "-X", "GET")
        assert (rc, code) == (60, "000"), (rc, code, body, err)
        other = "https://127.0.0.1:%d%s" % (port, canon(PREFIX + "curl-noca"))
        rc, code, body, err = curl(c, other, "-X", "PUT", "--data-binary", "never")
        assert (rc, code) == (60, "000"), (rc, code, body, err)
        rc, code, body, err = curl(c, other, "--cacert", certs.other_ca)
        assert (rc, code) == (60, "000"), (rc, code, body, err)
        stored_nowhere(c, port, ctx, PREFIX + "curl-noca")


def test_python_client_with_the_ca_gets_through_and_without_it_fails(c):
    with https_kvd(c) as (port, certs, ctx):
        key = PREFIX + "python"
        value = bytes(range(256)) * 3
        r = tlsutil.request(port, "PUT", canon(key), value, ctx=ctx)
        assert r.status == 201, r
        assert r.json()["result"] == "created" and r.json()["key"] == key, r
        master = r.json()["master"]
        g = tlsutil.request(port, "GET", canon(key), ctx=ctx)
        assert g.status == 200 and g.body == value, g
        assert g.header("Content-Type") == "application/octet-stream", g
        assert g.header("X-Lazykv-Partition") == str(master), g
        assert c.row(master, key)[0] == value
        for ctx_bad in (tlsutil.context(None), tlsutil.context(certs.other_ca)):
            for method, path, body in (("GET", canon(key), None),
                                       ("PUT", canon(PREFIX + "python-noca"), b"never")):
                try:
                    r = tlsutil.request(port, method, path, body, ctx=ctx_bad, timeout=10)
                    raise AssertionError("no CA, yet an answer: %r" % r)
                except ssl.SSLCertVerificationError as e:
                    assert e.verify_code == 20, e   # unable to get local issuer certificate
        stored_nowhere(c, port, ctx, PREFIX + "python-noca")


# ---- protocol versions, plain HTTP ------------------------------------------------------

def legacy_context(version):
    """A client context limited to version, at OpenSSL security level 0 (at
    the default level OpenSSL itself would not offer TLS < 1.2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def local_handshake_version(ctx, certs):
    """The version ctx negotiates with a local Python server that accepts
    TLS 1.0 to 1.3: shows that ctx really offers what it is limited to."""
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(certs.server_cert, certs.server_key)
    srv.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        srv.minimum_version = ssl.TLSVersion.TLSv1
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(10)

    def serve():
        try:
            s, _ = ls.accept()
            s.settimeout(10)
            with srv.wrap_socket(s, server_side=True) as t:
                t.recv(1)
        except OSError:
            pass
    th = threading.Thread(target=serve)
    th.start()
    try:
        with ctx.wrap_socket(socket.create_connection(ls.getsockname(), timeout=10)) as s:
            v = s.version()
            s.sendall(b"x")
        return v
    finally:
        th.join()
        ls.close()


def test_tls_1_1_refused_1_2_and_1_3_accepted(c):
    with https_kvd(c) as (port, certs, ctx):
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                              (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            info = {}
            r = tlsutil.request(port, "GET", "/health", info=info,
                                ctx=tlsutil.context(certs.ca, minimum=version, maximum=version))
            assert r.status == 200 and info["version"] == name, (name, r, info)
        for version, name in ((ssl.TLSVersion.TLSv1_1, "TLSv1.1"),
                              (ssl.TLSVersion.TLSv1, "TLSv1")):
            old = legacy_context(version)
            assert local_handshake_version(old, certs) == name
            try:
                with old.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as s:
                    raise AssertionError("lazykvd accepted a %s handshake (%s)" % (name, s.version()))
            except ssl.SSLError as e:
                # refused by the server, not by our own side
                assert "NO_PROTOCOLS_AVAILABLE" not in str(e), e
            except (ConnectionResetError, BrokenPipeError):
                pass
        r = tlsutil.request(port, "GET", "/health", ctx=ctx)
        assert r.status == 200, r


def test_tls_priorities_are_applied(c):
    certs = tlsutil.certs_for(c)
    cfg = c.kvd_config(server_lines=tls_lines(certs) + [
        "tls_priorities = SECURE128:-VERS-ALL:+VERS-TLS1.2"], name="https-prio.cfg")
    proc, port, _ = c.spawn_kvd(cfg, ready=tlsutil.ready(tlsutil.context(certs.ca)))
    try:
        info = {}
        r = tlsutil.request(port, "GET", "/health", ctx=tlsutil.context(certs.ca), info=info)
        assert r.status == 200 and info["version"] == "TLSv1.2", (r, info)
        only13 = tlsutil.context(certs.ca, minimum=ssl.TLSVersion.TLSv1_3)
        refused(port, only13, "GET", "/health")
    finally:
        assert c.stop_extra(proc) == 0


def test_relative_paths_and_a_group_readable_key(c):
    # relative to the configuration file's directory (lazykvd runs in
    # another one); mode 0640 is not "readable by others"
    certs = tlsutil.certs_for(c)
    d = os.path.join(c.dir, "tls-rel")
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(certs.server_cert, os.path.join(d, "server.pem"))
    shutil.copyfile(certs.server_key, os.path.join(d, "server.key"))
    os.chmod(os.path.join(d, "server.key"), 0o640)
    assert os.path.realpath(os.getcwd()) != os.path.realpath(c.dir)
    cfg = c.kvd_config(server_lines=["tls_cert = tls-rel/server.pem",
                                     "tls_key = tls-rel/server.key"], name="https-rel.cfg")
    ctx = tlsutil.context(certs.ca)
    proc, port, _ = c.spawn_kvd(cfg, ready=tlsutil.ready(ctx))
    try:
        r = tlsutil.request(port, "GET", "/health", ctx=ctx)
        assert r.status == 200, r
    finally:
        assert c.stop_extra(proc) == 0


def test_plain_http_to_the_https_port_is_closed_and_stores_nothing(c):
    with https_kvd(c) as (port, certs, ctx):
        key = PREFIX + "plain"
        for request in (b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nplain"
                        % canon(key).encode(),
                        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(10)
            t0 = time.monotonic()
            out, closed = b"", False
            try:
                try:
                    s.sendall(request)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    out += chunk
            except ConnectionResetError:
                closed = True
            except socket.timeout:
                pass
            finally:
                s.close()
            took = time.monotonic() - t0
            assert closed, "still open after %.1f s (received %r)" % (took, out)
            assert b"HTTP/" not in out, out
        stored_nowhere(c, port, ctx, key)


# ---- mutual TLS ------------------------------------------------------------------------

def test_mutual_tls_needs_a_certificate_from_the_client_ca(c):
    with https_kvd(c, mutual=True, name="https-mtls.cfg") as (port, certs, good):
        key = PREFIX + "mtls"
        r = tlsutil.request(port, "PUT", canon(key), b"for certified clients", ctx=good)
        assert r.status == 201, r
        g = tlsutil.request(port, "GET", canon(key), ctx=good)
        assert g.status == 200 and g.body == b"for certified clients", g
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            for client in (None, "other"):
                ctx = tlsutil.client_context(certs, client)
                ctx.maximum_version = version
                what = "%s/%s" % (client or "nocert", version.name)
                bad_key = PREFIX + "mtls-" + what
                refused(port, ctx, "PUT", canon(bad_key), b"must not be stored")
                refused(port, ctx, "GET", canon(key))
                refused(port, ctx, "GET", "/health")
                stored_nowhere(c, port, good, bad_key)
        url = "https://127.0.0.1:%d%s" % (port, canon(PREFIX + "mtls-curl"))
        base = ["--cacert", certs.ca]
        for extra in ([], ["--cert", certs.other_client_cert, "--key", certs.other_client_key]):
            rc, code, body, err = curl(c, url, *(base + extra + ["-X", "PUT",
                                                                 "--data-binary", "never"]))
            # 35 handshake failed, 52 empty reply, 56 receive failure
            assert rc in (35, 52, 56) and code == "000", (extra, rc, code, body, err)
        stored_nowhere(c, port, good, PREFIX + "mtls-curl")
        good_cert = ["--cert", certs.client_cert, "--key", certs.client_key]
        rc, code, body, err = curl(c, url, *(base + good_cert + ["-X", "PUT",
                                                                 "--data-binary", "certified"]))
        assert (rc, code) == (0, "201"), (rc, code, body, err)
        rc, code, body, err = curl(c, url, *(base + good_cert))
        assert (rc, code, body) == (0, "200", b"certified"), (rc, code, body, err)


# ---- start-up ---------------------------------------------------------------------------

def start_refusal(c, cfg):
    """Starts lazykvd with cfg; it must exit by itself within 20 s.
    Returns the CompletedProcess-like (returncode, stdout, stderr)."""
    port = free_port()
    out, err = os.path.join(c.dir, "refusal.out"), os.path.join(c.dir, "refusal.err")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(c.kvd_args(cfg, port), stdout=fo, stderr=fe)
    try:
        wait_for(lambda: proc.poll() is not None, timeout=20,
                 what="lazykvd to refuse to start")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, open(out, "rb").read(), open(err, "rb").read()


def test_start_up_refusals_exit_2_with_one_line(c):
    certs = tlsutil.certs_for(c)
    d = os.path.join(c.dir, "tls-bad")
    os.makedirs(d, exist_ok=True)
    missing_key = os.path.join(d, "missing.key")
    missing_cert = os.path.join(d, "missing.pem")
    readable = os.path.join(d, "readable.key")
    shutil.copyfile(certs.server_key, readable)
    os.chmod(readable, 0o644)
    not_pem = os.path.join(d, "not-a-certificate.pem")
    with open(not_pem, "w") as f:
        f.write("this is not a certificate\n")
    cert, key = "tls_cert = " + certs.server_cert, "tls_key = " + certs.server_key
    cases = [
        ("missing key file", [cert, "tls_key = " + missing_key],
         ["[server] tls_key: cannot read %s: No such file or directory" % missing_key]),
        ("missing certificate file", ["tls_cert = " + missing_cert, key],
         ["[server] tls_cert: cannot read %s: No such file or directory" % missing_cert]),
        ("key readable by others", [cert, "tls_key = " + readable],
         [readable, "readable by others"]),
        ("key of another certificate", [cert, "tls_key = " + certs.wrong_key],
         ["do not match"]),
        ("tls_cert without tls_key", [cert], ["tls_cert", "tls_key"]),
        ("tls_key without tls_cert", [key], ["tls_cert", "tls_key"]),
        ("tls_client_ca without tls_cert", ["tls_client_ca = " + certs.ca],
         ["tls_client_ca", "tls_cert"]),
        ("invalid tls_priorities", [cert, key, "tls_priorities = NORMAL:+NO-SUCH-THING"],
         ["tls_priorities"]),
        ("a certificate that is not PEM", ["tls_cert = " + not_pem, key], ["tls_cert"]),
        ("a client CA that is not PEM", [cert, key, "tls_client_ca = " + not_pem],
         ["tls_client_ca"]),
    ]
    problems = []
    for n, (what, lines, words) in enumerate(cases):
        cfg = c.kvd_config(server_lines=lines, name="refusal-%d.cfg" % n)
        rc, out, err = start_refusal(c, cfg)
        text = err.decode(errors="replace")
        ok = (rc == 2 and out == b"" and text.count("\n") == 1 and text.endswith("\n")
              and text.startswith("lazykvd: ") and all(w in text for w in words))
        if not ok:
            problems.append("%s: exit %s, stdout %r, stderr %r (wanted exit 2 and one line "
                            "'lazykvd: ...' containing %r)" % (what, rc, out, text, words))
    assert not problems, "\n".join(problems)


def test_test_conf_shows_the_certificate_subject_and_expiry(c):
    certs = tlsutil.certs_for(c)
    cfg = c.kvd_config(server_lines=tls_lines(certs, mutual=True), name="https-t.cfg")
    p = subprocess.run([os.path.join(c.bindir, "lazykvd"), "-c", cfg, "--test", "-t"],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p
    server = section(p.stdout.decode(), "server")
    assert "tls_cert = " + certs.server_cert in server, server
    assert "; tls_cert subject: CN=" + tlsutil.SERVER_CN in server, server
    expires = [line for line in server if line.startswith("; tls_cert expires: ")]
    assert len(expires) == 1, server
    assert re.fullmatch(r"; tls_cert expires: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expires[0]), expires
    # the certificate's notAfter, to the second (its year is not this year's)
    assert expires[0] == "; tls_cert expires: " + certs.not_after(), (expires, certs.not_after())


# ---- the lazykv command -----------------------------------------------------------------

def test_lazykv_command_over_https_needs_the_ca(c):
    with https_kvd(c) as (port, certs, ctx):
        ep = "https://127.0.0.1:%d" % port
        key, value = PREFIX + "cli", "value put by the lazykv command"
        cli_ok(lazykv(c, "--endpoints", ep, "--cacert", certs.ca, "put", key, value))
        cli_ok(lazykv(c, "--endpoints", ep, "--cacert", certs.ca, "get", key), value.encode())
        g = tlsutil.request(port, "GET", canon(key), ctx=ctx)
        assert g.status == 200 and g.body == value.encode(), g
        cli_failed(lazykv(c, "--endpoints", ep, "get", key), "get", key)
        cli_failed(lazykv(c, "--endpoints", ep, "--cacert", certs.other_ca, "get", key), "get", key)
        bad = PREFIX + "cli-noca"
        cli_failed(lazykv(c, "--endpoints", ep, "put", bad, "never"), "put", bad)
        stored_nowhere(c, port, ctx, bad)


def test_lazykv_command_with_mutual_tls_needs_cert_and_key(c):
    with https_kvd(c, mutual=True, name="https-mtls-cli.cfg") as (port, certs, good):
        base = ["--endpoints", "https://127.0.0.1:%d" % port, "--cacert", certs.ca]
        key = PREFIX + "cli-mtls"
        cli_failed(lazykv(c, *base, "put", key, "never"), "put", key)
        other = ["--cert", certs.other_client_cert, "--key", certs.other_client_key]
        cli_failed(lazykv(c, *(base + other), "put", key, "never"), "put", key)
        stored_nowhere(c, port, good, key)
        mine = ["--cert", certs.client_cert, "--key", certs.client_key]
        cli_ok(lazykv(c, *(base + mine), "put", key, "certified"))
        cli_ok(lazykv(c, *(base + mine), "get", key), b"certified")
        cli_failed(lazykv(c, *base, "get", key), "get", key)
