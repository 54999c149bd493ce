"""DELETE (R39-R41), unknown jobs, and malformed kick-offs (R37): every error
is a 4xx with an OperationOutcome body, never a 500."""
import time
import uuid

import pytest

import bfclient
from bfstack import HeldTransaction
from bfclient import assert_operation_outcome


def test_040_001_delete_then_status_404(stack, client, dataset):
    """R39, R41: DELETE on a job in progress -> 202; every later poll -> 404
    with an OperationOutcome.  The job is held in progress by an open
    transaction (the worker waits for it, invariant 1) so the DELETE really
    cancels running work; afterwards the worker goes on with other jobs."""
    with HeldTransaction(stack):
        kick = client.kickoff("$export")
        assert kick.status_code == 202, kick.text[:500]
        loc = kick.headers["Content-Location"]
        job_id = loc.rstrip("/").rsplit("/", 1)[1]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not stack.psql(
                "SELECT 1 FROM bulkfhir.task WHERE job_id = :'p1' AND locked_by IS NOT NULL",
                job_id):
            time.sleep(0.1)
        d = client.delete(loc)
        assert d.status_code == 202, d.text[:500]
        for _ in range(2):
            r = client.get(loc, headers={"Accept": "application/json"})
            assert_operation_outcome(r, statuses=(404,))
    # the worker is free again: a new export completes (and flushes its log)
    exp = bfclient.run_export(client, params={"_type": "Patient"})
    assert exp.manifest["output"]
    assert_operation_outcome(client.get(loc), statuses=(404,))
    rows = stack.psql("SELECT count(*) FROM bulkfhir.file WHERE job_id = :'p1'", job_id)
    assert rows == [["0"]], "files were published for a cancelled job"


def test_040_002_delete_completed_job(stack, client, dataset):
    """R39, R41: DELETE after completion -> 202, then status 404 and the
    files are gone (404/410)."""
    exp = bfclient.run_export(client, params={"_type": "Patient"})
    d = client.delete(exp.status_url)
    assert d.status_code == 202, d.text[:500]
    assert_operation_outcome(client.get(exp.status_url), statuses=(404,))
    url = exp.manifest["output"][0]["url"]
    assert client.download(url).status_code in (404, 410)


def test_040_003_unknown_job_404(stack, client):
    """R41 shape for a job that never existed: 404 + OperationOutcome, for
    GET and DELETE; a malformed job id is 400 or 404."""
    loc = client.url("bulkstatus/%s" % uuid.uuid4())
    assert_operation_outcome(client.get(loc), statuses=(404,))
    assert_operation_outcome(client.delete(loc), statuses=(404,))
    assert_operation_outcome(client.get(client.url("bulkstatus/not-a-uuid")), statuses=(400, 404))


@pytest.mark.parametrize("name,params", [
    ("bad_since", {"_since": "yesterday"}),
    ("bad_since_date_only_garbage", {"_since": "2020-13-45T99:00:00Z"}),
    ("unknown_type", {"_type": "Patient,NoSuchType"}),
    ("bad_output_format", {"_outputFormat": "text/csv"}),
    ("unknown_parameter", {"_foo": "bar"}),
])
def test_040_004_malformed_get_kickoff(stack, client, name, params):
    """R37, R18, R22, R23, 1.3 handling: a GET kick-off the server cannot
    honour (without Prefer: handling=lenient) -> 4xx + OperationOutcome."""
    r = client.kickoff("$export", params=params)
    assert_operation_outcome(r, statuses=(400, 422))


@pytest.mark.parametrize("name,body", [
    ("not_json", "this is not json"),
    ("not_parameters", '{"resourceType":"Patient","id":"x"}'),
    ("parameter_not_array", '{"resourceType":"Parameters","parameter":{"name":"_type"}}'),
    ("type_wrong_value_kind", '{"resourceType":"Parameters","parameter":'
                              '[{"name":"_type","valueInteger":3}]}'),
    ("since_not_instant", '{"resourceType":"Parameters","parameter":'
                          '[{"name":"_since","valueInstant":"soon"}]}'),
])
def test_040_005_malformed_post_kickoff(stack, client, name, body):
    """R37, R11: a POST kick-off whose body is not a usable Parameters
    resource -> 4xx + OperationOutcome."""
    r = client.kickoff_post("$export", body=body)
    assert_operation_outcome(r, statuses=(400, 415, 422))


def test_040_006_wrong_method(stack, client):
    """R37: PUT on $export is refused with 405 + OperationOutcome."""
    r = client.http.put(client.url("$export"), data="{}", timeout=30,
                        headers={"Content-Type": "application/fhir+json",
                                 "Accept": "application/fhir+json"})
    assert_operation_outcome(r, statuses=(405,))
