"""Export semantics, module side: Prefer handling (R13-R16), lenient
warnings (R60), status polling (R42-R44), Expires and expiry, manifest
items, partial manifests (R46).

Every test checks content against SQL (bulkfhir.job / bulkfhir.file) or the
exported data, not only status codes."""
import fcntl
import http.client
import json
import os
import re
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest

import bfclient
from bfclient import assert_operation_outcome, json_body
from bfclient import job_of as job_id_of
from bfstack import HeldTransaction

POLL_GAP = 0.6  # > BulkFhirMinPollInterval's default (500 ms)


def wait_claimed(stack, job_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.psql("SELECT 1 FROM bulkfhir.task WHERE job_id = :'p1' "
                      "AND locked_by IS NOT NULL", job_id):
            return
        time.sleep(0.1)


def raw_get(url, headers):
    """GET with headers given as a list of pairs (repeats kept)."""
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.putrequest("GET", u.path + ("?" + u.query if u.query else ""))
    for k, v in headers:
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    hdrs = r.headers
    c.close()
    return r.status, hdrs, body


def job_params(stack, job_id):
    return json.loads(stack.psql("SELECT params::text FROM bulkfhir.job WHERE id = :'p1'",
                                 job_id)[0][0])


# ---- Prefer and lenient (R13, R14, R60) ------------------------------------------
@pytest.mark.parametrize("prefer", [
    [("Prefer", "respond-async, handling=lenient")],
    [("Prefer", "respond-async"), ("Prefer", "handling=lenient")],
    [("Prefer", ' Respond-Async ; wait=5 , HANDLING = "Lenient" ')],
])
def test_150_001_lenient_records_warnings(stack, client, prefer):
    """R60: with handling=lenient (any spelling the RFC 7240 grammar allows,
    repeated headers included) an unknown parameter and an unsupported
    value are ignored, the job runs, and job.params._warnings names each."""
    url = client.url("$export?_type=Patient&foo=bar&_typeFilter=Patient%3F_sort%3Dname")
    status, hdrs, body = raw_get(url, [("Accept", "application/fhir+json")] + prefer)
    assert status == 202, body[:500]
    job = job_id_of(hdrs["Content-Location"])
    params = job_params(stack, job)
    warnings = params.get("_warnings")
    assert isinstance(warnings, list) and len(warnings) == 2, params
    assert any("foo" in w for w in warnings), warnings
    assert any("_typeFilter" in w for w in warnings), warnings
    assert "foo" not in params and "_typeFilter" not in params
    assert params["_type"] == ["Patient"]
    # the kick-off's OperationOutcome lists them too
    oo = json.loads(body)
    texts = [i.get("diagnostics", "") + json.dumps(i.get("details", {})) for i in oo["issue"]]
    assert sum("foo" in t for t in texts) == 1, oo
    final, _ = client.poll(hdrs["Content-Location"])
    assert final.status_code == 200


def test_150_002_strict_refuses(stack, client):
    """R22/§1.3: without lenient (or with handling=strict, which wins over
    lenient) an unknown parameter is a 400 OperationOutcome and no job."""
    before = stack.psql("SELECT count(*) FROM bulkfhir.job")[0][0]
    for prefer in ("respond-async", "respond-async, handling=strict",
                   "handling=lenient, handling=strict"):
        r = client.kickoff("$export", params={"foo": "bar"}, headers={"Prefer": prefer})
        oo = assert_operation_outcome(r, statuses=(400,))
        assert "foo" in json.dumps(oo)
    assert stack.psql("SELECT count(*) FROM bulkfhir.job")[0][0] == before


def test_150_003_patient_in_get_is_post_only(stack, client, dataset):
    """§1.4 patient: POST only in v2/v3.  A GET query with `patient` is 400;
    with handling=lenient it is honoured and a warning recorded."""
    pid = sorted(i for (t, i) in dataset["resources"] if t == "Patient")[0]
    r = client.kickoff("Patient/$export", params={"patient": "Patient/" + pid})
    oo = assert_operation_outcome(r, statuses=(400,))
    assert "POST" in json.dumps(oo)
    exp = bfclient.run_export(client, "Patient/$export",
                              params={"patient": "Patient/" + pid, "_type": "Patient"},
                              headers={"Prefer": "respond-async, handling=lenient"})
    exp.fetch_all()
    got = exp.resources()
    assert list(got) == [("Patient", pid)], list(got)[:5]
    params = job_params(stack, job_id_of(exp.status_url))
    assert params["patient"] == ["Patient/" + pid]
    assert any("patient" in w for w in params["_warnings"])


# ---- separate-export-status (R15, R16) ---------------------------------------------
def test_150_010_separate_export_status(stack, client):
    """R15: Preference-Applied lists respond-async and separate-export-status;
    R16: every status response of that job is 200 with X-Export-Status
    (202 Accepted while running, 200 OK with the manifest when done)."""
    with HeldTransaction(stack):
        kick = client.kickoff("$export", params={"_type": "Patient"},
                              headers={"Prefer": "respond-async,separate-export-status"})
        assert kick.status_code == 202, kick.text[:500]
        applied = [p.strip() for p in kick.headers.get("Preference-Applied", "").split(",")]
        assert set(applied) == {"respond-async", "separate-export-status"}, kick.headers
        loc = kick.headers["Content-Location"]
        job = job_id_of(loc)
        assert stack.psql("SELECT separate_status FROM bulkfhir.job WHERE id = :'p1'",
                          job) == [["t"]]
        r = client.get(loc)
        assert r.status_code == 200, r.text[:300]
        assert r.headers["X-Export-Status"] == "202 Accepted"
        assert re.fullmatch(r"\d+% complete", r.headers["X-Progress"])
        assert r.headers["Retry-After"].isdigit()
    deadline = time.monotonic() + 120
    while True:
        time.sleep(POLL_GAP)
        r = client.get(loc)
        assert r.status_code == 200, r.text[:300]
        if r.headers["X-Export-Status"] != "202 Accepted":
            break
        assert time.monotonic() < deadline
    assert r.headers["X-Export-Status"] == "200 OK"
    m = json_body(r)
    files = stack.psql("SELECT count(*) FROM bulkfhir.file WHERE job_id = :'p1' "
                       "AND kind = 'output'", job)[0][0]
    assert len(m["output"]) == int(files) > 0
    # a plain job keeps the plain codes
    exp = bfclient.run_export(client, params={"_type": "Patient"})
    assert "X-Export-Status" not in exp.final.headers
    assert "Preference-Applied" not in exp.kick.headers


# ---- polling (R42, R43) --------------------------------------------------------------
def test_150_020_poll_rate_429_and_progress(stack, client):
    """R42: Retry-After is an integer and X-Progress reads "<n>% complete";
    R43: a second poll within BulkFhirMinPollInterval gets 429 +
    Retry-After + OperationOutcome (throttled); waiting makes it 202 again.
    The poll time is kept on the job row."""
    with HeldTransaction(stack):
        kick = client.kickoff("$export", params={"_type": "Patient,Observation"})
        loc = kick.headers["Content-Location"]
        job = job_id_of(loc)
        wait_claimed(stack, job)
        time.sleep(POLL_GAP)
        r1 = client.get(loc)
        r2 = client.get(loc)
        assert r1.status_code == 202, r1.text[:300]
        assert r1.headers["Retry-After"].isdigit()
        m = re.fullmatch(r"(\d+)% complete", r1.headers["X-Progress"])
        assert m and 0 <= int(m.group(1)) < 100
        # nothing was written yet: the worker waits for our transaction
        assert int(m.group(1)) == 0
        oo = assert_operation_outcome(r2, statuses=(429,))
        assert oo["issue"][0]["code"] == "throttled"
        assert r2.headers["Retry-After"].isdigit() and int(r2.headers["Retry-After"]) >= 1
        last = stack.psql("SELECT last_poll_at IS NOT NULL FROM bulkfhir.job "
                          "WHERE id = :'p1'", job)
        assert last == [["t"]]
        time.sleep(POLL_GAP)
        assert client.get(loc).status_code == 202
    final, _ = client.poll(loc)
    assert final.status_code == 200
    # a completed job is not throttled: the manifest may be read at once
    assert client.get(loc).status_code == 200
    assert client.get(loc).status_code == 200


# ---- Expires and expiry -----------------------------------------------------------------
def test_150_030_expires_and_expiry(stack, client):
    """§1.8: Expires = finished_at + BulkFhirFileLifetime, as job.expires_at
    (set by the 0030 trigger from the lifetime stored at kick-off).  Once
    expires_at has passed, status and files answer 410 + OperationOutcome."""
    exp = bfclient.run_export(client, params={"_type": "Patient"})
    job = job_id_of(exp.status_url)
    row = stack.psql("SELECT file_lifetime, extract(epoch FROM expires_at - finished_at), "
                     "extract(epoch FROM expires_at)::bigint FROM bulkfhir.job "
                     "WHERE id = :'p1'", job)[0]
    assert row[0] == "3600" and float(row[1]) == 3600.0, row
    expires = parsedate_to_datetime(exp.final.headers["Expires"]).timestamp()
    assert abs(expires - int(row[2])) <= 1
    url = exp.manifest["output"][0]["url"]
    assert client.download(url).status_code == 200
    # the status may come from BulkFhirStatusCache (devstack: on, 1 s) for
    # up to its timeout (test_470 checks that bound); meanwhile a shared
    # flock on one of the job's files keeps the sweeper from removing it
    fd = os.open(stack.export_root / job / (url.rsplit("/", 1)[1] + ".gz"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        stack.psql("UPDATE bulkfhir.job SET expires_at = now() - interval '1 second' "
                   "WHERE id = :'p1'", job)
        assert_operation_outcome(client.download(url), statuses=(410,))
        deadline = time.monotonic() + 3
        r = client.get(exp.status_url)
        while r.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = client.get(exp.status_url)
        assert_operation_outcome(r, statuses=(410,))
    finally:
        os.close(fd)


# ---- partial manifests (R46) ------------------------------------------------------------
def _fake_file(stack, job, name):
    stack.psql("INSERT INTO bulkfhir.file (job_id, task_id, kind, resource_type, part, "
               "name, count, bytes) SELECT :'p1', min(id), 'output', 'Patient', 0, :'p2', 1, 1 "
               "FROM bulkfhir.task WHERE job_id = :'p1'", job, name)


def test_150_040_partial_manifest_pages(stack, client):
    """R46: with allowPartialManifests=true a running job answers 202 +
    application/json + a manifest of the files published so far, with a
    `next` link; a page once served never changes (byte-identical);
    the final page comes with 200 when the job completes and the union of
    the pages is exactly the job's files.  (Files are added to the running
    job by SQL here so that the page boundaries are deterministic.)"""
    held = HeldTransaction(stack)
    try:
        kick = client.kickoff("$export", params={"_type": "Patient",
                                                 "allowPartialManifests": "true"})
        assert kick.status_code == 202, kick.text[:500]
        loc = kick.headers["Content-Location"]
        job = job_id_of(loc)
        assert job_params(stack, job)["allowPartialManifests"] is True
        wait_claimed(stack, job)
        r = client.get(loc)       # nothing published yet: plain 202
        assert r.status_code == 202 and not r.content
        _fake_file(stack, job, "Fake.1.0.1.ndjson")
        time.sleep(POLL_GAP)
        p1 = client.get(loc)
        assert p1.status_code == 202, p1.text[:300]
        assert p1.headers["Content-Type"].startswith("application/json")
        m1 = json_body(p1)
        assert [o["url"].rsplit("/", 1)[1] for o in m1["output"]] == ["Fake.1.0.1.ndjson"]
        assert m1["link"] == [{"relation": "next", "url": loc + "?page=2"}]
        assert m1["error"] == [] and m1["transactionTime"] and m1["request"]
        _fake_file(stack, job, "Fake.1.0.2.ndjson")
        time.sleep(POLL_GAP)
        again = client.get(loc)                  # page 1 does not change
        assert again.content == p1.content
        time.sleep(POLL_GAP)
        p2 = client.get(loc + "?page=2")
        assert p2.status_code == 202
        m2 = json_body(p2)
        assert [o["url"].rsplit("/", 1)[1] for o in m2["output"]] == ["Fake.1.0.2.ndjson"]
        assert m2["link"][0]["url"] == loc + "?page=3"
        for k in ("transactionTime", "request", "requiresAccessToken"):
            assert m2[k] == m1[k]
        time.sleep(POLL_GAP)
        assert client.get(loc + "?page=3").status_code == 202   # nothing new yet
        time.sleep(POLL_GAP)
        assert_operation_outcome(client.get(loc + "?page=x"), statuses=(400,))
    finally:
        held.end()
    # the worker now exports and completes the job
    deadline = time.monotonic() + 120
    while stack.psql("SELECT state FROM bulkfhir.job WHERE id = :'p1'", job)[0][0] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    p3 = client.get(loc + "?page=3")
    assert p3.status_code == 200, p3.text[:300]
    m3 = json_body(p3)
    assert "link" not in m3
    assert p3.headers.get("Expires")
    # earlier pages are unchanged, now served as the complete job's pages
    assert client.get(loc).content == p1.content
    assert client.get(loc + "?page=2").content == p2.content
    assert_operation_outcome(client.get(loc + "?page=4"), statuses=(404,))
    union = [o["url"] for m in (m1, m2, m3) for o in m["output"] + m["error"] +
             m.get("deleted", [])]
    assert len(union) == len(set(union))
    names = {r[0] for r in stack.psql("SELECT name FROM bulkfhir.file WHERE job_id = :'p1'",
                                      job)}
    assert {u.rsplit("/", 1)[1] for u in union} == names
    pages = stack.psql("SELECT page, final FROM bulkfhir.manifest_page WHERE job_id = :'p1' "
                       "ORDER BY page", job)
    assert pages == [["1", "f"], ["2", "f"], ["3", "t"]]
    stack.psql("DELETE FROM bulkfhir.file WHERE job_id = :'p1' AND name LIKE 'Fake.%'", job)


def test_150_041_partial_union_equals_plain_export(stack, client):
    """R46 with the real worker: the pages of an allowPartialManifests job,
    followed through `next`, list the same resources as a plain export."""
    plain = bfclient.run_export(client, params={"_type": "Patient,Encounter"}).fetch_all()
    kick = client.kickoff("$export", params={"_type": "Patient,Encounter",
                                             "allowPartialManifests": "true"})
    loc = kick.headers["Content-Location"]
    final, _ = client.poll(loc)
    items, url, seen = [], loc, 0
    m = json_body(final)
    while True:
        items += m["output"]
        seen += 1
        if "link" not in m:
            break
        url = m["link"][0]["url"]
        time.sleep(POLL_GAP)
        r = client.get(url)
        assert r.status_code == 200, r.text[:300]
        m = json_body(r)
    got = {}
    for it in items:
        for ln in client.download(it["url"]).content.decode().splitlines():
            res = json.loads(ln)
            got[(res["resourceType"], res["id"])] = res
    assert set(got) == set(plain.resources())


# ---- organizeOutputBy (R30, R53) ------------------------------------------------------
def test_150_050_organize_output_by_patient(stack, client, dataset):
    """R30, R53, §1.9: organizeOutputBy=Patient -> the job has only
    'organized' tasks; the manifest has outputOrganizedBy and items without
    type; the files hold one block per patient (header, Patient, its
    compartment resources) and together the same resources as the plain
    Patient-level export of the same types."""
    types = "Patient,Condition,Encounter"
    plain = bfclient.run_export(client, "Patient/$export", params={"_type": types}).fetch_all()
    exp = bfclient.run_export(client, "Patient/$export",
                              params={"_type": types, "organizeOutputBy": "Patient"})
    job = job_id_of(exp.status_url)
    kinds = stack.psql("SELECT DISTINCT kind, resource_type FROM bulkfhir.task "
                       "WHERE job_id = :'p1'", job)
    assert kinds == [["organized", "Patient"]]
    m = exp.manifest
    assert m["outputOrganizedBy"] == "Patient"
    assert m["output"] and all("type" not in o for o in m["output"])
    exp.fetch_all()
    got, blocks = {}, set()
    for item in m["output"]:
        lines = exp.files[item["url"]][1]
        pid = None
        for ln in lines:
            if ln["resourceType"] == "Parameters":
                ref = ln["parameter"][0]["valueReference"]["reference"]
                pid = ref.split("/", 1)[1]
                blocks.add(pid)
                continue
            got[(ln["resourceType"], ln["id"])] = ln
        if "continuesInFile" in item:
            nxt = exp.files[item["continuesInFile"]][1]
            assert nxt[0]["parameter"][0]["valueReference"]["reference"] == "Patient/" + pid
    assert set(got) == set(plain.resources())
    assert blocks == {i for (t, i) in plain.resources() if t == "Patient"}
    # the unsupported organizing types are refused (400) without lenient
    r = client.kickoff("Patient/$export", params={"organizeOutputBy": "Encounter"})
    assert_operation_outcome(r, statuses=(400,))


# ---- parameters: aliases and repeats (R18, R31) -------------------------------------------
def test_150_060_output_format_aliases_and_repeats(stack, client):
    """R18: application/fhir+ndjson (also with its '+' left unencoded, which
    form-decodes to a space), application/ndjson and ndjson are accepted and
    stored as application/fhir+ndjson; R31: a repeated _type is the comma
    list of its values."""
    for raw in ("application/fhir+ndjson", "application%2Ffhir%2Bndjson",
                "application/ndjson", "ndjson"):
        status, hdrs, body = raw_get(
            client.url("$export?_type=Patient&_type=Condition,Patient&_outputFormat=" + raw),
            [("Accept", "application/fhir+json"), ("Prefer", "respond-async")])
        assert status == 202, (raw, body[:300])
        params = job_params(stack, job_id_of(hdrs["Content-Location"]))
        assert params["_outputFormat"] == "application/fhir+ndjson"
        assert params["_type"] == ["Patient", "Condition"]
        assert client.delete(hdrs["Content-Location"]).status_code == 202  # frees the slot
    r = client.kickoff("$export", params={"_outputFormat": "text/csv"})
    oo = assert_operation_outcome(r, statuses=(400,))
    assert "_outputFormat" in json.dumps(oo)
