"""Worker lifecycle and job end of life (issue #5): SIGTERM releases a task
within a bounded time, SIGHUP reloads the config, a worker re-LISTENs after
a database restart, DELETE stops running tasks within seconds and the
sweeper removes the files, expired jobs are removed (files under flock,
rows), bulkfhirctl workers/jobs, and `apachectl graceful` during a storm of
kick-offs loses no accepted job.  Own stack, workers started by the tests."""
import fcntl
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

import bfclient
from bfclient import assert_operation_outcome, check_exact, check_files
from bfstack import HeldTransaction
from bfworkers import Workers, job_id_of, wait_for
from conftest import generate_and_load

EXTRA_CONF = """
<Location /fhir>
    BulkFhirMaxActiveJobs 200
    BulkFhirKickoffRate 1000/min
</Location>
"""
LIFECYCLE_LOG = r"^BF0(0\d{3}|1\d{3}|20(20|21|35|40|42|43|44|45)|250[0-2]): "


@pytest.fixture(scope="module")
def life_stack(new_stack):
    st = new_stack(workers=0, extra_conf=EXTRA_CONF)
    resources, links, _ = generate_and_load(st, patients=3, seed=23)
    st.psql("ANALYZE fhir.resource_version")
    yield st, resources, links
    for w in _ALL:
        w.stop_all()


_ALL = []


def _workers(st, **kw):
    """Fresh workers for one test: those of earlier tests are stopped first
    (a failed test leaves its own running)."""
    for old in _ALL:
        old.stop_all()
    w = Workers(st, **kw)
    _ALL.append(w)
    return w


def _log_has(p, regex, timeout=10):
    rx = re.compile(regex)
    return wait_for("worker log line /%s/" % regex,
                    lambda: any(rx.search(ln) for ln in
                                Path(p.log_path).read_text(errors="replace").splitlines()),
                    timeout=timeout)


def _kick_and_claim(st, c, params=None):
    """Kick off a system export and wait until a worker holds one of its
    tasks (inside a HeldTransaction: the task then waits on the snapshot)."""
    kick = c.kickoff("$export", params=params)
    jid = job_id_of(kick)
    wait_for("task claimed", lambda: st.psql(
        "SELECT 1 FROM bulkfhir.task WHERE job_id = :'p1' AND state = 'running'", jid))
    return kick, jid


def test_210_001_sigterm_releases_within_bounded_time(life_stack, allow_log):
    """SIGTERM: a worker holding a task (waiting on the job snapshot) exits
    within 5 s, gives the task back (queued, attempt not counted, no lease
    left) and unregisters; another worker then finishes the export."""
    st, resources, links = life_stack
    allow_log(LIFECYCLE_LOG)
    ws = _workers(st, lease=30, heartbeat=1, poll=1)
    p = ws.start()
    c = bfclient.Client(st.base_url)
    with HeldTransaction(st):
        kick, jid = _kick_and_claim(st, c, {"_type": "Patient"})
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
        took = time.monotonic() - t0
        assert took < 5.0, "SIGTERM took %.1f s" % took
        assert p.returncode == 0
        row = st.psql("SELECT state, attempt, lease_until FROM bulkfhir.task"
                      " WHERE job_id = :'p1'", jid)[0]
        assert row[:2] == ["queued", "0"] and not row[2], row
        assert st.psql("SELECT count(*) FROM bulkfhir.worker WHERE pid = :'p1'",
                       str(p.pid)) == [["0"]]
    ws.start()
    exp = bfclient.Export(c, kick, None, None).wait(timeout=60).fetch_all()
    check_files(exp)
    check_exact(exp, {k: v for k, v in resources.items() if k[0] == "Patient"}, links)


def test_210_002_sighup_reloads_config(life_stack, allow_log, tmp_path):
    """SIGHUP re-reads the config file: the worker logs the new settings and
    keeps working (an export completes afterwards)."""
    st, resources, links = life_stack
    allow_log(LIFECYCLE_LOG)
    ws = _workers(st, lease=30, heartbeat=1, poll=1)
    p = ws.start()
    _log_has(p, r"config .*lease_seconds 30")
    ws.cfg.write_text("lease_seconds = 17\nheartbeat_seconds = 2\npoll_seconds = 1\n")
    os.kill(p.pid, signal.SIGHUP)
    _log_has(p, r"config .*lease_seconds 17, heartbeat_seconds 2")
    c = bfclient.Client(st.base_url)
    kick = c.kickoff("$export", params={"_type": "Patient"})
    jid = job_id_of(kick)
    exp = bfclient.Export(c, kick, None, None).wait(timeout=60).fetch_all()
    check_exact(exp, {k: v for k, v in resources.items() if k[0] == "Patient"}, links)
    ws.stop_all()


