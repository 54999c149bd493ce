"""includeAssociatedData (SPEC §1.4, R25-R27) on the shared stack.

The generated data has one Provenance per Encounter whose `target` lists the
Encounter and the resources recorded in it, and for about 1 in 5 encounters a
later amendment with the same targets, so "latest" and "relevant" differ.
Every expected set is computed here from the generated input (and, for
Patient compartments, from fhir.resource_version.patient_ids as written by
the loader); the content of every exported resource is compared with its
input (check_exact)."""
import json

import bfclient
from bfclient import assert_operation_outcome, check_exact, check_files, run_export

LATEST = "LatestProvenanceResources"
RELEVANT = "RelevantProvenanceResources"


def _provenance(dataset):
    return {k: r for k, r in dataset["resources"].items() if k[0] == "Provenance"}


def _targets(prov):
    out = set()
    for t in prov.get("target", []):
        typ, _, rid = t.get("reference", "").partition("/")
        out.add((typ, rid))
    return out


def _relevant(dataset, exported):
    """Provenance whose target is one of the exported (type, id) keys."""
    return {k: r for k, r in _provenance(dataset).items() if _targets(r) & exported}


def _latest(dataset, exported):
    """Per exported target, the Provenance with the greatest `recorded`."""
    best = {}
    for k, r in _provenance(dataset).items():
        when = bfclient.parse_instant(r["recorded"])
        for tgt in _targets(r) & exported:
            if tgt not in best or when > best[tgt][0]:
                best[tgt] = (when, [k])
            elif when == best[tgt][0]:
                best[tgt][1].append(k)
    keys = {k for _, ks in best.values() for k in ks}
    return {k: dataset["resources"][k] for k in keys}


def _of_type(dataset, *types):
    return {k: r for k, r in dataset["resources"].items() if k[0] in types}


def _job_params(stack, exp):
    job = exp.status_url.rstrip("/").rsplit("/", 1)[1]
    rows = stack.psql("SELECT params::text, (SELECT string_agg(resource_type, ',' ORDER BY"
                      " resource_type) FROM bulkfhir.task t WHERE t.job_id = j.id)"
                      " FROM bulkfhir.job j WHERE j.id = :'p1'", job)
    return json.loads(rows[0][0]), set(rows[0][1].split(","))


def _compartment_of(stack, pids):
    rows = stack.psql("SELECT resource_type, id FROM fhir.resource_version WHERE superseded_at"
                      " IS NULL AND NOT deleted AND patient_ids && string_to_array(:'p1', ',')",
                      ",".join(pids))
    return {(t, i) for t, i in rows} | {("Patient", p) for p in pids}


def test_110_001_relevant_system(stack, client, dataset):
    """R25: _type=Encounter&includeAssociatedData=RelevantProvenanceResources
    exports the Encounters and exactly the Provenance that target them; the
    job keeps the client's _type and gets a Provenance task."""
    enc = _of_type(dataset, "Encounter")
    want = _relevant(dataset, set(enc))
    assert want and len(want) < len(_provenance(dataset)) + 1
    exp = run_export(client, params={"_type": "Encounter", "includeAssociatedData": RELEVANT})
    check_files(exp)
    check_exact(exp, {**enc, **want}, dataset["links"])
    params, tasks = _job_params(stack, exp)
    assert params["_type"] == ["Encounter"] and params["includeAssociatedData"] == [RELEVANT]
    assert tasks == {"Encounter", "Provenance"}


def test_110_002_latest_system(stack, client, dataset):
    """R25: LatestProvenanceResources exports, per exported Encounter, only
    its most recently recorded Provenance (amendments replace the
    original)."""
    enc = _of_type(dataset, "Encounter")
    want = _latest(dataset, set(enc))
    relevant = _relevant(dataset, set(enc))
    assert want and len(want) < len(relevant), "the data has no amended Provenance"
    exp = run_export(client, params={"_type": "Encounter", "includeAssociatedData": LATEST})
    check_files(exp)
    check_exact(exp, {**enc, **want}, dataset["links"])


def test_110_003_both_means_relevant(stack, client, dataset):
    """R26: Latest and Relevant together (repeated and as a comma list):
    the least restrictive, Relevant, applies."""
    enc = _of_type(dataset, "Encounter")
    want = {**enc, **_relevant(dataset, set(enc))}
    exp = run_export(client, params=[("_type", "Encounter"),
                                     ("includeAssociatedData", LATEST),
                                     ("includeAssociatedData", RELEVANT)])
    check_exact(exp, want, dataset["links"])
    exp = run_export(client, params={"_type": "Encounter",
                                     "includeAssociatedData": RELEVANT + "," + LATEST})
    check_exact(exp, want, dataset["links"])


