"""Test certificates and HTTPS clients (issue 12).

certs(directory) makes, with the `openssl` command, one set of PEM files and
returns it (a Certs); the set is made once per directory and reused by every
test that asks for the same directory (certs_for(c): one set per cluster):

  ca / ca_key                  the test CA ("lazykv test CA")
  server_cert / server_key     signed by ca; CN "lazykv test server",
                               SAN DNS:localhost, IP:127.0.0.1, serverAuth
  client_cert / client_key     signed by ca; CN "lazykv test client", clientAuth
  other_ca / other_ca_key      an unrelated CA ("lazykv other CA")
  other_client_cert / _key     signed by other_ca, same CN as the good client
  wrong_key                    a key that does not match server_cert

Every key file is mode 0600 from the moment it exists. Python clients:
context() (an ssl.SSLContext trusting a CA, optionally with a client
certificate), request() (one HTTPS request -> harness.Response) and ready()
(a readiness check for Cluster.spawn_kvd: GET /health over HTTPS).
"""
import http.client
import os
import ssl
import subprocess
import time

from harness import Response

SERVER_CN = "lazykv test server"
CLIENT_CN = "lazykv test client"

_made = {}   # absolute directory -> Certs


class Certs:
    def __init__(self, d):
        self.dir = d
        j = lambda name: os.path.join(d, name)   # noqa: E731
        self.ca, self.ca_key = j("ca.pem"), j("ca.key")
        self.server_cert, self.server_key = j("server.pem"), j("server.key")
        self.client_cert, self.client_key = j("client.pem"), j("client.key")
        self.other_ca, self.other_ca_key = j("other-ca.pem"), j("other-ca.key")
        self.other_client_cert, self.other_client_key = j("other-client.pem"), j("other-client.key")
        self.wrong_key = j("wrong.key")

    def not_after(self, cert=None):
        """The certificate's notAfter as "YYYY-MM-DDTHH:MM:SSZ" (UTC)."""
        out = _openssl("x509", "-noout", "-enddate", "-in", cert or self.server_cert)
        text = out.decode().strip()
        assert text.startswith("notAfter="), text
        secs = ssl.cert_time_to_seconds(text[len("notAfter="):])
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def _openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed (%d): %s"
                             % (" ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout


def _new_key(path):
    """A P-256 key in path, mode 0600 before openssl writes a byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", path)
    os.chmod(path, 0o600)


def _ca(certs_dir, cert, key, cn, serial):
    _new_key(key)
    ext = os.path.join(certs_dir, "ca.ext")
    with open(ext, "w") as f:
        f.write("[v3]\nbasicConstraints = critical, CA:TRUE\n"
                "keyUsage = critical, keyCertSign, cRLSign\n"
                "subjectKeyIdentifier = hash\n")
    _openssl("req", "-new", "-x509", "-key", key, "-out", cert, "-days", "3650",
             "-subj", "/CN=" + cn, "-set_serial", str(serial),
             "-config", ext, "-extensions", "v3")


def _leaf(certs_dir, cert, key, cn, ca, ca_key, extensions, days, serial):
    _new_key(key)
    csr = cert + ".csr"
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + cn)
    ext = cert + ".ext"
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n" + extensions)
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-out", cert,
             "-days", str(days), "-set_serial", str(serial), "-extfile", ext)
    os.unlink(csr)
    os.unlink(ext)


def certs(directory):
    """The certificate set of directory (made on the first call)."""
    d = os.path.abspath(directory)
    if d in _made:
        return _made[d]
    os.makedirs(d, exist_ok=True)
    c = Certs(d)
    done = os.path.join(d, ".complete")
    if not os.path.exists(done):
        _ca(d, c.ca, c.ca_key, "lazykv test CA", 1)
        _ca(d, c.other_ca, c.other_ca_key, "lazykv other CA", 2)
        _leaf(d, c.server_cert, c.server_key, SERVER_CN, c.ca, c.ca_key,
              "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n",
              825, 10)
        _leaf(d, c.client_cert, c.client_key, CLIENT_CN, c.ca, c.ca_key,
              "extendedKeyUsage = clientAuth\n", 825, 11)
        _leaf(d, c.other_client_cert, c.other_client_key, CLIENT_CN, c.other_ca,
              c.other_ca_key, "extendedKeyUsage = clientAuth\n", 825, 12)
        _new_key(c.wrong_key)
        os.unlink(os.path.join(d, "ca.ext"))
        open(done, "w").close()
    _made[d] = c
    return c


def certs_for(cluster):
    """The certificate set shared by every test of this cluster's run."""
    return certs(os.path.join(cluster.dir, "tls"))


# ---- Python clients ---------------------------------------------------------------------

def context(ca=None, cert=None, key=None, minimum=None, maximum=None):
    """A client context that trusts ca (None: the system's CAs, which do not
    include the test CA) and checks the host name; with cert/key it presents
    that client certificate. minimum/maximum: ssl.TLSVersion bounds."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(cafile=ca)
    else:
        ctx.load_default_certs()
    if cert:
        ctx.load_cert_chain(cert, key)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def client_context(certs_, client=None):
    """A context trusting the test CA; client = None (no certificate),
    "good" (signed by the CA) or "other" (signed by the other CA)."""
    if client is None:
        return context(certs_.ca)
    if client == "good":
        return context(certs_.ca, certs_.client_cert, certs_.client_key)
    assert client == "other", client
    return context(certs_.ca, certs_.other_client_cert, certs_.other_client_key)


def request(port, method, path, body=None, headers=None, ctx=None, timeout=30,
            host="127.0.0.1", info=None):
    """One HTTPS request on a fresh connection; a harness.Response. info, a
    dict, receives the negotiated "version" and "cipher"."""
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        if info is not None:
            info["version"] = conn.sock.version()
            info["cipher"] = conn.sock.cipher()
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def ready(ctx):
    """A spawn_kvd readiness check: GET /health over HTTPS with ctx answers
    200 or 503. Fails at once when the port answers plain HTTP."""
    def check(port):
        try:
            return request(port, "GET", "/health", ctx=ctx, timeout=5).status in (200, 503)
        except ssl.SSLError as e:
            if "WRONG_VERSION_NUMBER" in str(e):
                raise AssertionError("port %d answers a TLS hello with something that is not "
                                     "TLS (plain HTTP?): %s" % (port, e))
            return False
        except (OSError, http.client.HTTPException):
            return False
    return check
