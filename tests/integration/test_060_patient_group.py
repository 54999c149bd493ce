"""Patient-level and Group-level exports (R24, R32, R12) on the shared stack.

Ground truth for "in the Patient compartment" is fhir.resource_version.
patient_ids as written by bulkfhirctl load (the loader's own tests check that
column against the R4 CompartmentDefinition); the content of every exported
resource is checked against the input files."""
import bfclient
from bfclient import assert_operation_outcome, check_files, check_manifest_shape, normalize, \
    run_export


def _compartments(stack):
    """{(type, id): set(patient ids)} for current versions in some compartment."""
    rows = stack.psql("SELECT resource_type, id, array_to_string(patient_ids, ',') "
                      "FROM fhir.resource_version WHERE superseded_at IS NULL AND NOT deleted "
                      "AND patient_ids <> '{}'")
    return {(t, i): set(p.split(",")) for t, i, p in rows}


def _check_scope(exp, dataset, must, must_not, compartment_types):
    got = exp.resources("output")
    dups = [k for k, v in got.items() if len(v) > 1]
    assert not dups, "exported more than once: %s" % dups[:10]
    missing = sorted("%s/%s" % k for k in must if k not in got)
    assert not missing, "missing %d: %s" % (len(missing), missing[:10])
    leaked = sorted("%s/%s" % k for k in must_not if k in got)
    assert not leaked, "outside the requested patients (R24): %s" % leaked[:10]
    for key, res in got.items():
        assert key in dataset["resources"], "not in the input: %s/%s" % key
        if key not in must:
            # R32 MAY: context resources outside the compartment (Organization, …)
            assert key[0] not in compartment_types or key[0] in ("Group",), \
                "unexpected compartment resource %s/%s" % key
        want = normalize(dataset["resources"][key], dataset["links"])
        assert normalize(res[0]) == want, bfclient.first_difference(normalize(res[0]), want)


def test_060_001_patient_level_export(stack, client, dataset):
    """R32: Patient/$export returns every resource in any Patient compartment
    (Patients included), each once and equal to its input."""
    comp = _compartments(stack)
    exp = run_export(client, path="Patient/$export")
    check_manifest_shape(exp, stack.base_url)
    check_files(exp)
    _check_scope(exp, dataset, set(comp), set(), {t for t, _ in comp})


def test_060_002_patient_parameter_post(stack, client, dataset):
    """R24: POST Patient/$export with patient=[Patient/x] returns x's
    compartment and nothing from any other patient's compartment."""
    comp = _compartments(stack)
    pids = sorted(i for t, i in dataset["resources"] if t == "Patient")
    assert len(pids) >= 2
    pid = pids[0]
    mine = {k for k, ps in comp.items() if pid in ps}
    others = {k for k, ps in comp.items() if pid not in ps}
    exp = run_export(client, path="Patient/$export",
                     post=[("patient", "valueReference", {"reference": "Patient/" + pid})])
    check_files(exp)
    _check_scope(exp, dataset, mine, others, {t for t, _ in comp})


def test_060_003_group_export(stack, client, dataset):
    """R32, group-export: Group/{id}/$export returns the compartments of the
    group's plain members (no period, not inactive) and nothing of patients
    who were never members."""
    comp = _compartments(stack)
    groups = [r for (t, _), r in dataset["resources"].items() if t == "Group"]
    assert groups, "the generated data has no Group"
    grp = max(groups, key=lambda g: len(g.get("member", [])))
    all_members, plain = set(), set()
    for m in grp.get("member", []):
        ref = m["entity"]["reference"]
        if not ref.startswith("Patient/"):
            continue
        pid = ref.split("/", 1)[1]
        all_members.add(pid)
        if not m.get("inactive") and "period" not in m:
            plain.add(pid)
    assert plain, "group %s has no plain member" % grp["id"]
    must = {k for k, ps in comp.items() if ps & plain}
    must_not = {k for k, ps in comp.items() if not ps & all_members}
    exp = run_export(client, path="Group/%s/$export" % grp["id"])
    check_manifest_shape(exp, stack.base_url)
    check_files(exp)
    _check_scope(exp, dataset, must, must_not, {t for t, _ in comp})


def test_060_004_unknown_group_404(stack, client, dataset):
    """R37: a kick-off for a Group that does not exist is 404 + OperationOutcome."""
    r = client.kickoff("Group/no-such-group/$export")
    assert_operation_outcome(r, statuses=(404,))


def test_060_005_patient_parameter_on_system_level_rejected(stack, client, dataset):
    """1.4 patient: not applicable to system level -> 400 + OperationOutcome."""
    r = client.kickoff_post("$export", parameters=[
        ("patient", "valueReference", {"reference": "Patient/x"})])
    assert_operation_outcome(r, statuses=(400,))
