"""System-level $export of generated data, checked against the input files
(SPEC 1.4-1.11).  The shared stack holds `bulkfhirctl generate --patients 20
--seed 7`, loaded with `bulkfhirctl load`; none of these tests change it."""
import time

import pytest

import bfclient
from bfstack import HeldTransaction
from bfclient import check_exact, check_files, check_manifest_shape, run_export


def _subset(dataset, types):
    return {k: v for k, v in dataset["resources"].items() if k[0] in types}


def test_020_001_system_export_generated(stack, client, dataset):
    """R10, R11, R36, R42, R47, R52, 1.9: GET kick-off -> 202 + absolute
    Content-Location -> 202 polls with X-Progress and Retry-After -> 200
    manifest -> every file application/fhir+ndjson, one type per file, counts
    equal lines; the output is exactly the loaded data, each resource once and
    equal to its input apart from meta.versionId/lastUpdated."""
    exp = run_export(client)
    assert exp.status_url.startswith("http://"), exp.status_url
    for r in exp.interim:
        assert r.headers.get("X-Progress"), "202 without X-Progress"
        assert len(r.headers["X-Progress"]) < 100
        assert r.headers.get("Retry-After"), "202 without Retry-After (R42)"
    check_manifest_shape(exp, stack.base_url)
    assert bfclient.request_matches(exp.manifest["request"], exp.kick.url), \
        (exp.manifest["request"], exp.kick.url)
    check_files(exp)
    check_exact(exp, dataset["resources"], dataset["links"])
    # manifest counts per type equal what was loaded, and what the store holds
    per_type = {}
    for item in exp.manifest["output"]:
        per_type[item["type"]] = per_type.get(item["type"], 0) + item.get("count", 0)
    assert per_type == bfclient.counts_by_type(dataset["resources"])
    rows = stack.psql("SELECT resource_type, count(*) FROM fhir.resource_version "
                      "WHERE superseded_at IS NULL AND NOT deleted GROUP BY 1")
    assert {t: int(n) for t, n in rows} == per_type


def test_020_002_in_progress_poll_is_202_with_headers(stack, client, dataset):
    """R42, 1.8: while the job cannot finish (an older transaction is still
    open, so the worker waits for it: invariant 1) every poll is 202 with
    X-Progress (< 100 chars) and Retry-After; once the transaction ends the
    poll turns 200 with the manifest."""
    with HeldTransaction(stack):
        kick = client.kickoff("$export", params={"_type": "Patient"})
        assert kick.status_code == 202, kick.text[:500]
        loc = kick.headers["Content-Location"]
        for _ in range(3):
            r = client.get(loc, headers={"Accept": "application/json"})
            if r.status_code == 429:        # R43: polled too fast is allowed
                assert r.headers.get("Retry-After")
                continue
            assert r.status_code == 202, r.text[:500]
            assert 0 < len(r.headers.get("X-Progress", "")) < 100, r.headers
            ra = r.headers.get("Retry-After", "")
            assert ra.isdigit(), "Retry-After %r is not delay-seconds" % ra
            time.sleep(0.3)
    final, _ = client.poll(loc)
    assert final.status_code == 200, final.text[:500]
    assert bfclient.json_body(final)["output"], "no Patient file"


def test_020_003_type_subset(stack, client, dataset):
    """R20: _type=Patient,Condition returns exactly those two types."""
    exp = run_export(client, params={"_type": "Patient,Condition"})
    check_manifest_shape(exp, stack.base_url)
    check_files(exp)
    assert {i["type"] for i in exp.manifest["output"]} == {"Patient", "Condition"}
    check_exact(exp, _subset(dataset, {"Patient", "Condition"}), dataset["links"])


def test_020_004_type_repeated(stack, client, dataset):
    """R31: a repeated _type counts as one comma-delimited list."""
    exp = run_export(client, params=[("_type", "Patient"), ("_type", "Encounter,Observation")])
    check_files(exp)
    check_exact(exp, _subset(dataset, {"Patient", "Encounter", "Observation"}),
                dataset["links"])


@pytest.mark.parametrize("fmt", ["application/fhir+ndjson", "application/ndjson", "ndjson"])
def test_020_005_output_format_aliases(stack, client, dataset, fmt):
    """R17, R18: the three NDJSON names are accepted and give NDJSON files.
    (requests percent-encodes the '+', as Inferno does.)"""
    exp = run_export(client, params={"_type": "Patient", "_outputFormat": fmt})
    check_manifest_shape(exp, stack.base_url)
    check_files(exp)
    check_exact(exp, _subset(dataset, {"Patient"}), dataset["links"])


def test_020_006_post_parameters_kickoff(stack, client, dataset):
    """R11 (POST MAY), 1.9 request: POST with a Parameters body; the manifest's
    request is the URL without parameters."""
    exp = run_export(client, post=[("_type", "valueString", "Patient,Observation"),
                                   ("_outputFormat", "valueString", "application/fhir+ndjson")])
    check_manifest_shape(exp, stack.base_url)
    check_files(exp)
    check_exact(exp, _subset(dataset, {"Patient", "Observation"}), dataset["links"])
    assert exp.manifest["request"].split("?")[0] == client.url("$export")


def test_020_007_post_repeated_type(stack, client, dataset):
    """R31: repeated _type parameters in a POST body are OR'd."""
    exp = run_export(client, post=[("_type", "valueString", "Patient"),
                                   ("_type", "valueString", "Condition")])
    check_files(exp)
    check_exact(exp, _subset(dataset, {"Patient", "Condition"}), dataset["links"])


def test_020_008_file_head_and_unknown_file(stack, client, dataset):
    """R47, R48: HEAD on a file gives the NDJSON Content-Type without a body;
    an unknown file name in a real job is 404."""
    exp = run_export(client, params={"_type": "Patient"})
    url = exp.manifest["output"][0]["url"]
    h = client.http.head(url, timeout=30)
    assert h.status_code == 200
    assert h.headers["Content-Type"].split(";")[0] == "application/fhir+ndjson"
    assert h.content == b""
    bad = url.rsplit("/", 1)[0] + "/Nothing.1.1.0.ndjson"
    assert client.download(bad).status_code == 404
    bad2 = url.rsplit("/", 1)[0] + "/..%2F..%2Fetc%2Fpasswd"
    assert client.download(bad2).status_code in (400, 403, 404)
