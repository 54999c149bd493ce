"""The resource server side of SMART Backend Services (SPEC A14, R3-R6, R9,
R49): bearer tokens on kick-off, status, DELETE and files; a client sees
only its own jobs; an export holds only granted types; per-client limits."""
import hashlib
import time
import types

import pytest
import requests

import bfclient
import bfsmart
from bfclient import assert_operation_outcome
from bfstack import HeldTransaction
from conftest import generate_and_load

SECRETS = []


@pytest.fixture(scope="module")
def env(new_stack):
    st = new_stack(workers=1, auth="smart", extra_conf=bfsmart.SMART_EXTRA_CONF)
    resources, links, _ = generate_and_load(st, patients=10, seed=11)
    ns = types.SimpleNamespace(st=st, resources=resources, links=links,
                               token_url=st.base_url + "/token")
    key = bfsmart.Key("RSA")
    for cid, scope in (("alice", "system/*.read"), ("bob", "system/*.read"),
                       ("narrow", "system/Patient.read system/Observation.read"),
                       ("limited", "system/*.rs"), ("rate", "system/*.read")):
        bfsmart.register(st, cid, scope, jwks_doc=bfsmart.jwks(key))
        setattr(ns, cid, bfsmart.SmartClient(st, cid, key, ns.token_url))
    ns.job = None       # alice's completed export (test_310_001)
    yield ns
    bfsmart.assert_no_secrets_in(st.error_log, SECRETS)


def client_for(env, who, scope="system/*.read", base=None):
    tok = getattr(env, who).token(scope)
    SECRETS.append(tok)
    return bfclient.Client(base or env.st.base_url, token=tok)


def expected(env, types_=None):
    return {k: v for k, v in env.resources.items() if types_ is None or k[0] in types_}


def test_310_001_success_path(env):
    """A11, A14, R3, R49: token -> kick-off -> manifest (requiresAccessToken
    true) -> files with the token 200 (content = the loaded data), without
    it 401."""
    c = client_for(env, "alice")
    exp = bfclient.run_export(c, params={"_type": "Patient,Observation,Condition"})
    bfclient.check_manifest_shape(exp, env.st.base_url, requires_token=True)
    bfclient.check_files(exp)
    bfclient.check_exact(exp, expected(env, {"Patient", "Observation", "Condition"}), env.links)
    rows = env.st.psql("SELECT client_id, requires_token FROM bulkfhir.job WHERE id = :'p1'",
                       exp.status_url.rsplit("/", 1)[1])
    assert rows == [["alice", "t"]]
    url = exp.manifest["output"][0]["url"]
    r = requests.get(url, timeout=10)
    assert r.status_code == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    env.job = exp


def test_310_002_no_bearer(env):
    """A14, R49, §5 item 2: no token -> 401 + WWW-Authenticate: Bearer +
    OperationOutcome (kick-off, status, files)."""
    c = bfclient.Client(env.st.base_url)
    urls = [c.url("$export")]
    if env.job:
        urls += [env.job.status_url, env.job.manifest["output"][0]["url"]]
    for u in urls:
        r = c.get(u)
        oo = assert_operation_outcome(r, statuses=(401,))
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
        assert oo["issue"][0]["code"] == "login"


def test_310_003_garbage_and_wrong_scheme(env):
    """A14: an unknown token or a non-Bearer scheme -> 401."""
    for auth in ("Bearer not-a-token", "Bearer " + "A" * 43, "Basic YWxpY2U6eA==", "Bearer "):
        r = requests.get(env.st.base_url + "/$export", timeout=10,
                         headers={"Authorization": auth, "Prefer": "respond-async"})
        assert_operation_outcome(r, statuses=(401,))
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_310_004_expired_bearer(env):
    """A12, A14: a token past expires_at -> 401 invalid_token."""
    c = client_for(env, "alice")
    r = c.kickoff("$export", params={"_type": "Patient"})
    assert r.status_code == 202
    env.st.psql("UPDATE bulkfhir.token SET expires_at = now() - interval '1 second'"
                " WHERE hash = decode(:'p1', 'hex')",
                hashlib.sha256(c.token.encode()).hexdigest())
    # the token PostgreSQL accepted may answer from BulkFhirStatusCache
    # (devstack: on, 1 s) until its timeout (test_480 checks that bound)
    deadline = time.monotonic() + 3
    g = c.get(r.headers["Content-Location"])
    while g.status_code != 401 and time.monotonic() < deadline:
        time.sleep(0.2)
        g = c.get(r.headers["Content-Location"])
    for r in (g, c.kickoff("$export", params={"_type": "Patient"})):
        assert_operation_outcome(r, statuses=(401,))
        assert 'error="invalid_token"' in r.headers.get("WWW-Authenticate", "")


