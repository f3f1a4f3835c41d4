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


def mib(size):
    return "%g MiB" % (size / 1048576.0) if size % 1048576 else "%d MiB" % (size >> 20)


def large_targets(r):
    """Issue 14's target rows (bench.py large_stream): (name, value, op,
    goal, met), value a number or a string saying why it is not one. A
    figure whose transfers failed never meets its target: what it measured
    is shown with the failure."""
    ls = r.get("large_stream")
    if not ls:
        return []
    sz, shrink = ls["sizes"], ls.get("shrink", 1)
    tag = " (sizes / %d: a check of the harness, not the target)" % shrink if shrink != 1 else ""
    out = []

    def row(name, op, goal, value, failure):
        if isinstance(value, (int, float)) and value == value:
            met = {">=": value >= goal, "<=": value <= goal}[op] and not failure
            shown = "%.2f" % value + (" (%s)" % failure if failure else "")
        else:
            met = False
            shown = "failed: " + failure if failure and failure.startswith("lazykvd exited") \
                else "failed (see below)" if failure else "not measured"
        out.append((name + tag, shown, op, goal, met))

    def growth(x):
        """MiB: the larger of the sampled growth and VmHWM's."""
        g = x.get("growth_max_kib", x.get("growth_kib"))
        return g / 1024 if g is not None else None

    def died(x):
        return "lazykvd exited (%s)" % x["kvd_exit"]["rc"] if x.get("kvd_exit") else None

    one = ls.get("one", {})
    fail = died(one) or one.get("error")
    if not fail and not one.get("ok"):
        up, down = one.get("upload") or {}, one.get("download") or {}
        fail = "upload failed" if not up.get("ok") else "download failed" if down else "no download"
    row("lazykvd RSS growth while one %s value is uploaded, then downloaded, MiB" % mib(sz["one"]),
        "<=", 16, growth(one), fail)
    cc = r["large_stream"].get("concurrent", {})
    n = sz["concurrent_n"]
    fail = died(cc) or cc.get("error")
    if not fail and not cc.get("ok"):
        fail = "%d of %d uploads, %d of %d downloads ok" % (cc.get("uploads_ok", 0), n,
                                                             cc.get("downloads_ok", 0), n)
    row("lazykvd RSS growth while %d x %s are uploaded at once, then downloaded, MiB"
        % (n, mib(sz["concurrent"])), "<=", 64,
        growth(cc), fail)
    tp = ls.get("throughput", {})
    runs = len(tp.get("runs", []))
    for verb, key, okey, what in (("POST", "post_ratio", "posts_ok", "INSERTs"),
                                  ("GET", "get_ratio", "gets_ok", "SELECTs")):
        fail = died(tp) or tp.get("error")
        if not fail and tp.get(okey, 0) < runs:
            fail = "%d of %d %ss ok" % (tp.get(okey, 0), runs, verb)
        if not fail and key not in tp:
            fail = "the ceiling failed"
        row("%s of a %s value, MB/s vs the C client's %d x 1 MiB %s on the same mariadbd"
            % (verb, mib(sz["throughput"]), sz["throughput"] >> 20, what), ">=", 0.5,
            tp.get(key), fail)
    rg = ls.get("range", {})
    fail = died(rg) or rg.get("error") or rg.get("range_error")
    row("1 MiB range of a %s value vs GET of a 1 MiB value, median latency, x" % mib(sz["range"]),
        "<=", 2, rg.get("ratio"), fail)
    return out


