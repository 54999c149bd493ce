"""The R32 referenced-resource set of Patient/Group exports, computed once per
job into bulkfhir.job_ref (sql/0061_job_refs.sql, lib/bf_task_sql.c).

Ground truth is SQL over the store with the per-type scan the worker ran
before the set was shared: for each type X with rows outside every
compartment, the ids matched by `(^|/)X/(id){1,64}(/_history/..)?$` in the
`$.**.reference` strings of the exported compartment rows of other
requested types."""
import bfclient
from bfclient import check_files, run_export
from bfstack import HeldTransaction

GROUND_TRUTH = """
WITH x AS (SELECT DISTINCT resource_type AS t FROM fhir.resource_version
            WHERE superseded_at IS NULL AND NOT deleted AND patient_ids = '{}'
              AND resource_type <> 'Patient' AND resource_type = ANY(:'p2'::text[]))
SELECT t, rid FROM (
SELECT DISTINCT x.t, substring(rf.v #>> '{}' from
         '(?:^|/)' || x.t || '/([A-Za-z0-9.-]{1,64})(?:/_history/[^/]*)?$') AS rid
  FROM x, fhir.resource_version c,
       jsonb_path_query(c.resource, 'strict $.**.reference') rf(v)
 WHERE c.superseded_at IS NULL AND NOT c.deleted AND c.resource_type <> x.t
   AND c.resource_type = ANY(:'p2'::text[])
   AND (:'p1' = ANY(c.patient_ids) OR (c.resource_type = 'Patient' AND c.id = :'p1'))
) s WHERE rid IS NOT NULL
"""


def _outside(stack):
    rows = stack.psql("SELECT resource_type, id FROM fhir.resource_version "
                      "WHERE superseded_at IS NULL AND NOT deleted AND patient_ids = '{}'")
    return {(t, i) for t, i in rows}


def _refs_rows(stack, job_id):
    return [int(stack.psql("SELECT count(*) FROM bulkfhir.%s WHERE job_id = :'p1'" % t,
                           job_id)[0][0]) for t in ("job_ref", "job_refset")]


def test_490_001_referenced_set_is_exact(stack, client, dataset):
    """R32, R24: a Patient export for one patient with _type=<a clinical
    type>,Practitioner,Location,Organization exports exactly the Practitioner,
    Location and Organization resources referenced by that patient's
    resources of the clinical type (not those referenced by other patients'
    resources, nor by the Patient resource, which was not requested); the
    job's rows in bulkfhir.job_ref are gone once it completed."""
    outside = _outside(stack)
    pids = sorted(i for t, i in dataset["resources"] if t == "Patient")
    # a patient and a source type that reference some, but not all, of the
    # outside resources of the requested types: then the check can fail
    for src in ("Immunization", "Procedure", "Condition", "DiagnosticReport",
                "MedicationRequest", "Observation", "Encounter"):
        types = [src, "Practitioner", "Location", "Organization"]
        for pid in pids[:5]:
            want = {(t, i) for t, i in stack.psql(GROUND_TRUTH, pid, "{%s}" % ",".join(types))
                    if (t, i) in outside}
            spare = {k for k in outside if k[0] in types} - want
            if want and spare:
                break
        if want and spare:
            break
    assert want and spare, "no patient/type references a proper subset: the test could not fail"

    exp = run_export(client, path="Patient/$export", post=[
        ("patient", "valueReference", {"reference": "Patient/" + pid}),
        ("_type", "valueString", ",".join(types))])
    check_files(exp)
    got = exp.resources("output")
    dups = [k for k, v in got.items() if len(v) > 1]
    assert not dups, "exported more than once: %s" % dups[:10]
    got_outside = {k for k in got if k in outside}
    assert got_outside == want, "missing %s, extra %s" % (
        sorted(want - got_outside)[:10], sorted(got_outside - want)[:10])
    for key in got_outside:
        assert bfclient.normalize(got[key][0]) == \
            bfclient.normalize(dataset["resources"][key], dataset["links"])
    job_id = bfclient.job_of(exp.status_url)
    assert _refs_rows(stack, job_id) == [0, 0], "job_ref rows left after completion"


def test_490_002_refs_go_with_the_job(stack, client, dataset):
    """bulkfhir.job_ref/job_refset rows of a job are removed when the job is
    cancelled (DELETE on the status URL) and when the job row is deleted (the
    sweeper's expiry), so the table does not grow with the jobs served."""
    with HeldTransaction(stack):
        kick = client.kickoff("Patient/$export")
        assert kick.status_code == 202, kick.text[:500]
        status_url = kick.headers["Content-Location"]
        job_id = bfclient.job_of(status_url)
        # what a task's fill would have written (the worker waits for our xid)
        stack.psql("INSERT INTO bulkfhir.job_refset (job_id, refs) VALUES (:'p1', 1);"
                   "INSERT INTO bulkfhir.job_ref VALUES (:'p1', 'Practitioner', 'x')", job_id)
        assert _refs_rows(stack, job_id) == [1, 1]
        assert client.delete(status_url).status_code == 202
        assert _refs_rows(stack, job_id) == [0, 0], "job_ref rows left after cancel"

    exp = run_export(client, path="Patient/$export", params={"_type": "Practitioner"})
    job_id = bfclient.job_of(exp.status_url)
    stack.psql("INSERT INTO bulkfhir.job_refset (job_id, refs) VALUES (:'p1', 1);"
               "INSERT INTO bulkfhir.job_ref VALUES (:'p1', 'Practitioner', 'x')", job_id)
    stack.psql("DELETE FROM bulkfhir.job WHERE id = :'p1'", job_id)
    assert _refs_rows(stack, job_id) == [0, 0], "job_ref rows left after the job row"
