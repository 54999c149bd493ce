#!/usr/bin/python3
"""Audit trail cost (issue #13): download and poll throughput with
`BulkFhirAudit On` against `Off`, on one throwaway devstack.

    /usr/bin/python3 tests/bench/audit.py [--seconds S] [--rounds N] [--patients P]

The same httpd serves both sides: an included file says On or Off and a
graceful restart (SIGUSR1) switches; rounds alternate which side goes
first, so load changes hit both.  Measured with wrk (2 threads, 16
connections): GET of a completed job's status (200 + manifest, answered
from BulkFhirStatusCache; a `status.read` record each) and GET of the
smallest export file (a `download` record each; small files make the
per-request cost of recording most visible).  Prints medians and the
On/Off ratios as JSON; a ratio >= 0.95 is "within 5%".  Throughput on a
busy shared machine is noisy, so it also prints the stack's CPU time per
request (httpd children and PostgreSQL, from /proc), which is not."""
import argparse
import json
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


class AuditStack(bl.Stack):
    def write_extra_conf(self):
        conf = super().write_extra_conf()
        self.audit_conf = os.path.join(self.dir, "bench-audit.conf")
        self.set_audit(True, graceful=False)
        with open(conf, "a") as f:
            f.write("Include %s\n" % self.audit_conf)
        return conf

    def set_audit(self, on, graceful=True):
        with open(self.audit_conf, "w") as f:
            f.write("BulkFhirAudit %s\n" % ("On" if on else "Off"))
        if graceful:
            old = set(bl.children_of(self.httpd_pid()))
            os.kill(self.httpd_pid(), signal.SIGUSR1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the new generation serves
                kids = set(bl.children_of(self.httpd_pid()))
                if kids and not kids & old:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            assert self.http.get(self.base + "/metadata", timeout=30).status_code == 200


def cpu_seconds(pids):
    """utime + stime of these processes (and their reaped children: no)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += (int(rest[11]) + int(rest[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    return total


def stack_pids(st):
    """httpd children and the PostgreSQL processes of this stack."""
    pids = bl.children_of(st.httpd_pid())
    try:
        with open(os.path.join(st.dir, "pgdata", "postmaster.pid")) as f:
            pm = int(f.readline())
        pids += [pm] + bl.children_of(pm)
    except (OSError, ValueError):
        pass
    return pids


def measured(st, url, seconds, headers=None):
    """wrk requests/s, and the stack's CPU microseconds per request (less
    sensitive than throughput to what else runs on the machine)."""
    pids = stack_pids(st)
    c0 = cpu_seconds(pids)
    r = bl.wrk(url, seconds, headers=headers)
    c1 = cpu_seconds(pids)
    return r["rps"], (c1 - c0) * 1e6 / r["requests"] if r["requests"] else None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="wrk seconds per run (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="On/Off pairs (default 3)")
    ap.add_argument("--patients", type=int, default=50)
    ap.add_argument("--aa", action="store_true",
                    help="control run: both sides Off (an A/A test shows the noise and bias)")
    ap.add_argument("--workdir", default="/tmp/bf-bench-audit")
    ap.add_argument("--build-dir", default=os.environ.get(
        "BULKFHIR_BUILD_DIR", os.path.join(bl.REPO, "build")))
    args = ap.parse_args()
    st = AuditStack(os.path.join(args.workdir, "stack"), args.build_dir)
    st.up()
    try:
        gen = os.path.join(args.workdir, "gen")
        shutil.rmtree(gen, ignore_errors=True)
        bl.run([st.ctl, "generate", "--patients", str(args.patients), "--out", gen])
        st.load(gen)
        st.add_worker()
        e = st.export("$export")
        files = sorted(e["manifest"]["output"], key=lambda o: o.get("count") or 0)
        small = files[0]["url"]
        keys = ("poll_200", "download_small")
        res = {side: {k: [] for k in keys} for side in ("on", "off")}
        cpu = {side: {k: [] for k in keys} for side in ("on", "off")}
        for i in range(args.rounds):
            for on in ((True, False) if i % 2 == 0 else (False, True)):
                st.set_audit(on and not args.aa)
                side = "on" if on else "off"
                for k, url, h in (("poll_200", e["status_url"], None),
                                  ("download_small", small, {"Accept-Encoding": "identity"})):
                    rps, us = measured(st, url, args.seconds, h)
                    res[side][k].append(rps)
                    cpu[side][k].append(us)
        out = {"file": small.rsplit("/", 1)[1], "seconds": args.seconds, "rounds": args.rounds,
               "audit_records": int(st.q1("SELECT count(*) FROM bulkfhir.audit")),
               "runs_rps": res, "runs_cpu_us_per_request": cpu}
        for k in keys:
            on, off = bl.median(res["on"][k]), bl.median(res["off"][k])
            con, coff = bl.median(cpu["on"][k]), bl.median(cpu["off"][k])
            out[k] = {"on_rps": on, "off_rps": off, "ratio": on / off if off else None,
                      "on_cpu_us_per_req": con, "off_cpu_us_per_req": coff,
                      "cpu_ratio": con / coff if coff else None}
        print(json.dumps(out, indent=1))
    finally:
        st.down()
        shutil.rmtree(st.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
