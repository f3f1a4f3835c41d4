"""`make install` and operations (issue 13): what install puts where, the
installed programs run against the test cluster, the installed systemd
units and crontab name the installation's paths and pass `systemd-analyze
verify`, the man pages are lint-clean and document every configuration key,
uninstall removes everything but the configuration, a second install keeps
an edited configuration; and lazykvd's Type=notify protocol (READY=1 once it
listens, STOPPING=1 on SIGTERM, exit 0 within 5 s with what was in flight
answered).

test_client_install.py covers the client library's side of an install
(pkg-config, a program built against the installed tree); this file covers
the rest.
"""
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import ROOT, free_port, wait_for

PROGRAMS = ["lazykv", "lazykvd", "lazykv-admin", "lazykv-sync"]
MAN_PAGES = ["man1/lazykv.1", "man5/lazykv.cfg.5", "man8/lazykvd.8", "man8/lazykv-sync.8",
             "man8/lazykv-admin.8"]
UNITS = ["lazykvd.service", "lazykv-sync.service", "lazykv-sync.timer"]


def expected_files(prefix, sysconfdir, root="/"):
    """Every file and symlink `make install` puts, relative to root."""
    p, e = os.path.relpath(prefix, root), os.path.relpath(sysconfdir, root)
    files = ["%s/bin/%s" % (p, b) for b in PROGRAMS]
    files += ["%s/lib/%s" % (p, f) for f in ("liblazykv.a", "liblazykv.so.1.0.0",
                                              "liblazykv.so.1", "liblazykv.so",
                                              "pkgconfig/lazykv.pc")]
    files += ["%s/include/lazykv.h" % p]
    files += ["%s/share/man/%s" % (p, m) for m in MAN_PAGES]
    files += ["%s/lib/systemd/system/%s" % (p, u) for u in UNITS]
    files += ["%s/lib/sysusers.d/lazykv.conf" % p]
    files += ["%s/share/doc/lazykv/%s" % (p, d) for d in (
        "README.md", "configuration.cfg", "production.example.cfg", "lazykv-sync.cron")]
    files += ["%s/lazykv/configuration.cfg" % e]
    return sorted(files)


def tree(root):
    """Every file and symlink under root, relative to it, sorted."""
    out = []
    for d, _, names in os.walk(root):
        for n in names:
            out.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(out)


