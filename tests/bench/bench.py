#!/usr/bin/python3
"""scripts/bench: export, download and request-rate benchmarks of mod_bulkfhir.

One command produces every number of BENCHMARKS.md, as medians of N runs and
as ratios measured in the same run on the same stack (ratios are what the
targets are about; absolute figures depend on the machine and its load).

  scripts/bench [--quick] [--big] [--sizes 100k,1m,synthea] [--reps N]
                [--reps-1m N] [--wrk-seconds S] [--workdir DIR] [--keep]
                [--note TEXT] [--no-markdown]

Per dataset a fresh `scripts/devstack` (own PostgreSQL, httpd, workers) is
brought up in WORKDIR/<size>, loaded with `bulkfhirctl generate` data (or
synthea-100p), and measured; it is taken down afterwards unless --keep.
"""
import argparse
import datetime as dt
import gzip
import os
import platform
import re
import shlex
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import report  # noqa: E402

SIZES = {"100k": 260, "1m": 2600, "5m": 13000}
SYNTHEA = os.path.normpath(os.path.join(bl.REPO, "..", "shared", "data", "synthea-100p"))
CEILING_SQL = ("SELECT resource FROM fhir.resource_version "
               "WHERE superseded_at IS NULL AND NOT deleted")


def parse_args():
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="100k only, shorter wrk runs: a smoke run (minutes)")
    ap.add_argument("--big", action="store_true", help="also the 5M dataset")
    ap.add_argument("--sizes", help="comma list of 100k,1m,5m,synthea "
                    "(default 100k,1m,synthea; synthea only when present)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--reps-1m", type=int, default=3,
                    help="repetitions at 1M and above (default 3)")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--downloads", type=int, default=15, help="downloads per side")
    ap.add_argument("--workdir", default="/tmp/bf-bench")
    ap.add_argument("--build-dir", default=os.environ.get(
        "BULKFHIR_BUILD_DIR", os.path.join(bl.REPO, "build")))
    ap.add_argument("--keep", action="store_true", help="leave the stacks up")
    ap.add_argument("--note", default="", help="a line shown at the top of BENCHMARKS.md")
    ap.add_argument("--no-markdown", action="store_true",
                    help="write the JSON only, leave BENCHMARKS.md alone")
    a = ap.parse_args()
    if a.sizes:
        a.sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    elif a.quick:
        a.sizes = ["100k"]
    else:
        a.sizes = ["100k", "1m"] + (["5m"] if a.big else []) + \
            (["synthea"] if os.path.isdir(SYNTHEA) else [])
    for s in a.sizes:
        if s not in SIZES and s != "synthea":
            ap.error("unknown size %s" % s)
    if a.quick:
        a.wrk_seconds = min(a.wrk_seconds, 5)
    return a


# ---- machine --------------------------------------------------------------------------
def first_match(path, pat):
    try:
        with open(path) as f:
            m = re.search(pat, f.read(), re.M)
        return m.group(1).strip() if m else None
    except OSError:
        return None


def machine(workdir):
    df = bl.run(["df", "-hT", workdir], check=False).stdout.splitlines()
    dev = df[-1].split()[0] if len(df) > 1 else ""
    rot = None
    base = os.path.basename(dev)
    if base:
        rot = first_match("/sys/block/%s/queue/rotational" % re.sub(r"\d+$", "", base), r"(\d)")
    httpd = bl.run(["/usr/sbin/apache2", "-v"], check=False).stdout
    return {
        "cpu": first_match("/proc/cpuinfo", r"^model name\s*:\s*(.*)$"),
        "cores": os.cpu_count(),
        "ram_gb": round(int(first_match("/proc/meminfo", r"^MemTotal:\s*(\d+)")) / 1048576, 1),
        "disk": " ".join(df[-1].split()[:3]) + (" (rotational)" if rot == "1" else
                                                " (non-rotational)" if rot == "0" else ""),
        "kernel": platform.release(),
        "httpd": (re.search(r"Server version:\s*(.*)", httpd) or [None, None])[1],
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


# ---- measurements ---------------------------------------------------------------------
def ceiling_file(st):
    d = os.path.join(st.dir, "ceiling")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o777)
    return os.path.join(d, "out.ndjson")


