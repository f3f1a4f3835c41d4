#!/usr/bin/env python3
"""Runs the integration tests: every test_* function of tests/integration/
test_*.py, against one throwaway cluster (harness.Cluster), in file order.

Prints one line per test and a closing "N passed, N failed" line; exits 1 on
any failure. The cluster is torn down on success, failure, Ctrl-C or SIGTERM.
"""
import argparse
import glob
import importlib.util
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def load_tests(only):
    here = os.path.dirname(os.path.abspath(__file__))
    tests = []
    for path in sorted(glob.glob(os.path.join(here, "test_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for attr in sorted(vars(mod), key=lambda a: getattr(getattr(mod, a), "__code__", None)
                           and getattr(mod, a).__code__.co_firstlineno or 0):
            fn = getattr(mod, attr)
            if attr.startswith("test_") and callable(fn):
                full = "%s.%s" % (name, attr)
                if not only or any(o in full for o in only.split(",")):
                    tests.append((full, fn))
    return tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--only", default="")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each selected test this many times (to hunt a flaky one)")
    args = ap.parse_args()

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)

    tests = [t for t in load_tests(args.only) for _ in range(max(args.repeat, 1))]
    cluster = harness.Cluster(args.bin)
    passed = failed = 0
    try:
        cluster.start()
        for name, fn in tests:
            t0 = time.monotonic()
            try:
                fn(cluster)
                passed += 1
                print("ok   %-60s %6.2fs" % (name, time.monotonic() - t0), flush=True)
            except KeyboardInterrupt:
                raise
            except Exception:
                failed += 1
                print("FAIL %s" % name, flush=True)
                traceback.print_exc()
                sys.stdout.flush()
            if cluster.kvd is None or cluster.kvd.poll() is not None:
                print("note: lazykvd was down after %s; restarting it" % name, flush=True)
                if cluster.kvd is not None and cluster.kvd.returncode not in (0, None):
                    failed += 1
                    print("FAIL %s: lazykvd exited with %s" % (name, cluster.kvd.returncode))
                cluster.kvd = None
                cluster.start_kvd()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        failed += 1
    finally:
        rc = cluster.stop_kvd()
        if rc not in (0, None):
            failed += 1
            print("FAIL lazykvd exited with status %s at shutdown (sanitizer report?)" % rc)
            print(open(cluster.kvd_log, errors="replace").read()[-6000:])
        cluster.stop()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
