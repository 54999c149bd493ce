"""Bounded cost, part C (issue #11): authorization findings and HTTP
hygiene.  One test per finding of the outside review:

 1. the token URL (the assertion's aud) comes from BulkFhirBaseURL, never
    from the request's Host header; smart without it does not start;
 2. a job is visible only to requests authenticated the way it was created
    (auth mode + client id): BulkFhirAuth none and header-mode users of the
    same name get 404;
 3. a client whose JWKS URL hangs costs at most one fetch per process and
    negative-cache period, and no pooled database connection meanwhile;
 4. JWKS URLs are checked on libcurl's parsed host (userinfo refused);
 5. a client assertion without typ JWT is refused;
 6. organizeOutputBy=Patient blocks files: scopes checked against the job's
    types;
 7. TRACE gets a 405 OperationOutcome on the module's locations;
 8. a 5,000-character status id is a 404 OperationOutcome, not httpd's 403.

Every JWKS server here listens on 127.0.0.1; URLs that must be refused are
refused before any connection."""
import base64
import concurrent.futures
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import types
import uuid
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import bfclient
import bfsmart
from bfclient import assert_operation_outcome
from bfsmart import b64url, claims, oauth_error, sign, token_request
from conftest import generate_and_load

REPO = Path(__file__).resolve().parents[2]
MODDIR = "/usr/lib/apache2/modules"
PASSWORDS = {"app": "app-pw"}
SECRETS = []
FHIR_JSON = "application/fhir+json"

EXTRA_CONF = """
LoadModule authn_core_module {moddir}/mod_authn_core.so
LoadModule authn_file_module {moddir}/mod_authn_file.so
LoadModule auth_basic_module {moddir}/mod_auth_basic.so
LoadModule authz_user_module {moddir}/mod_authz_user.so
LoadModule env_module {moddir}/mod_env.so
# few pooled connections per child: a request holding one during a JWKS
# fetch would starve the others
BulkFhirPoolMax 2
# the module refuses TRACE itself, even where the server allows it
TraceEnable On
# finding 2: the same database behind a base without authorization ...
<Location /openfhir>
    SetHandler bulkfhir
    BulkFhirAuth none
</Location>
# ... and one whose users another module authenticates (user "app", the
# same name as a SMART client)
<Location /hdrfhir>
    SetHandler bulkfhir
    BulkFhirAuth header
    BulkFhirAuthScopeSource env:BF_TEST_SCOPES
    AuthType Basic
    AuthName "bulkfhir"
    AuthUserFile "{htpasswd}"
    Require valid-user
    SetEnv BF_TEST_SCOPES "system/*.read"
    # test_520_010: the header user "app" has its own kick-off budget
    BulkFhirKickoffRate 4/min
</Location>
"""


@pytest.fixture(scope="module")
def env(new_stack):
    d = Path(tempfile.mkdtemp(prefix="bf-htpasswd-", dir="/tmp"))
    htpasswd = d / "htpasswd"
    htpasswd.write_text("".join(
        "%s:{SHA}%s\n" % (u, base64.b64encode(hashlib.sha1(p.encode()).digest()).decode())
        for u, p in PASSWORDS.items()))
    d.chmod(0o755)
    htpasswd.chmod(0o644)
    st = new_stack(workers=1, auth="smart",
                   extra_conf=bfsmart.SMART_EXTRA_CONF
                   + EXTRA_CONF.format(moddir=MODDIR, htpasswd=htpasswd))
    resources, links, _ = generate_and_load(st, patients=4, seed=52)
    srv = bfsmart.JwksServer()
    ns = types.SimpleNamespace(st=st, srv=srv, resources=resources,
                               token_url=st.base_url + "/token",
                               root=st.base_url.rsplit("/fhir", 1)[0])
    ns.key = bfsmart.Key("RSA")
    for cid, scope in (("app", "system/*.read"),
                       ("pair", "system/Patient.rs system/Observation.rs")):
        bfsmart.register(st, cid, scope, jwks_doc=bfsmart.jwks(ns.key))
        setattr(ns, cid, bfsmart.SmartClient(st, cid, ns.key, ns.token_url))
    yield ns
    srv.close()
    shutil.rmtree(d, ignore_errors=True)
    bfsmart.assert_no_secrets_in(st.error_log, SECRETS)


def smart_client(env, who, scope="system/*.read", base=None):
    tok = getattr(env, who).token(scope)
    SECRETS.append(tok)
    return bfclient.Client(base or env.st.base_url, token=tok)


def oo_404(r):
    oo = assert_operation_outcome(r, statuses=(404,))
    assert r.headers["Content-Type"].split(";")[0] == FHIR_JSON
    return oo