def test_310_005_cross_client_404(env):
    """R4: another client's job does not exist for bob: status, DELETE and
    files are 404, and alice's job is untouched."""
    assert env.job, "needs test_310_001"
    bob = client_for(env, "bob")
    assert_operation_outcome(bob.get(env.job.status_url), statuses=(404,))
    assert_operation_outcome(bob.delete(env.job.status_url), statuses=(404,))
    r = bob.download(env.job.manifest["output"][0]["url"])
    assert r.status_code == 404
    job_id = env.job.status_url.rsplit("/", 1)[1]
    assert env.st.psql("SELECT state FROM bulkfhir.job WHERE id = :'p1'", job_id) == \
        [["completed"]]
    alice = client_for(env, "alice")
    assert alice.get(env.job.status_url).status_code == 200


def test_310_006_type_escalation_403(env):
    """R5, A14, §3.7: _type naming an ungranted type -> 403 forbidden naming
    it (GET and POST); no job is recorded."""
    c = client_for(env, "narrow", "system/Patient.read system/Observation.read")
    before = env.st.psql("SELECT count(*) FROM bulkfhir.job WHERE client_id = 'narrow'")
    r = c.kickoff("$export", params={"_type": "Patient,Condition"})
    oo = assert_operation_outcome(r, statuses=(403,))
    assert oo["issue"][0]["code"] == "forbidden"
    assert "Condition" in oo["issue"][0]["details"]["text"]
    r = c.kickoff_post("$export", parameters=[("_type", "valueString", "MedicationRequest")])
    oo = assert_operation_outcome(r, statuses=(403,))
    assert "MedicationRequest" in oo["issue"][0]["details"]["text"]
    # a token that asked for less than registered gets less
    c2 = client_for(env, "narrow", "system/Patient.read")
    oo = assert_operation_outcome(c2.kickoff("Patient/$export", params={"_type": "Observation"}),
                                  statuses=(403,))
    assert "Observation" in oo["issue"][0]["details"]["text"]
    after = env.st.psql("SELECT count(*) FROM bulkfhir.job WHERE client_id = 'narrow'")
    assert before == after


def test_310_007_no_type_exports_only_granted(env):
    """R5: without _type the export holds exactly the granted types (checked
    against the loaded data), and the tasks are only those types."""
    c = client_for(env, "narrow", "system/Patient.read system/Observation.read")
    exp = bfclient.run_export(c)
    bfclient.check_files(exp)
    assert {i["type"] for i in exp.manifest["output"]} == {"Patient", "Observation"}
    bfclient.check_exact(exp, expected(env, {"Patient", "Observation"}), env.links)
    job_id = exp.status_url.rsplit("/", 1)[1]
    rows = env.st.psql("SELECT DISTINCT resource_type FROM bulkfhir.task WHERE job_id = :'p1'"
                       " ORDER BY 1", job_id)
    assert rows == [["Observation"], ["Patient"]]


def test_310_008_group_needs_group_scope(env):
    """R6: a Group export without Group read permission -> 403 (before the
    Group is even looked up); with system/*.read an unknown Group is 404."""
    groups = [k[1] for k in env.resources if k[0] == "Group"] or ["g-1"]
    c = client_for(env, "narrow", "system/Patient.read system/Observation.read")
    for gid in (groups[0], "no-such-group"):
        oo = assert_operation_outcome(c.kickoff("Group/%s/$export" % gid), statuses=(403,))
        assert oo["issue"][0]["code"] == "forbidden"
        assert "Group" in oo["issue"][0]["details"]["text"]
    a = client_for(env, "alice")
    assert_operation_outcome(a.kickoff("Group/no-such-group/$export"), statuses=(404,))


