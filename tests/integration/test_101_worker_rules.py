"""Worker-side export rules on a private stack with NO resident worker: each
test kicks off, arranges the job in SQL where the module does not (yet) offer
a parameter, then runs `bulkfhir-worker --once` itself with its own config.

  _since + deleted Bundles (R19, R54, R55), lenient warnings (R60), part
  splitting (R52), resource blocks (R53), per-part publication (R46), and
  the exact transactionTime under concurrent writers (DESIGN invariant 1)."""
import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest

import bfclient
from bfclient import check_files, normalize
from bfworkers import read_part
from conftest import generate_and_load


@pytest.fixture(scope="module")
def wst(new_stack):
    st = new_stack(workers=0)
    resources, links, _ = generate_and_load(st, patients=5, seed=21)
    return st, resources, links


def worker_once(st, timeout=120, background=False, **cfg):
    conf = st.dir / ("worker-%d.conf" % time.monotonic_ns())
    conf.write_text("".join("%s = %s\n" % kv for kv in cfg.items()))
    binary = Path(st.ctl_bin).parent.parent / "worker" / "bulkfhir-worker"
    cmd = [str(binary), "--foreground", "--once", "--database", st.database,
           "--export-root", str(st.export_root), "--config", str(conf), "--log-level", "info"]
    log = open(st.dir / "log" / "wsem-worker-once.out", "a")
    p = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                         env=st.proc_env())
    if background:
        return p
    assert p.wait(timeout) == 0
    return p


def kick(st, path="$export", params=None, post=None):
    c = bfclient.Client(st.base_url)
    t0 = dt.datetime.now(dt.timezone.utc)
    k = c.kickoff_post(path, parameters=post) if post is not None else c.kickoff(path, params=params)
    assert k.status_code == 202, k.text
    exp = bfclient.Export(c, k, t0, dt.datetime.now(dt.timezone.utc))
    exp.job = bfclient.job_of(exp.status_url)
    return exp


def finish(st, exp, **cfg):
    worker_once(st, **cfg)
    return exp.wait(60).fetch_all()


def load_lines(st, name, objs):
    path = st.dir / name
    path.write_text("".join(bfclient.dumps(o) + "\n" for o in objs))
    st.ctl("load", path)


def current_ids(st, t):
    return {r[0] for r in st.psql("SELECT id FROM fhir.resource_version WHERE resource_type = "
                                  ":'p1' AND superseded_at IS NULL AND NOT deleted", t)}