def export_done(c, path, params):
    k = c.kickoff(path, params=params)
    assert k.status_code == 202, k.text
    status_url = k.headers["Content-Location"]
    final, _ = c.poll(status_url, timeout=120)
    assert final.status_code == 200, final.text
    return status_url, final.json()


# ---- 1. canonical aud -----------------------------------------------------------
def test_520_001_aud_never_from_host(env):
    """An assertion whose aud is the token URL of another server (same
    client id, key and path) is refused even when the request's Host header
    names that server; the canonical token URL works whatever Host says."""
    port = env.st.base_url.split(":")[2].split("/")[0]
    forged_host = "auth.other.example:%s" % port
    forged_aud = "http://%s/fhir/token" % forged_host
    a = sign(env.key, claims("app", forged_aud))
    SECRETS.append(a)
    r = requests.post(env.token_url, headers={"Host": forged_host, "Accept": "application/json"},
                      data={"grant_type": "client_credentials", "scope": "system/*.read",
                            "client_assertion_type": bfsmart.ASSERTION_TYPE,
                            "client_assertion": a}, timeout=30)
    body = oauth_error(r, 401, "invalid_client")
    assert "aud" in body["error_description"]
    # the canonical aud, whatever the Host header
    a = sign(env.key, claims("app", env.token_url))
    SECRETS.append(a)
    r = requests.post(env.token_url, headers={"Host": forged_host, "Accept": "application/json"},
                      data={"grant_type": "client_credentials", "scope": "system/*.read",
                            "client_assertion_type": bfsmart.ASSERTION_TYPE,
                            "client_assertion": a}, timeout=30)
    assert r.status_code == 200, r.text
    SECRETS.append(r.json()["access_token"])
    # and discovery names the canonical token URL, not the Host's
    r = requests.get(env.st.base_url + "/.well-known/smart-configuration",
                     headers={"Host": forged_host}, timeout=10)
    assert r.status_code == 200 and r.json()["token_endpoint"] == env.token_url, r.text


def test_520_002_smart_without_base_url_fails_configtest(env, tmp_path):
    """`apache2 -t` refuses BulkFhirAuth smart without BulkFhirBaseURL (server
    level and in a <Location>), naming the directive; with it: Syntax OK."""
    httpd_conf = (env.st.dir / "httpd" / "httpd.conf").read_text()
    mod = re.search(r"^LoadModule bulkfhir_module (\S+)", httpd_conf, re.M).group(1)

    def configtest(body):
        d = tmp_path / uuid.uuid4().hex[:8]
        (d / "run").mkdir(parents=True)
        (d / "httpd.conf").write_text("\n".join([
            "ServerRoot %s" % d, "ServerName localhost", "PidFile %s/run/pid" % d,
            "DefaultRuntimeDir %s/run" % d, "ErrorLog %s/error.log" % d,
            "LoadModule mpm_event_module %s/mod_mpm_event.so" % MODDIR,
            "LoadModule authz_core_module %s/mod_authz_core.so" % MODDIR,
            "LoadModule bulkfhir_module %s" % mod,
            "Listen 127.0.0.1:1", "BulkFhirDatabase \"dbname=none\"", body, ""]))
        return subprocess.run(["/usr/sbin/apache2", "-t", "-f", str(d / "httpd.conf")],
                              capture_output=True, text=True, timeout=60)

    for body in ("BulkFhirAuth smart\n<Location /fhir>\n SetHandler bulkfhir\n</Location>",
                 "<Location /fhir>\n SetHandler bulkfhir\n BulkFhirAuth smart\n</Location>"):
        p = configtest(body)
        out = p.stderr + p.stdout
        assert p.returncode != 0 and "Syntax OK" not in out, out
        assert "BulkFhirBaseURL" in out and "BF01080" in out, out
    for body in ("BulkFhirAuth smart\nBulkFhirBaseURL https://fhir.example.org/fhir\n"
                 "<Location /fhir>\n SetHandler bulkfhir\n</Location>",
                 "<Location /fhir>\n SetHandler bulkfhir\n BulkFhirAuth smart\n"
                 " BulkFhirBaseURL https://fhir.example.org/fhir\n</Location>",
                 "<Location /fhir>\n SetHandler bulkfhir\n BulkFhirAuth none\n</Location>"):
        p = configtest(body)
        assert p.returncode == 0 and "Syntax OK" in p.stderr + p.stdout, p.stderr + p.stdout


