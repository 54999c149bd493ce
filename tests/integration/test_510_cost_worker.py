"""Bounded cost in the worker (DESIGN invariant 7, issue #11 part B): every
export statement runs under the task limits of sql/0070_task_limits.sql (jit
off, statement_timeout, work_mem); a statement over its time limit fails
its job at once as "too costly" with an OperationOutcome that shows no
database internals; a task whose worker dies each time it runs it is given
up after task_max_attempts in total; a worker caps its own memory
(memory_limit) and fails the task cleanly instead of growing; after a task
the worker's database backend is back near its idle size.

Workers are started by the tests (bfworkers.Workers: lease 3 s, heartbeat
1 s, poll 1 s) on a private stack started with workers=0, so a test can give
them its own config and SIGKILL them by pid.  Figures (time, RSS, backend
RssAnon) are printed: run with -s to see them."""
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import bfclient
import bfcost
from bfclient import assert_operation_outcome, check_files
from bfstack import HeldTransaction
from bfworkers import Workers, job_id_of, wait_for
from conftest import generate_and_load

# The worker's own bounds are tested with jobs past the kick-off's default
# cost limits (test_500): an admin may raise those, and the worker must stay
# bounded all the same.
EXTRA_CONF = """
<Location /fhir>
    BulkFhirMaxActiveJobs 200
    BulkFhirKickoffRate 1000/min
    BulkFhirMaxTypeFilters 32
    BulkFhirMaxFilterTerms 100000
    BulkFhirMaxTypeFilterBytes 262144
    BulkFhirMaxElements 30000
</Location>
"""

# what a client must never read in a job's OperationOutcome
INTERNALS = re.compile(r"SQLSTATE|\b57014\b|\bCOPY\b|\bSELECT\b|resource_version|"
                       r"statement_timeout|canceling statement|\btask \d+|/tmp/|bulkfhir\.")


def _setting(st, name, value):
    st.psql("UPDATE bulkfhir.setting SET value = :'p1' WHERE name = :'p2'", value, name)


def _defaults(st):
    _setting(st, "task_statement_timeout_ms", "900000")
    _setting(st, "task_work_mem_kb", "16384")
    _setting(st, "task_backend_memory_mb", "256")
    _setting(st, "task_max_attempts", "3")


@pytest.fixture(scope="module")
def cost_stack(new_stack):
    st = new_stack(workers=0, extra_conf=EXTRA_CONF)
    resources, links, _ = generate_and_load(st, patients=10, seed=51)
    st.psql("ANALYZE fhir.resource_version")
    workers = Workers(st, lease=3, heartbeat=1, poll=1)
    try:
        yield st, resources, links, workers
    finally:
        workers.stop_all()


def _one_worker(workers):
    alive = workers.alive()
    return alive[0] if alive else workers.start()


def _store_ids(st, rtype):
    """Ground truth: the ids of the current, not deleted versions of a type."""
    return {r[0] for r in st.psql(
        "SELECT id FROM fhir.resource_version WHERE resource_type = :'p1'"
        " AND superseded_at IS NULL AND NOT deleted", rtype)}


def _export_matches_store(c, st, rtype, timeout=120):
    exp = bfclient.run_export(c, params={"_type": rtype}, timeout=timeout)
    check_files(exp)
    got = exp.resources("output")
    assert {k[1] for k in got if k[0] == rtype} == _store_ids(st, rtype)
    assert all(k[0] == rtype and len(v) == 1 for k, v in got.items()), sorted(got)[:5]
    return exp


def _failed_outcome(c, kick, timeout=60):
    final, _ = c.poll(kick.headers["Content-Location"], timeout=timeout)
    assert final.status_code >= 400, (final.status_code, final.text[:500])
    assert_operation_outcome(final)
    oo = final.json()
    text = json.dumps(oo)
    assert not INTERNALS.search(text), "internals in the client's outcome: %s" % text
    return final, oo


