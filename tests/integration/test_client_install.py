"""`make install` and pkg-config (issue 11): a program written only from
lazykv.h builds with `cc prog.c $(pkg-config --cflags --libs lazykv)`
against an installed tree, and works."""
import os
import subprocess
import tempfile

from harness import ROOT


def test_a_program_builds_against_an_installed_tree_and_works(c):
    with tempfile.TemporaryDirectory(prefix="lazykv-install-") as dest:
        subprocess.run(["make", "--no-print-directory", "-s", "install", "DESTDIR=" + dest,
                        "PREFIX=/usr/local"], cwd=ROOT, check=True, capture_output=True)
        root = dest + "/usr/local"
        for f in ("include/lazykv.h", "lib/liblazykv.a", "lib/liblazykv.so.1",
                  "lib/liblazykv.so", "lib/pkgconfig/lazykv.pc", "bin/lazykv", "bin/lazykvd"):
            assert os.path.exists(os.path.join(root, f)), f
        env = dict(os.environ, PKG_CONFIG_PATH=root + "/lib/pkgconfig",
                   PKG_CONFIG_SYSROOT_DIR=dest)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "lazykv"], env=env,
                               check=True, capture_output=True, text=True).stdout.split()
        assert "-llazykv" in flags and "-I%s/usr/local/include" % dest in flags, flags
        prog = os.path.join(dest, "hello")
        cc = subprocess.run(["cc", "-o", prog, os.path.join(ROOT, "tests", "client", "hello.c")]
                            + flags, capture_output=True, text=True)
        assert cc.returncode == 0, cc.stderr
        env["LD_LIBRARY_PATH"] = root + "/lib"
        url = "http://127.0.0.1:%d" % c.http_port
        r = subprocess.run([prog, url], env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        index = c.request("GET", "/canonicalbucket/greeting").header("X-Lazykv-Index")
        assert r.stdout == "hello (index %s)\n" % index, r.stdout
        # the program runs on the installed shared library, not the tree's
        ldd = subprocess.run(["ldd", prog], env=env, capture_output=True, text=True).stdout
        assert root + "/lib/liblazykv.so.1" in ldd, ldd
    assert c.request("DELETE", "/canonicalbucket/greeting").status == 202
