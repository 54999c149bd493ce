"""BulkFhirAuth header: another httpd module authenticates (here
mod_auth_basic with an htpasswd file, standing in for mod_auth_openidc as an
OAuth resource server); the client is r->user and its scopes come from the
header named by BulkFhirAuthScopeSource, set by the server configuration
(mod_headers), never by the client.  Same rules as smart: own jobs only
(R4), granted types only (R5), requiresAccessToken true."""
import base64
import hashlib
import shutil
import tempfile
import types
from pathlib import Path

import pytest
import requests

import bfclient
from bfclient import assert_operation_outcome
from conftest import generate_and_load

MODDIR = "/usr/lib/apache2/modules"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}

EXTRA_CONF = """
LoadModule authn_core_module {moddir}/mod_authn_core.so
LoadModule authn_file_module {moddir}/mod_authn_file.so
LoadModule auth_basic_module {moddir}/mod_auth_basic.so
LoadModule authz_user_module {moddir}/mod_authz_user.so
LoadModule headers_module {moddir}/mod_headers.so
LoadModule env_module {moddir}/mod_env.so
BulkFhirAuthScopeSource header:X-Granted-Scopes
<Location /fhir>
    AuthType Basic
    AuthName "bulkfhir"
    AuthUserFile "{htpasswd}"
    # metadata stays public (a nested <Location /fhir/metadata> would
    # hide the FHIR base from the module's router)
    <RequireAny>
        Require valid-user
        Require expr "%{{REQUEST_URI}} == '/fhir/metadata'"
    </RequireAny>
    # the scopes are the server's word: drop what the client sent, then set
    RequestHeader unset X-Granted-Scopes
    RequestHeader set X-Granted-Scopes "system/*.read" "expr=%{{REMOTE_USER}} == 'alice'"
    RequestHeader set X-Granted-Scopes "system/Patient.read" "expr=%{{REMOTE_USER}} == 'bob'"
</Location>
# scopes from a subprocess_env variable (as mod_auth_openidc sets
# OIDC_CLAIM_scope); a BulkFhir directive here makes this its own FHIR base
<Location /envfhir>
    SetHandler bulkfhir
    BulkFhirAuthScopeSource env:BF_TEST_SCOPES
    AuthType Basic
    AuthName "bulkfhir"
    AuthUserFile "{htpasswd}"
    Require valid-user
    SetEnv BF_TEST_SCOPES "system/Condition.read,system/Patient.read"
</Location>
# a misconfigured base: BulkFhirAuth header but nobody authenticates
<Location /open>
    SetHandler bulkfhir
    Require all granted
</Location>
"""


@pytest.fixture(scope="module")
def env(new_stack):
    # httpd children (www-data) must read it: not under pytest's 0700 tmp
    d = Path(tempfile.mkdtemp(prefix="bf-htpasswd-", dir="/tmp"))
    htpasswd = d / "htpasswd"
    htpasswd.write_text("".join(
        "%s:{SHA}%s\n" % (u, base64.b64encode(hashlib.sha1(p.encode()).digest()).decode())
        for u, p in PASSWORDS.items()))
    d.chmod(0o755)
    htpasswd.chmod(0o644)
    st = new_stack(workers=1, auth="header",
                   extra_conf=EXTRA_CONF.format(moddir=MODDIR, htpasswd=htpasswd))
    resources, links, _ = generate_and_load(st, patients=5, seed=5)
    yield types.SimpleNamespace(st=st, resources=resources, links=links, job=None)
    shutil.rmtree(d, ignore_errors=True)


def user(env, name, extra_headers=None):
    c = bfclient.Client(env.st.base_url)
    c.http.auth = (name, PASSWORDS[name])
    if extra_headers:
        c.http.headers.update(extra_headers)
    return c


def test_320_001_unauthenticated(env, allow_log):
    """No credentials: the auth module answers 401; metadata stays public."""
    allow_log(r"AH01617: user alice: authentication failure")
    assert requests.get(env.st.base_url + "/metadata", timeout=10).status_code == 200
    r = requests.get(env.st.base_url + "/$export", timeout=10)
    assert r.status_code == 401
    r = requests.get(env.st.base_url + "/$export", auth=("alice", "wrong"), timeout=10)
    assert r.status_code == 401


def test_320_002_no_user_is_401(env):
    """BulkFhirAuth header where no module authenticated: 401 OperationOutcome
    (never an anonymous export)."""
    r = requests.get(env.st.base_url.replace("/fhir", "/open") + "/$export", timeout=10,
                     headers={"X-Granted-Scopes": "system/*.read"})
    oo = assert_operation_outcome(r, statuses=(401,))
    assert oo["issue"][0]["code"] == "login"


def test_320_003_export_as_alice(env):
    """R3, R5: alice (system/*.read) exports; the job is hers; files need
    her credentials; content equals the loaded data."""
    c = user(env, "alice")
    exp = bfclient.run_export(c, params={"_type": "Patient,Condition"})
    bfclient.check_manifest_shape(exp, env.st.base_url, requires_token=True)
    bfclient.check_files(exp)
    bfclient.check_exact(exp, {k: v for k, v in env.resources.items()
                               if k[0] in ("Patient", "Condition")}, env.links)
    job_id = exp.status_url.rsplit("/", 1)[1]
    assert env.st.psql("SELECT client_id FROM bulkfhir.job WHERE id = :'p1'", job_id) == \
        [["alice"]]
    assert requests.get(exp.manifest["output"][0]["url"], timeout=10).status_code == 401
    env.job = exp


def test_320_004_bob_is_limited(env):
    """R4, R5: bob (system/Patient.read) cannot export Observation, even when
    he sends the scope header himself; without _type he gets Patient only;
    alice's job is a 404 for him."""
    bob = user(env, "bob")
    oo = assert_operation_outcome(bob.kickoff("$export", params={"_type": "Observation"}),
                                  statuses=(403,))
    assert "Observation" in oo["issue"][0]["details"]["text"]
    forger = user(env, "bob", {"X-Granted-Scopes": "system/*.read"})
    assert_operation_outcome(forger.kickoff("$export", params={"_type": "Observation"}),
                             statuses=(403,))
    exp = bfclient.run_export(bob)
    assert {i["type"] for i in exp.manifest["output"]} == {"Patient"}
    bfclient.check_exact(exp, {k: v for k, v in env.resources.items() if k[0] == "Patient"},
                         env.links)
    if env.job:
        assert_operation_outcome(bob.get(env.job.status_url), statuses=(404,))
        assert_operation_outcome(bob.delete(env.job.status_url), statuses=(404,))
        assert bob.download(env.job.manifest["output"][0]["url"]).status_code == 404


def test_320_005_scopes_from_env(env):
    """BulkFhirAuthScopeSource env:NAME (comma-separated scopes allowed):
    Condition is granted there, Observation is not."""
    c = user(env, "bob")
    c.base = env.st.base_url.replace("/fhir", "/envfhir")
    assert_operation_outcome(c.kickoff("$export", params={"_type": "Observation"}),
                             statuses=(403,))
    k = c.kickoff("$export", params={"_type": "Condition"})
    assert k.status_code == 202, k.text
    final, _ = c.poll(k.headers["Content-Location"], timeout=60)
    assert final.status_code == 200
    m = bfclient.json_body(final)
    assert m["requiresAccessToken"] is True
    assert {i["type"] for i in m["output"]} <= {"Condition"}