def make(*args):
    p = subprocess.run(["make", "--no-print-directory"] + list(args), cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p.stdout


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def unit_value(path, key):
    """The values of key= in a unit file, in order."""
    with open(path) as f:
        return [line.split("=", 1)[1].strip() for line in f
                if line.startswith(key + "=")]


def test_install_into_a_destdir_uninstall_and_a_kept_configuration(c):
    with tempfile.TemporaryDirectory(prefix="lazykv-destdir-") as dest:
        out = make("install", "DESTDIR=" + dest)
        assert tree(dest) == expected_files("/usr/local", "/etc")
        assert "wrote %s/etc/lazykv/configuration.cfg" % dest in out, out
        # the configuration: the production example, paths already /etc; it
        # holds passwords, so neither world-readable nor group-writable
        conf = dest + "/etc/lazykv/configuration.cfg"
        with open(os.path.join(ROOT, "conf", "production.example.cfg")) as f:
            example = f.read()
        with open(conf) as f:
            assert f.read() == example
        assert os.stat(conf).st_mode & 0o777 == 0o640
        # the final paths, without DESTDIR, everywhere; no placeholder left
        unitdir = dest + "/usr/local/lib/systemd/system"
        assert unit_value(unitdir + "/lazykvd.service", "ExecStart") == [
            "/usr/local/bin/lazykvd -c /etc/lazykv/configuration.cfg"]
        assert unit_value(unitdir + "/lazykv-sync.service", "ExecStart") == [
            "/usr/local/bin/lazykv-sync -c /etc/lazykv/configuration.cfg"]
        for rel in tree(dest):
            path = os.path.join(dest, rel)
            if os.path.islink(path) or "/bin/" in path or "/lib/liblazykv" in path:
                continue
            with open(path, errors="replace") as f:
                text = f.read()
            assert not re.search(r"@[A-Z]+@", text), rel
            assert dest not in text, rel
        # a second install keeps an edited configuration, byte for byte
        with open(conf, "a") as f:
            f.write("; edited by the operator\n")
        with open(conf) as f:
            edited = f.read()
        os.chmod(conf, 0o600)
        out = make("install", "DESTDIR=" + dest)
        assert "%s/etc/lazykv/configuration.cfg exists: kept" % dest in out, out
        with open(conf) as f:
            assert f.read() == edited
        assert os.stat(conf).st_mode & 0o777 == 0o600
        assert tree(dest) == expected_files("/usr/local", "/etc")
        # uninstall: nothing left but the configuration (and the empty
        # standard directories); lazykv's own directory is gone
        make("uninstall", "DESTDIR=" + dest)
        assert tree(dest) == ["etc/lazykv/configuration.cfg"]
        assert not os.path.exists(dest + "/usr/local/share/doc/lazykv")
        with open(conf) as f:
            assert f.read() == edited


def test_installed_programs_units_and_man_pages_at_their_real_paths(c):
    """Installed without DESTDIR into a temporary PREFIX and SYSCONFDIR, so
    that every path written into the units is real and their binaries
    exist (systemd-analyze verify checks that)."""
    with tempfile.TemporaryDirectory(prefix="lazykv-prefix-") as top:
        prefix, etc = top + "/usr", top + "/etc"
        dirs = ["PREFIX=" + prefix, "SYSCONFDIR=" + etc]
        make("install", *dirs)
        assert tree(top) == expected_files(prefix, etc, top)
        bindir, unitdir = prefix + "/bin", prefix + "/lib/systemd/system"
        conf = etc + "/lazykv/configuration.cfg"

        # the paths inside the units, the crontab, the configuration and
        # the man pages are this installation's
        assert unit_value(unitdir + "/lazykvd.service", "ExecStart") == [
            "%s/lazykvd -c %s" % (bindir, conf)]
        assert unit_value(unitdir + "/lazykv-sync.service", "ExecStart") == [
            "%s/lazykv-sync -c %s" % (bindir, conf)]
        with open(prefix + "/share/doc/lazykv/lazykv-sync.cron") as f:
            cron = [line for line in f if line.strip() and not line.startswith("#")]
        assert cron == ["* * * * * %s/lazykv-sync -c %s >> /var/log/lazykv/sync.log 2>&1\n"
                        % (bindir, conf)], cron
        with open(os.path.join(ROOT, "conf", "production.example.cfg")) as f:
            example = f.read()
        with open(conf) as f:
            text = f.read()
        assert "tls_cert = /etc/lazykv/tls/server.pem" in example
        assert text == example.replace("/etc/lazykv/", etc + "/lazykv/")
        with open(prefix + "/share/man/man8/lazykvd.8") as f:
            text = f.read()
        assert ".It Pa %s/lazykv/configuration.cfg" % etc in text
        assert ".It Pa %s/lazykvd.service" % unitdir in text

        # the installed man pages: lint-clean, and found by man(1)
        for m in MAN_PAGES:
            p = run(["mandoc", "-T", "lint", "-W", "warning", prefix + "/share/man/" + m])
            assert p.returncode == 0 and p.stdout + p.stderr == "", (m, p.stdout + p.stderr)
        env = dict(os.environ, MANPATH=prefix + "/share/man")
        p = run(["man", "-w", "5", "lazykv.cfg"], env=env)
        assert p.stdout.strip() == prefix + "/share/man/man5/lazykv.cfg.5", p

        # systemd-analyze verify: syntax, known directives, ExecStart binaries
        # present and executable, Documentation= man pages found (hence
        # MANPATH). It does not look up User=lazykv (systemd 252 resolves
        # users only when it starts a unit), so the sysusers.d snippet is
        # checked on its own below: it creates that user in a scratch root.
        units = [unitdir + "/" + u for u in UNITS]
        p = run(["systemd-analyze", "verify"] + units, env=env, cwd=unitdir)
        assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr
        # the hardening, as systemd itself scores it (exposure 0 best .. 10
        # worst; --threshold counts tenths): both units score 1.4 now, and a
        # regression (say, a dropped ProtectSystem=) takes them past 2.0
        for u in ("lazykvd.service", "lazykv-sync.service"):
            p = run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                     unitdir + "/" + u])
            assert p.returncode == 0, p.stdout[-3000:] + p.stderr
        assert unit_value(unitdir + "/lazykvd.service", "Type") == ["notify"]
        assert unit_value(unitdir + "/lazykvd.service", "LimitNOFILE") == ["16384"]
        root = top + "/sysusers-root"
        os.makedirs(root + "/etc")
        p = run(["systemd-sysusers", "--root=" + root, prefix + "/lib/sysusers.d/lazykv.conf"])
        assert p.returncode == 0, p.stderr
        with open(root + "/etc/passwd") as f:
            assert re.search(r"(?m)^lazykv:x:\d+:\d+:[^:]*:/nonexistent:", f.read())

        # the installed programs, against the test cluster
        assert run([bindir + "/lazykvd", "--version"]).stdout.startswith("lazykvd ")
        p = run([bindir + "/lazykvd", "-t", "-c", c.config, "--test"])
        assert p.returncode == 0 and "[partition-2]" in p.stdout, p.stderr
        p = run([bindir + "/lazykv-admin", "-c", c.config, "--test", "init"])
        assert p.returncode == 0, p.stderr
        port = free_port()
        args = c.kvd_args(c.config, port)
        args[0] = bindir + "/lazykvd"
        kvd = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: c.serves(port), what="the installed lazykvd")
            cli_env = dict(os.environ, LAZYKV_ENDPOINTS="http://127.0.0.1:%d" % port)
            key = "install/%d" % port
            p = run([bindir + "/lazykv", "put", key, "installed value"], env=cli_env)
            assert p.returncode == 0, p.stderr
            p = run([bindir + "/lazykv", "get", key], env=cli_env)
            assert (p.returncode, p.stdout) == (0, "installed value"), p
            p = run([bindir + "/lazykv-sync", "-c", c.config, "--test"])
            assert p.returncode == 0, p.stderr
            for i in range(c.n):
                assert c.row(i, key)[0] == b"installed value", i
            p = run([bindir + "/lazykv-admin", "-c", c.config, "--test", "verify"])
            assert p.returncode == 0, p.stdout + p.stderr
            assert run([bindir + "/lazykv", "rm", key], env=cli_env).returncode == 0
        finally:
            kvd.send_signal(signal.SIGTERM)
            rc = kvd.wait(timeout=10)
            err = kvd.stderr.read().decode(errors="replace")
            kvd.stderr.close()
        assert rc == 0, err

        # uninstall: only the configuration is left
        make("uninstall", *dirs)
        assert [f for f in tree(top) if not f.startswith("sysusers-root/")] == [
            os.path.relpath(conf, top)]


