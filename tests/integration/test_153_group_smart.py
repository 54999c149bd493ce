"""Group read/search under SMART (R12 with R6/R7): the token needs Group
read (read) or search (search) permission."""
import json
import types

import pytest

import bfclient
import bfsmart
from bfclient import assert_operation_outcome, json_body
from conftest import generate_and_load


@pytest.fixture(scope="module")
def env(new_stack):
    st = new_stack(workers=1, auth="smart", extra_conf=bfsmart.SMART_EXTRA_CONF)
    resources, _, _ = generate_and_load(st, patients=6, seed=3)
    ns = types.SimpleNamespace(st=st, resources=resources)
    key = bfsmart.Key("RSA")
    for cid, scope in (("narrow", "system/Patient.read"), ("reader", "system/Group.r"),
                       ("searcher", "system/Group.rs")):
        bfsmart.register(st, cid, scope, jwks_doc=bfsmart.jwks(key))
        setattr(ns, cid, bfclient.Client(st.base_url, token=bfsmart.SmartClient(
            st, cid, key, st.base_url + "/token").token(scope)))
    yield ns


def test_153_001_group_scopes(env):
    gid = sorted(i for (t, i) in env.resources if t == "Group")[0]
    stored = json.loads(env.st.psql(
        "SELECT resource::text FROM fhir.resource_version WHERE resource_type = 'Group' "
        "AND id = :'p1' AND superseded_at IS NULL", gid)[0][0])
    # no token: 401; Patient-only scopes: 403 for read and search
    r = bfclient.Client(env.st.base_url).get("Group/" + gid)
    assert_operation_outcome(r, statuses=(401,))
    assert_operation_outcome(env.narrow.get("Group/" + gid), statuses=(403,))
    assert_operation_outcome(env.narrow.get("Group"), statuses=(403,))
    # read permission: read yes, search no
    r = env.reader.get("Group/" + gid)
    assert r.status_code == 200 and json.loads(r.content) == stored
    assert_operation_outcome(env.reader.get("Group"), statuses=(403,))
    # read + search
    b = json_body(env.searcher.get("Group"))
    groups = {i for (t, i) in env.resources if t == "Group"}
    assert b["total"] == len(groups) and {e["resource"]["id"] for e in b["entry"]} == groups