def test_310_009_concurrent_job_limit(env):
    """R9, §5 item 6: at most max_jobs (5) queued+running jobs per client:
    the 6th kick-off -> 429 + Retry-After + OperationOutcome throttled; a
    DELETE frees the slot at once.  Jobs are held in progress by an open
    transaction in their snapshot."""
    c = client_for(env, "limited", "system/*.rs")
    locs = []
    with HeldTransaction(env.st):
        for _ in range(5):
            k = c.kickoff("$export", params={"_type": "Patient"})
            assert k.status_code == 202, k.text
            locs.append(k.headers["Content-Location"])
        r = c.kickoff("$export", params={"_type": "Patient"})
        oo = assert_operation_outcome(r, statuses=(429,))
        assert oo["issue"][0]["code"] == "throttled"
        assert int(r.headers["Retry-After"]) >= 1
        assert env.st.psql("SELECT count(*) FROM bulkfhir.job WHERE client_id = 'limited'"
                           " AND state IN ('queued', 'running')") == [["5"]]
        # another client is not affected
        assert client_for(env, "bob").kickoff("$export", params={"_type": "Patient"}) \
            .status_code == 202
        # Inferno: kick-off then DELETE, again and again
        for _ in range(3):
            assert c.delete(locs.pop()).status_code == 202
            k = c.kickoff("$export", params={"_type": "Patient"})
            assert k.status_code == 202, k.text
            locs.append(k.headers["Content-Location"])
        for loc in locs:
            assert c.delete(loc).status_code == 202
    # cancelled jobs never count
    k = c.kickoff("$export", params={"_type": "Patient"})
    assert k.status_code == 202, k.text
    c.poll(k.headers["Content-Location"], timeout=60)


def test_310_010_kickoff_rate(env):
    """R9: BulkFhirKickoffRate 2/min (on /ratefhir): the third kick-off in
    a minute -> 429 + Retry-After, even though the first two were DELETEd."""
    c = client_for(env, "rate", base=env.st.base_url.replace("/fhir", "/ratefhir"))
    for _ in range(2):
        k = c.kickoff("$export", params={"_type": "Patient"})
        assert k.status_code == 202, k.text
        assert c.delete(k.headers["Content-Location"]).status_code == 202
    r = c.kickoff("$export", params={"_type": "Patient"})
    oo = assert_operation_outcome(r, statuses=(429,))
    assert oo["issue"][0]["code"] == "throttled"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_310_011_anonymous_jobs_share_a_budget(stack, client):
    """R9 with BulkFhirAuth none: all anonymous jobs together may have at
    most BulkFhirMaxActiveJobs (5) queued or running; the manifest says
    requiresAccessToken false."""
    locs = []
    with HeldTransaction(stack):
        active = int(stack.psql("SELECT count(*) FROM bulkfhir.job WHERE client_id IS NULL"
                                " AND state IN ('queued', 'running')")[0][0])
        for _ in range(max(0, 5 - active)):
            k = client.kickoff("$export", params={"_type": "Patient"})
            assert k.status_code == 202, k.text
            locs.append(k.headers["Content-Location"])
        r = client.kickoff("$export", params={"_type": "Patient"})
        oo = assert_operation_outcome(r, statuses=(429,))
        assert oo["issue"][0]["code"] == "throttled"
        for loc in locs:
            assert client.delete(loc).status_code == 202
    k = client.kickoff("$export", params={"_type": "Patient"})
    assert k.status_code == 202, k.text
    final, _ = client.poll(k.headers["Content-Location"], timeout=60)
    assert final.status_code == 200
    assert bfclient.json_body(final)["requiresAccessToken"] is False


def test_310_012_file_needs_scope_for_its_type(env):
    """R3: a file request is protected like the kick-off: the token's scopes
    must cover the file's resource type (alice's own job, but a token asked
    for Patient only -> 403 on the Observation file, 200 on Patient)."""
    assert env.job, "needs test_310_001"
    c = client_for(env, "alice", "system/Patient.read")
    by_type = {}
    for item in env.job.manifest["output"]:
        by_type.setdefault(item["type"], item["url"])
    r = c.download(by_type["Patient"])
    assert r.status_code == 200
    assert r.content == env.job.files[by_type["Patient"]][0].content
    oo = assert_operation_outcome(c.download(by_type["Observation"]), statuses=(403,))
    assert "Observation" in oo["issue"][0]["details"]["text"]
