"""Workers that a test starts itself (short leases, a chosen export root or
worker id), on a devstack stack started with workers=0; plus PostgreSQL
stopped the hard way.  Every process is stopped by its own pid.

Worker logs go to DIR/log/worker-t<N>.log, so the error-log guard reads them
like the devstack workers' logs."""
import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

import bfclient


class Workers:
    def __init__(self, st, lease=3, heartbeat=1, poll=1, log_level="info"):
        self.st = st
        self.procs = []
        self.cfg = Path(st.dir) / ("test-worker-%d.conf" % id(self))
        self.cfg.write_text("lease_seconds = %d\nheartbeat_seconds = %d\npoll_seconds = %d\n"
                            "log_level = %s\n" % (lease, heartbeat, poll, log_level))

    def start(self, export_root=None, worker_id=None):
        n = len(list((Path(self.st.dir) / "log").glob("worker-t*.log"))) + 1
        log = open(Path(self.st.dir) / "log" / ("worker-t%d.log" % n), "ab")
        cmd = [self.st.env["BULKFHIR_WORKER"], "--foreground", "--config", str(self.cfg),
               "--database", self.st.database,
               "--export-root", str(export_root or self.st.export_root)]
        if worker_id:
            cmd += ["--id", worker_id]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             env=self.st.proc_env())
        log.close()
        p.log_path = log.name
        self.procs.append(p)
        return p

    def alive(self):
        return [p for p in self.procs if p.poll() is None]

    def kill(self, p, sig=signal.SIGKILL):
        if p.poll() is None:
            os.kill(p.pid, sig)
        if sig == signal.SIGKILL:
            p.wait(timeout=10)

    def stop_all(self, timeout=15):
        for p in self.alive():
            os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def pg_bin():
    for d in ["/usr/lib/postgresql/15/bin"] + sorted(
            str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")):
        if os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    raise RuntimeError("no pg_ctl")


def pg_stop_immediate(st):
    """pg_ctl stop -m immediate: the server dies as in a crash (recovery at
    the next start)."""
    cmd = [os.path.join(pg_bin(), "pg_ctl"), "-D", str(Path(st.dir) / "pgdata"),
           "-m", "immediate", "-w", "stop"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                   timeout=60)


def job_id_of(kick):
    return bfclient.job_of(kick.headers["Content-Location"])


def wait_for(what, cond, timeout=20, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(step)


def read_part(path):
    """The NDJSON of a published part: path + ".gz" inflated when the worker
    stored it compressed (issue #15), else path."""
    gz = Path(str(path) + ".gz")
    if gz.exists():
        return gzip.decompress(gz.read_bytes())
    return Path(path).read_bytes()


def published_files_on_disk(st, job_id):
    """(names of the job's file rows, names in its directory, problems):
    each row's file must hold exactly `count` complete lines."""
    rows = st.psql("SELECT name, count FROM bulkfhir.file WHERE job_id = :'p1'", job_id)
    d = Path(st.export_root) / job_id
    # a part stored gzip-compressed (issue #15) counts under its row's name
    on_disk = {n[:-3] if n.endswith(".gz") else n
               for n in (os.listdir(d) if d.is_dir() else ())}
    problems = []
    for name, count in rows:
        try:
            data = read_part(d / name)
        except OSError as e:
            problems.append("%s: %s" % (name, e))
            continue
        if data and not data.endswith(b"\n"):
            problems.append("%s: last line incomplete" % name)
        if data.count(b"\n") != int(count):
            problems.append("%s: %d lines, row says %s" % (name, data.count(b"\n"), count))
    return {r[0] for r in rows}, on_disk, problems