# ---- the configuration keys: config.c, README.md and lazykv.cfg(5) agree ----

def _config_c_keys():
    """{(section, key): (default, min, max, type)} from src/config.c's
    conf_keys table; default None when required, "" when unset."""
    with open(os.path.join(ROOT, "src", "config.h")) as f:
        header = f.read().replace("\\\n", " ")
    macros = dict(re.findall(r"(?m)^#define (\w+) +(.+?)\s*(?:/\*.*)?$", header))
    with open(os.path.join(ROOT, "src", "config.c")) as f:
        src = f.read()
    table = src[src.index("conf_keys[] = {"):]
    table = table[:table.index("};")]

    def number(text):
        text = macros.get(text.strip(), text.strip())
        text = re.sub(r"(\d+)LL", r"\1", text)
        assert re.fullmatch(r"[\d\s<()]+", text), text
        return eval(text)  # digits and << only, checked above

    def default(text):
        if text == "NULL":
            return None
        if text in macros:
            return " ".join(re.findall(r'"([^"]*)"', macros[text])).replace('" "', "")
        return text.strip('"')

    rows = {}
    arg = r'\s*("[^"]*"|\w+)\s*'
    num = r"\s*([^,]+?)\s*"
    g = re.findall(r"\bG\(" + arg + "," + arg + r",\s*(CT_\w+)\s*," + num + "," + num + ","
                   + arg + r",\s*\w+\)", table)
    p = re.findall(r"\bP\(" + arg + r",\s*(CT_\w+)\s*," + num + "," + num + "," + arg
                   + r",\s*\w+\)", table)
    assert len(g) + len(p) == len(re.findall(r"\b[GP]\(", table)), "a row the test cannot read"
    for sec, key, typ, lo, hi, d in g:
        rows[(sec.strip('"'), key.strip('"'))] = (default(d), number(lo), number(hi), typ)
    for key, typ, lo, hi, d in p:
        rows[("partition-N", key.strip('"'))] = (default(d), number(lo), number(hi), typ)
    return rows