def server_copy(st, fsyncs=None):
    """One run of the ceiling: (seconds, bytes) of the server-side COPY.
    fsyncs: a list that gets the time to fsync the file afterwards (what an
    export pays to make its parts durable; the ceiling's file is unlinked
    before its pages would be written back)."""
    out = ceiling_file(st)
    bl.settle()
    _, ms = st.psql("COPY (%s) TO '%s'" % (CEILING_SQL, out), timing=True)
    size = os.path.getsize(out)
    if fsyncs is not None:
        t0 = time.monotonic()
        fd = os.open(out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        fsyncs.append(time.monotonic() - t0)
    os.unlink(out)
    return ms[-1] / 1000.0, size


def ceiling(st, reps, workdir):
    out = ceiling_file(st)
    server, client, fsyncs = [], [], []
    for _ in range(reps):
        secs, size = server_copy(st, fsyncs)
        server.append(secs)
        bl.settle()
        t0 = time.monotonic()
        _, ms = st.psql("\\copy (%s) TO '%s'" % (CEILING_SQL, out), timing=True)
        client.append(ms[-1] / 1000.0 if ms else time.monotonic() - t0)
        os.unlink(out)
    # the same work split the way the worker splits it: one binary COPY per
    # type (its plan: type index scan or seq scan), in one session
    types = st.q1("SELECT DISTINCT resource_type FROM fhir.resource_version").split()
    per_type = []
    for _ in range(reps):
        cmds = ["COPY (SELECT resource FROM fhir.resource_version WHERE resource_type = '%s' "
                "AND superseded_at IS NULL AND NOT deleted) TO '%s' (FORMAT binary)"
                % (t, out) for t in types]
        bl.settle()
        _, ms = st.psql(*cmds, timing=True)
        per_type.append(sum(ms) / 1000.0)
        os.unlink(out)
    return {"per_type_binary_copy_s": per_type,
            "per_type_binary_copy_median_s": bl.median(per_type),
            "server_copy_s": server, "server_copy_median_s": bl.median(server),
            "copy_fsync_s": fsyncs, "copy_fsync_median_s": bl.median(fsyncs),
            "client_copy_s": client, "client_copy_median_s": bl.median(client),
            "bytes": size, "note": "single PostgreSQL backend, text COPY"}


EXPORTS = [
    # name, path, params, with 2 workers too
    ("system", "$export", None, True),
    ("patient", "Patient/$export", None, True),
    ("group", "Group/{group}/$export", None, True),
    ("elements", "$export", {"_elements": "status,code,subject"}, False),
    ("typefilter", "$export", {"_type": "Observation",
                               "_typeFilter": "Observation?category=laboratory"}, False),
]


def worker_pairs(st, reps):
    """The system export with one worker and right after it with two (the
    second worker stopped and started in between, outside the timed runs):
    the 2-worker speed-up of each pair, measured side by side."""
    one, two = [], []
    for i in range(reps):
        st.stop_worker(st.workers[-1])
        for n, out in ((1, one), (2, two)):
            if n == 2:
                st.add_worker()
            bl.settle()
            e = st.export("$export")
            out.append(e["seconds"])
            st.discard(e["status_url"], e["job"])
        bl.say("  pair #%d: 1w %.3f s, 2w %.3f s" % (i + 1, one[-1], two[-1]))
    return {"one_s": one, "two_s": two, "one_median_s": bl.median(one),
            "two_median_s": bl.median(two)}


def run_exports(st, reps, nworkers, group, keep_last_system=False, paired=None):
    """paired: a list that gets one ceiling COPY run right before each
    1-worker system export, so the two are measured side by side (this VM's
    speed drifts by more than the target's margin within minutes)."""
    res, kept = {}, None
    for name, path, params, two in EXPORTS:
        if nworkers == 2 and not two:
            continue
        runs = []
        for i in range(reps):
            if paired is not None and name == "system":
                paired.append(server_copy(st)[0])
            bl.settle()
            with bl.RssSampler(st.workers) as smp:
                e = st.export(path.format(group=group), params)
            stats = st.job_stats(e["job"])
            runs.append({"seconds": e["seconds"], "resources": stats["resources"],
                         "bytes": stats["bytes"], "files": stats["files"],
                         "polls": e["polls"], "tasks": stats["tasks"],
                         "worker_max_rss_kb": max(smp.max_rss.values()),
                         "worker_hwm_kb": max(smp.hwm.values())})
            bl.say("  %s %dw #%d: %.3f s, %d resources, %.1f MB" % (
                name, nworkers, i + 1, e["seconds"], stats["resources"],
                stats["bytes"] / 1e6))
            if keep_last_system and name == "system" and i == reps - 1:
                kept = e
            else:
                st.discard(e["status_url"], e["job"])
        secs = [r["seconds"] for r in runs]
        med = bl.median(secs)
        last = runs[-1]
        crit = max((t["seconds"] or 0) for t in last["tasks"]) if last["tasks"] else None
        res[name] = {"runs": runs, "median_s": med,
                     "resources": last["resources"], "bytes": last["bytes"],
                     "MBps": last["bytes"] / med / 1e6 if med else None,
                     "resources_per_s": last["resources"] / med if med else None,
                     "longest_task_s": crit}
    return res, kept


def downloads(st, kept, n):
    """The largest part of the kept export, downloaded n times per side,
    interleaved: its gzip representation (the worker's stored .gz, sent as
    stored) against httpd serving the same .gz statically, and its identity
    representation (inflated while sent) against httpd serving the same
    NDJSON statically.  Parts stored plain (compression = none): identity
    against the same file."""
    files = sorted(kept["manifest"].get("output", []), key=lambda o: -(o.get("count") or 0))
    if not files:
        return None
    url = files[0]["url"]
    name = url.rsplit("/", 1)[1]
    stored_gz = os.path.join(st.export_root, kept["job"], name + ".gz")
    out = {"file": name}
    sides = []
    if os.path.exists(stored_gz):
        with open(stored_gz, "rb") as f:
            ndjson = gzip.decompress(f.read())
        sides.append(("gzip", {"Accept-Encoding": "gzip"},
                      "%s/static-export/%s/%s.gz" % (st.root, kept["job"], name)))
        static_id = static_like(st, "identity-" + name, ndjson)
    else:
        static_id = "%s/static-export/%s/%s" % (st.root, kept["job"], name)
    sides.append(("identity", None, static_id))
    rss_before = st.httpd_children_rss()
    for rep, enc, static in sides:
        mod, stat = [], []
        hdr = dict({"Accept": "application/fhir+ndjson"}, **(enc or {}))
        for i in range(n):          # interleaved, so load changes hit both sides,
            order = [(mod, url, hdr), (stat, static, enc)]  # alternating who goes first
            for res, u, h in (order if i % 2 == 0 else order[::-1]):
                res.append(bl.curl_download(u, h))
        mm = bl.median([x["MBps"] for x in mod])
        sm = bl.median([x["MBps"] for x in stat])
        out[rep] = {"bytes": mod[0]["bytes"], "static_bytes": stat[0]["bytes"],
                    "module_MBps": [x["MBps"] for x in mod],
                    "static_MBps": [x["MBps"] for x in stat], "module_median_MBps": mm,
                    "static_median_MBps": sm, "ratio": mm / sm if mm and sm else None}
    # the target (>= 0.9 of static) is about what goes over the wire: the
    # gzip representation when the parts are stored compressed
    main = out.get("gzip") or out["identity"]
    out.update({"representation": "gzip" if "gzip" in out else "identity",
                "bytes": main["bytes"], "module_MBps": main["module_MBps"],
                "static_MBps": main["static_MBps"],
                "module_median_MBps": main["module_median_MBps"],
                "static_median_MBps": main["static_median_MBps"], "ratio": main["ratio"],
                "httpd_rss_kb_before": rss_before,
                "httpd_rss_kb_after": st.httpd_children_rss()})
    return out


def cpu_ticks(pids):
    """utime + stime of the pids (clock ticks), from /proc/PID/stat."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])
        except (OSError, ValueError, IndexError):
            pass
    return total


def share_bytes(st, job):
    d = os.path.join(st.export_root, job)
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))


def compression_series(st, reps):
    """The system export with compression = none and = gzip alternately
    (bulkfhir.setting, read by the worker before each task): kick-off to
    manifest, the workers' CPU time, bytes on the share (the job's directory)
    and NDJSON bytes (the file rows, what an identity client receives)."""
    out = {"none": [], "gzip": []}
    level = st.q1("SELECT value FROM bulkfhir.setting WHERE name = 'compression_level'")
    try:
        for i in range(reps):
            for mode in (("none", "gzip") if i % 2 == 0 else ("gzip", "none")):
                st.psql("UPDATE bulkfhir.setting SET value = '%s' WHERE name = 'compression'"
                        % mode)
                bl.settle()
                c0 = cpu_ticks(st.workers)
                e = st.export("$export")
                cpu = (cpu_ticks(st.workers) - c0) / os.sysconf("SC_CLK_TCK")
                stats = st.job_stats(e["job"])
                share = share_bytes(st, e["job"])
                out[mode].append({"seconds": e["seconds"], "worker_cpu_s": cpu,
                                  "share_bytes": share, "ndjson_bytes": stats["bytes"]})
                bl.say("  compression %s #%d: %.3f s, worker CPU %.2f s, %.1f MB on the "
                       "share (%.1f MB NDJSON)" % (mode, i + 1, e["seconds"], cpu, share / 1e6,
                                                   stats["bytes"] / 1e6))
                st.discard(e["status_url"], e["job"])
    finally:
        st.psql("UPDATE bulkfhir.setting SET value = 'gzip' WHERE name = 'compression'")
    res = {"level": int(level) if level else None, "reps": reps}
    for mode, runs in out.items():
        res[mode] = {"runs": runs,
                     "median_s": bl.median([r["seconds"] for r in runs]),
                     "worker_cpu_median_s": bl.median([r["worker_cpu_s"] for r in runs]),
                     "share_bytes": runs[-1]["share_bytes"] if runs else None,
                     "ndjson_bytes": runs[-1]["ndjson_bytes"] if runs else None}
    n, g = res["none"], res["gzip"]
    res["share_ratio"] = (n["share_bytes"] / g["share_bytes"]
                          if n["share_bytes"] and g["share_bytes"] else None)
    res["time_ratio"] = (g["median_s"] / n["median_s"]
                         if n["median_s"] and g["median_s"] else None)
    return res


def static_like(st, name, body):
    p = os.path.join(st.static, name)
    with open(p, "wb") as f:
        f.write(body)
    os.chmod(p, 0o644)
    return "%s/static/%s" % (st.root, name)


def rates_queued(st, seconds):
    """With no worker running: poll a queued job (202) and kick-offs."""
    out = {"httpd_rss_kb_before": st.httpd_children_rss()}
    k = st.kickoff("$export")
    su = k.headers["Content-Location"]
    body = st.http.get(su).content
    static = static_like(st, "small-%d.json" % len(body), body)
    # /fhir has no R43 gate: every poll is a 202 from PostgreSQL (a running
    # job's status is not cached, so its completion shows at once); the same
    # job through a location with the defaults: most polls of a storm are
    # 429s, answered from BulkFhirStatusCache
    out["poll_202"] = bl.wrk(su, seconds)
    out["poll_202_gated"] = bl.wrk(su.replace(st.base, st.root + bl.GATED_LOCATION, 1),
                                   seconds)
    out["static_small"] = bl.wrk(static, seconds)
    out["static_small"]["body_bytes"] = len(body)
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "post.lua")
    out["kickoff_get"] = bl.wrk(st.base + "/$export", seconds, headers=bl.KICK_HEADERS)
    st.cancel_all_jobs()
    out["kickoff_post"] = bl.wrk(st.base + "/$export", seconds, headers=dict(
        bl.KICK_HEADERS, **{"Content-Type": bl.FHIR_JSON}), script=lua)
    out["jobs_created"] = int(st.q1("SELECT count(*) FROM bulkfhir.job"))
    st.cancel_all_jobs()
    st.psql("DELETE FROM bulkfhir.job")
    st.psql("VACUUM ANALYZE bulkfhir.job, bulkfhir.task")
    out["httpd_rss_kb_after"] = st.httpd_children_rss()
    return out


def rates_complete(st, kept, seconds):
    body = st.http.get(kept["status_url"]).content
    static = static_like(st, "manifest-%d.json" % len(body), body)
    return {"poll_200": bl.wrk(kept["status_url"], seconds),
            "static_manifest": dict(bl.wrk(static, seconds), body_bytes=len(body)),
            "httpd_rss_kb_after_all": st.httpd_children_rss()}


def rates_smart(st, seconds):
    """BulkFhirAuth smart (bl.SMART_LOCATION): a completed job's status
    polled with a bearer token (the token check and the status both from
    BulkFhirStatusCache), and a static file of the same size.  The token
    lives 300 s: enough for two wrk runs."""
    auth = st.smart_auth()
    e = st.export("$export", {"_type": "Patient"}, base=st.root + bl.SMART_LOCATION,
                  auth=auth)
    body = st.http.get(e["status_url"], headers=auth).content
    static = static_like(st, "manifest-smart-%d.json" % len(body), body)
    out = {"poll_200_smart": bl.wrk(e["status_url"], seconds, headers=auth),
           "static_manifest_smart": dict(bl.wrk(static, seconds), body_bytes=len(body))}
    st.discard(e["status_url"], e["job"], auth)
    return out


def dataset(args, size):
    if size == "synthea":
        return SYNTHEA
    d = os.path.join(args.workdir, "gen-%d" % SIZES[size])
    if not os.path.exists(os.path.join(d, ".complete")):
        shutil.rmtree(d, ignore_errors=True)
        bl.run([os.path.join(args.build_dir, "ctl", "bulkfhirctl"), "generate",
                "--patients", str(SIZES[size]), "--out", d])
        open(os.path.join(d, ".complete"), "w").close()
    return d


def bench_size(args, size):
    reps = args.reps if size in ("100k", "synthea") else min(args.reps, args.reps_1m)
    st = bl.Stack(os.path.join(args.workdir, "stack-" + size), args.build_dir)
    bl.say("%s: stack up in %s" % (size, st.dir))
    st.up()
    r = {"reps": reps}
    try:
        data = dataset(args, size)
        bl.say("%s: loading %s" % (size, data))
        r["load_s"] = st.load(data)
        r["resources"] = int(st.q1("SELECT count(*) FROM fhir.resource_version "
                                   "WHERE superseded_at IS NULL AND NOT deleted"))
        group = st.q1("SELECT id FROM fhir.resource_version WHERE resource_type = 'Group' "
                      "AND superseded_at IS NULL AND NOT deleted ORDER BY "
                      "jsonb_array_length(resource->'member') DESC NULLS LAST, id LIMIT 1")
        r["group"] = group
        r["group_members"] = int(st.q1(
            "SELECT coalesce(jsonb_array_length(resource->'member'), 0) FROM "
            "fhir.resource_version WHERE resource_type = 'Group' AND id = '%s' "
            "AND superseded_at IS NULL AND NOT deleted" % group) or 0) if group else 0
        bl.say("%s: %d resources loaded in %.1f s; ceiling" % (size, r["resources"], r["load_s"]))
        r["ceiling"] = ceiling(st, reps, args.workdir)
        first = size == args.sizes[0]
        if first:
            bl.say("%s: request rates with no worker" % size)
            r["rates"] = rates_queued(st, args.wrk_seconds)
        w1 = st.add_worker()
        bl.say("%s: exports, 1 worker (pid %d)" % (size, w1))
        paired = []
        ex1, kept = run_exports(st, reps, 1, group, keep_last_system=True, paired=paired)
        r["exports_1w"] = ex1
        r["ceiling"]["paired_copy_s"] = paired
        r["ceiling"]["paired_copy_median_s"] = bl.median(paired)
        if kept and size != "synthea":
            bl.say("%s: downloads" % size)
            r["download"] = downloads(st, kept, args.downloads)
            if first:
                r["rates"].update(rates_complete(st, kept, args.wrk_seconds))
                r["rates"].update(rates_smart(st, args.wrk_seconds))
        if kept:
            st.discard(kept["status_url"], kept["job"])
        bl.say("%s: system export, compression none and gzip alternately (1 worker)" % size)
        r["compression"] = compression_series(st, reps)
        w2 = st.add_worker()
        bl.say("%s: exports, 2 workers (pids %d %d)" % (size, w1, w2))
        r["exports_2w"], _ = run_exports(st, reps, 2, group)
        r["worker_hwm_kb"] = {str(p): bl.proc_status(p).get("VmHWM") for p in st.workers}
        bl.say("%s: system export, 1 and 2 workers alternately" % size)
        r["workers_paired"] = worker_pairs(st, reps)
    finally:
        if not args.keep:
            st.down()
            shutil.rmtree(st.dir, ignore_errors=True)
    return r


def main():
    args = parse_args()
    if not os.path.exists(os.path.join(args.build_dir, "worker", "bulkfhir-worker")):
        sys.exit("bench: no build in %s (build first, or set BULKFHIR_BUILD_DIR)"
                 % args.build_dir)
    os.makedirs(args.workdir, exist_ok=True)
    os.chmod(args.workdir, 0o755)
    ts = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    res = {"timestamp": ts, "command": shlex.join(["scripts/bench"] + sys.argv[1:]),
           "note": args.note, "machine": machine(args.workdir), "sizes": {},
           "options": {k: v for k, v in vars(args).items()}}
    t0 = time.monotonic()
    for size in args.sizes:
        try:
            res["sizes"][size] = bench_size(args, size)
        except Exception as e:  # keep what we have; say what failed
            bl.say("%s failed: %s" % (size, e))
            res["sizes"][size] = {"error": str(e)}
    res["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    res["elapsed_s"] = time.monotonic() - t0
    res["machine"]["postgresql"] = pg_version()
    res["targets"] = report.targets(res)
    outdir = os.path.join(bl.REPO, "tests", "bench", "results")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, ts + ".json")
    with open(path, "w") as f:
        f.write(bl.dumps(res))
    bl.say("results: %s" % path)
    if not args.no_markdown:
        md = os.path.join(bl.REPO, "BENCHMARKS.md")
        with open(md, "w") as f:
            f.write(report.markdown(res))
        bl.say("wrote %s" % md)
    print(report.summary(res))
    return 0 if not any("error" in v for v in res["sizes"].values()) else 1


def pg_version():
    import glob
    for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True):
        r = bl.run([p, "--version"], check=False)
        if r.returncode == 0:
            return r.stdout.strip()
    return None


if __name__ == "__main__":
    sys.exit(main())
