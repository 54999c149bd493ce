"""Group read/search (R12, C2) and the CapabilityStatement (C1-C4, R61-R64),
checked against the loaded data and lib/bf_searchparam's table."""
import json
import re
from pathlib import Path

from bfclient import assert_operation_outcome, json_body

BULK = "http://hl7.org/fhir/uv/bulkdata/"
REPO = Path(__file__).resolve().parents[2]


def groups(dataset):
    return {i: r for (t, i), r in dataset["resources"].items() if t == "Group"}


def searchparam_table():
    """(base, code, type) rows of lib/bf_searchparam_data.c."""
    rows = set()
    text = (REPO / "lib" / "bf_searchparam_data.c").read_text()
    for b, c, t in re.findall(r'\{ "([A-Za-z]+)", "([^"]+)", BF_SP_([A-Z]+),', text):
        rows.add((b, c, t.lower()))
    return rows


def test_151_001_group_read(stack, client, dataset):
    """R12: GET Group/{id} answers the current Group as stored; an unknown
    id is 404 + OperationOutcome."""
    gs = groups(dataset)
    assert gs
    for gid, expected in gs.items():
        r = client.get("Group/" + gid)
        assert r.status_code == 200, r.text[:300]
        assert r.headers["Content-Type"].startswith("application/fhir+json")
        stored = json.loads(stack.psql(
            "SELECT resource::text FROM fhir.resource_version WHERE resource_type = 'Group' "
            "AND id = :'p1' AND superseded_at IS NULL", gid)[0][0])
        assert json.loads(r.content) == stored
        assert stored["id"] == gid and stored["member"] == expected["member"]
    assert_operation_outcome(client.get("Group/no-such-group"), statuses=(404,))


def test_151_002_group_search(stack, client, dataset):
    """R12: Group?name= (starts-with, case-insensitive) and
    Group?identifier=[system|]value give a searchset Bundle with total and
    entries (fullUrl, resource, search.mode match) matching the data."""
    gs = groups(dataset)
    r = client.get("Group")
    b = json_body(r)
    assert b["resourceType"] == "Bundle" and b["type"] == "searchset"
    assert b["total"] == len(gs) == len(b["entry"])
    for e in b["entry"]:
        assert e["search"] == {"mode": "match"}
        assert e["fullUrl"] == client.url("Group/" + e["resource"]["id"])
    named = [g for g in gs.values() if g.get("name")]
    assert named, "the generated Groups have no name"
    g = named[0]
    prefix = g["name"][:3].swapcase()
    expect = {i for i, x in gs.items() if x.get("name", "").lower().startswith(prefix.lower())}
    b = json_body(client.get("Group", params={"name": prefix}))
    assert {e["resource"]["id"] for e in b.get("entry", [])} == expect and b["total"] == len(expect)
    with_ident = [x for x in gs.values() if x.get("identifier")]
    if with_ident:
        ident = with_ident[0]["identifier"][0]
        q = ("%s|%s" % (ident["system"], ident["value"])) if ident.get("system") \
            else ident["value"]
        b = json_body(client.get("Group", params={"identifier": q}))
        ids = {e["resource"]["id"] for e in b.get("entry", [])}
        assert with_ident[0]["id"] in ids
        for e in b["entry"]:
            assert any(i.get("value") == ident["value"] for i in e["resource"]["identifier"])
    b = json_body(client.get("Group", params={"name": "zz-no-such-name"}))
    assert b["total"] == 0 and "entry" not in b
    assert_operation_outcome(client.get("Group", params={"type": "person"}), statuses=(400,))
    assert_operation_outcome(client.get("Group", params=[("name", "a"), ("name", "b")]),
                             statuses=(400,))


def test_151_010_capability_statement_resources(client):
    """C1-C3, R61, R62: instantiates bulk-data; the three operations; one
    rest.resource per R4 type with searchParam entries equal to the
    _typeFilter table (name, type, definition canonical); Group has read
    and search-type."""
    cs = json_body(client.get("metadata"))
    assert BULK + "CapabilityStatement/bulk-data" in cs["instantiates"]
    rest = cs["rest"][0]
    assert {"name": "export", "definition": BULK + "OperationDefinition/export"} \
        in rest["operation"]
    by_type = {res["type"]: res for res in rest["resource"]}
    r4 = json.loads((REPO / "lib" / "r4" / "resource-types.json").read_text())
    r4_types = set(r4["resourceTypes"])
    assert set(by_type) == r4_types, set(by_type) ^ r4_types
    assert {"name": "export", "definition": BULK + "OperationDefinition/patient-export"} \
        in by_type["Patient"]["operation"]
    assert {"name": "export", "definition": BULK + "OperationDefinition/group-export"} \
        in by_type["Group"]["operation"]
    assert {i["code"] for i in by_type["Group"]["interaction"]} == {"read", "search-type"}
    got = set()
    for t, res in by_type.items():
        for sp in res.get("searchParam", []):
            got.add((t, sp["name"], sp["type"]))
            assert sp["definition"].startswith("http://hl7.org/fhir/SearchParameter/"), sp
    assert got == searchparam_table()
    obs = {sp["name"]: sp["definition"] for sp in by_type["Observation"]["searchParam"]}
    assert obs["patient"] == "http://hl7.org/fhir/SearchParameter/clinical-patient"
    assert obs["status"] == "http://hl7.org/fhir/SearchParameter/Observation-status"
    assert obs["_lastUpdated"] == "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"


def test_151_011_capability_documentation(client):
    """R64: rest.documentation names the levels, the parameters, the
    _outputFormat values, the splitting policy, Group _since behaviour and
    includeAssociatedData support."""
    doc = json_body(client.get("metadata"))["rest"][0]["documentation"]
    for word in ("Patient/$export", "Group/[id]/$export", "_outputFormat",
                 "application/fhir+ndjson", "ndjson", "_since", "_until", "_type",
                 "_elements", "_typeFilter", "patient", "allowPartialManifests",
                 "includeAssociatedData", "organizeOutputBy", "Group `_since`",
                 "one resource type per file", "handling=lenient",
                 "separate-export-status", "gzip"):
        assert word in doc, word
