#!/usr/bin/env python3
"""Writes REPORT.md and PNG plots (gnuplot) from a bench results.json.

usage: bench/report.py DIR   (DIR holds results.json)
"""
import json
import os
import subprocess
import sys


def ratio(a, b):
    return a / b if b else float("nan")


def targets(r):
    """(name, value, op, goal, met) of each target whose figures this run has
    (a --section run has only its own)."""
    t = r.get("throughput", {})
    c = 64
    get = lambda name: t[name][c]["rps"]
    wt = lambda: r["watches"]
    rows = [
        ("Lazy GET vs MariaDB point select", lambda: ratio(get("lazy GET"), get("MariaDB point select (sysbench)")), ">=", 0.8),
        ("Lazy GET vs webdis+redis GET", lambda: ratio(get("lazy GET"), get("webdis GET")), ">=", 0.5),
        ("Lazy POST vs MariaDB single-row upsert", lambda: ratio(get("lazy POST"), get("MariaDB upsert (sysbench)")), ">=", 1.0),
        ("Lazy POST vs etcd put", lambda: ratio(get("lazy POST"), get("etcd put")), ">=", 2.0),
        ("Canonical POST (3 partitions) vs lazy POST", lambda: ratio(get("canonical POST"), get("lazy POST")), ">=", 0.6),
        ("Lazy GET of 1,000 hot keys with read_cache_ms = 1000 vs webdis GET of the same",
         lambda: ratio(get("lazy GET, 1,000 hot keys, read cache"), get("webdis GET, 1,000 hot keys")), ">=", 1.0),
        # each run against the loader right after it: the median of those ratios
        ("Sync rows/s vs multi-row upsert loader (fresh backlog of changed 1 KiB rows)",
         lambda: r["sync"].get("ratio") or ratio(r["sync"]["rows_per_s"], r["sync"]["ceiling_rows_per_s"]), ">=", 0.8),
        ("Sync rows/s vs multi-row upsert loader (backlog of the HTTP workloads)",
         lambda: ratio(r["sync"]["http_backlog"]["rows_per_s"], r["sync"]["http_backlog"]["ceiling_rows_per_s"]), ">=", 0.8),
        ("Replication lag under peak lazy POSTs with --loop 1, max (p100), s",
         lambda: r["sync"]["sustained"]["lag_max_ms"] / 1000, "<", 5),
        ("Backlog drained after the writes stop, s", lambda: r["sync"]["sustained"]["drain_s"], "<=", 5),
        ("Idle sync pass on 1M rows, ms per partition pair", lambda: r["sync"]["idle_pass_ms_per_pair"], "<", 20),
        ("lazykvd RSS with 10,000 idle connections, MiB", lambda: r["connections"]["rss_10000_kib"] / 1024, "<=", 64),
        ("lazykvd RSS with 10,000 requests suspended on a stopped partition, MiB",
         lambda: r["suspended"]["rss_during_kib"] / 1024, "<=", 128),
        ("lazykvd threads added by 10,000 suspended requests",
         lambda: r["suspended"]["threads_during"] - r["suspended"]["threads_before"], "<=", 0),
        ("lazykvd memory in flight per 16 MiB value, x", lambda: r["large"]["in_flight_per_16MiB"], "<=", 3),
        ("p99 lazy GET at 50% of peak, ms", lambda: r["half_load"]["p99"] or float("nan"), "<", 2),
        ("lazykvd RSS with 10,000 parked watches, MiB", lambda: wt()["rss_during_kib"] / 1024, "<=", 128),
        ("lazykvd threads added by the parked watches",
         lambda: wt()["threads_during"] - wt()["threads_before"], "<=", 0),
        ("p99 of paced lazy GETs with the parked watches vs without, x",
         lambda: wt()["p99_ratio"] or float("nan"), "<=", 2),
        ("Selects/s on the busiest partition, idle, with the parked watches vs 10 watches, x",
         lambda: max(x or float("nan") for x in wt()["selects_ratio"]), "<=", 1.1),
    ]
    out = []
    for name, fn, op, goal in rows:
        try:
            value = fn()
        except KeyError:
            continue        # not measured in this run (--only, --section)
        met = {"\u2265": value >= goal, ">=": value >= goal, "<": value < goal, "<=": value <= goal}[op]
        out.append((name, value, op, goal, met))
    return out


