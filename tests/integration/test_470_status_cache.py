"""BulkFhirStatusCache (mod_bulkfhir/statuscache.c): status polls answered
from httpd's shared socache keep the status semantics -- progress (R42) and
expiry show within BulkFhirStatusCacheTimeout, a DELETE is a 404 at once
(through any child), a cancel from bulkfhirctl within the timeout, the R43
gate still refuses fast polls, another client's job stays a 404 (R4), and
separate-export-status (R16) is kept.  Ground truth is SQL over the job
tables; the proof that an answer came from the cache is that PostgreSQL's
last_poll_at (or a row altered in SQL) did not show.  A running job's
allowed poll always asks PostgreSQL, so its completion shows at once.  Own stack: SMART auth, timeout 3 s (room for a
slow machine between "still cached" and "refreshed")."""
import fcntl
import os
import re
import subprocess
import time
import types

import pytest

import bfclient
from bfclient import fresh_get, job_of
import bfsmart
from bfclient import assert_operation_outcome
from bfstack import HeldTransaction
from conftest import generate_and_load

TIMEOUT = 3         # BulkFhirStatusCacheTimeout of this stack
POLL_GAP = 0.6      # > BulkFhirMinPollInterval's default (500 ms)
SECRETS = []


@pytest.fixture(scope="module")
def env(new_stack):
    st = new_stack(workers=1, auth="smart", extra_conf=bfsmart.SMART_EXTRA_CONF
                   + "BulkFhirStatusCacheTimeout %d\n" % TIMEOUT)
    generate_and_load(st, patients=4, seed=47)
    ns = types.SimpleNamespace(st=st, token_url=st.base_url + "/token")
    key = bfsmart.Key("RSA")
    for cid in ("alice", "bob"):
        bfsmart.register(st, cid, "system/*.read", jwks_doc=bfsmart.jwks(key))
        setattr(ns, cid, bfsmart.SmartClient(st, cid, key, ns.token_url))
    yield ns
    bfsmart.assert_no_secrets_in(st.error_log, SECRETS)


def client_for(env, who):
    tok = getattr(env, who).token("system/*.read")
    SECRETS.append(tok)
    return bfclient.Client(env.st.base_url, token=tok)


def until(what, fn, limit):
    """bfclient.until with POLL_GAP between calls (R43 never refuses)."""
    return bfclient.until(what, fn, limit, POLL_GAP)


def last_poll(st, job):
    return st.psql("SELECT last_poll_at FROM bulkfhir.job WHERE id = :'p1'", job)[0][0]


def kick_held(c):
    r = c.kickoff("$export", params={"_type": "Patient,Condition"})
    assert r.status_code == 202, r.text[:300]
    return r.headers["Content-Location"]


def test_470_001_running_polls_ask_postgres_and_r43_refuses_from_cache(env):
    """R43, R42: a running job's allowed polls are answered by PostgreSQL
    (last_poll_at moves each time: its progress and completion are never
    held back by the cache); a poll right after one is a 429 + Retry-After
    + OperationOutcome (throttled) from the cache, without PostgreSQL."""
    st, c = env.st, client_for(env, "alice")
    with HeldTransaction(st):
        loc = kick_held(c)
        job = job_of(loc)
        r1 = c.get(loc)
        assert r1.status_code == 202, r1.text[:300]
        first = last_poll(st, job)
        assert first, "the first poll did not reach PostgreSQL"
        time.sleep(POLL_GAP)
        r2 = fresh_get(c, loc)
        second = last_poll(st, job)
        r3 = fresh_get(c, loc)
        assert r2.status_code == 202 and re.fullmatch(r"\d+% complete", r2.headers["X-Progress"])
        assert r2.headers["Retry-After"].isdigit()
        assert second != first, "an allowed poll of a running job did not reach PostgreSQL"
        oo = assert_operation_outcome(r3, statuses=(429,))
        assert oo["issue"][0]["code"] == "throttled"
        assert int(r3.headers["Retry-After"]) >= 1
        # the refusal came from the cache: PostgreSQL's gate did not run
        assert last_poll(st, job) == second
        assert st.psql("SELECT state FROM bulkfhir.job WHERE id = :'p1'", job) in (
            [["queued"]], [["running"]])
        assert c.delete(loc).status_code == 202


