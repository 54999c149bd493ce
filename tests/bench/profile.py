#!/usr/bin/python3
"""scripts/bench --profile: where the time goes, on a 100k stack of our own.

  scripts/bench --profile [--size 100k] [--workdir DIR] [--callgrind] [--keep]

1. EXPLAIN (ANALYZE, BUFFERS) of the worker's own export queries, captured
   with auto_explain (log_analyze, log_buffers, log_nested_statements) for a
   system, a Patient and a Group export;
2. `perf record -e cpu-clock -g` of the worker and this stack's PostgreSQL
   backends during each export (hardware counters are often unavailable in
   VMs; cpu-clock sampling works where `perf stat -e task-clock true` does);
3. the same for the httpd children (and backends) under a wrk status-poll run;
4. with --callgrind: valgrind --tool=callgrind on `bulkfhir-worker --once
   --foreground` for a 100k system export.
Everything goes to tests/bench/results/profile-<timestamp>/.
"""
import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import bench  # noqa: E402

AUTO_EXPLAIN = [
    ("session_preload_libraries", "'auto_explain'"),
    ("auto_explain.log_min_duration", "0"),
    ("auto_explain.log_analyze", "on"),
    ("auto_explain.log_buffers", "on"),
    ("auto_explain.log_timing", "on"),
    ("auto_explain.log_nested_statements", "on"),
    ("auto_explain.log_level", "warning"),     # devstack logs warning and up
]


def pg_children(st):
    with open(os.path.join(st.dir, "pgdata", "postmaster.pid")) as f:
        return bl.children_of(int(f.readline()))


def perf_record(pids, out, fn):
    """Run fn() while perf samples `pids`; return the text report."""
    data = out + ".data"
    p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g",
                          "-o", data, "-p", ",".join(str(x) for x in pids)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        fn()
    finally:
        p.send_signal(2)
        p.wait(timeout=60)
    rep = []
    for sort in ("comm,dso", "comm,dso,sym"):
        r = bl.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                    "--sort", sort, "-g", "none", "--percent-limit", "0.7"], check=False)
        rep.append("### perf report --sort %s\n" % sort +
                   "\n".join(ln for ln in r.stdout.splitlines() if ln and not ln.startswith("#")))
    text = "\n\n".join(rep)
    with open(out + ".txt", "w") as f:
        f.write(text + "\n")
    os.unlink(data)
    return text


def plans_from_log(log, since):
    """auto_explain chunks that touch fhir.resource_version, after offset `since`."""
    with open(log, errors="replace") as f:
        f.seek(since)
        text = f.read()
    chunks = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
    return [c for c in chunks if "plan:" in c and "resource_version" in c]


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench --profile")
    ap.add_argument("--size", default="100k")
    ap.add_argument("--workdir", default="/tmp/bf-bench")
    ap.add_argument("--build-dir", default=os.environ.get(
        "BULKFHIR_BUILD_DIR", os.path.join(bl.REPO, "build")))
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    ts = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(bl.REPO, "tests", "bench", "results", "profile-" + ts)
    os.makedirs(out)
    a.sizes = [a.size]
    st = bl.Stack(os.path.join(a.workdir, "stack-profile"), a.build_dir)
    st.up()
    try:
        st.load(bench.dataset(a, a.size))
        group = st.q1("SELECT id FROM fhir.resource_version WHERE resource_type = 'Group' "
                      "AND superseded_at IS NULL ORDER BY jsonb_array_length(resource->"
                      "'member') DESC NULLS LAST, id LIMIT 1")
        exports = [("system", "$export", None), ("patient", "Patient/$export", None),
                   ("group", "Group/%s/$export" % group, None),
                   ("elements", "$export", {"_elements": "status,code,subject"})]
        # 1. plans
        st.psql("LOAD 'auto_explain'", *["ALTER SYSTEM SET %s = %s" % kv for kv in AUTO_EXPLAIN])
        st.psql("SELECT pg_reload_conf()")
        log = os.path.join(st.dir, "log", "postgresql.log")
        w = st.add_worker()
        for name, path, params in exports:
            off = os.path.getsize(log)
            e = st.export(path, params)
            time.sleep(0.3)
            plans = plans_from_log(log, off)
            with open(os.path.join(out, "explain-%s.txt" % name), "w") as f:
                f.write("# %s export, %.3f s with auto_explain on\n\n" % (name, e["seconds"]))
                f.write("\n\n".join(plans) + "\n")
            st.discard(e["status_url"], e["job"])
            bl.say("explain %s: %d plans" % (name, len(plans)))
        st.psql("LOAD 'auto_explain'", *["ALTER SYSTEM RESET %s" % k for k, _ in AUTO_EXPLAIN])
        st.psql("SELECT pg_reload_conf()")
        st.stop_worker(w)
        # 2. perf on worker + backends
        w = st.add_worker()
        time.sleep(0.5)
        for name, path, params in exports:
            res = {}
            perf_record([w] + pg_children(st), os.path.join(out, "perf-export-%s" % name),
                        lambda: res.update(st.export(path, params)))
            bl.say("perf %s: %.3f s" % (name, res["seconds"]))
            st.discard(res["status_url"], res["job"])
        # 3. perf on httpd children + backends under status polls
        e = st.export("$export")
        perf_record(bl.children_of(st.httpd_pid()) + pg_children(st),
                    os.path.join(out, "perf-poll-200"),
                    lambda: bl.wrk(e["status_url"], a.wrk_seconds))
        st.stop_worker(w)
        k = st.kickoff("$export")
        perf_record(bl.children_of(st.httpd_pid()) + pg_children(st),
                    os.path.join(out, "perf-poll-202"),
                    lambda: bl.wrk(k.headers["Content-Location"], a.wrk_seconds))
        st.cancel_all_jobs()
        # 4. callgrind
        if a.callgrind:
            k = st.kickoff("$export")
            cg = os.path.join(out, "callgrind.worker")
            t0 = time.monotonic()
            bl.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg,
                    st.env["BULKFHIR_WORKER"], "--once", "--foreground", "--database",
                    st.conninfo, "--export-root", st.export_root], env=st.pgenv())
            bl.say("callgrind worker: %.1f s" % (time.monotonic() - t0))
            r = bl.run(["callgrind_annotate", "--inclusive=yes", cg], check=False)
            with open(cg + ".txt", "w") as f:
                f.write(r.stdout)
            r = bl.run(["callgrind_annotate", cg], check=False)
            with open(cg + ".self.txt", "w") as f:
                f.write(r.stdout)
    finally:
        if not a.keep:
            st.down()
            shutil.rmtree(st.dir, ignore_errors=True)
    bl.say("profile in %s" % out)


if __name__ == "__main__":
    main()
