"""Bearer tokens through the status cache (BulkFhirAuth smart with
BulkFhirStatusCache; mod_bulkfhir/auth.c + statuscache.c): a token
PostgreSQL accepted answers from the shared cache for at most
BulkFhirStatusCacheTimeout and never past its own expiry (A12, A14);
unknown tokens are not cached; revocation (token row deleted, client
disabled) shows within the timeout; another client's cached token never
sees this client's jobs (R4).  Ground truth is SQL over bulkfhir.token,
bulkfhir.client and bulkfhir.job; the proof that a request made no query
is an ACCESS EXCLUSIVE lock held on bulkfhir.token (a token check would
wait for it) and last_poll_at not moving (the status came from the cache
too).  Own stack: timeout 4 s (room for a slow machine)."""
import hashlib
import secrets
import subprocess
import time
import types

import pytest
import requests

import bfclient
from bfclient import fresh_get, job_of
import bfsmart
from bfclient import assert_operation_outcome
from bfstack import HeldTransaction
from conftest import generate_and_load

TIMEOUT = 4         # BulkFhirStatusCacheTimeout of this stack
POLL_GAP = 0.6      # > BulkFhirMinPollInterval's default (500 ms)
QUICK = 2.0         # seconds a request answered from the cache may take
SECRETS = []


@pytest.fixture(scope="module")
def env(new_stack):
    st = new_stack(workers=1, auth="smart", extra_conf=bfsmart.SMART_EXTRA_CONF
                   + "BulkFhirStatusCacheTimeout %d\n" % TIMEOUT)
    generate_and_load(st, patients=4, seed=48)
    ns = types.SimpleNamespace(st=st, token_url=st.base_url + "/token")
    key = bfsmart.Key("RSA")
    for cid in ("alice", "bob", "carol"):
        bfsmart.register(st, cid, "system/*.read", jwks_doc=bfsmart.jwks(key))
        setattr(ns, cid, bfsmart.SmartClient(st, cid, key, ns.token_url))
    ns.done = bfclient.run_export(client_for(ns, "alice"), params={"_type": "Patient"})
    yield ns
    bfsmart.assert_no_secrets_in(st.error_log, SECRETS)


def client_for(env, who):
    tok = getattr(env, who).token("system/*.read")
    SECRETS.append(tok)
    return bfclient.Client(env.st.base_url, token=tok)


def token_hash(tok):
    return hashlib.sha256(tok.encode()).hexdigest()


def token_rows(st, tok):
    return st.psql("SELECT client_id, expires_at > now() FROM bulkfhir.token "
                   "WHERE hash = decode(:'p1', 'hex')", token_hash(tok))


def assert_invalid_token(r):
    assert_operation_outcome(r, statuses=(401,))
    assert 'error="invalid_token"' in r.headers.get("WWW-Authenticate", ""), r.headers