def test_210_003_reconnect_and_relisten(life_stack, allow_log):
    """After PostgreSQL restarts, a worker reconnects (jittered backoff) and
    LISTENs again: with poll_seconds 60 only a NOTIFY can wake it, and a new
    kick-off still completes within 10 s."""
    st, resources, links = life_stack
    allow_log(r"^BF\d{5}: ")
    ws = _workers(st, lease=30, heartbeat=1, poll=60)
    p = ws.start()
    _log_has(p, r"config ")
    time.sleep(0.5)
    st.devstack("pg", "stop")
    time.sleep(1.5)
    st.devstack("pg", "start")
    _log_has(p, r"database connection restored", timeout=20)
    c = bfclient.Client(st.base_url)
    wait_for("kick-off accepted", lambda: c.kickoff(
        "$export", params={"_type": "Patient"}), timeout=20)  # module pools recover
    kick = c.kickoff("$export", params={"_type": "Patient"})
    assert kick.status_code == 202, kick.text[:500]
    t0 = time.monotonic()
    exp = bfclient.Export(c, kick, None, None).wait(timeout=30)
    assert time.monotonic() - t0 < 10, "export was not picked up by NOTIFY"
    assert p.poll() is None
    ws.stop_all()


def test_210_004_cancel_stops_tasks_and_removes_files(life_stack, allow_log):
    """DELETE of a running job: the worker holding its task stops within a
    few heartbeats (a notice that the job ended; no warning, a client's
    cancel is not a fault), the task stays cancelled, the
    sweeper removes the job directory and file rows; `bulkfhirctl jobs
    cancel` does the same for another job."""
    st, resources, links = life_stack
    ws = _workers(st, lease=10, heartbeat=1, poll=1)
    p = ws.start()
    c = bfclient.Client(st.base_url)
    # a completed job first: it has files to remove
    done = bfclient.run_export(c, params={"_type": "Patient"})
    done_id = job_id_of(done.kick)
    assert (Path(st.export_root) / done_id).is_dir()
    with HeldTransaction(st):
        kick, jid = _kick_and_claim(st, c)
        t0 = time.monotonic()
        assert c.delete(kick.headers["Content-Location"]).status_code == 202
        _log_has(p, r"\[notice\] .*job %s: task \d+ \(\w+\): the job ended" % jid,
                 timeout=5)
        assert time.monotonic() - t0 < 5
    out = st.ctl("jobs", "cancel", done_id).stdout
    assert "cancelled" in out, out
    assert st.ctl("jobs", "cancel", done_id, check=False).returncode == 1
    for j in (jid, done_id):
        wait_for("job %s directory removed" % j,
                 lambda: not (Path(st.export_root) / j).exists(), timeout=10)
        assert st.psql("SELECT count(*) FROM bulkfhir.file WHERE job_id = :'p1'", j) == [["0"]]
        assert_operation_outcome(c.get(client_url(c, j)), statuses=(404,))
    jobs = st.ctl("jobs", "--state", "cancelled").stdout
    assert jid in jobs and done_id in jobs, jobs
    ws.stop_all()


def client_url(c, job_id):
    return c.url("bulkstatus/%s" % job_id)


def test_210_008_lease_taken_over_is_a_warning(life_stack, allow_log):
    """A task taken from its worker while the job still runs (what the
    sweeper does after a lease expires: new owner, higher fencing token) is
    a fault worth a warning: the worker says BF02021, stops, publishes
    nothing, and the job's files come from the new owner only."""
    st, resources, links = life_stack
    allow_log(r"^BF02021: job [0-9a-f-]+: task \d+ \(\w+\): lease lost \(expired and taken over\)")
    ws = _workers(st, lease=10, heartbeat=1, poll=1)
    p = ws.start()
    c = bfclient.Client(st.base_url)
    with HeldTransaction(st):
        kick, jid = _kick_and_claim(st, c, {"_type": "Patient"})
        st.psql("UPDATE bulkfhir.task SET locked_by = 'another-worker',"
                " fencing = fencing + 1 WHERE job_id = :'p1'", jid)
        _log_has(p, r"\[warn\] .*BF02021: job %s: task \d+ \(Patient\): lease lost" % jid,
                 timeout=5)
    time.sleep(1)
    assert st.psql("SELECT count(*) FROM bulkfhir.file WHERE job_id = :'p1'", jid) == [["0"]]
    assert st.psql("SELECT state, locked_by FROM bulkfhir.task WHERE job_id = :'p1'",
                   jid) == [["running", "another-worker"]]
    assert c.delete(kick.headers["Content-Location"]).status_code == 202
    ws.stop_all()