def test_470_002_progress_visible_within_timeout(env):
    """R42: X-Progress follows the task counters within the timeout (plus a
    poll interval): a task marked done in SQL moves it from 0 %; the value
    equals bulkfhir.job_progress."""
    st, c = env.st, client_for(env, "alice")
    with HeldTransaction(st):
        loc = kick_held(c)
        job = job_of(loc)
        r = c.get(loc)
        assert r.status_code == 202 and r.headers["X-Progress"] == "0% complete"
        st.psql("UPDATE bulkfhir.task SET state = 'done', locked_by = NULL "
                "WHERE id = (SELECT min(id) FROM bulkfhir.task WHERE job_id = :'p1')", job)
        want = int(st.psql("SELECT pct FROM bulkfhir.job_progress(:'p1')", job)[0][0])
        assert want > 0

        def moved():
            time.sleep(POLL_GAP)
            g = fresh_get(c, loc)
            assert g.status_code == 202, g.text[:300]
            return g if g.headers["X-Progress"] != "0% complete" else None
        g, took = until("progress", moved, TIMEOUT + 3)
        assert g.headers["X-Progress"] == "%d%% complete" % want
        assert took <= TIMEOUT + 2 * POLL_GAP + 1, took
        assert c.delete(loc).status_code == 202


def test_470_003_delete_is_404_at_once(env):
    """R4 (DELETE), both while running and after completion: the client's
    DELETE removes the cached entry, so the very next poll, on a new
    connection, is a 404 although the entry was fresh; the job row says
    cancelled."""
    st, c = env.st, client_for(env, "alice")
    done = bfclient.run_export(c, params={"_type": "Patient"})
    with HeldTransaction(st):
        loc = kick_held(c)
        assert c.get(loc).status_code == 202
        for url in (loc, done.status_url):
            assert fresh_get(c, url).status_code in (200, 202, 429)   # cached now
            assert c.delete(url).status_code == 202
            for _ in range(4):
                assert_operation_outcome(fresh_get(c, url), statuses=(404,))
            assert st.psql("SELECT state FROM bulkfhir.job WHERE id = :'p1'",
                           job_of(url)) == [["cancelled"]]


def test_470_004_ctl_cancel_within_timeout(env):
    """A cancel from outside this httpd (bulkfhirctl jobs cancel) shows
    within BulkFhirStatusCacheTimeout: polls then answer 404."""
    st, c = env.st, client_for(env, "alice")
    with HeldTransaction(st):
        loc = kick_held(c)
        job = job_of(loc)
        assert c.get(loc).status_code == 202
        st.ctl("jobs", "cancel", job)
        assert st.psql("SELECT state FROM bulkfhir.job WHERE id = :'p1'", job) == [["cancelled"]]

        def gone():
            time.sleep(POLL_GAP)
            r = fresh_get(c, loc)
            assert r.status_code in (202, 404), r.text[:300]
            return r if r.status_code == 404 else None
        r, took = until("404 after bulkfhirctl jobs cancel", gone, TIMEOUT + 3)
        assert_operation_outcome(r, statuses=(404,))
        assert took <= TIMEOUT + 2 * POLL_GAP + 1, took