def test_101_001_since_and_deleted(wst):
    """R19: a _since export holds exactly the versions changed after _since;
    R54/R55: the deleted resources are listed as DELETE entries of
    transaction Bundles (type Bundle), never in output; for a Patient-level
    export the deleted resource's last live version decides its patient."""
    st, resources, links = wst
    first = finish(st, kick(st))
    t1 = first.manifest["transactionTime"]
    obs = sorted(k[1] for k in resources if k[0] == "Observation")
    cond = sorted(k[1] for k in resources if k[0] == "Condition")
    gone = [("Observation", obs[0]), ("Observation", obs[1]), ("Condition", cond[0])]
    pkey = sorted(k for k in resources if k[0] == "Patient")[0]
    changed = json.loads(bfclient.dumps(resources[pkey]))
    changed.pop("meta", None)
    changed["gender"] = "other" if changed.get("gender") != "other" else "female"
    time.sleep(0.05)
    load_lines(st, "changed.ndjson", [changed])
    load_lines(st, "deletes.json", [{
        "resourceType": "Bundle", "id": "wsem-deletes", "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "%s/%s" % k}} for k in gone]}])

    exp = finish(st, kick(st, params={"_since": t1}))
    check_files(exp)
    out = exp.resources("output")
    assert normalize(out[pkey][0])["gender"] == changed["gender"]
    # exactly the versions valid at T with last_updated > since (SQL)
    T = exp.manifest["transactionTime"]
    rows = st.psql("SELECT resource_type, id FROM fhir.resource_version"
                   " WHERE last_updated > :'p1' AND last_updated <= :'p2' AND NOT deleted"
                   " AND (superseded_at IS NULL OR superseded_at > :'p2')", t1, T)
    assert set(out) == {tuple(r) for r in rows}
    assert pkey in out and not set(out) & set(gone)
    assert exp.manifest["deleted"], exp.manifest
    urls = []
    for item in exp.manifest["deleted"]:
        assert item["type"] == "Bundle"
        for b in exp.files[item["url"]][1]:
            assert b["resourceType"] == "Bundle" and b["type"] == "transaction" and b["entry"]
            for e in b["entry"]:
                assert e["request"]["method"] == "DELETE"
                urls.append(e["request"]["url"])
    assert sorted(urls) == sorted("%s/%s" % k for k in gone)

    # Patient level, patient list = the deleted Observation's patient
    subj = resources[gone[0]]["subject"]["reference"]
    pexp = finish(st, kick(st, "Patient/$export", post=[
        ("_since", "valueInstant", t1), ("_type", "valueString", "Observation,Condition"),
        ("patient", "valueReference", {"reference": subj})]))
    purls = [e["request"]["url"] for item in pexp.manifest.get("deleted", [])
             for b in pexp.files[item["url"]][1] for e in b["entry"]]
    want = ["%s/%s" % k for k in gone if resources[k]["subject"]["reference"] == subj]
    assert sorted(purls) == sorted(want) and want
    assert pexp.resources("output") == {}


def test_101_002_lenient_warnings_file(wst):
    """R60: every job.params._warnings text becomes one OperationOutcome
    (warning, not-supported) in an error file published with the job."""
    st, resources, _ = wst
    exp = kick(st, params={"_type": "Patient"})
    warnings = ["_foo: not supported, ignored", "includeAssociatedData=_x: ignored"]
    st.psql("UPDATE bulkfhir.job SET params = params || jsonb_build_object('_warnings', "
            ":'p1'::jsonb) WHERE id = :'p2'", json.dumps(warnings), exp.job)
    finish(st, exp)
    errs = exp.manifest["error"]
    assert len(errs) == 1 and errs[0]["type"] == "OperationOutcome"
    oos = exp.files[errs[0]["url"]][1]
    assert [o["issue"][0]["diagnostics"] for o in oos] == warnings
    for o in oos:
        assert o["resourceType"] == "OperationOutcome"
        assert (o["issue"][0]["severity"], o["issue"][0]["code"]) == ("warning", "not-supported")
    assert set(exp.resources("output")) == {k for k in resources if k[0] == "Patient"}


def test_101_003_part_splitting(wst):
    """R52: max_part_resources 7 splits each type into ceil(n/7) files of one
    type, counts right, content exact."""
    st, resources, links = wst
    exp = finish(st, kick(st, params={"_type": "Condition,Patient"}), max_part_resources=7)
    check_files(exp)
    for t in ("Condition", "Patient"):
        n = len(current_ids(st, t))
        items = [i for i in exp.manifest["output"] if i["type"] == t]
        assert len(items) == (n + 6) // 7
        assert sum(len(exp.files[i["url"]][1]) for i in items) == n
        for i in items:
            lines = exp.files[i["url"]][1]
            assert 1 <= len(lines) <= 7 and {r["resourceType"] for r in lines} == {t}
            assert i.get("count", len(lines)) == len(lines)
    stored = {(t, i): json.loads(j) for t, i, j in st.psql(
        "SELECT resource_type, id, resource::text FROM fhir.resource_version WHERE"
        " superseded_at IS NULL AND NOT deleted AND resource_type IN ('Condition', 'Patient')")}
    out = exp.resources("output")
    assert set(out) == set(stored)
    for k, [r] in out.items():
        assert json.loads(bfclient.dumps(r)) == stored[k]


def test_101_004_partial_publication(wst):
    """R46: with allowPartialManifests each part's file row is committed when
    the part closes (before the task is done); the published parts are the
    whole, exact output."""
    st, resources, _ = wst
    exp = kick(st, params={"_type": "Observation"})
    st.psql("UPDATE bulkfhir.job SET params = params || '{\"allowPartialManifests\": true}'"
            " WHERE id = :'p1'", exp.job)
    worker_once(st, max_part_resources=40)
    rows = st.psql("SELECT f.name, f.count, f.created_at < t.finished_at, f.created_at"
                   " FROM bulkfhir.file f JOIN bulkfhir.task t ON t.id = f.task_id"
                   " WHERE f.job_id = :'p1' AND f.kind = 'output' ORDER BY f.part", exp.job)
    n = len(current_ids(st, "Observation"))
    assert len(rows) == (n + 39) // 40 >= 3
    assert sum(int(r[1]) for r in rows) == n
    # every part but the last was committed in its own transaction, earlier
    assert all(r[2] == "t" for r in rows[:-1])
    assert len({r[3] for r in rows}) == len(rows)
    ids = []
    for r in rows:
        ids += [json.loads(ln)["id"]
                for ln in read_part(st.export_root / exp.job / r[0]).decode().splitlines()]
    assert sorted(ids) == sorted(current_ids(st, "Observation"))


def test_101_005_resource_blocks(wst):
    """R53: an organized task writes blocks: header Parameters naming
    Patient/p, then Patient p, then p's compartment resources; a block that
    does not fit starts a new file; one larger than a part repeats its
    header in the next file and file.continues_in links them."""
    st, resources, _ = wst
    exp = kick(st, "Patient/$export", params={"_type": "Patient,Condition,Encounter"})
    st.psql("DELETE FROM bulkfhir.task WHERE job_id = :'p1';"
            " INSERT INTO bulkfhir.task (job_id, resource_type, kind)"
            " VALUES (:'p1', 'Patient', 'organized')", exp.job)
    worker_once(st, max_part_resources=25)
    rows = st.psql("SELECT name, count, coalesce(continues_in, ''), coalesce(resource_type, '')"
                   " FROM bulkfhir.file WHERE job_id = :'p1' ORDER BY part", exp.job)
    assert rows and all(r[3] == "" for r in rows)
    comp = {}
    for t, i, p in st.psql("SELECT resource_type, id, array_to_string(patient_ids, ',')"
                           " FROM fhir.resource_version WHERE superseded_at IS NULL"
                           " AND NOT deleted AND resource_type IN ('Condition', 'Encounter')"):
        for pid in p.split(","):
            if pid:
                comp.setdefault(pid, set()).add((t, i))
    blocks, cont = {}, 0
    prev_cont, prev_pid = "", None
    for name, count, cont_in, _ in rows:
        lines = [json.loads(ln) for ln in read_part(st.export_root / exp.job / name).decode().splitlines()]
        assert len(lines) == int(count)
        assert lines[0]["resourceType"] == "Parameters"
        pid = None
        for i, r in enumerate(lines):
            if r["resourceType"] == "Parameters":
                assert r["parameter"][0]["name"] == "header"
                pid = r["parameter"][0]["valueReference"]["reference"].split("/", 1)[1]
                if i == 0 and prev_cont:
                    assert prev_cont == name and pid == prev_pid  # continuation
                    cont += 1
                else:
                    assert pid not in blocks, "block of %s split without continues_in" % pid
                    blocks[pid] = []
            else:
                blocks[pid].append((r["resourceType"], r["id"]))
        prev_cont, prev_pid = cont_in, pid
    assert cont >= 1, "no block was large enough to be split (part limit 25)"
    assert set(blocks) == current_ids(st, "Patient")
    for pid, got in blocks.items():
        assert got[0] == ("Patient", pid)
        assert sorted(got[1:]) == sorted(comp.get(pid, set()))


def test_101_006_transaction_time_exact(wst):
    """DESIGN invariant 1, 1.9 transactionTime: a writer that began before the
    kick-off and commits after it is exported (the worker waits for it); a
    resource created after the kick-off is not; a resource updated after the
    kick-off is exported in its version valid at transactionTime."""
    st, resources, _ = wst
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    pkeys = sorted(k for k in resources if k[0] == "Patient")
    upd = pkeys[1][1]
    before_v = st.psql("SELECT resource::text FROM fhir.resource_version WHERE resource_type"
                       " = 'Patient' AND id = :'p1' AND superseded_at IS NULL", upd)[0][0]

    def ins(pid):
        return ("INSERT INTO fhir.resource_version (resource_type, id, version_id,"
                " last_updated, patient_ids, resource) SELECT 'Patient', '%s', 1,"
                " clock_timestamp(), '{%s}', jsonb_build_object('resourceType', 'Patient',"
                " 'id', '%s');\n" % (pid, pid, pid))
    a = subprocess.Popen(psql, stdin=subprocess.PIPE, text=True, env=st.proc_env(),
                         stdout=subprocess.DEVNULL)
    a.stdin.write("BEGIN;\nSELECT pg_current_xact_id();\n" + ins("tt-early"))
    a.stdin.flush()
    time.sleep(0.5)
    exp = kick(st, params={"_type": "Patient"})
    # after the kick-off: a new Patient, and a new version of `upd`
    st.psql(ins("tt-late").strip())
    st.psql("BEGIN; SELECT pg_current_xact_id();"
            " UPDATE fhir.resource_version SET superseded_at = clock_timestamp()"
            "  WHERE resource_type = 'Patient' AND id = :'p1' AND superseded_at IS NULL;"
            " INSERT INTO fhir.resource_version (resource_type, id, version_id, last_updated,"
            "  patient_ids, resource) SELECT 'Patient', :'p1', max(version_id) + 1,"
            "  clock_timestamp(), '{}', jsonb_build_object('resourceType', 'Patient', 'id',"
            "  :'p1', 'gender', 'changed-later') FROM fhir.resource_version"
            "  WHERE resource_type = 'Patient' AND id = :'p1'; COMMIT;", upd)
    w = worker_once(st, background=True)
    time.sleep(1.5)
    assert w.poll() is None, "the worker did not wait for the writer older than the kick-off"
    a.stdin.write("COMMIT;\n")
    a.stdin.close()
    assert a.wait(30) == 0
    assert w.wait(60) == 0
    exp.wait(60).fetch_all()
    T = exp.manifest["transactionTime"]
    early_lu = st.psql("SELECT last_updated <= :'p1' FROM fhir.resource_version"
                       " WHERE id = 'tt-early'", T)[0][0]
    assert early_lu == "t", "the early writer stamped after transactionTime"
    out = exp.resources("output")
    ids = {k[1] for k in out}
    assert "tt-early" in ids and "tt-late" not in ids
    assert json.loads(bfclient.dumps(out[("Patient", upd)][0])) == json.loads(before_v)
    want = {r[0] for r in st.psql(
        "SELECT id FROM fhir.resource_version WHERE resource_type = 'Patient' AND NOT deleted"
        " AND last_updated <= :'p1' AND (superseded_at IS NULL OR superseded_at > :'p1')", T)}
    assert ids == want