def _readme_keys():
    """{(section, key): default text} from README.md's Configuration table."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    part = text[text.index("\n## Configuration\n"):]
    part = part[:part.index("\n## ", 1)]
    rows = {}
    for line in part.splitlines():
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[1].startswith("`"):
            continue
        keys = re.findall(r"`([a-z_]+)`", cells[1])
        defaults = [d.strip().strip("`") for d in cells[2].split(", ")]
        if len(defaults) != len(keys):
            defaults = [cells[2].strip().strip("`")] * len(keys)
        for k, d in zip(keys, defaults):
            assert (cells[0], k) not in rows, "twice in README: %s %s" % (cells[0], k)
            rows[(cells[0], k)] = d
    return rows


def _man_keys():
    """{(section, key): (default, item text)} from man/lazykv.cfg.5: each
    item (.It Cm KEY) of the lists under .Ss "[SECTION]", its default from
    its "Default:" line (a literal on the next .Ql line, or words)."""
    with open(os.path.join(ROOT, "man", "lazykv.cfg.5")) as f:
        lines = f.read().splitlines()
    rows, section, key, depth, body = {}, None, None, 0, []

    def close():
        if key is None:
            return
        text = "\n".join(body)
        m = re.search(r"(?m)^Default:\n\.Ql (.*?)(?: [.,;])?$", text)
        if m:
            d = m.group(1).replace("\\-", "-").replace("\\e", "\\")
        else:
            m = re.search(r"(?m)^Default: (.*)$", text)
            assert m, "lazykv.cfg.5: [%s] %s has no Default: line" % (section, key)
            d = None if m.group(1) == "required." else ""
        assert (section, key) not in rows, "twice in lazykv.cfg.5: %s %s" % (section, key)
        rows[(section, key)] = (d, text)

    for line in lines:
        if line.startswith(".Sh") or line.startswith(".Ss"):
            close()
            key = None
            m = re.fullmatch(r'\.Ss "\[([a-zN-]+)\]"', line)
            section = m.group(1) if m else None
            continue
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
        if section and depth == 1 and line.startswith(".It Cm "):
            close()
            key, body = line.split()[2], []
            continue
        if key is not None:
            body.append(line)
    close()
    return rows


def test_every_configuration_key_is_documented_alike_in_config_c_readme_and_man_page(c):
    code, readme, man = _config_c_keys(), _readme_keys(), _man_keys()
    assert len(code) >= 38, sorted(code)
    problems = []
    for name, where in (("README.md", readme), ("lazykv.cfg.5", man)):
        for k in sorted(set(code) - set(where)):
            problems.append("%s: [%s] %s is missing" % (name, k[0], k[1]))
        for k in sorted(set(where) - set(code)):
            problems.append("%s: [%s] %s is not in src/config.c" % (name, k[0], k[1]))
    for k, (default, lo, hi, typ) in sorted(code.items()):
        if k in readme:
            d = readme[k]
            ok = (d == "required") if default is None else \
                (d in ("—", "empty", "from [store]")) if default == "" else d == default
            if not ok:
                problems.append("README.md: [%s] %s: default %r, src/config.c has %r"
                                % (k[0], k[1], d, default))
        if k in man:
            d, text = man[k]
            if d != default:
                problems.append("lazykv.cfg.5: [%s] %s: default %r, src/config.c has %r"
                                % (k[0], k[1], d, default))
            if typ in ("CT_INT", "CT_LLONG") and "from %d to %d" % (lo, hi) not in \
                    " ".join(text.split()):
                problems.append("lazykv.cfg.5: [%s] %s: no 'from %d to %d'"
                                % (k[0], k[1], lo, hi))
    assert problems == [], "\n".join(problems)


# ---- Type=notify: READY=1, RELOADING=1, STOPPING=1; SIGTERM within 5 s ---------

def _notify_socket():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = "lazykv-test-notify-%d-%d" % (os.getpid(), free_port())
    s.bind("\0" + name)
    return s, "@" + name


def _next_message(sock, timeout=30.0):
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_type_notify_ready_once_listening_stopping_and_sigterm_answers_in_flight(c):
    sock, name = _notify_socket()
    port = free_port()
    logpath = os.path.join(c.dir, "notify-%d.log" % port)
    log = open(logpath, "ab")
    kvd = subprocess.Popen(c.kvd_args(c.config, port), stdout=log, stderr=log,
                           env=dict(os.environ, NOTIFY_SOCKET=name))
    log.close()
    watch_answer = []
    try:
        msg = _next_message(sock)
        # READY=1 comes once the socket listens: /health answers at once,
        # with no retry
        assert c.request("GET", "/health", port=port).status == 200
        assert msg.startswith("READY=1\nSTATUS=listening on http://127.0.0.1:%d/ (3 partitions"
                              % port), msg
        assert "\n" not in msg[len("READY=1\n"):], msg

        # a reload is framed by RELOADING=1 and READY=1
        kvd.send_signal(signal.SIGHUP)
        msg = _next_message(sock, 10)
        assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", msg), msg
        assert _next_message(sock, 10).startswith("READY=1\nSTATUS=listening on "), msg

        # in flight at SIGTERM: an upload whose headers were read (the 100
        # Continue says so) and half of whose body was sent, and a watch
        key = "notify/%d" % port
        value = bytes(range(256)) * 4096  # 1 MiB
        up = socket.create_connection(("127.0.0.1", port), timeout=10)
        up.sendall(("PUT /canonicalbucket/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                    "Expect: 100-continue\r\n\r\n" % (key, len(value))).encode())
        assert up.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n")
        up.sendall(value[:len(value) // 2])
        index = c.request("GET", "/canonicalbucket/" + key, port=port).header("X-Lazykv-Index")

        def watch():
            r = c.request("GET", "/bucket/%s?index=%s&wait=60" % (key, index), port=port)
            watch_answer.append(r.status)
        scans = _watch_scans(c, port)
        watcher = threading.Thread(target=watch)
        watcher.start()
        # lazykvd scans the partitions for changes only while a watch waits
        wait_for(lambda: _watch_scans(c, port) > scans, timeout=10, what="the watch to wait")

        t0 = time.monotonic()
        kvd.send_signal(signal.SIGTERM)
        assert _next_message(sock, 5) == "STOPPING=1"
        # the rest of the body once lazykvd has stopped accepting, and then
        # as a slow client would, half a second later: the upload straddles
        # the start of the shutdown (not a wait for a condition: the pause
        # is the scenario; without it the upload ends before the shutdown's
        # own steps do, and an unfinished upload would go unnoticed)
        wait_for(lambda: not _accepts(port), timeout=5, what="lazykvd to stop accepting")
        time.sleep(0.5)
        up.sendall(value[len(value) // 2:])
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = up.recv(65536)
            assert chunk, reply
            reply += chunk
        up.close()
        rc = kvd.wait(timeout=10)
        took = time.monotonic() - t0
        watcher.join(timeout=10)
    finally:
        if kvd.poll() is None:
            kvd.kill()
            kvd.wait()
        sock.close()
    print("notify: SIGTERM with an upload and a watch in flight: exit %d after %.2f s"
          % (rc, took))
    assert rc == 0, open(logpath).read()[-2000:]
    assert took < 5, took
    assert reply.startswith(b"HTTP/1.1 201 "), reply[:200]
    assert watch_answer == [503], watch_answer
    r = c.request("GET", "/canonicalbucket/" + key)
    assert (r.status, r.body) == (200, value)
    assert c.request("DELETE", "/canonicalbucket/" + key).status == 202


def _watch_scans(c, port):
    """lazykv_watch_scans_total of the lazykvd on port."""
    body = c.request("GET", "/metrics", port=port).body.decode()
    return int(re.search(r"(?m)^lazykv_watch_scans_total (\d+)$", body).group(1))


def _http_connections(c, port):
    """lazykv_http_connections of the lazykvd on port (the asking one included)."""
    body = c.request("GET", "/metrics", port=port).body.decode()
    return int(re.search(r"(?m)^lazykv_http_connections (\d+)$", body).group(1))


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_sigterm_with_a_hung_partition_answers_its_requests_and_exits_within_5_s(c):
    """A SIGSTOPped mariadbd: requests waiting on it at SIGTERM are answered
    503 and lazykvd exits 0 within 5 s, although its prober is blocked on
    that partition for up to read_timeout (5 s) or connect_timeout."""
    proc, port, log = c.extra_kvd({})
    keys = []
    for i in range(40):
        r = c.request("POST", "/canonicalbucket/hung/%d" % i, body=b"v", port=port)
        assert r.status == 201, r
        if r.json()["master"] == 0:
            keys.append("hung/%d" % i)
    assert len(keys) >= 4, keys
    keys = keys[:6]
    answers, threads = {}, []

    def get(key):
        try:
            answers[key] = c.request("GET", "/canonicalbucket/" + key, port=port,
                                     timeout=20).status
        except OSError as e:
            answers[key] = repr(e)
    # the POSTs' connections closed at lazykvd too: only the asking one open
    wait_for(lambda: _http_connections(c, port) == 1, timeout=10,
             what="lazykvd to close the connections of the writes")
    pid = c.freeze_node(0)
    try:
        for k in keys:
            threads.append(threading.Thread(target=get, args=(k,)))
            threads[-1].start()
        # their connections accepted (counted, unlike open file descriptors,
        # which a lane's connection to a partition adds too); the partition
        # cannot answer them
        wait_for(lambda: _http_connections(c, port) == 1 + len(keys),
                 timeout=10, what="lazykvd to hold the requests")
        assert answers == {}, answers
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
        took = time.monotonic() - t0
        for t in threads:
            t.join(timeout=10)
    finally:
        os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("shutdown: SIGTERM with partition 0 hung and %d requests on it: exit %d after %.2f s"
          % (len(keys), rc, took))
    assert rc == 0, open(log).read()[-2000:]
    assert took < 5, took
    assert answers == {k: 503 for k in keys}, answers
    wait_for(lambda: c.request("GET", "/canonicalbucket/" + keys[0]).status == 200, 30,
             "partition 0 to answer again")
    for i in range(40):
        assert c.request("DELETE", "/canonicalbucket/hung/%d" % i).status == 202