def test_110_004_patient_level_post(stack, client, dataset):
    """R25 with R24: POST Patient/$export with a patient list, _type
    Condition,Procedure and includeAssociatedData (valueCode, and v4
    valueCoding) exports only the Provenance of those patients' exported
    Conditions and Procedures."""
    pids = sorted(i for t, i in dataset["resources"] if t == "Patient")[:2]
    comp = _compartment_of(stack, pids)
    exported = {k: r for k, r in _of_type(dataset, "Condition", "Procedure").items()
                if k in comp}
    assert exported
    base = [("patient", "valueReference", {"reference": "Patient/" + p}) for p in pids] + \
        [("_type", "valueString", "Condition,Procedure")]
    exp = run_export(client, path="Patient/$export",
                     post=base + [("includeAssociatedData", "valueCode", RELEVANT)])
    check_files(exp)
    want = _relevant(dataset, set(exported))
    assert want
    check_exact(exp, {**exported, **want}, dataset["links"])
    exp = run_export(client, path="Patient/$export",
                     post=base + [("includeAssociatedData", "valueCoding",
                                   {"system": "http://hl7.org/fhir/uv/bulkdata/CodeSystem/"
                                              "include-associated-data", "code": LATEST})])
    check_exact(exp, {**exported, **_latest(dataset, set(exported))}, dataset["links"])


def test_110_005_unsupported_value(stack, client, dataset):
    """R25: a value the server does not support (including a _custom one) is
    refused with 400 + OperationOutcome; with handling=lenient the job runs
    without associated data and the error file carries the warning (R60)."""
    for v in ("_custom", "LatestProvenanceResources,Bogus"):
        r = client.kickoff(params={"_type": "Encounter", "includeAssociatedData": v})
        oo = assert_operation_outcome(r, (400,))
        assert "includeAssociatedData" in json.dumps(oo)
    r = client.kickoff_post(parameters=[("includeAssociatedData", "valueCode", "_custom")])
    assert_operation_outcome(r, (400,))
    exp = run_export(client, params={"_type": "Encounter", "includeAssociatedData": "_custom"},
                     headers={"Prefer": "respond-async, handling=lenient"})
    check_files(exp)
    check_exact(exp, _of_type(dataset, "Encounter"), dataset["links"])
    diags = [o["issue"][0]["diagnostics"] for item in exp.manifest.get("error", [])
             for o in exp.files[item["url"]][1]]
    assert any("includeAssociatedData" in d and "_custom" in d for d in diags), diags


def test_110_006_default_system(stack, client, dataset):
    """R27: without includeAssociatedData a system export whose _type omits
    Provenance has none; one that names it has all of it."""
    exp = run_export(client, params={"_type": "Encounter"})
    check_exact(exp, _of_type(dataset, "Encounter"), dataset["links"])
    exp = run_export(client, params={"_type": "Encounter,Provenance",
                                     "includeAssociatedData": LATEST})
    check_exact(exp, _of_type(dataset, "Encounter", "Provenance"), dataset["links"])


def test_110_007_default_patient_level(stack, client, dataset):
    """R27: a Patient-level export (no includeAssociatedData) includes the
    Provenance whose target is in an exported Patient compartment, and no
    Provenance of other patients."""
    pids = sorted(i for t, i in dataset["resources"] if t == "Patient")[:1]
    comp = _compartment_of(stack, pids)
    want = _relevant(dataset, comp)
    others = set(_provenance(dataset)) - set(want)
    assert want and others
    exp = run_export(client, path="Patient/$export",
                     post=[("patient", "valueReference", {"reference": "Patient/" + pids[0]}),
                           ("_type", "valueString", "Encounter,Provenance")])
    check_files(exp)
    got = {k for k in exp.resources("output") if k[0] == "Provenance"}
    assert got == set(want), (len(got), len(want))
    # without _type: the whole compartment plus its Provenance
    exp = run_export(client, path="Patient/$export",
                     post=[("patient", "valueReference", {"reference": "Patient/" + pids[0]})])
    got = {k for k in exp.resources("output") if k[0] == "Provenance"}
    assert got == set(want)


def test_110_008_capability_documents_values(client):
    """R64: the CapabilityStatement narrative names the supported
    includeAssociatedData values."""
    doc = bfclient.json_body(client.get("metadata"))["rest"][0]["documentation"]
    assert "includeAssociatedData" in doc and LATEST in doc and RELEVANT in doc
