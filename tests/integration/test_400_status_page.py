"""The operator status page (SetHandler bulkfhir-status, docs/status-page.md):
HTML, ?json and ?metrics, checked against SQL over the bulkfhir tables while
an export is live (held open by a transaction in its snapshot) and after it
completed."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

import bfclient
from bfstack import HeldTransaction

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"


# bfstack.Stack.psql shows NULL as \x1e, which str.splitlines() takes for a
# line break: the queries here never return NULL (coalesce).


def status_url(st):
    return st.env.get("BULKFHIR_STATUS_URL") or \
        st.base_url.rsplit("/fhir", 1)[0] + "/bulkfhir-status"


def get_json(st):
    r = requests.get(status_url(st) + "?json", timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers.get("Cache-Control") == "no-store"
    return r.json()


def get_metrics(st):
    r = requests.get(status_url(st) + "?metrics", timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples, types = {}, {}
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#") or not line.strip():
            continue
        m = re.fullmatch(r'([a-z_0-9]+)(\{(?:state|client)="([^"]*)"\})? (\S+)', line)
        assert m, "not a Prometheus sample line: %r" % line
        samples[(m.group(1), m.group(3))] = float(m.group(4))
    for (name, _) in samples:
        assert name in types, "%s has no # TYPE line" % name
    return samples, types


def sql_counts(st, table, states):
    rows = dict(st.psql("SELECT state, count(*) FROM bulkfhir.%s GROUP BY state" % table))
    return {s: int(rows.get(s, 0)) for s in states}


JOB_STATES = ("queued", "running", "completed", "failed", "cancelled")
TASK_STATES = ("queued", "running", "done", "failed", "cancelled")


def sql_totals(st):
    (res, byt, files), = st.psql(
        "SELECT coalesce(sum(count) FILTER (WHERE kind = 'output'), 0),"
        " coalesce(sum(bytes), 0), count(*) FROM bulkfhir.file")
    return int(res), int(byt), int(files)


def _job_id(kick):
    return bfclient.job_of(kick.headers["Content-Location"])


def _wait_claimed(st, job_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (n,), = st.psql("SELECT count(*) FROM bulkfhir.task WHERE job_id = :'p1'"
                        " AND state = 'running'", job_id)
        if int(n) > 0:
            return
        time.sleep(0.1)
    raise AssertionError("no task of job %s was claimed within %ss" % (job_id, timeout))


def test_400_001_json_and_metrics_match_sql_during_a_live_export(stack, client, dataset):
    """During an export held in progress, ?json and ?metrics report the job,
    task and worker figures that SQL over bulkfhir.job/task/worker/file shows;
    once it completes, the job's published resources equal the manifest's
    counts and the loaded data's."""
    held = HeldTransaction(stack)
    try:
        kick = client.kickoff("$export")
        assert kick.status_code == 202, kick.text[:500]
        job_id = _job_id(kick)
        _wait_claimed(stack, job_id)

        doc = get_json(stack)
        samples, types = get_metrics(stack)
        jobs = sql_counts(stack, "job", JOB_STATES)
        tasks = sql_counts(stack, "task", TASK_STATES)
        assert doc["jobs"] == jobs
        assert doc["tasks"] == tasks
        for s in JOB_STATES:
            assert samples[("bulkfhir_jobs", s)] == jobs[s], s
        for s in TASK_STATES:
            assert samples[("bulkfhir_tasks", s)] == tasks[s], s
        assert types["bulkfhir_jobs"] == "gauge"
        assert types["bulkfhir_resources_exported_total"] == "counter"

        (depth, ready), = stack.psql(
            "SELECT count(*), count(*) FILTER (WHERE run_after <= now())"
            " FROM bulkfhir.task WHERE state = 'queued'")
        assert doc["queue"]["depth"] == int(depth)
        assert doc["queue"]["ready"] == int(ready)
        assert samples[("bulkfhir_queue_depth", None)] == int(depth)
        assert samples[("bulkfhir_queue_oldest_seconds", None)] >= 0

        workers = {r[0]: r for r in stack.psql(
            "SELECT id, host, pid FROM bulkfhir.worker")}
        assert {w["id"] for w in doc["workers"]} == set(workers)
        assert samples[("bulkfhir_workers", None)] == len(workers)
        for w in doc["workers"]:
            assert w["host"] == workers[w["id"]][1]
            assert w["pid"] == int(workers[w["id"]][2])
            assert w["heartbeat_age_seconds"] >= 0
        busy = [w for w in doc["workers"] if w["current_task"] is not None]
        assert samples[("bulkfhir_workers_busy", None)] == len(busy)

        active = {j["id"]: j for j in doc["active_jobs"]}
        assert job_id in active, "job %s not among active jobs %s" % (job_id, list(active))
        j = active[job_id]
        (level, client_id, state, ntasks), = stack.psql(
            "SELECT j.level, coalesce(j.client_id, ''), j.state, count(t.*) FROM bulkfhir.job j"
            " JOIN bulkfhir.task t ON t.job_id = j.id WHERE j.id = :'p1'"
            " GROUP BY 1, 2, 3", job_id)
        assert (j["level"], j["client_id"] or "", j["state"]) == (level, client_id, state)
        assert j["tasks_total"] == int(ntasks) and sum(j["tasks"].values()) == int(ntasks)
        assert j["tasks"]["running"] >= 1
        assert 0 <= j["progress"] < 1
    finally:
        held.end()

    exp = bfclient.Export(client, kick, None, None).wait().fetch_all()
    manifest_total = sum(o["count"] for o in exp.manifest["output"])
    assert manifest_total == len(dataset["resources"])
    doc = get_json(stack)
    samples, _ = get_metrics(stack)
    recent = {j["id"]: j for j in doc["recent_jobs"]}
    assert job_id in recent and job_id not in {j["id"] for j in doc["active_jobs"]}
    j = recent[job_id]
    assert j["state"] == "completed" and j["progress"] == 1
    assert j["resources"] == manifest_total
    assert j["files"] == sum(len(exp.manifest.get(k, [])) for k in ("output", "error", "deleted"))
    res, byt, files = sql_totals(stack)
    assert doc["totals"] == {**doc["totals"], "resources_exported": res,
                             "bytes_written": byt, "files": files}
    assert samples[("bulkfhir_resources_exported_total", None)] == res
    assert samples[("bulkfhir_bytes_written_total", None)] == byt
    assert doc["module_version"]