def watches(w):
    """The lines of the parked-watches section (bench.py parked_watches)."""
    n = "{:,}".format(w["watches"])
    i0, i10, iN = w["idle_0"], w["idle_10"], w["idle_n"]
    pw, pn = w["paced_without"], w["paced_with"]
    f = lambda x: "%.2f" % x if x is not None else "-"
    lines = ["## %s parked watches" % n, "",
             "%s GETs parked at once on one lazykvd, each on its own connection: half key watches "
             "(`?index=0&wait=600` on keys that never existed), half prefix watches (`?prefix=P&"
             "index=TOKEN&wait=600`, each on its own empty prefix with the token of its own list). "
             "Paced lazy GETs at %d req/s (%s) for %d s; idle windows of %.0f s, the one with 10 "
             "watches measured with the first 10 parked, before the others. Parking took %.1f s "
             "(`lazykv_watches_waiting` then: %s); answered before their wait: %d."
             % (n, w["rate"], "half the c=64 peak of this run" if "peak_rps" not in w else
                "half of a c=64 peak of %.0f req/s" % w["peak_rps"], w["paced_s"],
                w["window_s"], w["park_s"], "{:,}".format(w.get("parked", w["watches"])),
                w["answered_early"] + w["answered_during"]), "",
             "| | without | with %s watches | ratio | target |" % n, "|---|---|---|---|---|",
             "| lazykvd threads | %d | %d | | no thread per watch |"
             % (w["threads_before"], w["threads_during"]),
             "| lazykvd RSS, MiB | %.1f | %.1f | | <= 128 |"
             % (w["rss_before_kib"] / 1024, w["rss_during_kib"] / 1024),
             "| paced lazy GET, req/s achieved | %.0f | %.0f | | |" % (pw["rps"], pn["rps"]),
             "| paced lazy GET p50, ms | %s | %s | %s | |"
             % (f(pw["p50"]), f(pn["p50"]), f(ratio(pn["p50"], pw["p50"]) if pn["p50"] and pw["p50"] else None)),
             "| paced lazy GET p99, ms | %s | %s | **%s** | <= 2 x |"
             % (f(pw["p99"]), f(pn["p99"]), f(w["p99_ratio"])), "",
             "Statement work while idle (no request but the watches), per second:", "",
             "| | 0 watches | 10 watches | %s watches | ratio %s / 10 | target |" % (n, n),
             "|---|---|---|---|---|---|"]
    for p, (a, b, c) in enumerate(zip(i0["selects_per_s"], i10["selects_per_s"], iN["selects_per_s"])):
        lines.append("| partition %d, Com_select/s | %.1f | %.1f | %.1f | **%s** | ~1 (constant) |"
                     % (p, a, b, c, f(ratio(c, b) if b else None)))
    lines.append("| lazykvd watch scans/s (all partitions) | %.1f | %.1f | %.1f | %s | ~1 (constant) |"
                 % (i0["scans_per_s"], i10["scans_per_s"], iN["scans_per_s"],
                    f(ratio(iN["scans_per_s"], i10["scans_per_s"]) if i10["scans_per_s"] else None)))
    lines.append("| watch wake-ups in the window | %d | %d | %d | | 0 (nothing changed) |"
                 % (i0["wakeups"], i10["wakeups"], iN["wakeups"]))
    lines += ["", "Then SIGTERM with the %s watches parked: lazykvd exited %s after %.2f s; the "
              "watches got %s (every one 503 before it exits, within 2 s, is the contract)."
              % (n, w["sigterm_rc"], w["sigterm_exit_s"],
                 ", ".join("%s x %s" % (k, st) for st, k in sorted(w["sigterm_statuses"].items())))]
    return lines


def sync_lines(s):
    """The lines of the sync section (bench.py sync_bench)."""
    h = s.get("http_backlog")
    lines = []
    if h:
        lines.append("- the backlog left by the HTTP workloads: %d pending changes, one pass made %d copies "
                     "in %.0f ms: **%.0f rows/s** (the loader, same run: %.0f rows/s; %.2f x)"
                     % (h["pending"], h["copied_rows"], h["pass_ms"], h["rows_per_s"],
                        h["ceiling_rows_per_s"], ratio(h["rows_per_s"], h["ceiling_rows_per_s"])))
    for run in s.get("runs", [s]):
        lines.append("- %d changed 1 KiB rows spread over 3 partitions: one pass made %d copies in %.0f ms: "
                     "**%.0f rows/s** (the loader's multi-row upserts of as many rows: %.0f rows/s; %.2f x)"
                     % (run["changed_rows"], run["copied_rows"], run["pass_ms"], run["rows_per_s"],
                        run["ceiling_rows_per_s"], ratio(run["rows_per_s"], run["ceiling_rows_per_s"])))
    lines.append("- a pass with nothing to do on a 1M-row table: %.1f ms in all (process start, "
                 "connections and lock included), %.1f ms per partition pair"
                 % (s["idle_pass_ms"], s["idle_pass_ms_per_pair"]))
    u = s.get("sustained")
    if u:
        lines += ["- %d s of lazy POSTs at full speed (wrk, 64 connections: %.0f POSTs/s) with "
                  "`lazykv-sync --loop 1` beside them: %.0f copies/s made, %.0f required at most "
                  "(POSTs/s x 2; a key written twice before a pass is one change): %.2f x; lag of a "
                  "probe write (every 0.5 s, until every partition holds it): max %.2f s, median %.2f s; "
                  "%d changes pending when the writes stopped, drained %.1f s later; %d passes"
                  % (u["seconds"], u["post_rps"], u["copies_per_s"], u["copies_required_per_s"],
                     u["copies_ratio"] or 0, (u["lag_max_ms"] or 0) / 1000, (u["lag_p50_ms"] or 0) / 1000,
                     u["backlog_at_end"], u["drain_s"], len(u["passes"])),
                  "", "![sync lag](sync_lag.png)"]
    return lines


