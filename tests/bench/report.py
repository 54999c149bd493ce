"""Targets and the BENCHMARKS.md text from a scripts/bench results dict.

Re-render an old run:  /usr/bin/python3 tests/bench/report.py RESULTS.json
"""
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RSS_LIMIT_KB = 64 * 1024
RSS_FLAT = 1.2      # "flat": peak RSS at the larger size <= 1.2 x the smaller


def g(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def paired_ratios(s):
    """COPY time / export time of each 1-worker system export and the
    ceiling run made right before it ([] when the run has no pairs)."""
    copies = g(s, "ceiling", "paired_copy_s") or []
    runs = g(s, "exports_1w", "system", "runs") or []
    return [c / r["seconds"] for c, r in zip(copies, runs) if r.get("seconds")]


def ratio(a, b):
    return a / b if a is not None and b else None


def worker_hwm(s, only=None):
    """Peak VmHWM (kB) of the workers; only="system": as the 1-worker
    system export left it (the first export of a fresh worker: streaming
    memory alone, before any Group export's member list)."""
    xs = []
    if only:
        xs = [r.get("worker_hwm_kb") or 0
              for r in g(s, "exports_1w", only, "runs") or []]
        return max(xs) if xs else None
    for ex in ("exports_1w", "exports_2w"):
        for kind in (g(s, ex) or {}).values():
            xs += [r.get("worker_hwm_kb") or 0 for r in kind.get("runs", [])]
    xs += [v or 0 for v in (g(s, "worker_hwm_kb") or {}).values()]
    return max(xs) if xs else None


def targets(res):
    """[{name, value, target, ok, detail}]"""
    out = []

    def add(name, value, target, ok, detail=""):
        out.append({"name": name, "value": value, "target": target,
                    "ok": None if value is None else ok, "detail": detail})

    sizes = res.get("sizes", {})
    for size, s in sizes.items():
        if "error" in s:
            add("%s: run" % size, None, "completes", False, s["error"])
            continue
        ceil = g(s, "ceiling", "server_copy_median_s")
        e1 = g(s, "exports_1w", "system", "median_s")
        e2 = g(s, "exports_2w", "system", "median_s")
        pt = g(s, "ceiling", "per_type_binary_copy_median_s")
        pairs = paired_ratios(s)
        if pairs:
            # each COPY ran right before its export: the median of the pairs'
            # ratios (this VM's speed drifts within minutes; see PROFILE.md)
            r = statistics.median(pairs)
            how = ("median of %d paired runs (COPY right before its export: %s);"
                   " medians: COPY %.3f s, export %.3f s"
                   % (len(pairs), " ".join("%.2f" % x for x in pairs),
                      g(s, "ceiling", "paired_copy_median_s"), e1 or 0))
        else:
            r = ratio(ceil, e1)
            how = "COPY %.3f s, export %.3f s" % (ceil or 0, e1 or 0)
        add("%s: system export 1 worker / COPY ceiling (speed)" % size, r, ">= 0.8",
            r is not None and r >= 0.8,
            "%s; per-type binary COPY %.3f s (export / that: %s)"
            % (how, pt or 0, f(ratio(pt, e1), "%.2f")))
        lt = g(s, "exports_2w", "system", "longest_task_s")
        wp = g(s, "workers_paired") or {}
        pairs = [a / b for a, b in zip(wp.get("one_s", []), wp.get("two_s", [])) if b]
        if pairs:
            r = statistics.median(pairs)
            how = ("median of %d pairs (1 worker, then 2 workers right after: %s);"
                   " medians of the pairs 1w %.3f s, 2w %.3f s; of the series above"
                   " 1w %.3f s, 2w %.3f s (%s)"
                   % (len(pairs), " ".join("%.2f" % x for x in pairs), wp["one_median_s"],
                      wp["two_median_s"], e1 or 0, e2 or 0, f(ratio(e1, e2), "%.2f")))
        else:
            r = ratio(e1, e2)
            how = "1w %.3f s, 2w %.3f s" % (e1 or 0, e2 or 0)
        add("%s: system export 2 workers / 1 worker (speed)" % size, r, ">= 1.3",
            r is not None and r >= 1.3,
            "%s; longest single task %.3f s (%s) bounds the 2-worker time"
            % (how, lt or 0, longest_type(s)))
        if size == "synthea":
            add("synthea-100p: system export, kick-off to manifest (1 worker)", e1,
                "< 1 s", e1 is not None and e1 < 1.0)
        h = worker_hwm(s)
        add("%s: worker peak RSS (VmHWM, MB)" % size, h / 1024 if h else None, "<= 64",
            h is not None and h <= RSS_LIMIT_KB)
        d = g(s, "download", "ratio")
        if d is not None:
            add("%s: download via module / static (%s representation)"
                % (size, g(s, "download", "representation") or "identity"), d, ">= 0.9",
                d >= 0.9,
                "%.0f vs %.0f MB/s, %s" % (g(s, "download", "module_median_MBps"),
                                          g(s, "download", "static_median_MBps"),
                                          g(s, "download", "file")))
        di = g(s, "download", "identity", "ratio")
        if di is not None and g(s, "download", "gzip"):
            add("%s: download identity (inflated while sent) / static NDJSON" % size, di,
                "—", None, "%.0f vs %.0f MB/s of NDJSON" % (
                    g(s, "download", "identity", "module_median_MBps"),
                    g(s, "download", "identity", "static_median_MBps")))
        cz = s.get("compression")
        if cz and cz.get("share_ratio"):
            add("%s: bytes on the share, compression none / gzip" % size, cz["share_ratio"],
                ">= 8" if size == "synthea" else "—",
                cz["share_ratio"] >= 8 if size == "synthea" else None,
                "%.1f vs %.1f MB (level %s)" % (cz["none"]["share_bytes"] / 1e6,
                                               cz["gzip"]["share_bytes"] / 1e6, cz["level"]))
            add("%s: system export time, gzip / none (1 worker)" % size, cz["time_ratio"],
                "—", None, "medians %.3f vs %.3f s; worker CPU %.2f vs %.2f s" % (
                    cz["gzip"]["median_s"], cz["none"]["median_s"],
                    cz["gzip"]["worker_cpu_median_s"], cz["none"]["worker_cpu_median_s"]))
        rates = s.get("rates")
        if rates:
            a, b = g(rates, "poll_202", "rps"), g(rates, "static_small", "rps")
            if a is not None:
                add("status polls (202 of a running job, from PostgreSQL) / static "
                    "file req/s", ratio(a, b), "—", None,
                    "%.0f vs %.0f req/s; R43 gate off; not cached by design, so "
                    "completion shows at once" % (a, b or 0))
            for poll, static, what in (("poll_202_gated", "static_small",
                                        "job queued, default R43 gate: 202/429"),
                                       ("poll_200", "static_manifest", "200"),
                                       ("poll_200_smart", "static_manifest_smart",
                                        "200, smart auth")):
                a, b = g(rates, poll, "rps"), g(rates, static, "rps")
                if a is not None:
                    r = ratio(a, b)
                    add("status polls (%s) / static file req/s" % what, r, ">= 0.5",
                        r is not None and r >= 0.5, "%.0f vs %.0f req/s" % (a, b or 0))
    big = [k for k in ("100k", "1m", "5m") if k in sizes and "error" not in sizes[k]]
    if len(big) >= 2:
        lo, hi = sizes[big[0]], sizes[big[-1]]
        a, b = worker_hwm(lo, "system"), worker_hwm(hi, "system")
        if a and b:
            add("worker peak RSS streaming (system export) %s / %s (flat)" % (big[-1], big[0]),
                b / a, "<= %.1f" % RSS_FLAT, b / a <= RSS_FLAT,
                "%.1f vs %.1f MB" % (b / 1024, a / 1024))
        a, b = worker_hwm(lo), worker_hwm(hi)
        if a and b:
            add("worker peak RSS over every export %s / %s" % (big[-1], big[0]), b / a,
                "—", None, "%.1f vs %.1f MB; a Group export's SQL carries its member list "
                "(the bench's Group: %s vs %s members)" % (
                    b / 1024, a / 1024, hi.get("group_members", "?"),
                    lo.get("group_members", "?")))
    return out


def longest_type(s):
    runs = g(s, "exports_2w", "system", "runs") or []
    if not runs or not runs[-1]["tasks"]:
        return "?"
    t = max(runs[-1]["tasks"], key=lambda t: t["seconds"] or 0)
    return t["type"]


def f(v, fmt="%.3f"):
    return "—" if v is None else fmt % v


def rss_mb(d):
    return "—" if not d else "%.1f" % (max(d.values()) / 1024)


def markdown(res):
    m = res["machine"]
    L = ["# Benchmarks", ""]
    if res.get("note"):
        L += ["> **%s**" % res["note"], ""]
    L += ["Produced by `%s` (results/%s.json, run time %.0f s). Every figure is a median of "
          "the repetitions shown; the targets are ratios measured in the same run on the "
          "same stack. Regenerate with the command below; do not edit by hand (the Profile "
          "section comes from `tests/bench/PROFILE.md`)." % (res["command"], res["timestamp"],
                                                             res.get("elapsed_s", 0)), "",
          "```", res["command"], "```", "",
          "## Machine", "",
          "| | |", "|---|---|",
          "| CPU | %s |" % m.get("cpu"), "| cores | %s |" % m.get("cores"),
          "| RAM | %s GB |" % m.get("ram_gb"), "| disk (work dir) | %s |" % m.get("disk"),
          "| kernel | %s |" % m.get("kernel"), "| PostgreSQL | %s |" % m.get("postgresql"),
          "| httpd | %s |" % m.get("httpd"),
          "| load average start / end | %s / %s |" % (" ".join(m.get("loadavg_start", [])),
                                                     " ".join(m.get("loadavg_end", []))),
          "", "PostgreSQL runs as `scripts/devstack` sets it up (fsync off, "
          "synchronous_commit off, default shared_buffers); httpd is mpm_event with "
          "the devstack limits (4 children x 16 threads).", "",
          "## Targets", "", "| measure | value | target | met | detail |",
          "|---|---|---|---|---|"]
    for t in res.get("targets", []):
        ok = "—" if t["ok"] is None else ("yes" if t["ok"] else "**no**")
        L.append("| %s | %s | %s | %s | %s |" % (t["name"], f(t["value"], "%.2f"),
                                                t["target"], ok, t["detail"]))
    for size, s in res.get("sizes", {}).items():
        L += ["", "## Dataset %s" % size, ""]
        if "error" in s:
            L += ["Failed: `%s`" % s["error"]]
            continue
        c = s.get("ceiling", {})
        L += ["%s current resources (%.1f MB as COPY text), loaded in %.1f s; %d repetitions; "
              "Group/%s for the Group export." % (s.get("resources"), c.get("bytes", 0) / 1e6,
                                                 s.get("load_s", 0), s.get("reps"),
                                                 s.get("group")), "",
              "| measure | median s | MB/s | resources/s | vs COPY ceiling |",
              "|---|---|---|---|---|"]
        cs = c.get("paired_copy_median_s") or c.get("server_copy_median_s")
        nb, nr = c.get("bytes"), s.get("resources")
        for label, v in (("COPY ... TO file (server, 1 backend), each run right before a"
                          " 1-worker system export: the ceiling", c.get("paired_copy_median_s")),
                         ("COPY ... TO file (server, 1 backend), runs back to back",
                          c.get("server_copy_median_s"))):
            if v:
                L.append("| %s | %s | %s | %s | %s |" % (
                    label, f(v), f(ratio(nb, v) and nb / v / 1e6, "%.0f"),
                    f(ratio(nr, v), "%.0f"), f(ratio(cs, v), "%.2f")))
        cf = c.get("copy_fsync_median_s")
        if cf is not None and c.get("server_copy_median_s"):
            v = c["server_copy_median_s"] + cf
            L.append("| COPY ... TO file, then fsync of that file (durable, as an export's"
                     " parts; fsync %s s) | %s | %s | %s | %s |" % (
                         f(cf), f(v), f(ratio(nb, v) and nb / v / 1e6, "%.0f"),
                         f(ratio(nr, v), "%.0f"), f(ratio(cs, v), "%.2f")))
        cc = c.get("client_copy_median_s")
        L.append("| \\copy ... TO file (psql client) | %s | %s | %s | %s |" % (
            f(cc), f(ratio(nb, cc) and nb / cc / 1e6, "%.0f"), f(ratio(nr, cc), "%.0f"),
            f(ratio(cs, cc), "%.2f")))
        pt = c.get("per_type_binary_copy_median_s")
        L.append("| COPY per type, binary, to file (server; the worker's split) | %s | %s | %s | %s |"
                 % (f(pt), f(ratio(nb, pt) and nb / pt / 1e6, "%.0f"), f(ratio(nr, pt), "%.0f"),
                    f(ratio(cs, pt), "%.2f")))
        for ex, label in (("exports_1w", "1 worker"), ("exports_2w", "2 workers")):
            for kind, e in (s.get(ex) or {}).items():
                L.append("| %s export, %s (%d res, %.1f MB; longest task %s s) | %s | %s | %s | %s |"
                         % (kind, label, e["resources"], e["bytes"] / 1e6,
                            f(e.get("longest_task_s")), f(e["median_s"]),
                            f(e.get("MBps"), "%.0f"), f(e.get("resources_per_s"), "%.0f"),
                            f(ratio(cs, e["median_s"]), "%.2f")))
        d = s.get("download")
        if d:
            L += ["", "Download of `%s` (%.1f MB), %d times each, interleaved: module %s MB/s, "
                  "static (httpd core, same file) %s MB/s, ratio %s. httpd child RSS (max, MB) "
                  "before %s, after %s." % (d["file"], d["bytes"] / 1e6, len(d["module_MBps"]),
                                            f(d["module_median_MBps"], "%.0f"),
                                            f(d["static_median_MBps"], "%.0f"),
                                            f(d["ratio"], "%.2f"),
                                            rss_mb(d["httpd_rss_kb_before"]),
                                            rss_mb(d["httpd_rss_kb_after"]))]
        cz = s.get("compression")
        if cz:
            L += ["", "Compression (bulkfhir.setting compression, gzip level %s), the system "
                  "export with 1 worker, %d runs each, alternating:" % (cz["level"], cz["reps"]),
                  "", "| compression | median s | worker CPU s | bytes on the share (= gzip on the wire) | "
                  "NDJSON bytes (identity on the wire) |", "|---|---|---|---|---|"]
            for mode in ("none", "gzip"):
                m = cz[mode]
                L.append("| %s | %s | %s | %s | %s |" % (
                    mode, f(m["median_s"]), f(m["worker_cpu_median_s"], "%.2f"),
                    m["share_bytes"], m["ndjson_bytes"]))
        d = s.get("download")
        if d and d.get("identity") and d.get("gzip"):
            gz, idn = d["gzip"], d["identity"]
            L += ["", "Download of `%s`: gzip representation %.1f MB on the wire, module %s "
                  "MB/s vs static .gz %s MB/s (%s); identity %.1f MB, inflated while sent "
                  "%s MB/s vs static NDJSON %s MB/s (%s)." % (
                      d["file"], gz["bytes"] / 1e6, f(gz["module_median_MBps"], "%.0f"),
                      f(gz["static_median_MBps"], "%.0f"), f(gz["ratio"], "%.2f"),
                      idn["bytes"] / 1e6, f(idn["module_median_MBps"], "%.0f"),
                      f(idn["static_median_MBps"], "%.0f"), f(idn["ratio"], "%.2f"))]
        L += ["", "Worker peak RSS (VmHWM): %s MB." % f((worker_hwm(s) or 0) / 1024, "%.1f")]
        r = s.get("rates")
        if r:
            L += ["", "Request rates (`wrk -t2 -c16 -d%ss`, keep-alive):" %
                  g(r, "poll_202", "seconds"), "",
                  "| request | req/s | p50 | p99 | non-2xx |", "|---|---|---|---|---|"]
            for k, label in (("poll_202", "status poll, job queued (202; R43 gate off)"),
                             ("poll_202_gated", "status poll, job queued, default R43 gate "
                              "(non-2xx: 429s from the cache)"),
                             ("static_small", "static file, same size as the 202 body"),
                             ("poll_200", "status poll, job complete (200 manifest)"),
                             ("static_manifest", "static file, same size as the manifest"),
                             ("poll_200_smart", "status poll (200), smart auth"),
                             ("static_manifest_smart",
                              "static file, same size as that manifest"),
                             ("kickoff_get", "kick-off GET $export"),
                             ("kickoff_post", "kick-off POST $export (Parameters)")):
                w = r.get(k)
                if w:
                    L.append("| %s | %s | %s | %s | %s |" % (label, f(w["rps"], "%.0f"),
                                                            w["p50"], w["p99"],
                                                            w["non_2xx_3xx"]))
            L += ["", "Kick-off runs created %s jobs (cancelled and deleted afterwards). "
                  "httpd child RSS (max, MB): before %s, after the queued-job runs %s, after "
                  "all %s." % (r.get("jobs_created"), rss_mb(r.get("httpd_rss_kb_before")),
                               rss_mb(r.get("httpd_rss_kb_after")),
                               rss_mb(g(r, "httpd_rss_kb_after_all")))]
    prof = os.path.join(HERE, "PROFILE.md")
    if os.path.exists(prof):
        L += ["", open(prof).read().rstrip()]
    return "\n".join(L) + "\n"


def summary(res):
    lines = []
    for t in res.get("targets", []):
        ok = "?" if t["ok"] is None else ("ok " if t["ok"] else "NO ")
        lines.append("%s %-62s %8s  target %s  %s" % (ok, t["name"], f(t["value"], "%.2f"),
                                                      t["target"], t["detail"]))
    return "\n".join(lines)


if __name__ == "__main__":
    r = json.load(open(sys.argv[1]))
    r["targets"] = targets(r)
    sys.stdout.write(markdown(r))