def test_470_005_other_client_stays_404_when_cached(env):
    """R4: alice's job, cached by alice's polls (running and completed), is
    a 404 for bob, the same as a job that does not exist; bob's polls do not
    touch alice's R43 gate."""
    st = env.st
    alice, bob = client_for(env, "alice"), client_for(env, "bob")
    done = bfclient.run_export(alice, params={"_type": "Patient"})
    assert fresh_get(alice, done.status_url).status_code == 200
    with HeldTransaction(st):
        loc = kick_held(alice)
        assert alice.get(loc).status_code == 202
        for url in (loc, done.status_url):
            r = fresh_get(bob, url)
            assert_operation_outcome(r, statuses=(404,))
            nojob = fresh_get(bob, url[:-12] + "000000000000")
            assert_operation_outcome(nojob, statuses=(404,))
            assert bob.delete(url).status_code == 404
        assert st.psql("SELECT client_id, state FROM bulkfhir.job WHERE id = :'p1'",
                       job_of(loc)) == [["alice", "queued"]] or \
            st.psql("SELECT client_id, state FROM bulkfhir.job WHERE id = :'p1'",
                    job_of(loc)) == [["alice", "running"]]
        time.sleep(POLL_GAP)
        assert fresh_get(alice, loc).status_code == 202
        assert alice.delete(loc).status_code == 202
    assert fresh_get(alice, done.status_url).status_code == 200


def test_470_006_expired_job_410_within_timeout(env):
    """Expiry from the cached times: after expires_at is moved into the past
    in SQL, the status answers 410 Gone + OperationOutcome within the
    timeout (before it, the cached manifest with its Expires).  A shared
    flock on one of its files keeps the sweeper from removing the job
    meanwhile (as while a file is downloaded)."""
    st, c = env.st, client_for(env, "alice")
    exp = bfclient.run_export(c, params={"_type": "Patient"})
    job = job_of(exp.status_url)
    again = fresh_get(c, exp.status_url)
    assert again.status_code == 200 and again.content == exp.final.content
    assert again.headers["Expires"] == exp.final.headers["Expires"]
    name = exp.manifest["output"][0]["url"].rsplit("/", 1)[1]
    fd = os.open(st.export_root / job / (name + ".gz"), os.O_RDONLY)  # stored gzip (#15)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        st.psql("UPDATE bulkfhir.job SET expires_at = now() - interval '1 second' "
                "WHERE id = :'p1'", job)

        def gone():
            r = fresh_get(c, exp.status_url)
            assert r.status_code in (200, 410), r.text[:300]
            return r if r.status_code == 410 else None
        r, took = until("410", gone, TIMEOUT + 3)
        assert_operation_outcome(r, statuses=(410,))
        assert took <= TIMEOUT + POLL_GAP + 1, took
        assert st.psql("SELECT expires_at < now() FROM bulkfhir.job WHERE id = :'p1'",
                       job) == [["t"]]
    finally:
        os.close(fd)


def test_470_007_separate_export_status_from_cache(env):
    """R16: with Prefer: separate-export-status the answers stay 200 +
    X-Export-Status: 202 Accepted and X-Progress while running, and the
    complete status answered from the cache (PostgreSQL's last_poll_at and
    the stored manifest untouched) is 200 + X-Export-Status: 200 OK."""
    st, c = env.st, client_for(env, "alice")
    r = c.kickoff("$export", params={"_type": "Patient"},
                  headers={"Prefer": "respond-async, separate-export-status"})
    assert r.status_code == 202
    loc = r.headers["Content-Location"]
    job = job_of(loc)

    def complete():
        time.sleep(POLL_GAP)
        g = fresh_get(c, loc)
        assert g.status_code == 200, g.text[:300]
        if g.headers["X-Export-Status"] == "202 Accepted":
            assert g.headers["X-Progress"].endswith("% complete")
            return None
        return g
    done, _ = until("completion", complete, 60)
    assert done.headers["X-Export-Status"] == "200 OK"
    st.psql("UPDATE bulkfhir.job SET manifest = 'not-from-postgres' WHERE id = :'p1'", job)
    cached = fresh_get(c, loc)
    assert cached.status_code == 200 and cached.headers["X-Export-Status"] == "200 OK"
    assert cached.content == done.content        # the cache, not the altered row
    assert c.delete(loc).status_code == 202


