"""SHALLs of SPEC §1 not covered elsewhere: Binary (R33), partial success
(R45, R56), capability URLs without tokens (R50), attachments (R57-R59).
Content is compared with the loaded data or with SQL over the store."""
import base64
import json
import re

import pytest

import bfclient
from bfclient import run_export
from conftest import generate_and_load


def test_160_001_attachments_complete(client, stack, dataset):
    """R57, R58, R59: every Attachment in exported DocumentReferences has a
    contentType and either data (valid base64 that decodes) or an absolute
    URL; with requiresAccessToken false, no credential is needed for it."""
    exp = run_export(client, params={"_type": "DocumentReference"})
    docs = exp.resources()
    want = {k for k in dataset["resources"] if k[0] == "DocumentReference"}
    assert set(docs) == want and want, "DocumentReference export differs from the loaded data"
    seen = 0
    for (_t, _id), [doc] in docs.items():
        for content in doc.get("content", []):
            att = content["attachment"]
            seen += 1
            assert att.get("contentType"), att
            if "data" in att:
                base64.b64decode(att["data"], validate=True)
            else:
                assert re.match(r"^https?://", att.get("url", "")), att   # R58
                assert client.get(att["url"]).status_code == 200          # R59
    assert seen > 0


def test_160_002_partial_success_is_200_with_error_file(client, stack, dataset):
    """R45, R56: a job that ignored a parameter (lenient) completes with 200,
    its output is complete, and the problem is an OperationOutcome line in an
    `error` file (NDJSON, application/fhir+ndjson) rather than a failure."""
    exp = run_export(client, params={"_type": "Patient", "nonsense": "1"},
                     headers={"Prefer": "respond-async, handling=lenient"})
    assert exp.final.status_code == 200
    pats = exp.resources()
    assert set(pats) == {k for k in dataset["resources"] if k[0] == "Patient"}
    assert exp.manifest["error"], exp.manifest
    lines = []
    for item in exp.manifest["error"]:
        assert item["type"] == "OperationOutcome"
        r, parsed = exp.files[item["url"]]
        assert r.status_code == 200
        assert r.headers["Content-Type"].split(";")[0] == bfclient.NDJSON
        lines += parsed
    assert lines and all(oo["resourceType"] == "OperationOutcome" and oo["issue"]
                         for oo in lines)
    assert any("nonsense" in json.dumps(oo) for oo in lines), lines


def test_160_003_capability_urls_without_token(client, stack, dataset):
    """R50: with requiresAccessToken false (BulkFhirAuth none) the file URLs
    are directly dereferenceable capability URLs: absolute, unguessable (a
    random job UUID in the path), served without any credential; once the
    export is deleted the same URL no longer serves the file."""
    exp = run_export(client, params={"_type": "Patient"})
    assert exp.manifest["requiresAccessToken"] is False
    url = exp.manifest["output"][0]["url"]
    assert re.search(r"/bulkfiles/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/", url), url
    import requests
    r = requests.get(url, timeout=30)        # no Authorization, no cookies
    assert r.status_code == 200 and r.content
    assert client.delete(exp.status_url).status_code == 202
    assert requests.get(url, timeout=30).status_code in (404, 410)


def test_160_004_binary_never_in_patient_exports(new_stack):
    """R33: a patient-associated Binary is never exported as a Binary from a
    Patient-level export (Binary is in no Patient compartment; the clinical
    content travels as DocumentReference with content.attachment); at system
    level a Binary MAY appear and does."""
    st = new_stack()
    resources, _links, files = generate_and_load(st, patients=3, seed=11)
    pid = next(i for (t, i) in resources if t == "Patient")
    binary = {"resourceType": "Binary", "id": "bin-1", "contentType": "text/plain",
              "securityContext": {"reference": "Patient/%s" % pid},
              "data": base64.b64encode(b"note").decode()}
    path = st.dir / "binary.ndjson"
    path.write_text(json.dumps(binary) + "\n")
    st.ctl("load", path)
    c = bfclient.Client(st.base_url)
    pat = run_export(c, path="Patient/$export")
    assert not any(t == "Binary" for (t, _i) in pat.resources())
    assert any(t == "DocumentReference" for (t, _i) in pat.resources())
    sysx = run_export(c, params={"_type": "Binary"})
    assert set(sysx.resources()) == {("Binary", "bin-1")}


def _params(*refs):
    return [("patient", "valueReference", {"reference": r}) for r in refs]


def test_160_005_patient_list_checked(client, stack, dataset):
    """SPEC §1.4 `patient` (SHOULD): a listed patient that does not exist, or
    for a Group export is not an active member, is a 400 OperationOutcome
    naming it; known patients and members are accepted (202)."""
    res = dataset["resources"]
    pids = sorted(i for (t, i) in res if t == "Patient")
    groups = [r for (t, _i), r in res.items() if t == "Group"]
    # a Group with at least one active Patient member, and a patient outside it
    for g in groups:
        members = {m["entity"]["reference"].split("/")[-1] for m in g.get("member", [])
                   if not m.get("inactive") and "entity" in m}
        outside = [p for p in pids if p not in members]
        if members and outside:
            break
    else:
        pytest.skip("the generated data has no Group with a patient outside it")
    member = sorted(members)[0]

    r = client.kickoff_post("Patient/$export", parameters=_params("Patient/no-such-patient"))
    oo = bfclient.assert_operation_outcome(r, statuses=(400,))
    assert "no-such-patient" in json.dumps(oo)

    r = client.kickoff_post("Group/%s/$export" % g["id"],
                            parameters=_params("Patient/%s" % outside[0]))
    oo = bfclient.assert_operation_outcome(r, statuses=(400,))
    assert outside[0] in json.dumps(oo)

    for path, ref in (("Patient/$export", pids[0]), ("Group/%s/$export" % g["id"], member)):
        r = client.kickoff_post(path, parameters=_params("Patient/%s" % ref))
        assert r.status_code == 202, r.text[:500]
        assert client.delete(r.headers["Content-Location"]).status_code == 202