def large_lines(ls):
    """The lines of the large-value section (bench.py large_stream)."""
    sz, shrink = ls["sizes"], ls.get("shrink", 1)
    n = sz["concurrent_n"]
    f1 = lambda kib: "%.1f" % (kib / 1024) if kib is not None else "-"
    lines = ["## Large values, streamed (issue 14)", ""]
    if shrink != 1:
        lines += ["**Sizes divided by %d** (`--large-shrink %d`): the 512, 64 and 256 MiB values "
                  "are %s, %s and %s here, to try the harness where the full sizes cannot be "
                  "stored; the targets are for the full sizes." % (shrink, shrink, mib(sz["one"]),
                                                                  mib(sz["concurrent"]), mib(sz["range"])), ""]
    lines += ["A lazykvd of its own on the same cluster with `max_value_size = %d` (a fresh "
              "process for each memory figure). The client streams: each body is sent from a "
              "generator, 1 MiB at a time with its Content-Length, and each answer is read into "
              "one 1 MiB buffer and dropped, its SHA-256 checked against the value's. Uploads are "
              "lazy POSTs (`/bucket/KEY`, written at the master), downloads canonical GETs "
              "(`/canonicalbucket/KEY`, from the master: a lazy GET may pick a partition the sync "
              "has not reached). RSS: VmRSS from /proc/PID/status every 50 ms, after one small "
              "write and read; and VmHWM, the kernel's own peak (reset through clear_refs when "
              "the sampling starts), which a peak shorter than 50 ms cannot escape. The figure held "
              "against the target is the larger of the two growths."
              % ls["max_value_size"], "",
              "### lazykvd memory", "",
              "| | RSS before, MiB | sampled peak while uploading | sampled peak while downloading | growth (sampled peak - before) | VmHWM - before | target | transfers |",
              "|---|---|---|---|---|---|---|---|"]
    for key, label, goal in (("one", "one %s value" % mib(sz["one"]), 16),
                             ("concurrent", "%d x %s at once" % (n, mib(sz["concurrent"])), 64)):
        x = ls.get(key, {})
        if not x.get("before_kib"):     # not run, or lazykvd gone before it began
            lines.append("| %s | - | - | - | - | - | <= %d MiB | %s%s |"
                         % (label, goal, x.get("error") or (x.get("upload") or {}).get("error") or
                            "not run", exited(x)))
            continue
        if key == "one":
            up, down = x["upload"], x.get("download")
            tr = "upload: %s; download: %s" % (
                "%s in %.1f s" % (up["status"], up["seconds"]) if up["ok"] else up.get("error"),
                ("%d bytes, digest ok, in %.1f s" % (down["bytes"], down["seconds"]) if down["ok"]
                 else down.get("error")) if down else "not tried")
        else:
            errs = sorted(set(u.get("error") for u in x["uploads"] if not u.get("ok")) |
                          set(d.get("error") for d in x["downloads"] if not d.get("ok")))
            tr = "%d of %d uploads ok (%.1f s), %s%s" % (
                x["uploads_ok"], n, x["upload_s"],
                "%d of %d downloads ok, digests checked (%.1f s)" % (
                    x["downloads_ok"], x["uploads_ok"], x["download_s"]) if x["uploads_ok"]
                else "no download tried", "; " + "; ".join(errs) if errs else "")
        tr += exited(x)
        tried = x.get("download") if key == "one" else x.get("downloads")
        big = x.get("growth_max_kib")
        b = lambda kib: "**%s**" % f1(kib) if kib is not None and kib == big else f1(kib)
        lines.append("| %s | %s | %s | %s | %s | %s | <= %d MiB | %s |"
                     % (label, f1(x["before_kib"]), f1(x["phases"].get("upload")),
                        f1(x["phases"].get("download")) if tried else "- (none tried)",
                        b(x["growth_kib"]),
                        b(x.get("hwm_growth_kib")), goal, tr))
    tp = ls.get("throughput", {})
    lines += ["", "### Throughput of one %s POST and GET against the ceiling" % mib(sz["throughput"]), ""]
    if tp.get("kvd_exit"):
        lines += [exited(tp)[2:], ""]
    if tp.get("error"):
        lines.append("Not measured: %s" % tp["error"])
    else:
        lines += ["The ceiling: `bench/blobceiling.c` (MariaDB Connector/C, prepared statements, "
                  "the bytes in memory) writes the same %s as %d rows of 1 MiB, one autocommitted "
                  "INSERT each, into one table shaped as src/chunks.h's `@T_chunks`, on the key's "
                  "master mariadbd (partition %s), then reads them back with one point SELECT each. "
                  "In turn with lazykvd, %d time(s): MB/s are medians (MB = 10^6 bytes), the "
                  "ratio is the median of each run's ratio to the ceiling run right after it."
                  % (mib(sz["throughput"]), sz["throughput"] >> 20, tp.get("master"), len(tp["runs"])), "",
                  "| | lazykvd MB/s | ceiling MB/s | ratio | target | runs (lazykvd / ceiling MB/s: ratio) |",
                  "|---|---|---|---|---|---|"]
        for verb, k, ck, rk in (("POST", "post_MBps", "write_MBps", "post_ratio"),
                                ("GET", "get_MBps", "read_MBps", "get_ratio")):
            cells = []
            for run in tp["runs"]:
                a = "%.0f" % run[k] if k in run else "failed"
                b = "%.0f" % run["ceiling"][ck] if run["ceiling"]["ok"] else "failed"
                cells.append("%s / %s%s" % (a, b, ": %.2f" % run[rk] if rk in run else ""))
            v = tp.get(k)
            cv = tp.get("ceiling_" + ck)
            lines.append("| %s | %s | %s | **%s** | >= 0.5 | %s |"
                         % (verb, "%.0f" % v if v else "failed", "%.0f" % cv if cv else "failed",
                            "%.2f" % tp[rk] if rk in tp else "-", ", ".join(cells)))
        errs = []
        for run in tp["runs"]:
            for part in ("post", "get"):
                if run.get(part) and not run[part].get("ok"):
                    errs.append(run[part]["error"])
            if not run["ceiling"]["ok"]:
                errs.append(run["ceiling"]["error"])
        for e in sorted(set(errs)):
            lines.append("")
            lines.append("Failed: %s (x %d)" % (e, errs.count(e)))
    rg = ls.get("range", {})
    lines += ["", "### A 1 MiB range of a %s value" % mib(sz["range"]), ""]
    if rg.get("kvd_exit"):
        lines += [exited(rg)[2:], ""]
    if rg.get("error"):
        lines.append("Not measured: %s" % rg["error"])
    else:
        lines.append("`Range: bytes=A-(A+1 MiB-1)` on the canonical path, A spread over the middle "
                     "half of the value and never on a 1 MiB boundary (each range spans two "
                     "chunks), its bytes and Content-Range checked; against a GET of a 1 MiB value "
                     "(inline: one chunk's size), in turn on two kept-alive connections, %d of each "
                     "after 2 of each not counted. Latency: request sent to last byte read."
                     % rg["n"])
        lines.append("")
        med = lambda xs: "%.2f ms (%.2f-%.2f, %d)" % (rg_med(xs), min(xs), max(xs), len(xs)) if xs else "-"
        lines.append("- GET of a 1 MiB value: median %s" % med(rg.get("get_ms", [])))
        if "ratio" in rg:
            lines.append("- 1 MiB range: median %s: **%.2f x** the GET (target <= 2); "
                         "`Accept-Ranges: %s`" % (med(rg["range_ms"]), rg["ratio"], rg.get("accept_ranges")))
        else:
            first = rg.get("range_first") or {}
            lines.append("- 1 MiB range: **failed**: %s%s; `Accept-Ranges` %s"
                         % (rg.get("range_error"),
                            " (%d bytes read in %.0f ms)" % (first["bytes"], first["seconds"] * 1000)
                            if first.get("seconds") else "",
                            "`%s`" % rg["accept_ranges"] if rg.get("accept_ranges") else "absent"))
        for e in sorted(set(rg.get("errors", []))):
            lines.append("- failed: %s (x %d)" % (e, rg["errors"].count(e)))
        if rg.get("pages"):
            lines += [""] + range_pages_lines(rg, sz)
    logs = [(part, ls[part]["kvd_log"]) for part in ("one", "concurrent", "throughput", "range")
            if ls.get(part, {}).get("kvd_log")]
    if logs:
        lines += ["", "What lazykvd logged (warnings and errors, the first few of each part's lazykvd):", ""]
        for part, got in logs:
            lines += ["- %s: %s" % (part, " / ".join("`%s`" % l.replace("|", "/") for l in got))]
    lines += ["", "The section took %.0f s." % ls.get("seconds", 0)]
    return lines