# ---- 2. job visibility by auth mode + client id ------------------------------------
def test_520_003_job_visible_only_to_its_auth_mode(env):
    """A job created with a token: a <Location> with BulkFhirAuth none and a
    header-mode user named like the SMART client get 404 on its status,
    manifest, files and DELETE; it stays the owner's (not cancelled, files
    served).  And the header user's job is not the SMART client's."""
    app = smart_client(env, "app")
    status_url, manifest = export_done(app, "$export", {"_type": "Patient"})
    job = status_url.rsplit("/", 1)[1]
    files = [o["url"] for o in manifest["output"]]
    assert files
    rel_status = "bulkstatus/" + job
    rel_files = [u.split("/fhir/", 1)[1] for u in files]

    anon = bfclient.Client(env.root + "/openfhir")
    hdr = bfclient.Client(env.root + "/hdrfhir")
    hdr.http.auth = ("app", PASSWORDS["app"])
    for other in (anon, hdr):
        oo_404(other.get(rel_status))
        for rel in rel_files:
            oo_404(other.download(other.url(rel)))
        oo_404(other.delete(other.url(rel_status)))
    # untouched: the owner still has it
    assert env.st.psql("SELECT state, auth_mode, client_id FROM bulkfhir.job"
                       " WHERE id = :'p1'", job) == [["completed", "smart", "app"]]
    r = app.get(status_url, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    r = app.download(files[0])
    assert r.status_code == 200 and r.content

    # the header user's own job: visible to it, not to the SMART "app"
    k = hdr.kickoff("$export", params={"_type": "Patient"})
    assert k.status_code == 202, k.text
    hjob = k.headers["Content-Location"].rsplit("/", 1)[1]
    assert hdr.get("bulkstatus/" + hjob).status_code in (200, 202)
    oo_404(app.get("bulkstatus/" + hjob))
    oo_404(app.delete(app.url("bulkstatus/" + hjob)))
    oo_404(anon.get("bulkstatus/" + hjob))
    assert env.st.psql("SELECT auth_mode, client_id FROM bulkfhir.job WHERE id = :'p1'",
                       hjob) == [["header", "app"]]
    final, _ = hdr.poll(hdr.url("bulkstatus/" + hjob), timeout=120)
    assert final.status_code == 200, final.text


def test_520_010_limits_belong_to_the_auth_mode(env):
    """Per-client limits are per owner (auth mode + client id, like job
    visibility): the SMART client "app" spends 4 kick-offs of a minute, and
    the header user "app" -- whose <Location> allows 4 a minute -- may still
    start its own; before, it got 429 on the SMART client's count."""
    app = smart_client(env, "app")
    for _ in range(4):
        k = app.kickoff("$export", params={"_type": "Patient"})
        assert k.status_code == 202, k.text
        assert app.delete(k.headers["Content-Location"]).status_code == 202
    hdr = bfclient.Client(env.root + "/hdrfhir")
    hdr.http.auth = ("app", PASSWORDS["app"])
    k = hdr.kickoff("$export", params={"_type": "Patient"})
    assert k.status_code == 202, k.text
    assert hdr.delete(hdr.url("bulkstatus/" + k.headers["Content-Location"].rsplit("/", 1)[1])
                      ).status_code == 202
    # and the header user's own budget holds: its 4 a minute, then 429
    codes = []
    for _ in range(4):
        k = hdr.kickoff("$export", params={"_type": "Patient"})
        codes.append(k.status_code)
        if k.status_code == 202:
            hdr.delete(hdr.url("bulkstatus/" + k.headers["Content-Location"].rsplit("/", 1)[1]))
    assert codes[-1] == 429 and 202 not in codes[3:], codes


# ---- 3. JWKS fetch cost ----------------------------------------------------------------
def test_520_004_hanging_jwks_costs_one_fetch(env):
    """8 concurrent token requests for a client whose JWKS URL hangs (the
    module's timeout is 2 s): at most one fetch per httpd child (ServerLimit
    4; one in flight per child, the failure shared through PostgreSQL), none
    again within the negative-cache period (8 more requests, each refused
    at once); meanwhile other requests -- metadata, and a good client's
    token and a status poll, which need a pooled connection (BulkFhirPoolMax
    2) -- are each served within 1.5 s (the slow ones take 2 s)."""
    path = "/hang"
    bfsmart.register(env.st, "slow", "system/*.read", jwks_uri=env.srv.url(path))
    before = env.srv.hits.get(path, 0)
    app = smart_client(env, "app")
    k = app.kickoff("$export", params={"_type": "Patient"})
    assert k.status_code == 202, k.text
    status_url = k.headers["Content-Location"]

    def slow_token(_):
        a = sign(env.key, claims("slow", env.token_url))
        SECRETS.append(a)
        t0 = time.monotonic()
        r = token_request(env.token_url, a, timeout=30)
        return r, time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        futs = [ex.submit(slow_token, i) for i in range(8)]
        time.sleep(0.5)   # the fetches are in flight now
        others = []
        for fn in (lambda: requests.get(env.st.base_url + "/metadata", timeout=10),
                   lambda: requests.post(env.token_url, timeout=10, data={
                       "grant_type": "client_credentials", "scope": "system/*.read",
                       "client_assertion_type": bfsmart.ASSERTION_TYPE,
                       "client_assertion": env.app.assertion()}),
                   lambda: app.get(status_url, headers={"Accept": "application/json"})):
            t0 = time.monotonic()
            r = fn()
            others.append((r.status_code, time.monotonic() - t0))
        slow = [f.result(timeout=60) for f in futs]
    for r, _ in slow:
        oauth_error(r, 401, "invalid_client")
    assert [s for s, _ in others][:2] == [200, 200], others
    assert others[2][0] in (200, 202, 429), others
    assert all(t < 1.5 for _, t in others), "served meanwhile: %s" % others
    first = env.srv.hits.get(path, 0) - before
    print("test_520_004: 8 concurrent token requests: %d JWKS fetch(es), answered in"
          " %.2f-%.2f s; meanwhile metadata/token/status in %s s"
          % (first, min(t for _, t in slow), max(t for _, t in slow),
             "/".join("%.3f" % t for _, t in others)))
    assert 1 <= first <= 4, "JWKS fetches for 8 requests: %d" % first
    assert max(t for _, t in slow) < 6.0, [t for _, t in slow]

    # within the negative-cache period: refused at once, no fetch
    took_all = []
    for _ in range(8):
        r, took = slow_token(None)
        body = oauth_error(r, 401, "invalid_client")
        took_all.append(took)
        assert took < 0.5, took
        assert "not fetched again" in body["error_description"], body
    print("test_520_004: 8 more within the negative-cache period: max %.3f s, 0 fetches"
          % max(took_all))
    assert env.srv.hits.get(path, 0) - before == first
    # the failure is shared with every child (bulkfhir.jwks_cache, 0071)
    rows = env.st.psql("SELECT body IS NULL, failed_until > now(), failed_until <="
                       " now() + interval '31 seconds', failure <> '' FROM"
                       " bulkfhir.jwks_cache WHERE url = :'p1'", env.srv.url(path))
    assert rows == [["t", "t", "t", "t"]], rows


# ---- 4. JWKS URL host ------------------------------------------------------------------
def test_520_005_jwks_url_userinfo_refused(env):
    """A registered JWKS URL whose "loopback host" is really userinfo
    (http://127.0.0.1:1@127.0.0.1:PORT/...) is refused before any connection:
    the JWKS server, which would serve a valid key set there, is never
    asked.  (The unit test checks http://127.0.0.1:1@192.0.2.2/ the same
    way without any network.)  A plain loopback URL still works."""
    env.srv.publish("ui", bfsmart.jwks(env.key))
    url = "http://127.0.0.1:1@127.0.0.1:%d/jwks/ui" % env.srv.port
    bfsmart.register(env.st, "userinfo", "system/*.read", jwks_uri=url)
    before = dict(env.srv.hits)
    a = sign(env.key, claims("userinfo", env.token_url))
    SECRETS.append(a)
    t0 = time.monotonic()
    body = oauth_error(token_request(env.token_url, a), 401, "invalid_client")
    assert time.monotonic() - t0 < 1.0
    assert "JWKS URL is not allowed" in body["error_description"], body
    assert env.srv.hits == before, "the module fetched %s" % url
    # control: the same key set on a plain loopback URL
    bfsmart.register(env.st, "plainurl", "system/*.read", jwks_uri=env.srv.url("/jwks/ui"))
    a = sign(env.key, claims("plainurl", env.token_url))
    SECRETS.append(a)
    r = token_request(env.token_url, a)
    assert r.status_code == 200, r.text
    SECRETS.append(r.json()["access_token"])


# ---- 5. typ ----------------------------------------------------------------------------
def _sign_raw(key, header, payload):
    si = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    sig = key.private.sign(si.encode(), padding.PKCS1v15(), hashes.SHA384())
    return si + "." + b64url(sig)


def test_520_006_assertion_typ_required(env):
    """SMART Backend Services: the assertion header's typ is JWT.  Without
    typ (or with another value) -> 401 invalid_client; the same assertion
    with typ JWT gets a token."""
    for header in ({"alg": "RS384", "kid": env.key.kid},
                   {"alg": "RS384", "kid": env.key.kid, "typ": "JOSE"}):
        a = _sign_raw(env.key, header, claims("app", env.token_url))
        SECRETS.append(a)
        body = oauth_error(token_request(env.token_url, a), 401, "invalid_client")
        assert "typ" in body["error_description"], body
    a = _sign_raw(env.key, {"alg": "RS384", "kid": env.key.kid, "typ": "JWT"},
                  claims("app", env.token_url))
    SECRETS.append(a)
    r = token_request(env.token_url, a)
    assert r.status_code == 200, r.text
    SECRETS.append(r.json()["access_token"])


# ---- 6. organized blocks files ----------------------------------------------------------
def test_520_007_organized_blocks_follow_job_types(env):
    """A client scoped to system/Patient.rs system/Observation.rs exports
    organizeOutputBy=Patient, with those types as _type and without _type
    (then its granted types are the job's): every blocks file of its
    manifest downloads (200), holding only Patient and Observation (plus the
    block headers), every Patient of the store included.  A client whose
    scopes do not cover the job's types gets 403 on its blocks."""
    c = smart_client(env, "pair", scope="system/Patient.rs system/Observation.rs")
    for params in ({"_type": "Patient,Observation", "organizeOutputBy": "Patient"},
                   {"organizeOutputBy": "Patient"}):
        _, manifest = export_done(c, "Patient/$export", params)
        assert manifest["output"], params
        seen = {}
        for item in manifest["output"]:
            assert "/blocks." in item["url"], item
            r = c.download(item["url"])
            assert r.status_code == 200, (params, item["url"], r.status_code, r.text[:300])
            for ln in r.text.splitlines():
                res = json.loads(ln)
                seen.setdefault(res["resourceType"], set()).add(res.get("id"))
        assert set(seen) <= {"Parameters", "Patient", "Observation"}, (params, set(seen))
        assert "Observation" in seen, params
        assert seen.get("Patient") == {i for (t, i) in env.resources if t == "Patient"}
    # the same client with a narrower token: its own job, but not its types
    narrow = smart_client(env, "pair", scope="system/Patient.rs")
    wide_job, manifest = export_done(c, "Patient/$export",
                                     {"_type": "Patient,Observation",
                                      "organizeOutputBy": "Patient"})
    r = narrow.download(manifest["output"][0]["url"])
    oo = assert_operation_outcome(r, statuses=(403,))
    assert "Observation" in json.dumps(oo)


# ---- 7. TRACE ----------------------------------------------------------------------------
def test_520_008_trace_refused(env):
    """TRACE (which would echo the Authorization header) gets 405 + an
    OperationOutcome on the module's locations even with TraceEnable On;
    the example configurations and the devstack say TraceEnable Off."""
    secret = "Bearer trace-" + uuid.uuid4().hex
    for url in (env.st.base_url + "/metadata", env.st.base_url + "/bulkstatus/x",
                env.root + "/openfhir/$export", env.root + "/bulkfhir-status"):
        r = requests.request("TRACE", url, headers={"Authorization": secret}, timeout=10)
        assert r.status_code == 405, (url, r.status_code, r.text[:200])
        assert r.headers["Content-Type"].split(";")[0] == FHIR_JSON, r.headers
        assert r.json()["resourceType"] == "OperationOutcome"
        assert secret not in r.text and "trace-" not in r.text
        assert "TRACE" not in r.headers.get("Allow", "")
    for conf in (REPO / "conf" / "bulkfhir.conf", REPO / "conf" / "bulkfhir-ssl.conf",
                 env.st.dir / "httpd" / "httpd.conf"):
        assert re.search(r"(?m)^\s*TraceEnable Off\s*$", conf.read_text()), conf


# ---- 8. long ids ---------------------------------------------------------------------------
def test_520_009_long_ids_are_404_outcomes(env):
    """A 5,000-character status id, file name or path below the FHIR base is
    the module's 404 OperationOutcome (the core's file-system walk is
    skipped for the module's URLs), not httpd's 403 HTML page; a normal
    request still works."""
    c = smart_client(env, "app")
    for rel in ("bulkstatus/" + "a" * 5000,
                "bulkfiles/%s/%s.ndjson" % (uuid.uuid4(), "b" * 5000),
                "x" * 5000):
        r = c.get(rel, headers={"Accept": "application/json"})
        oo_404(r)
    r = bfclient.Client(env.root + "/openfhir").get("bulkstatus/" + "c" * 5000)
    oo_404(r)
    assert c.get("metadata").status_code == 200
