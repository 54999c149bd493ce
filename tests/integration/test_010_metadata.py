"""CapabilityStatement at [base]/metadata (SPEC section 4)."""
import bfclient

BULK = "http://hl7.org/fhir/uv/bulkdata/"


def _ops(entries):
    return {(o.get("name"), o.get("definition", "").split("|")[0]) for o in entries or []}


def test_010_001_capability_statement_instantiates_bulk_data(client):
    """C1: metadata answers 200 with a CapabilityStatement that instantiates
    the bulk-data CapabilityStatement."""
    r = client.get("metadata")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].split(";")[0] in ("application/fhir+json", "application/json")
    cs = bfclient.json_body(r)
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs.get("fhirVersion", "").startswith("4.0"), cs.get("fhirVersion")
    inst = [u.split("|")[0] for u in cs.get("instantiates", [])]
    assert BULK + "CapabilityStatement/bulk-data" in inst, cs.get("instantiates")


def test_010_002_capability_statement_declares_export_operations(client):
    """C2: system export on rest, patient-export on Patient, group-export on
    Group, each named `export` with the standard canonical."""
    cs = bfclient.json_body(client.get("metadata"))
    rest = [x for x in cs.get("rest", []) if x.get("mode") == "server"]
    assert rest, cs
    rest = rest[0]
    assert ("export", BULK + "OperationDefinition/export") in _ops(rest.get("operation"))
    by_type = {res.get("type"): res for res in rest.get("resource", [])}
    assert ("export", BULK + "OperationDefinition/patient-export") in \
        _ops(by_type.get("Patient", {}).get("operation"))
    assert ("export", BULK + "OperationDefinition/group-export") in \
        _ops(by_type.get("Group", {}).get("operation"))


def test_010_003_unknown_path_is_404_operation_outcome(client):
    """R37 shape for a path the module does not serve: 404 + OperationOutcome."""
    r = client.get("NoSuchThing/$export")
    bfclient.assert_operation_outcome(r, statuses=(400, 404))