def test_470_008_completion_shows_at_once(env):
    """Complete status (SHALL 200 + manifest): once PostgreSQL has the job
    completed, the next poll is the 200 -- a running job's cached entry
    (fresh for TIMEOUT s) does not hold the completion back."""
    st, c = env.st, client_for(env, "alice")
    with HeldTransaction(st):
        r = c.kickoff("$export", params={"_type": "Patient"})
        assert r.status_code == 202, r.text[:300]
        loc = r.headers["Content-Location"]
        job = job_of(loc)
        assert c.get(loc).status_code == 202       # an entry for the running job
    done_in_sql, t0 = False, time.monotonic()
    while True:
        time.sleep(POLL_GAP)
        g = fresh_get(c, loc)
        if g.status_code == 200:
            break
        assert g.status_code == 202, g.text[:300]
        assert not done_in_sql, "completed in PostgreSQL, but the next poll was a 202"
        done_in_sql = st.psql("SELECT state FROM bulkfhir.job WHERE id = :'p1'",
                              job) == [["completed"]]
        assert time.monotonic() - t0 < 60, "the export did not complete"
    want = int(st.psql("SELECT count(*) FROM fhir.resource_version WHERE resource_type = "
                       "'Patient' AND superseded_at IS NULL AND NOT deleted")[0][0])
    assert sum(o["count"] for o in g.json()["output"]) == want
    assert c.delete(loc).status_code == 202


def _module_so(env):
    conf = (env.st.dir / "httpd" / "httpd.conf").read_text()
    return re.search(r"^LoadModule bulkfhir_module (\S+)", conf, re.M).group(1)


def _configtest(tmp_path, lines):
    moddir = "/usr/lib/apache2/modules"
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "httpd.conf").write_text("\n".join([
        "ServerRoot %s" % tmp_path, "ServerName localhost",
        "PidFile %s/run/pid" % tmp_path, "DefaultRuntimeDir %s/run" % tmp_path,
        "ErrorLog %s/error.log" % tmp_path, "Listen 127.0.0.1:18489",
        "LoadModule mpm_event_module %s/mod_mpm_event.so" % moddir,
        "LoadModule authz_core_module %s/mod_authz_core.so" % moddir] + lines + [""]))
    p = subprocess.run(["/usr/sbin/apache2", "-t", "-f", str(tmp_path / "httpd.conf")],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def test_470_009_configtest(env, tmp_path):
    """httpd -t: an unknown provider fails with a message naming the
    directive and the module to load; so does shmcb without
    socache_shmcb; a value in a <VirtualHost> and a timeout of 0 are refused;
    shmcb with a size is accepted."""
    load = "LoadModule bulkfhir_module %s" % _module_so(env)
    shm = "LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so"
    cases = [
        ([load, "BulkFhirStatusCache nosuchprovider"],
         r"BulkFhirStatusCache: no socache provider 'nosuchprovider' is loaded: "
         r"load socache_nosuchprovider"),
        ([load, "BulkFhirStatusCache shmcb"], r"load socache_shmcb"),
        ([shm, load, "<VirtualHost 127.0.0.1:18489>", "BulkFhirStatusCache shmcb",
          "</VirtualHost>"], r"BulkFhirStatusCache cannot occur within <VirtualHost>"),
        ([load, "BulkFhirStatusCacheTimeout 0"],
         r"BulkFhirStatusCacheTimeout: expected an integer number of seconds from 1"),
    ]
    for lines, want in cases:
        rc, out = _configtest(tmp_path, lines)
        assert rc != 0 and re.search(want, out), (lines, out)
    rc, out = _configtest(tmp_path, [shm, load, "BulkFhirStatusCache shmcb:%s/sc(262144)"
                                             % tmp_path, "BulkFhirStatusCacheTimeout 5"])
    assert rc == 0 and "Syntax OK" in out, out