class LockedStore:
    """An ACCESS EXCLUSIVE lock on fhir.resource_version held by a psql
    session: every statement that reads the store waits for it, so the next
    export statement runs into its statement_timeout (a lock wait counts)."""

    def __init__(self, st):
        self.p = subprocess.Popen(["psql", "-X", "-A", "-t", "-q"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=st.proc_env())
        self.p.stdin.write("BEGIN; LOCK TABLE fhir.resource_version IN ACCESS EXCLUSIVE MODE;"
                           " SELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        assert line == "locked", line

    def end(self):
        if self.p.poll() is None:
            self.p.communicate("ROLLBACK;\n", timeout=30)


def test_510_001_statement_timeout_fails_job_fast(cost_stack, allow_log):
    """A statement past task_statement_timeout_ms (300 ms here; the store is
    locked once the job exists, so the export query waits: a lock wait is
    part of a statement's time) fails its job at once: one attempt,
    no retry, a 400 OperationOutcome (too-costly) that names the type and
    says "too costly" and what to do, with no SQL, SQLSTATE, task id or
    path; the detail is in a tagged worker line; the worker stays alive and
    the next job completes exactly."""
    st, resources, links, workers = cost_stack
    allow_log(r"^BF020(45|46|50): ")
    _defaults(st)
    w = _one_worker(workers)
    c = bfclient.Client(st.base_url)
    _setting(st, "task_statement_timeout_ms", "300")
    lock = None
    try:
        # the kick-off plans over the store: lock it only once the job
        # exists (its task waits for the held xid meanwhile)
        with HeldTransaction(st):
            kick = c.kickoff("$export", params={"_type": "Observation"})
            assert kick.status_code == 202, kick.text[:500]
            jid = job_id_of(kick)
            lock = LockedStore(st)
            t0 = time.monotonic()
        final, oo = _failed_outcome(c, kick, timeout=60)
        took = time.monotonic() - t0
    finally:
        if lock:
            lock.end()
        _defaults(st)
    print("\n510_001: statement_timeout 300 ms: job failed in %.2f s, status %d"
          % (took, final.status_code))
    assert final.status_code == 400, final.text[:500]
    issue = oo["issue"][0]
    assert issue["code"] == "too-costly", issue
    diag = issue["diagnostics"]
    assert "Observation" in diag and "too costly" in diag, diag
    assert "time limit" in diag and "_typeFilter" in diag, diag
    assert took < 20, "the job took %.1f s to fail" % took
    state, attempt, errors = st.psql(
        "SELECT state, attempt, errors::text FROM bulkfhir.task WHERE job_id = :'p1'", jid)[0]
    assert (state, attempt) == ("failed", "1"), (state, attempt, errors)
    assert "statement timeout" in errors, errors     # the detail, for operators
    log = Path(w.log_path).read_text()
    assert re.search(r"BF02050: job %s: task \d+ \(Observation\): too costly" % jid, log)
    assert w.poll() is None, "the worker died"
    _export_matches_store(c, st, "Observation")


def _explain_blocks(text):
    """auto_explain entries ("duration: ... plan:" + indented lines)."""
    blocks, cur = [], None
    for line in text.splitlines():
        if re.search(r"LOG:  duration: [\d.]+ ms  plan:", line):
            cur = [line]
            blocks.append(cur)
        elif cur is not None and line[:1] in ("\t", " "):
            cur.append(line)
        else:
            cur = None
    return ["\n".join(b) for b in blocks]


def test_510_002_limits_in_force_in_worker_backend(cost_stack):
    """The limits are in force for the worker's export statements and only
    for them: auto_explain (loaded by session_preload_libraries for new
    connections, log_settings on) prints the changed planner settings of
    every statement into the PostgreSQL log.  The COPY of a task, and the
    compartment query a Patient-level task runs before it, show jit = 'off'
    and work_mem = task_work_mem_kb; the publish statements of
    the same task (after the reset) do not show that work_mem.
    statement_timeout is not a planner setting (auto_explain does not show
    it); test_510_001 shows it is in force.  Can fail (skip) where
    auto_explain is not installed."""
    st, resources, links, workers = cost_stack
    if not any(Path(d).joinpath("auto_explain.so").exists()
               for d in Path("/usr/lib/postgresql").glob("*/lib")):
        pytest.skip("auto_explain is not installed")
    _defaults(st)
    _setting(st, "task_work_mem_kb", "12345")
    pg_log = Path(st.dir) / "log" / "postgresql.log"
    # (its parameters are known once the library is loaded)
    st.psql("LOAD 'auto_explain';"
            " ALTER SYSTEM SET session_preload_libraries = 'auto_explain';"
            " ALTER SYSTEM SET auto_explain.log_min_duration = 0;"
            " ALTER SYSTEM SET auto_explain.log_settings = on;"
            " SELECT pg_reload_conf()")
    workers.stop_all()          # a new worker: a new connection loads auto_explain
    time.sleep(0.5)
    offset = pg_log.stat().st_size
    try:
        workers.start()
        c = bfclient.Client(st.base_url)
        _export_matches_store(c, st, "Condition")
        # a Patient-level export also runs the compartment queries first
        exp = bfclient.run_export(c, "Patient/$export", params={"_type": "Practitioner"})
        assert {k[1] for k in exp.resources("output")} <= _store_ids(st, "Practitioner")
        time.sleep(0.5)
    finally:
        st.psql("LOAD 'auto_explain';"
                " ALTER SYSTEM RESET session_preload_libraries;"
                " ALTER SYSTEM RESET auto_explain.log_min_duration;"
                " ALTER SYSTEM RESET auto_explain.log_settings;"
                " SELECT pg_reload_conf()")
        _defaults(st)
        workers.stop_all()
    with open(pg_log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    blocks = [b for b in _explain_blocks(text) if "bulkfhir-worker" in b.splitlines()[0]]
    copies = [b for b in blocks if "COPY (SELECT" in b and "'Condition'" in b]
    assert copies, "no auto_explain entry of the worker's COPY:\n%s" % text[-3000:]
    for b in copies:
        settings = [ln for ln in b.splitlines() if "Settings:" in ln]
        assert settings, b[:2000]
        assert "jit = 'off'" in settings[0] and "work_mem = '12345kB'" in settings[0], \
            settings[0]
    outside = [b for b in blocks if "SELECT EXISTS (SELECT 1 FROM fhir.resource_version r" in b]
    assert outside, "no auto_explain entry of the compartment query"
    for b in outside:
        assert "jit = 'off'" in b and "work_mem = '12345kB'" in b, b[:2000]
    publish = [b for b in blocks if "UPDATE bulkfhir.task SET state = 'done'" in b]
    assert publish, "no auto_explain entry of the task's publish"
    print("\n510_002: %d COPY plan(s), e.g. %s; publish: %s" % (
        len(copies), [ln.strip() for ln in copies[0].splitlines() if "Settings:" in ln],
        [ln.strip() for ln in publish[0].splitlines() if "Settings:" in ln] or "no Settings"))
    assert not any("work_mem = '12345kB'" in b for b in publish), publish[0][:2000]


def test_510_003_poison_task_given_up(cost_stack, allow_log):
    """A task whose worker dies (SIGKILL) every time it runs it is retried
    at most task_max_attempts (3) times in total across workers, then its
    job fails with an OperationOutcome that says so (no task or worker id);
    another client's job, kicked off before, completes exactly."""
    st, resources, links, workers = cost_stack
    allow_log(r"^BF020(34|35|40|43|44|45|46): ")
    _defaults(st)
    workers.stop_all()
    workers.start()
    workers.start()
    time.sleep(1.0)
    other = bfclient.Client(st.base_url)
    kick_b = other.kickoff("$export", params={"_type": "Condition,Encounter"})
    assert kick_b.status_code == 202, kick_b.text[:500]
    c = bfclient.Client(st.base_url)
    kills = []
    with HeldTransaction(st):   # the poison job's task waits (running) until killed
        t_kick = time.monotonic()
        kick = c.kickoff("$export", params={"_type": "Patient"})
        assert kick.status_code == 202, kick.text[:500]
        jid = job_id_of(kick)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(kills) < 5:
            row = st.psql("SELECT t.state, t.attempt, w.pid FROM bulkfhir.task t"
                          " LEFT JOIN bulkfhir.worker w ON w.id = t.locked_by"
                          " WHERE t.job_id = :'p1'", jid)[0]
            state, attempt, pid = row
            if state in ("failed", "cancelled"):
                break
            if state == "running" and pid and int(attempt) > len(kills):
                victim = [p for p in workers.alive() if p.pid == int(pid)]
                assert victim, "task held by pid %s, not one of our workers" % pid
                workers.kill(victim[0], signal.SIGKILL)
                kills.append(int(attempt))
                workers.start()
            time.sleep(0.1)
    final, oo = _failed_outcome(c, kick, timeout=60)
    print("\n510_003: poison task: %d SIGKILLs, job failed %.1f s after the kick-off"
          " (lease 3 s)" % (len(kills), time.monotonic() - t_kick))
    assert kills == [1, 2, 3], kills
    state, attempt, nerr = st.psql(
        "SELECT state, attempt, jsonb_array_length(errors) FROM bulkfhir.task"
        " WHERE job_id = :'p1'", jid)[0]
    assert (state, attempt, nerr) == ("failed", "3", "3"), (state, attempt, nerr)
    diag = oo["issue"][0]["diagnostics"]
    assert "Patient" in diag and "3 attempts" in diag and "stopped" in diag, diag
    assert st.psql("SELECT state FROM bulkfhir.job WHERE id = :'p1'", jid)[0][0] == "failed"
    # the other client's job: exactly the store's Condition and Encounter
    exp = bfclient.Export(other, kick_b, None, None).wait(timeout=120).fetch_all()
    check_files(exp)
    got = exp.resources("output")
    for t in ("Condition", "Encounter"):
        assert {k[1] for k in got if k[0] == t} == _store_ids(st, t), t
    assert all(len(v) == 1 for v in got.values())
    assert len(workers.alive()) == 2


def test_510_004_memory_limit_fails_task_cleanly(cost_stack, allow_log):
    """A worker with memory_limit = 64 MiB on a task that needs more (one
    Binary of 48 MiB: libpq's buffer and the row copy) fails the task
    cleanly as too costly (400, no crash, a tagged BF02050 line naming the
    memory), stays alive, reconnects, and completes the next job exactly
    with its RSS back under the limit."""
    st, resources, links, workers = cost_stack
    allow_log(r"^BF020(46|50): ")
    _defaults(st)
    workers.stop_all()
    cfg = Path(st.dir) / "test-worker-memcap.conf"
    cfg.write_text(workers.cfg.read_text() + "memory_limit = 64\n")
    saved, workers.cfg = workers.cfg, cfg
    try:
        w = workers.start()
    finally:
        workers.cfg = saved
    st.psql("INSERT INTO fhir.resource_version (resource_type, id, version_id, last_updated,"
            " resource) SELECT 'Binary', 'big510', 1, now() - interval '1 minute',"
            " jsonb_build_object('resourceType', 'Binary', 'id', 'big510',"
            " 'contentType', 'text/plain', 'data', repeat('QUJD', 12 * 1024 * 1024))")
    c = bfclient.Client(st.base_url)
    try:
        time.sleep(1.0)
        idle = bfcost.proc_kib(w.pid) or 0
        kick = c.kickoff("$export", params={"_type": "Binary"})
        assert kick.status_code == 202, kick.text[:500]
        final, oo = _failed_outcome(c, kick, timeout=60)
    finally:
        st.psql("DELETE FROM fhir.resource_version WHERE resource_type = 'Binary'"
                " AND id = 'big510'")
    assert final.status_code == 400, final.text[:500]
    diag = oo["issue"][0]["diagnostics"]
    assert oo["issue"][0]["code"] == "too-costly" and "Binary" in diag and "memory" in diag, diag
    assert w.poll() is None, "the worker died"
    log = Path(w.log_path).read_text()
    assert re.search(r"BF02050: job %s: task \d+ \(Binary\): too costly.*memory_limit 64 MiB"
                     % job_id_of(kick), log), log[-2000:]
    _export_matches_store(c, st, "Observation")
    after = bfcost.proc_kib(w.pid) or 0
    print("\n510_004: memory_limit 64 MiB: idle RSS %d KiB, after the failed 48 MiB row"
          " and one more job %d KiB" % (idle, after))
    assert after < 64 * 1024, after
    workers.stop_all()


def test_510_005_worker_and_backend_memory_bounded(cost_stack):
    """A large _typeFilter export (POST; 16 filters of 60 codes and three
    more clauses each, on Observation): the worker's RSS stays under 64 MiB and its backends'
    RssAnon under 512 MiB throughout (bfcost.Peak); with
    task_backend_memory_mb = 1 the worker reconnects after the task (a new
    backend) and the backend's RssAnon is back near its idle size."""
    st, resources, links, workers = cost_stack
    _defaults(st)
    workers.stop_all()
    w = workers.start()
    c = bfclient.Client(st.base_url)
    _export_matches_store(c, st, "Patient")        # warm: connection, caches
    time.sleep(1.5)
    pids = bfcost.worker_backend_pids(st)
    idle = max(bfcost.backend_kib(p) or 0 for p in pids)
    real = sorted(r[0] for r in st.psql(
        "SELECT DISTINCT (c->>'system') || '|' || (c->>'code') FROM fhir.resource_version,"
        " jsonb_array_elements(resource->'code'->'coding') c"
        " WHERE resource_type = 'Observation' LIMIT 16"))
    # as large as the kick-off takes (bf_typefilter: 4096 characters, 64
    # values per parameter): 16 filters of 60 codes and 3 more clauses each
    filters = []
    for k in range(16):
        codes = real[k:k + 1] + ["http://loinc.org|%d-%d" % (10000 + 100 * k + i, i % 10)
                                 for i in range(59)]
        filters.append("Observation?code=%s&status=final,amended,preliminary"
                       "&date=ge1900-01-01&subject:missing=false" % ",".join(codes))
    codes = [c for f in filters for c in f.split("code=")[1].split("&")[0].split(",")]
    _setting(st, "task_backend_memory_mb", "1")
    try:
        with bfcost.Peak(st, workers=[w.pid]) as pk:
            (exp, secs) = bfcost.timed(bfclient.run_export, c, post=[
                ("_type", "valueString", "Observation")]
                + [("_typeFilter", "valueString", f) for f in filters], timeout=300)
        check_files(exp)
        time.sleep(1.5)
        after_pids = bfcost.worker_backend_pids(st)
        after = max(bfcost.backend_kib(p) or 0 for p in after_pids)
    finally:
        _defaults(st)
    n = sum(len(v) for v in exp.resources("output").values())
    print("\n510_005: %d _typeFilter of %d codes (%d bytes), %d resources in %.2f s:"
          " worker peak RSS %d KiB, backend peak RssAnon %d KiB; backend idle %d KiB,"
          " after the task %d KiB (%d samples)"
          % (len(filters), len(codes), sum(map(len, filters)), n, secs, pk.worker_kib,
             pk.backend_kib,
             idle, after, pk.samples))
    assert n > 0, "the filter matched nothing: %s" % sorted(real)[:3]
    assert pk.samples > 0 and pk.alive == [w.pid]
    assert pk.worker_kib < 64 * 1024, pk.worker_kib
    assert pk.backend_kib < 512 * 1024, pk.backend_kib
    assert set(after_pids) != set(pids), "no reconnect after the task (bound 1 MiB)"
    assert after < idle + 8 * 1024, (idle, after)
    log = Path(w.log_path).read_text()
    assert re.search(r"database backend \d+ holds \d+ MiB .*reconnecting", log)
    workers.stop_all()


def test_510_006_many_elements_linear(cost_stack):
    """A job with 25,000 _elements (POST) on Patient: the worker builds the
    export statement linearly (keep lists in chunks, one join) and stays
    under 64 MiB RSS throughout (bfcost.Peak); the job completes with
    exactly the store's Patients, each cut down to the elements asked for
    (gender) and the mandatory ones."""
    st, resources, links, workers = cost_stack
    _defaults(st)
    workers.stop_all()
    w = workers.start()
    c = bfclient.Client(st.base_url)
    names = ["gender"] + ["x%05d" % i for i in range(24999)]
    with bfcost.Peak(st, workers=[w.pid]) as pk:
        (exp, secs) = bfcost.timed(bfclient.run_export, c, post=[
            ("_type", "valueString", "Patient"),
            ("_elements", "valueString", ",".join(names))], timeout=300)
    check_files(exp)
    got = exp.resources("output")
    print("\n510_006: 25000 _elements on Patient: %d resources in %.2f s, worker peak"
          " RSS %d KiB, backend peak RssAnon %d KiB (%d samples)"
          % (len(got), secs, pk.worker_kib, pk.backend_kib, pk.samples))
    assert {k[1] for k in got} == _store_ids(st, "Patient")
    for (t, i), [res] in got.items():
        assert set(res) <= {"resourceType", "id", "meta", "gender"}, sorted(res)
    assert pk.alive == [w.pid]
    assert pk.worker_kib < 64 * 1024, pk.worker_kib
    workers.stop_all()


def test_510_007_timeout_in_compartment_query(cost_stack, allow_log):
    """The same at Patient level, where the first statement to hit the limit
    is one the worker runs to build the export (the rows-outside-compartments
    query of Practitioner), not the COPY: the job fails at once as too
    costly, the outcome shows no internals, the detail (SQLSTATE 57014) is
    only in the worker log."""
    st, resources, links, workers = cost_stack
    allow_log(r"^BF00001: export: rows outside compartments: SQLSTATE 57014")
    allow_log(r"^BF020(46|50): ")
    _defaults(st)
    w = _one_worker(workers)
    c = bfclient.Client(st.base_url)
    _setting(st, "task_statement_timeout_ms", "300")
    lock = None
    try:
        with HeldTransaction(st):
            kick = c.kickoff("Patient/$export", params={"_type": "Practitioner"})
            assert kick.status_code == 202, kick.text[:500]
            jid = job_id_of(kick)
            lock = LockedStore(st)
        final, oo = _failed_outcome(c, kick, timeout=60)
    finally:
        if lock:
            lock.end()
        _defaults(st)
    assert final.status_code == 400, final.text[:500]
    assert oo["issue"][0]["code"] == "too-costly", oo
    assert "Practitioner" in oo["issue"][0]["diagnostics"], oo
    assert st.psql("SELECT state, attempt FROM bulkfhir.task WHERE job_id = :'p1'",
                   jid)[0] == ["failed", "1"]
    log = Path(w.log_path).read_text()
    assert re.search(r"BF02050: job %s: task \d+ \(Practitioner\): too costly.*57014" % jid,
                     log), log[-2000:]
    assert w.poll() is None