def plot(d, r):
    t = r["throughput"]
    concs = r["meta"]["concurrency"]
    data = os.path.join(d, "throughput.dat")
    names = list(t)
    with open(data, "w") as f:
        f.write("# concurrency " + " | ".join(names) + "\n")
        for c in concs:
            f.write("%d %s\n" % (c, " ".join("%.0f" % t[n][c]["rps"] for n in names)))
    lines = ", ".join('"%s" using 1:%d with linespoints title "%s"' % (data, i + 2, n)
                      for i, n in enumerate(names))
    script = """set terminal png size 1100,650
set output "%s"
set title "Throughput against concurrency (requests/s, median of %d runs)"
set xlabel "concurrent connections"
set ylabel "requests/s"
set logscale x 2
set key outside right
set grid
plot %s
""" % (os.path.join(d, "throughput.png"), r["meta"]["runs"], lines)
    lat = os.path.join(d, "latency.dat")
    with open(lat, "w") as f:
        for i, n in enumerate(names):
            v = t[n][64]
            f.write('%d "%s" %s %s\n' % (i, n, v.get("p50") or 0, v.get("p99") or 0))
    script += """set output "%s"
unset logscale x
set title "Latency at 64 connections (ms)"
set style data histogram
set style histogram cluster gap 1
set style fill solid
set xtics rotate by -35
set ylabel "ms"
set logscale y
set xlabel ""
plot "%s" using 3:xtic(2) title "p50", "" using 4 title "p99"
""" % (os.path.join(d, "latency.png"), lat)
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def main():
    d = sys.argv[1]
    r = json.load(open(os.path.join(d, "results.json")))
    # JSON turns the integer concurrency keys into strings
    for n in r.get("throughput", {}):
        r["throughput"][n] = {int(k): v for k, v in r["throughput"][n].items()}
    m = r["meta"]
    lines = ["# lazykv benchmark, %s%s" % (m["date"], " (QUICK)" if m["quick"] else ""), "",
             "Machine: %d cores, shared by the load generator (wrk, 2 threads) and every server. "
             "lazykvd: `threads = %d` (%d event loops). Each figure is the median of %d run(s) of %d s; ratios compare "
             "systems measured in this same run. Produced by `%s`."
             % (m["cpus"], m["threads"], m.get("workers", m["threads"]), m["runs"], m["seconds"],
                "bench/bench.py%s --section %s" % (" --quick" if m["quick"] else "", m["section"])
                if m.get("section") else "make bench%s" % (" QUICK=1" if m["quick"] else "")),
             "", "## Targets (concurrency 64)", "", "| Target | Measured | Goal | Met |",
             "|---|---|---|---|"]
    for name, value, op, goal, met in targets(r):
        lines.append("| %s | %.2f | %s %s | %s |" % (name, value, op, goal, "yes" if met else "**no**"))
    t = r.get("throughput", {})
    if t:
        lines += ["", "## Throughput (requests/s: median, min-max) and latency", "",
                  "| Workload | " + " | ".join("c=%d" % c for c in m["concurrency"]) + " | p50 / p99 at c=64 (ms) |",
                  "|---|" + "---|" * len(m["concurrency"]) + "---|"]
    for n, per in t.items():
        cells = ["%.0f (%.0f-%.0f)" % (per[c]["rps"], per[c]["min"], per[c]["max"]) for c in m["concurrency"]]
        v = per[64]
        fmt = lambda x: "%.2f" % x if x is not None else "-"
        lines.append("| %s | %s | %s / %s |" % (n, " | ".join(cells), fmt(v.get("p50")), fmt(v.get("p99"))))
    h = r.get("half_load")
    if h:
        lines += ["", "Lazy GET paced at half the c=64 peak (%.0f req/s asked, %.0f achieved, %s "
                  "connections): p50 %.2f ms, p99 %.2f ms." % (h["target_rps"], h["rps"],
                                                               h.get("connections", 16), h["p50"] or -1,
                                                               h["p99"] or -1)]
    if t:
        lines += ["", "![throughput](throughput.png)", "", "![latency](latency.png)"]
    lines.append("")
    if "lazy GET, batch = 1" in t:
        lines += ["## Batching", "",
                  "The same workloads against a second lazykvd on the same cluster with "
                  "`[server] batch = 1` (a statement per request), at c=64:", ""]
        for name, kind in (("lazy GET", "reads"), ("lazy POST", "writes"),
                           ("canonical POST", "copies")):
            if name + ", batch = 1" not in t:
                continue
            with_b, without = t[name][64], t[name + ", batch = 1"][64]
            per = with_b.get(kind + "_per_statement")
            lines.append("- %s: %.0f req/s batched vs %.0f unbatched: **%.2f x**; p99 %s vs %s ms%s"
                         % (name, with_b["rps"], without["rps"], ratio(with_b["rps"], without["rps"]),
                            with_b.get("p99"), without.get("p99"),
                            "; %.2f %s per statement" % (per, kind) if per else ""))
        lines.append("")
    if "lazy GET, threads = 32" in t:
        lines += ["## Event loops", "",
                  "The default (`threads = 0`: one event loop per core less one, %d here) against "
                  "32 event loops on the same cluster, at c=64:" % m.get("workers", 1), ""]
        for name in ("lazy GET", "lazy POST"):
            a, b = t[name][64], t[name + ", threads = 32"][64]
            lines.append("- %s: %.0f req/s vs %.0f with 32 loops (%.2f x); p99 %s vs %s ms"
                         % (name, a["rps"], b["rps"], ratio(a["rps"], b["rps"]), a.get("p99"),
                            b.get("p99")))
        lines.append("")
    hs = r.get("https")
    if hs:
        lines += ["## HTTPS", "",
                  "A second lazykvd on the same cluster with `tls_cert`/`tls_key` (ECDSA P-256, "
                  "TLS 1.3, keep-alive: one handshake per connection) against the plain HTTP one, "
                  "at c=%d, in turn:" % hs["connections"], ""]
        for name in ("GET", "POST"):
            x = hs[name]
            lines.append("- lazy %s: %.0f req/s over HTTPS vs %.0f over HTTP: **%.2f x**; p99 %s vs %s ms"
                         % (name, x["https"]["rps"], x["http"]["rps"], x["ratio"],
                            x["https"].get("p99"), x["http"].get("p99")))
        lines.append("")
    lg = r.get("large")
    if lg:
        lines += ["## Large values", ""]
        for size in ("1 MiB", "16 MiB"):
            lines.append("- %s: POST %.0f MB/s, GET %.0f MB/s" % (size, lg[size]["post_MBps"], lg[size]["get_MBps"]))
        lines.append("- lazykvd peak RSS %.1f MiB (idle %.1f MiB): %.2f x 16 MiB in flight"
                     % (lg["peak_rss_kib"] / 1024, lg["rss_before_kib"] / 1024, lg["in_flight_per_16MiB"]))
    cn = r.get("connections")
    if cn:
        lines += ["", "## Idle connections", "",
                  "- lazykvd RSS: %.1f MiB idle, %.1f MiB with 1,000, %.1f MiB with 5,000 and %.1f MiB "
                  "with 10,000 idle keep-alive connections"
                  % (cn["rss_idle_kib"] / 1024, cn["rss_1000_kib"] / 1024, cn["rss_5000_kib"] / 1024,
                     cn["rss_10000_kib"] / 1024)]
    sp = r.get("suspended")
    if sp:
        lines += ["", "## Requests suspended on a stopped partition", "",
                  "- %d canonical GETs of a key whose master was SIGSTOPped, all waiting at once: "
                  "lazykvd threads %d before, %d meanwhile; RSS %.1f MiB before, %.1f MiB "
                  "meanwhile; answered %s, the last %.1f s after the first was sent"
                  % (sp["requests"], sp["threads_before"], sp["threads_during"],
                     sp["rss_before_kib"] / 1024, sp["rss_during_kib"] / 1024,
                     ", ".join("%s x %s" % (n, st) for st, n in sorted(sp["statuses"].items())),
                     sp["answered_s"])]
    if r.get("watches"):
        lines += [""] + watches(r["watches"])
    s = r.get("sync")
    if s:
        lines += ["", "## Sync", ""] + sync_lines(s)
    notes = os.path.join(d, "NOTES.md")
    if os.path.exists(notes):
        lines += ["", open(notes).read()]
    with open(os.path.join(d, "REPORT.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        if t:
            plot(d, r)
    except (OSError, subprocess.CalledProcessError) as e:
        print("report: no plots (%s)" % e)
    print("\n".join(lines[:18]))


if __name__ == "__main__":
    main()
