"""Export semantics on the shared stack (read-only): _type (R20), _typeFilter
(R28, R29) against the same filters computed in Python over the input files,
_elements, the `patient` list (R24), Group membership at transactionTime and
the referenced context resources of Patient/Group exports (R32).

Ground truth: the loaded input files (dataset) and fhir.resource_version."""
import re
from datetime import datetime, timezone

import bfclient
from bfclient import check_files, check_manifest_shape, normalize, run_export

COMPARTMENT_SQL = ("SELECT resource_type, id, array_to_string(patient_ids, ',') "
                   "FROM fhir.resource_version WHERE superseded_at IS NULL AND NOT deleted "
                   "AND patient_ids <> '{}'")


def _compartments(stack):
    return {(t, i): set(p.split(",")) for t, i, p in stack.psql(COMPARTMENT_SQL)}


def _of_type(dataset, t):
    return {k[1]: r for k, r in dataset["resources"].items() if k[0] == t}


def _ids(exp, t):
    got = exp.resources("output")
    dups = [k for k, v in got.items() if len(v) > 1]
    assert not dups, "exported more than once: %s" % dups[:5]
    return {k[1] for k in got if k[0] == t}


def _codes(cc):
    return [(c.get("system"), c.get("code")) for c in (cc or {}).get("coding", [])]


def _refs(v):
    """Every Reference.reference string inside v."""
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "reference" and isinstance(x, str):
                yield x
            else:
                yield from _refs(x)
    elif isinstance(v, list):
        for x in v:
            yield from _refs(x)


def _when(s):
    if len(s) == 4:
        s += "-01-01"
    if len(s) == 7:
        s += "-01"
    if len(s) == 10:
        s += "T00:00:00+00:00"
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_100_001_type_only_listed(stack, client, dataset):
    """R20: _type=Patient,Condition returns exactly every Patient and every
    Condition of the store and nothing else."""
    exp = run_export(client, params={"_type": "Patient,Condition"})
    check_manifest_shape(exp, stack.base_url)
    check_files(exp)
    got = exp.resources("output")
    assert {k[0] for k in got} == {"Patient", "Condition"}
    for t in ("Patient", "Condition"):
        assert _ids(exp, t) == set(_of_type(dataset, t))
    for it in exp.manifest["output"]:
        assert it["type"] in ("Patient", "Condition")


TYPEFILTERS = [
    ("Observation?category=laboratory",
     lambda r: any(c == "laboratory" for cat in r.get("category", []) for _, c in _codes(cat))),
    ("MedicationRequest?status=active", lambda r: r.get("status") == "active"),
    ("Condition?clinical-status=active",
     lambda r: any(c == "active" for _, c in _codes(r.get("clinicalStatus")))),
    # ge: the period (an open end is +infinity) reaches 2020-01-01 or later
    ("Encounter?date=ge2020-01-01",
     lambda r: "period" in r and (
         "end" not in r["period"]
         or _when(r["period"]["end"]) >= datetime(2020, 1, 1, tzinfo=timezone.utc))),
    ("Observation?code=http://loinc.org|8867-4",
     lambda r: ("http://loinc.org", "8867-4") in _codes(r.get("code"))),
    ("Condition?abatement-date:missing=true", lambda r: "abatementDateTime" not in r
     and "abatementPeriod" not in r),
]


def test_100_002_typefilter_matches_python(stack, client, dataset):
    """R28: each _typeFilter keeps exactly the resources of its type that
    the same search computed in Python over the input keeps."""
    for flt, pred in TYPEFILTERS:
        t = flt.split("?", 1)[0]
        want = {i for i, r in _of_type(dataset, t).items() if pred(r)}
        assert want and want != set(_of_type(dataset, t)), "filter %s selects nothing/all" % flt
        exp = run_export(client, params={"_type": t, "_typeFilter": flt})
        check_files(exp)
        got = _ids(exp, t)
        assert got == want, "%s: %d extra %s, %d missing %s" % (
            flt, len(got - want), sorted(got - want)[:3], len(want - got), sorted(want - got)[:3])


def test_100_003_typefilter_reference_and_or(stack, client, dataset):
    """R28 (reference), R29: two filters of one type are ORed, a type
    without a filter is exported whole."""
    pids = sorted(_of_type(dataset, "Patient"))
    a, b = pids[0], pids[1]
    obs = _of_type(dataset, "Observation")
    want = {i for i, r in obs.items()
            if r.get("subject", {}).get("reference") in ("Patient/" + a, "Patient/" + b)}
    exp = run_export(client, post=[
        ("_type", "valueString", "Observation,Practitioner"),
        ("_typeFilter", "valueString", "Observation?subject=Patient/" + a),
        ("_typeFilter", "valueString", "Observation?subject=Patient/" + b)])
    check_files(exp)
    assert _ids(exp, "Observation") == want and want
    assert _ids(exp, "Practitioner") == set(_of_type(dataset, "Practitioner"))