def range_pages_lines(rg, sz):
    """The range part's pages read from disk per request and its three
    comparisons (bench.py large_range): as specified, cold/cold, hot/hot."""
    pg, f = rg["pages"], lambda x, d=2: ("%%.%df" % d) % x if x is not None else "-"
    inno = rg.get("innodb", {})
    pool = int(inno.get("innodb_buffer_pool_size") or 0)
    big = mib(sz["range"])
    lines = ["#### Pages read from disk, and like for like",
             "",
             "Around each timed request, outside its timing, the bench reads InnoDB's "
             "`Innodb_buffer_pool_reads` (pages read into the buffer pool because a request needed "
             "them and they were not in it) on every partition with the mariadb CLI; the requests run "
             "one at a time, so the difference belongs to the request between. Each request is classed "
             "by what it read on the partition that answered it: **cold** if it read any page from "
             "disk, **hot** if none. The %s value is on partition %s (buffer pool %s, "
             "`innodb_flush_method` %s, page %s bytes), the 1 MiB value of the specified comparison "
             "on partition %s. The cold values: %d 1 MiB values written on partition %s just before "
             "the %s value (%d keys tried to find that many there), one GET each, in turn with the "
             "ranges. Medians of the %d counted requests of each kind (after %d not counted); pages "
             "are medians per request, summed over the partitions."
             % (big, rg.get("master"), mib(pool) if pool else "?", inno.get("innodb_flush_method", "?"),
                inno.get("innodb_page_size", "?"), rg.get("small_master"), rg.get("cold_values", 0),
                rg.get("master"), big, rg.get("cold_probed", 0), rg["n"], rg.get("warm", 2)),
             "",
             "| comparison | 1 MiB GET, median ms (n) | disk pages / GET | 1 MiB range, median ms (n) "
             "| disk pages / range | page accesses GET / range | range / GET |",
             "|---|---|---|---|---|---|---|"]
    for key, label in (("as_specified", "**as specified** (the target's figure): the ranges vs a GET of "
                                         "one 1 MiB value read again and again"),
                       ("cold_cold", "**cold / cold**: the ranges that read from disk vs the GETs of "
                                     "the cold values that did"),
                       ("hot_hot", "**hot / hot**: each range again at once, at its offset, that read "
                                   "nothing from disk vs the repeated GETs that did not")):
        c = rg.get(key, {})
        lines.append("| %s | %s (%d) | %s | %s (%d) | %s | %s / %s | **%s x** |"
                     % (label, f(c.get("get_p50_ms")), c.get("get_n", 0), f(c.get("get_disk_p50"), 0),
                        f(c.get("range_p50_ms")), c.get("range_n", 0), f(c.get("range_disk_p50"), 0),
                        f(c.get("get_logical_p50"), 0), f(c.get("range_logical_p50"), 0),
                        f(c.get("ratio"))))
    cls = lambda k: "%d cold / %d hot (%s-%s pages from disk each)" % (
        pg[k]["cold"]["n"], pg[k]["hot"]["n"], pg[k]["all"].get("disk_min", "-"),
        pg[k]["all"].get("disk_max", "-"))
    lines += ["", "- Classed by the page counter: GETs of the repeated 1 MiB value %s; ranges %s; "
              "ranges again %s; GETs of the cold values %s." % (cls("get_hot"), cls("range"),
                                                               cls("range_again"), cls("get_cold"))]
    for k, what in (("get_hot", "GETs of the repeated value"), ("get_cold", "GETs of the cold values"),
                    ("range", "ranges"), ("range_again", "ranges again")):
        for c in ("cold", "hot"):
            x = pg[k][c]
            if x["n"] and (k, c) not in (("get_hot", "hot"), ("get_cold", "cold"),
                                        ("range", "cold"), ("range_again", "hot")):
                lines.append("- Not as meant: %d of the %s %s (%s-%s pages from disk in all "
                             "partitions), median %s ms."
                             % (x["n"], what, "read from disk on their partition" if c == "cold"
                                else "read nothing from disk on their partition",
                                x["disk_min"], x["disk_max"], f(x["p50_ms"])))
    if rg.get("range_again_error"):
        lines.append("- A range again failed: %s" % rg["range_again_error"])
    for e in sorted(set(rg.get("cold_errors", []))):
        lines.append("- A GET of a cold value failed: %s (x %d)" % (e, rg["cold_errors"].count(e)))
    if rg.get("cold_error"):
        lines.append("- The cold values: %s" % rg["cold_error"])
    bp, w = rg.get("blob_pages", {}), rg.get("whole")
    r = pg["range"]["all"]
    lines += ["", "**A range's pages against the whole value's.** A range read a median of %s pages "
              "from disk (%s page accesses). Computed: a BLOB page holds %d bytes (%d less 54 of "
              "headers), so a 1 MiB chunk is %d pages, the two chunks an unaligned range spans %d and "
              "the %s value's %d chunks %d. %s"
              % (f(r.get("disk_p50"), 0), f(r.get("logical_p50"), 0), bp.get("page_size", 16384) - 54,
                 bp.get("page_size", 16384), bp.get("per_1MiB_chunk", 0), bp.get("two_chunks", 0), big,
                 -(-sz["range"] // 1048576), bp.get("whole_value", 0),
                 "Measured: one GET of the whole value, after the rest, took %d page accesses and "
                 "read %d pages from disk (the rest were still in the pool), %s, in %.0f ms."
                 % (w["logical"], w["pages_read"], "its SHA-256 checked" if w["ok"] else w["error"],
                    w["ms"] or 0) if w else "The whole value was not read.")]
    idle = rg.get("idle")
    if idle:
        other = sum(pg[k]["all"].get("other_disk", 0) for k in pg if pg[k]["all"]["n"])
        before, after = rg.get("background_before") or [], rg.get("background_after") or []
        hl = ", ".join("%s -> %s" % (a["history_list_length"], b["history_list_length"])
                       for a, b in zip(before, after))
        restat = sorted(t for a, b in zip(before, after) for t, u in b["stats_updated"].items()
                        if a["stats_updated"].get(t) != u)
        lines += ["", "**Reads by no request.** Nothing else runs in this section (no sync pass, no "
                  "other client). In %d windows of %d ms with no request, one after each round, "
                  "InnoDB read %d pages from disk (per partition: %s; %d page accesses), in %d of the "
                  "windows. In the request windows it read %d pages on partitions that did not "
                  "answer the request (they are in the per-request sums above). Purge backlog (history list "
                  "length) per partition, before -> after the part: %s. Persistent statistics "
                  "recalculated during the part (a recalculation reads sample pages): %s."
                  % (idle["windows"], idle["seconds"] * 1000, idle["pages_read"],
                     "/".join(str(x) for x in idle.get("disk_by_partition", [])), idle["logical"],
                     idle["windows_with_disk"], other, hl or "-",
                     ", ".join(restat) if restat else "none")]
    return lines


def exited(x):
    """"; **lazykvd exited** ..." when it died during this part, else ""."""
    e = x.get("kvd_exit")
    if not e:
        return ""
    return "; **lazykvd exited** (%s)%s" % (e["rc"], ": " + " / ".join(
        "`%s`" % line.replace("|", "/") for line in e["log"][-2:]) if e["log"] else "")


def rg_med(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


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
                "bench/bench.py%s --section %s%s" % (" --quick" if m["quick"] else "", m["section"],
                                                     " --large-shrink %d" % m["large_shrink"]
                                                     if m.get("large_shrink", 1) != 1 else "")
                if m.get("section") else "make bench%s" % (" QUICK=1" if m["quick"] else "")),
             "", "## Targets (concurrency 64)", "", "| Target | Measured | Goal | Met |",
             "|---|---|---|---|"]
    for name, value, op, goal, met in targets(r) + large_targets(r):
        shown = value if isinstance(value, str) else "%.2f" % value
        lines.append("| %s | %s | %s %s | %s |" % (name, shown, op, goal, "yes" if met else "**no**"))
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
    if r.get("large_stream"):
        lines += [""] + large_lines(r["large_stream"])
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