def test_210_005_expired_jobs_removed_flock_respected(life_stack, allow_log):
    """Expiry: once expires_at has passed the sweeper removes the job's
    files and rows (status then 404 or 410); a file held with LOCK_SH (as
    the module holds it while serving, R8) is skipped and removed on a later
    sweep, after the lock is released."""
    st, resources, links = life_stack
    allow_log(LIFECYCLE_LOG)
    ws = _workers(st, lease=10, heartbeat=1, poll=1)
    ws.start()
    c = bfclient.Client(st.base_url)
    exp = bfclient.run_export(c, params={"_type": "Patient,Condition"})
    jid = job_id_of(exp.kick)
    d = Path(st.export_root) / jid
    names = sorted(os.listdir(d))
    assert len(names) >= 2
    fd = os.open(d / names[0], os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        st.psql("UPDATE bulkfhir.job SET expires_at = now() - interval '1 second'"
                " WHERE id = :'p1'", jid)
        wait_for("unlocked files removed", lambda: not (d / names[1]).exists(), timeout=10)
        time.sleep(2.5)   # more sweeps: the locked file stays, so does the job row
        assert (d / names[0]).exists(), "a file being served was removed"
        assert st.psql("SELECT count(*) FROM bulkfhir.job WHERE id = :'p1'", jid) == [["1"]]
    finally:
        os.close(fd)
    wait_for("expired job removed", lambda: not d.exists() and st.psql(
        "SELECT count(*) FROM bulkfhir.job WHERE id = :'p1'", jid) == [["0"]], timeout=10)
    assert st.psql("SELECT count(*) FROM bulkfhir.task WHERE job_id = :'p1'", jid) == [["0"]]
    r = c.get(exp.status_url)
    assert_operation_outcome(r, statuses=(404, 410))
    ws.stop_all()


def test_210_006_ctl_workers_and_jobs(life_stack, allow_log):
    """bulkfhirctl workers lists every registered worker with host, pid,
    version, start, heartbeat age and current task; bulkfhirctl jobs lists
    jobs with client, level, state, progress, created, finished and filters
    by state; unknown states are a usage error."""
    st, resources, links = life_stack
    allow_log(LIFECYCLE_LOG)
    ws = _workers(st, lease=10, heartbeat=1, poll=1)
    p = ws.start(worker_id="ctl-test:1")
    c = bfclient.Client(st.base_url)
    with HeldTransaction(st):
        kick, jid = _kick_and_claim(st, c, {"_type": "Patient"})
        time.sleep(1.5)   # a heartbeat records the current task
        out = st.ctl("workers").stdout
        line = [ln for ln in out.splitlines() if ln.startswith("ctl-test:1")]
        assert line, out
        assert str(p.pid) in line[0] and "Patient" in line[0] and jid in line[0], line
        assert re.search(r"\b\d+ s\b", line[0]), line
        out = st.ctl("jobs", "--state", "running").stdout
        assert jid in out and "0/1 tasks" in out, out
    bfclient.Export(c, kick, None, None).wait(timeout=60)
    out = st.ctl("jobs", "--state", "completed").stdout
    row = [ln for ln in out.splitlines() if ln.startswith(jid)]
    assert row and "system" in row[0] and "1/1 tasks" in row[0], out
    assert st.ctl("jobs", "--state", "bogus", check=False).returncode == 2
    ws.stop_all()


def test_210_007_graceful_restart_loses_no_job(life_stack, allow_log):
    """`apachectl graceful` (SIGUSR1 to the httpd parent) during a storm of
    kick-offs: every kick-off answered 202 names a job that exists and
    completes; kick-offs that were refused got a proper error (no lost
    202)."""
    st, resources, links = life_stack
    allow_log(LIFECYCLE_LOG)
    ws = _workers(st, lease=10, heartbeat=1, poll=1)
    for _ in range(2):
        ws.start()
    c = bfclient.Client(st.base_url)
    accepted, other = [], []
    stop = threading.Event()

    def storm():
        cc = bfclient.Client(st.base_url)
        while not stop.is_set() and len(accepted) + len(other) < 200:
            try:
                r = cc.kickoff("$export", params={"_type": "Patient"}, timeout=30)
            except Exception as e:  # connection closed by the restart
                other.append(repr(e))
                continue
            (accepted if r.status_code == 202 else other).append(r)
    threads = [threading.Thread(target=storm) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    pid = st.httpd_pid()
    os.kill(pid, signal.SIGUSR1)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert st.httpd_pid() == pid
    assert len(accepted) >= 10, (len(accepted), other[:5])
    for r in other:
        if not isinstance(r, str):
            assert r.status_code in (429, 503), (r.status_code, r.text[:300])
    want = {k: v for k, v in resources.items() if k[0] == "Patient"}
    for k in accepted:
        jid = job_id_of(k)
        assert st.psql("SELECT count(*) FROM bulkfhir.job WHERE id = :'p1'", jid) == [["1"]]
    for k in accepted:
        exp = bfclient.Export(c, k, None, None).wait(timeout=120)
        assert exp.manifest["output"], exp.manifest
    # spot-check the content of a few
    for k in accepted[:: max(len(accepted) // 3, 1)]:
        exp = bfclient.Export(c, k, None, None).wait(timeout=60).fetch_all()
        check_exact(exp, want, links)
    ws.stop_all()
