"""_since (R19) against a store that changes between two exports, in a stack
of its own: load, export (its transactionTime is the next _since), load a
modified resource, export with _since -> only that resource."""
import copy
import json
from decimal import Decimal

import pytest

import bfclient
from bfclient import check_files, check_manifest_shape, normalize, run_export
from conftest import generate_and_load


@pytest.fixture(scope="module")
def since_stack(new_stack):
    st = new_stack(workers=1)
    resources, links, _ = generate_and_load(st, patients=5, seed=11)
    return st, resources, links


def test_030_001_since_returns_only_changed(since_stack):
    """R19, 1.9 transactionTime: a resource loaded after the first export's
    transactionTime is the only one a `_since=transactionTime` export returns,
    with its new content."""
    st, resources, links = since_stack
    c = bfclient.Client(st.base_url)
    first = run_export(c)
    check_files(first)
    t1 = first.manifest["transactionTime"]

    # nothing changed yet: an export since t1 is empty
    empty = run_export(c, params={"_since": t1})
    check_manifest_shape(empty, st.base_url)
    check_files(empty)
    assert empty.resources("output") == {}, empty.manifest["output"]

    key = sorted(k for k in resources if k[0] == "Patient")[0]
    changed = copy.deepcopy(resources[key])
    changed.pop("meta", None)
    changed["gender"] = "other" if changed.get("gender") != "other" else "female"
    changed.setdefault("extension", []).append(
        {"url": "http://example.org/fhir/StructureDefinition/bf-test", "valueString": "v2"})
    path = st.dir / "changed.ndjson"
    path.write_text(bfclient.dumps(changed) + "\n")
    st.ctl("load", path)
    changed = json.loads(path.read_text(), parse_float=Decimal)

    exp = run_export(c, params={"_since": t1})
    check_manifest_shape(exp, st.base_url)
    check_files(exp)
    got = exp.resources("output")
    assert list(got) == [key], sorted(got)
    assert normalize(got[key][0]) == normalize(changed), \
        bfclient.first_difference(normalize(got[key][0]), normalize(changed))
    old_v = (first.resources("output")[key][0].get("meta") or {}).get("versionId")
    new_v = (got[key][0].get("meta") or {}).get("versionId")
    if old_v is not None and new_v is not None:
        assert old_v != new_v

    # the full export now has the new version, and only once
    full = run_export(c)
    check_files(full)
    allres = full.resources("output")
    assert len(allres) == len(resources)
    assert all(len(v) == 1 for v in allres.values())
    assert allres[key][0].get("gender") == changed["gender"]


def test_030_002_since_in_future_is_empty_or_rejected(since_stack):
    """R19: _since after every change returns no resources (or the kick-off is
    refused with a 400 OperationOutcome)."""
    st, _, _ = since_stack
    c = bfclient.Client(st.base_url)
    kick = c.kickoff("$export", params={"_since": "2999-01-01T00:00:00Z"})
    if kick.status_code == 400:
        bfclient.assert_operation_outcome(kick)
        return
    exp = bfclient.Export(c, kick, None, None).wait().fetch_all()
    check_files(exp)
    assert exp.resources("output") == {}