class TokenTableLock:
    """A transaction holding ACCESS EXCLUSIVE on bulkfhir.token: while it is
    open, any token check in PostgreSQL waits (up to BulkFhirDbTimeout)."""

    def __init__(self, st):
        self.p = subprocess.Popen(["psql", "-X", "-A", "-t", "-q"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=st.proc_env())
        self.p.stdin.write("BEGIN; LOCK TABLE bulkfhir.token IN ACCESS EXCLUSIVE MODE;"
                           " SELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        assert line == "locked", line

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.communicate("ROLLBACK;\n", timeout=30)


def until(what, fn, limit, gap=POLL_GAP):
    return bfclient.until(what, fn, limit, gap)


def test_480_001_cached_poll_makes_no_query(env):
    """A14 from the cache: after one request checked the token in
    PostgreSQL, requests on new connections are answered while
    bulkfhir.token is locked exclusively -- no token query: a running job's
    poll (202, its status from PostgreSQL), the one right after it (429 by
    R43, from the cache: last_poll_at unchanged) and a completed job's
    manifest (200, from the cache)."""
    st, c = env.st, client_for(env, "alice")
    with HeldTransaction(st):
        r = c.kickoff("$export", params={"_type": "Patient,Condition"})
        assert r.status_code == 202, r.text[:300]
        loc = r.headers["Content-Location"]
        assert c.get(loc).status_code == 202
        assert fresh_get(c, env.done.status_url).status_code == 200
        time.sleep(POLL_GAP)
        with TokenTableLock(st):
            t0 = time.monotonic()
            r2 = fresh_get(c, loc, timeout=QUICK)
            second = st.psql("SELECT last_poll_at FROM bulkfhir.job WHERE id = :'p1'",
                             job_of(loc))
            r3 = fresh_get(c, loc, timeout=QUICK)
            r4 = fresh_get(c, env.done.status_url, timeout=QUICK)
            took = time.monotonic() - t0
        assert r2.status_code == 202 and r2.headers["X-Progress"].endswith("% complete")
        assert_operation_outcome(r3, statuses=(429,))
        assert r4.status_code == 200 and r4.content == env.done.final.content
        assert took < QUICK, took
        assert st.psql("SELECT last_poll_at FROM bulkfhir.job WHERE id = :'p1'",
                       job_of(loc)) == second
        assert token_rows(st, c.token) == [["alice", "t"]]
        assert c.delete(loc).status_code == 202


def test_480_002_deleted_token_until_timeout_then_401(env):
    """A14, revocation bound: with its bulkfhir.token row deleted, a cached
    token still answers until BulkFhirStatusCacheTimeout after PostgreSQL
    last accepted it (that proves the cached poll asked nothing), then it
    is a 401 invalid_token, and stays one."""
    st, c = env.st, client_for(env, "alice")
    t0 = time.monotonic()
    assert fresh_get(c, env.done.status_url).status_code == 200      # token cached
    st.psql("DELETE FROM bulkfhir.token WHERE hash = decode(:'p1', 'hex')", token_hash(c.token))
    assert token_rows(st, c.token) == []
    r = fresh_get(c, env.done.status_url)
    if time.monotonic() - t0 < TIMEOUT - 1:
        assert r.status_code == 200 and r.content == env.done.final.content, r.text[:300]

    def refused():
        g = fresh_get(c, env.done.status_url)
        assert g.status_code in (200, 401), g.text[:300]
        return g if g.status_code == 401 else None
    r, _ = until("401 after the token row was deleted", refused, TIMEOUT + 3)
    assert_invalid_token(r)
    assert time.monotonic() - t0 <= TIMEOUT + POLL_GAP + 1.5
    for _ in range(3):
        assert_invalid_token(fresh_get(c, env.done.status_url))


def test_480_003_expired_token_refused_at_its_expiry(env):
    """A12, A14: a token cached before its expiry is refused at the expiry
    (well before the cache's timeout), however fresh the entry; while it
    is cached and valid the token table can be locked (no query)."""
    st, c = env.st, client_for(env, "alice")
    exp = float(st.psql("UPDATE bulkfhir.token SET expires_at = now() + interval '2.5 seconds'"
                        " WHERE hash = decode(:'p1', 'hex')"
                        " RETURNING extract(epoch FROM expires_at)", token_hash(c.token))[0][0])
    cached_at = time.time()
    assert fresh_get(c, env.done.status_url).status_code == 200      # cached, expires at exp
    with TokenTableLock(st):
        r = fresh_get(c, env.done.status_url, timeout=QUICK)
        assert r.status_code == 200 and time.time() < exp, r.text[:300]
    last_ok = None
    while True:
        sent = time.time()
        r = fresh_get(c, env.done.status_url)
        if r.status_code != 200:
            break
        last_ok = sent
        assert sent < exp + 1, "still accepted %.2f s after its expiry" % (sent - exp)
        time.sleep(0.1)
    assert_invalid_token(r)
    refused_at = time.time()
    assert last_ok is None or last_ok < exp
    assert refused_at < exp + 1, refused_at - exp
    assert refused_at < cached_at + TIMEOUT, "refused by the timeout, not at the expiry"
    assert token_rows(st, c.token) == [["alice", "f"]]


def test_480_004_disabled_client_refused_after_timeout(env):
    """A14 (and the token endpoint's A6 for tokens already issued):
    `bulkfhirctl client disable` refuses the client's unexpired tokens
    within BulkFhirStatusCacheTimeout; other clients are untouched."""
    st = env.st
    carol, alice = client_for(env, "carol"), client_for(env, "alice")
    own = bfclient.run_export(carol, params={"_type": "Patient"})
    t0 = time.monotonic()
    assert fresh_get(carol, own.status_url).status_code == 200        # token cached
    st.ctl("client", "disable", "carol")
    try:
        assert st.psql("SELECT enabled FROM bulkfhir.client WHERE id = 'carol'") == [["f"]]
        assert token_rows(st, carol.token) == [["carol", "t"]]        # the row is still valid

        def refused():
            g = fresh_get(carol, own.status_url)
            assert g.status_code in (200, 401), g.text[:300]
            return g if g.status_code == 401 else None
        r, _ = until("401 after client disable", refused, TIMEOUT + 3)
        assert_invalid_token(r)
        assert time.monotonic() - t0 <= TIMEOUT + POLL_GAP + 1.5
        assert_invalid_token(carol.kickoff("$export", params={"_type": "Patient"}))
        assert fresh_get(alice, env.done.status_url).status_code == 200
    finally:
        st.ctl("client", "enable", "carol")


def test_480_005_other_clients_cached_token_sees_no_other_job(env):
    """R4, A14: with both tokens and both jobs cached, bob's token never
    sees alice's jobs (status, DELETE, files: 404, as a job that does not
    exist) and alice's never sees bob's; the job rows are unchanged."""
    st = env.st
    alice, bob = client_for(env, "alice"), client_for(env, "bob")
    bobs = bfclient.run_export(bob, params={"_type": "Patient"})
    assert fresh_get(alice, env.done.status_url).status_code == 200
    assert fresh_get(bob, bobs.status_url).status_code == 200
    for _ in range(3):
        for who, other in ((bob, env.done), (alice, bobs)):
            assert_operation_outcome(fresh_get(who, other.status_url), statuses=(404,))
            assert who.download(other.manifest["output"][0]["url"]).status_code == 404
        assert bob.delete(env.done.status_url).status_code == 404
    rows = st.psql("SELECT id, client_id, state FROM bulkfhir.job WHERE id IN (:'p1', :'p2')"
                   " ORDER BY client_id", job_of(env.done.status_url), job_of(bobs.status_url))
    assert [r[1:] for r in rows] == [["alice", "completed"], ["bob", "completed"]]
    assert fresh_get(alice, env.done.status_url).content == env.done.final.content
    assert fresh_get(bob, bobs.status_url).content == bobs.final.content


def test_480_006_unknown_token_not_cached(env):
    """A14: an unknown token is a 401 and is not remembered: once a row
    for it exists (as the token endpoint writes one) it works at once,
    within the timeout of the 401."""
    st = env.st
    tok = secrets.token_urlsafe(32)
    SECRETS.append(tok)
    c = bfclient.Client(st.base_url, token=tok)
    assert_invalid_token(fresh_get(c, env.done.status_url))
    st.psql("INSERT INTO bulkfhir.token (hash, client_id, scope, expires_at)"
            " VALUES (decode(:'p1', 'hex'), 'alice', 'system/*.read',"
            " now() + interval '1 minute')", token_hash(tok))
    r = fresh_get(c, env.done.status_url)
    assert r.status_code == 200 and r.content == env.done.final.content, r.text[:300]


def test_480_007_new_connection_while_token_table_locked(env):
    """A14 from the cache on a fresh database connection: preparing the
    per-request statements (one names bulkfhir.token) gives up after 10 ms
    on a locked table instead of stalling the new connection, so a download
    (file lookup in PostgreSQL, token from the cache) is answered at once.
    The CI run that found it: a 202 poll timed out when its httpd child had
    to open a connection while the table was locked."""
    st, c = env.st, client_for(env, "alice")
    url = env.done.manifest["output"][0]["url"]
    first = c.download(url)
    assert first.status_code == 200
    # every pooled connection is dropped: the next request connects anew
    st.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'mod_bulkfhir'")
    with TokenTableLock(st):
        t0 = time.monotonic()
        r = requests.get(url, headers=c._headers({"Accept": bfclient.NDJSON}), timeout=QUICK)
        took = time.monotonic() - t0
    assert r.status_code == 200 and r.content == first.content
    assert took < QUICK, took
