"""Command lines: --help, --version, configuration errors, test mode."""
import os
import subprocess


def run(c, prog, *args, env=None):
    e = dict(os.environ)
    e.pop("LAZYKV_ENV", None)
    e.update(env or {})
    return subprocess.run([os.path.join(c.bindir, prog)] + list(args), capture_output=True,
                          env=e, timeout=30)


def write(c, name, text):
    p = os.path.join(c.dir, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_help_and_version(c):
    for prog in ("lazykvd", "lazykv-admin", "lazykv-sync"):
        r = run(c, prog, "--help")
        assert r.returncode == 0 and r.stdout.startswith(b"usage: " + prog.encode()), (prog, r)
    r = run(c, "lazykvd", "--version")
    assert r.returncode == 0 and r.stdout.startswith(b"lazykvd ")
    r = run(c, "lazykvd", "--bogus")
    assert r.returncode == 2


def test_config_errors_name_file_section_and_key(c):
    base = open(c.config).read()
    cases = [
        (base.replace("key_length = 250", "key_length = 25x"),
         "[store] key_length: must be a whole number from 1 to 3072, got '25x'"),
        (base.replace("key_length = 250", "key_length = 0"),
         "[store] key_length: must be a whole number"),
        (base.replace("partitions = 3", "partitions = 4"),
         "[partition-3] name: section [partition-3] is required"),
        (base.replace("table_name = data", "table_name = da-ta"),
         "[store] table_name: must be 1 to 64 letters"),
        (base.replace("listen = 127.0.0.1:0", "listen = nowhere"),
         "[server] listen: must be HOST:PORT"),
        (base.replace("user = lazykv", "user = ", 1), "[partition-0] user: is required"),
    ]
    for text, want in cases:
        p = write(c, "bad.cfg", text)
        r = run(c, "lazykvd", "-c", p, "--test", "-t")
        err = r.stderr.decode()
        assert r.returncode == 2, (want, r)
        assert err.count("\n") == 1 and p in err and want in err, (want, err)
    r = run(c, "lazykvd", "-c", os.path.join(c.dir, "missing.cfg"))
    assert r.returncode == 2 and b"cannot open" in r.stderr


def test_unknown_keys_warn_but_start(c):
    p = write(c, "warn.cfg", open(c.config).read() + "\n[server]\nlistne = 1\n")
    r = run(c, "lazykvd", "-c", p, "--test", "-t")
    assert r.returncode == 0
    assert b"[server] listne: unknown key" in r.stderr


def test_test_mode_prefixes_every_database(c):
    r = run(c, "lazykvd", "-c", c.config, "-t", env={"LAZYKV_ENV": "test"})
    assert r.returncode == 0
    names = [l.split(b" = ")[1] for l in r.stdout.splitlines() if l.startswith(b"name = ")]
    assert names == [b"test_store_1", b"test_store_2", b"test_store_3"]
    r = run(c, "lazykvd", "-c", c.config, "-t")
    assert b"name = store_1" in r.stdout
    # the suite itself never created a database without the prefix
    for i in range(c.n):
        dbs = {row[0] for row in c.sql(i, "SHOW DATABASES", db=False)}
        assert not any(d.startswith("store_") for d in dbs), dbs


def test_admin_init_is_idempotent(c):
    before = [c.sql(i, "SELECT COUNT(*), COALESCE(SUM(version), 0) FROM data") for i in range(c.n)]
    meta = [c.sql(i, "SELECT name, text FROM data_meta ORDER BY name") for i in range(c.n)]
    r = c.admin("init")
    assert r.returncode == 0 and r.stdout.count(b"ready") == 3
    assert [c.sql(i, "SELECT COUNT(*), COALESCE(SUM(version), 0) FROM data") for i in range(c.n)] == before
    assert [c.sql(i, "SELECT name, text FROM data_meta ORDER BY name") for i in range(c.n)] == meta


def test_password_never_printed(c):
    pw = "Pw-9f3k-wrong-XYZ"
    p = write(c, "wrongpw.cfg", open(c.config).read().replace("password = secret", "password = " + pw))
    os.chmod(p, 0o600)
    outputs = [run(c, "lazykvd", "-c", p, "--test", "-t")]
    outputs.append(run(c, "lazykv-sync", "-c", p, "--test"))
    outputs.append(run(c, "lazykv-admin", "-c", p, "--test", "verify"))
    outputs.append(run(c, "lazykv-admin", "-c", p, "--test", "init"))
    assert outputs[1].returncode == 1 and b"Access denied" in outputs[1].stderr, outputs[1]
    assert outputs[2].returncode == 1 and outputs[3].returncode == 1
    for r in outputs:
        assert pw.encode() not in r.stdout + r.stderr, r
    assert b"password = (set)" in outputs[0].stdout
    log = open(c.kvd_log, "rb").read()
    assert b"secret" not in log


def test_refuses_root_without_allow_root(c):
    if os.geteuid() != 0:
        return
    r = run(c, "lazykvd", "-c", c.config, "--test", "--listen", "127.0.0.1:0")
    assert r.returncode == 2 and b"refusing to run as root" in r.stderr, r