def test_100_004_elements(stack, client, dataset):
    """1.4 _elements: only the listed elements plus mandatory ones
    (Encounter.status, Encounter.class) and resourceType/id/meta, tagged
    SUBSETTED; other types keep their bare-listed elements."""
    exp = run_export(client, params={"_type": "Encounter,Patient",
                                     "_elements": "Encounter.subject,gender"})
    check_files(exp)
    got = exp.resources("output")
    assert _ids(exp, "Encounter") == set(_of_type(dataset, "Encounter"))
    for (t, i), [r] in got.items():
        src = dataset["resources"][(t, i)]
        keep = {"resourceType", "id", "meta"} | ({"subject", "status", "class"}
                                                  if t == "Encounter" else {"gender"})
        assert set(r) <= keep, (t, i, set(r) - keep)
        for k in keep - {"meta"}:
            if k in src:
                assert r[k] == src[k], (t, i, k)
        tags = [(g.get("system"), g.get("code")) for g in r["meta"].get("tag", [])]
        assert ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED") in tags


def test_100_005_patient_list_and_references(stack, client, dataset):
    """R24, R32: Patient/$export with patient=[a] returns a's compartment
    (with a itself), no resource of another patient, and every resource
    outside all compartments that a's exported resources reference, once."""
    comp = _compartments(stack)
    pid = sorted(_of_type(dataset, "Patient"))[3]
    mine = {k for k, ps in comp.items() if pid in ps} | {("Patient", pid)}
    refd = set()
    for k in mine:
        for ref in _refs(dataset["resources"][k]):
            m = re.search(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9.-]{1,64})$", ref)
            if m and (m.group(1), m.group(2)) in dataset["resources"] \
                    and (m.group(1), m.group(2)) not in comp:
                refd.add((m.group(1), m.group(2)))
    assert refd, "patient %s references nothing outside the compartments" % pid
    # R27: and the Provenance whose target is in a's compartment
    refd |= {k for k, r in dataset["resources"].items() if k[0] == "Provenance"
             and any(tuple(t.get("reference", "").split("/", 1)) in mine
                     for t in r.get("target", []))}
    exp = run_export(client, path="Patient/$export",
                     post=[("patient", "valueReference", {"reference": "Patient/" + pid})])
    check_files(exp)
    got = exp.resources("output")
    dups = [k for k, v in got.items() if len(v) > 1]
    assert not dups
    assert set(got) == mine | refd, ("extra", sorted(set(got) - mine - refd)[:5],
                                     "missing", sorted((mine | refd) - set(got))[:5])
    for k, [r] in got.items():
        assert normalize(r) == normalize(dataset["resources"][k], dataset["links"]), k


def test_100_006_references_only_requested_types(stack, client, dataset):
    """R32 rule: referenced resources come only for requested types."""
    pid = sorted(_of_type(dataset, "Patient"))[3]
    exp = run_export(client, path="Patient/$export", post=[
        ("_type", "valueString", "Encounter,Location"),
        ("patient", "valueReference", {"reference": "Patient/" + pid})])
    got = exp.resources("output")
    assert {k[0] for k in got} == {"Encounter", "Location"}
    locs = {ref.split("/")[-1] for k in got if k[0] == "Encounter"
            for ref in _refs(dataset["resources"][k]) if ref.startswith("Location/")}
    assert _ids(exp, "Location") == locs and locs


def test_100_007_group_membership_at_transaction_time(stack, client, dataset):
    """Group export: members are the Patient entities not inactive whose
    period covers transactionTime; the export holds exactly their
    compartments (plus referenced non-compartment resources)."""
    comp = _compartments(stack)
    grp = max((r for (t, _), r in dataset["resources"].items() if t == "Group"),
              key=lambda g: sum(1 for m in g.get("member", []) if "period" in m))
    exp = run_export(client, path="Group/%s/$export" % grp["id"])
    check_files(exp)
    T = bfclient.parse_instant(exp.manifest["transactionTime"])
    members = set()
    for m in grp.get("member", []):
        ref = m["entity"]["reference"]
        per = m.get("period", {})
        if not ref.startswith("Patient/") or m.get("inactive"):
            continue
        if "start" in per and _when(per["start"]) > T:
            continue
        if "end" in per and _when(per["end"]) + (
                __import__("datetime").timedelta(days=1) if len(per["end"]) == 10
                else __import__("datetime").timedelta(0)) <= T:
            continue
        members.add(ref.split("/", 1)[1])
    assert members and len(members) < len(grp["member"]), "no membership variety"
    want = {k for k, ps in comp.items() if ps & members} | {("Patient", p) for p in members}
    got = {k for k in exp.resources("output") if k in comp or k[0] == "Patient"}
    assert got == want, ("extra", sorted(got - want)[:5], "missing", sorted(want - got)[:5])