def test_400_002_html_escapes_and_shows_jobs(stack):
    """The HTML page escapes what it shows (a client id and a worker host with
    markup in them come out as text) and lists jobs and workers."""
    evil = '<script>alert("x")</script>&'
    (jid,), = stack.psql(
        "INSERT INTO bulkfhir.job (client_id, level, request_url, transaction_time,"
        " snapshot, state, finished_at) VALUES (:'p1', 'system', 'http://x/$export',"
        " now(), pg_current_snapshot(), 'failed', now()) RETURNING id", evil)
    stack.psql("INSERT INTO bulkfhir.worker (id, host, pid, version) VALUES"
               " ('test-400-evil', :'p1', 1, '<b>v</b>')", evil)
    try:
        r = requests.get(status_url(stack) + "?refresh=7", timeout=30)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        body = r.text
        assert "<script>" not in body and "<b>v</b>" not in body
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in body
        assert "&lt;b&gt;v&lt;/b&gt;" in body
        assert jid in body
        assert '<meta http-equiv="refresh" content="7">' in body
        for heading in ("Queue", "Active jobs", "Workers", "Recent jobs"):
            assert "<h2>%s" % heading in body
    finally:
        stack.psql("DELETE FROM bulkfhir.worker WHERE id = 'test-400-evil'")
        stack.psql("DELETE FROM bulkfhir.job WHERE id = :'p1'", jid)


def test_400_003_only_get(stack):
    """The status page is read-only: POST gets 405 with Allow naming GET."""
    r = requests.post(status_url(stack), data="x", timeout=30)
    assert r.status_code == 405
    assert "GET" in r.headers.get("Allow", "")


def test_400_004_chromium_renders_the_page(stack, tmp_path):
    """Headless Debian Chromium loads the HTML page and takes a screenshot
    (saved as tests/integration/artifacts/status-page.png)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("%s is absent (Debian package chromium; scripts/test installs it)" % CHROMIUM)
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "status-page.png"
    if png.exists():
        png.unlink()
    profile = tempfile.mkdtemp(prefix="bf-chromium-", dir=str(tmp_path))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync",
           "--user-data-dir=" + profile, "--screenshot=" + str(png),
           "--window-size=1280,900", status_url(stack)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    shutil.rmtree(profile, ignore_errors=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert png.exists(), "no screenshot: %s" % p.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10000, "screenshot of %d bytes: a blank page?" % len(data)
    # the request reached the handler (and not, say, a 404 page)
    log = (Path(stack.dir) / "log" / "httpd-access.log").read_text()
    assert re.search(r'"GET /bulkfhir-status HTTP/1\.1" 200 ', log), log[-2000:]


def test_400_005_loglevel_debug_traces_a_request(tmp_path):
    """With `LogLevel bulkfhir:debug` every request leaves one line with its
    method, URI and kick-off parameters, its status, the time taken, the
    client and (kick-off) the job's status URL."""
    import bfstack
    conf = tmp_path / "debug.conf"
    conf.write_text("LogLevel warn bulkfhir:debug\n")
    d = tempfile.mkdtemp(prefix="bf-it-400-", dir="/tmp")
    os.chmod(d, 0o755)
    p = subprocess.run([str(bfstack.DEVSTACK), "up", d, "--workers", "1",
                        "--extra-conf", str(conf)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=180, stdin=subprocess.DEVNULL)
    st = None
    try:
        assert p.returncode == 0, p.stderr[-2000:]
        st = bfstack.Stack(d, dict(ln.split("=", 1) for ln in p.stdout.splitlines() if "=" in ln))
        c = bfclient.Client(st.base_url)
        kick = c.kickoff("$export", params={"_type": "Patient"})
        assert kick.status_code == 202, kick.text[:300]
        job_id = _job_id(kick)
        r, _ = c.poll(kick.headers["Content-Location"], timeout=60)
        assert r.status_code == 200
        log = st.error_log.read_text()
        m = re.search(r"\[bulkfhir:debug\] .*bulkfhir: GET /fhir/\$export\?_type=Patient -> 202 "
                      r"in [0-9.]+ ms, client -, Content-Location (\S+)", log)
        assert m, log[-3000:]
        assert m.group(1).endswith("/bulkstatus/" + job_id)
        assert re.search(r"\[bulkfhir:debug\] .*bulkfhir: GET /fhir/bulkstatus/%s -> 200 in "
                         % job_id, log), log[-3000:]
        # lib/ debug lines pass the bridge too (the module sets the bridge's
        # level from LogLevel: at the devstack's bulkfhir:info they are not
        # even formatted)
        assert re.search(r"\[bulkfhir:debug\] .*: SQL [0-9.]+ ms, PGRES_", log), log[-3000:]
    finally:
        subprocess.run([str(bfstack.DEVSTACK), "down", d], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=120)
        if not os.environ.get("BULKFHIR_KEEP_STACK"):
            shutil.rmtree(d, ignore_errors=True)
