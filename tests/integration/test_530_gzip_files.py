"""Output parts compressed once, by the worker, and served as stored (issue
#15): with bulkfhir.setting compression = gzip (the default) every part is
{name}.gz on the share; a client accepting gzip gets those bytes as they are
(Content-Length, a strong ETag of its own, Range over them); a client that
does not gets the NDJSON inflated while it is sent.  compression = none
writes plain parts, served as before."""
import gzip
import json
import os
import zlib

import pytest
import requests

import bfclient

TYPES = "Patient,Condition,Observation,Encounter"


def sql_counts(st, types):
    return {t: int(n) for t, n in st.psql(
        "SELECT resource_type, count(*) FROM fhir.resource_version"
        " WHERE superseded_at IS NULL AND NOT deleted"
        " AND resource_type = ANY(string_to_array(:'p1', ','))"
        " GROUP BY resource_type", types)}


def job_and_name(url):
    job, name = url.rsplit("/", 2)[1:]
    return job, name


def raw_get(client, url, headers, method="GET"):
    """(response, body bytes as sent on the wire: no decoding)."""
    r = client.http.request(method, url, headers=headers, stream=True, timeout=60)
    body = r.raw.read(decode_content=False)
    return r, body


@pytest.fixture
def compression(stack):
    """Set bulkfhir.setting compression for one test; restored after."""
    def set_(value, level=None):
        stack.psql("UPDATE bulkfhir.setting SET value = :'p1' WHERE name = 'compression'", value)
        if level is not None:
            stack.psql("UPDATE bulkfhir.setting SET value = :'p1'"
                       " WHERE name = 'compression_level'", str(level))
    yield set_
    stack.psql("UPDATE bulkfhir.setting SET value = 'gzip' WHERE name = 'compression'")
    stack.psql("UPDATE bulkfhir.setting SET value = '1' WHERE name = 'compression_level'")


@pytest.fixture(scope="module")
def gz_export(stack, dataset):
    client = bfclient.Client(stack.base_url)
    return bfclient.run_export(client, params={"_type": TYPES})


def test_530_001_ground_truth_both_paths(stack, client, gz_export):
    """Every part: the gzip download is the stored .gz byte for byte, it
    inflates to exactly the identity download, the lines are the manifest's
    count, the file row's bytes are the NDJSON's; per type the counts equal
    SQL over the store and the share holds only .gz files."""
    man = gz_export.manifest
    want = sql_counts(stack, TYPES)
    got = {}
    job = job_and_name(man["output"][0]["url"])[0]
    rows = {n: int(b) for n, b in stack.psql(
        "SELECT name, bytes FROM bulkfhir.file WHERE job_id = :'p1'", job)}
    for item in man["output"]:
        url = item["url"]
        _, name = job_and_name(url)
        assert name.endswith(".ndjson")
        stored = (stack.export_root / job / (name + ".gz")).read_bytes()
        r, wire = raw_get(client, url, {"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
        assert int(r.headers["Content-Length"]) == len(stored)
        assert wire == stored
        r2, ident = raw_get(client, url, {"Accept-Encoding": "identity"})
        assert r2.status_code == 200 and "Content-Encoding" not in r2.headers
        assert gzip.decompress(wire) == ident
        lines = ident.decode().splitlines()
        assert len(lines) == item["count"]
        assert all(json.loads(ln)["resourceType"] == item["type"] for ln in lines)
        assert rows[name] == len(ident)
        got[item["type"]] = got.get(item["type"], 0) + len(lines)
    assert got == want
    assert sorted(os.listdir(stack.export_root / job)) == sorted(n + ".gz" for n in rows)


def test_530_002_range_resume_on_gzip(stack, client, gz_export):
    """A download of the gzip representation cut after N bytes resumes with
    Range: bytes=N- (and If-Range: its ETag): 206, Content-Range over the
    stored size, and the two pieces are the stored file, which inflates to
    the identity body.  The two representations have different ETags."""
    item = max(gz_export.manifest["output"], key=lambda i: i["count"])
    url = item["url"]
    job, name = job_and_name(url)
    stored = (stack.export_root / job / (name + ".gz")).read_bytes()
    assert len(stored) > 200
    r = client.http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60)
    etag = r.headers["ETag"]
    first = r.raw.read(len(stored) // 3, decode_content=False)
    r.close()
    n = len(first)
    hdr = {"Accept-Encoding": "gzip", "Range": "bytes=%d-" % n}
    if not etag.startswith("W/"):
        hdr["If-Range"] = etag
    r2, rest = raw_get(client, url, hdr)
    assert r2.status_code == 206
    assert r2.headers["Content-Range"] == "bytes %d-%d/%d" % (n, len(stored) - 1, len(stored))
    assert r2.headers["Content-Encoding"] == "gzip"
    assert first + rest == stored
    ri, ident = raw_get(client, url, {"Accept-Encoding": "identity"})
    assert gzip.decompress(first + rest) == ident
    assert ri.headers["ETag"] != etag
    # a conditional GET of each representation by its own ETag
    r3, _ = raw_get(client, url, {"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert r3.status_code == 304
    r4, body = raw_get(client, url, {"Accept-Encoding": "identity", "If-None-Match": etag})
    assert r4.status_code == 200 and body == ident


def test_530_003_head_and_identity_range(stack, client, gz_export):
    """HEAD: the gzip representation has its stored length; the identity
    one (inflated while sent) announces no ranges, and a Range from an
    identity client gets the whole NDJSON with 200."""
    url = gz_export.manifest["output"][0]["url"]
    job, name = job_and_name(url)
    stored = (stack.export_root / job / (name + ".gz")).read_bytes()
    h = client.http.head(url, headers={"Accept-Encoding": "gzip"})
    assert h.status_code == 200 and h.headers["Content-Encoding"] == "gzip"
    assert int(h.headers["Content-Length"]) == len(stored)
    assert h.headers["Accept-Ranges"] == "bytes"
    h = client.http.head(url, headers={"Accept-Encoding": "identity"})
    assert h.status_code == 200 and "Content-Encoding" not in h.headers
    assert h.headers["Accept-Ranges"] == "none"
    assert int(h.headers.get("Content-Length", "-1")) in (-1, len(gzip.decompress(stored)))
    r, body = raw_get(client, url, {"Accept-Encoding": "identity", "Range": "bytes=0-9"})
    assert r.status_code == 200 and body == gzip.decompress(stored)


def test_530_004_compression_none(stack, client, dataset, compression):
    """compression = none: plain .ndjson parts on the share (as large as the
    NDJSON), served with Content-Length and Range to identity clients and
    compressed on the fly for gzip clients; the gzip default stores the same
    export at least 4x smaller."""
    compression("none")
    exp = bfclient.run_export(client, params={"_type": TYPES})
    job = job_and_name(exp.manifest["output"][0]["url"])[0]
    names = sorted(os.listdir(stack.export_root / job))
    assert names and all(n.endswith(".ndjson") for n in names)
    plain_total = 0
    for item in exp.manifest["output"]:
        url = item["url"]
        data = (stack.export_root / job / job_and_name(url)[1]).read_bytes()
        plain_total += len(data)
        r, body = raw_get(client, url, {"Accept-Encoding": "identity"})
        assert body == data and int(r.headers["Content-Length"]) == len(data)
        assert body.count(b"\n") == item["count"]
        r, wire = raw_get(client, url, {"Accept-Encoding": "gzip"})
        assert r.headers["Content-Encoding"] == "gzip" and gzip.decompress(wire) == data
        r, part = raw_get(client, url, {"Accept-Encoding": "identity", "Range": "bytes=5-24"})
        assert r.status_code == 206 and part == data[5:25]
    compression("gzip")
    exp2 = bfclient.run_export(client, params={"_type": TYPES})
    job2 = job_and_name(exp2.manifest["output"][0]["url"])[0]
    gz_total = sum(os.path.getsize(stack.export_root / job2 / n)
                   for n in os.listdir(stack.export_root / job2))
    assert all(n.endswith(".ndjson.gz") for n in os.listdir(stack.export_root / job2))
    assert gz_total * 4 <= plain_total, (gz_total, plain_total)


def test_530_005_level_setting(stack, client, dataset, compression):
    """compression_level 9 stores the same export no larger than level 1,
    and both inflate to the same NDJSON."""
    sizes, bodies = {}, {}
    for level in (1, 9):
        compression("gzip", level)
        exp = bfclient.run_export(client, params={"_type": "Observation"})
        job = job_and_name(exp.manifest["output"][0]["url"])[0]
        files = sorted(os.listdir(stack.export_root / job))
        sizes[level] = sum(os.path.getsize(stack.export_root / job / n) for n in files)
        bodies[level] = sorted(ln for n in files for ln in gzip.decompress(
            (stack.export_root / job / n).read_bytes()).splitlines())
    assert sizes[9] < sizes[1] and bodies[9] == bodies[1] and bodies[1]


def test_530_006_corrupt_stored_file(stack, client, dataset, allow_log):
    """A stored .gz damaged on the share: the gzip client gets the stored
    bytes (its own inflater finds the damage); an identity download is cut
    short (never a complete 200 of wrong NDJSON) with a BF01101 warning."""
    allow_log(r"^BF01101: ")
    exp = bfclient.run_export(client, params={"_type": "Patient"})
    url = exp.manifest["output"][0]["url"]
    job, name = job_and_name(url)
    path = stack.export_root / job / (name + ".gz")
    stored = path.read_bytes()
    path.write_bytes(stored[: len(stored) // 2])
    r, wire = raw_get(client, url, {"Accept-Encoding": "gzip"})
    assert wire == stored[: len(stored) // 2]
    try:
        r = client.http.get(url, headers={"Accept-Encoding": "identity"}, timeout=30)
        completed = (r.status_code, len(r.content))
    except requests.exceptions.RequestException:
        completed = None   # the connection was cut: what the client must see
    assert completed is None, "identity download of a truncated .gz completed: %r" % (completed,)
    assert len(zlib.decompress(stored, 31)) > 0


def test_530_007_sweeper_knows_gz_parts(new_stack):
    """The sweeper's part names include the .gz form: when a job completes,
    a stale part of an attempt that is not running and has no file row
    ({name}.gz or plain) is removed; the published .gz parts and files that
    are not part names stay."""
    import datetime as dt
    from test_101_worker_rules import worker_once
    from conftest import generate_and_load

    st = new_stack(workers=0)
    generate_and_load(st, patients=3, seed=5)
    c = bfclient.Client(st.base_url)
    t0 = dt.datetime.now(dt.timezone.utc)
    k = c.kickoff("$export", params={"_type": "Patient"})
    assert k.status_code == 202, k.text
    exp = bfclient.Export(c, k, t0, dt.datetime.now(dt.timezone.utc))
    job = bfclient.job_of(exp.status_url)
    d = st.export_root / job
    d.mkdir(mode=0o755, exist_ok=True)
    stale = ["Patient.99999.1.0.ndjson.gz", "Patient.99999.1.1.ndjson"]
    keep = ["notes.txt", "Patient.99999.1.0.ndjson.gzip"]
    for n in stale + keep:
        (d / n).write_bytes(gzip.compress(b"{}\n"))
    worker_once(st)
    exp.wait(60).fetch_all()
    published = [o["url"].rsplit("/", 1)[1] + ".gz" for o in exp.manifest["output"]]
    assert published
    left = set(os.listdir(d))
    assert left == set(published) | set(keep), left


def test_530_008_error_file_stored_gzip(stack, client, dataset):
    """The job's error file (lenient warnings, OperationOutcome NDJSON) goes
    through the same writer: stored .gz only, served as stored to gzip
    clients and inflated for the others (deleted Bundles, organized blocks
    and partial-manifest parts: test_101 reads them through bfworkers.read_part
    and downloads)."""
    exp = bfclient.run_export(client, params={"_type": "Encounter",
                                              "includeAssociatedData": "_custom"},
                              headers={"Prefer": "respond-async, handling=lenient"})
    errs = exp.manifest.get("error", [])
    assert len(errs) == 1
    job, name = job_and_name(errs[0]["url"])
    assert not (stack.export_root / job / name).exists()
    stored = (stack.export_root / job / (name + ".gz")).read_bytes()
    r, wire = raw_get(client, errs[0]["url"], {"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip" and wire == stored
    r, ident = raw_get(client, errs[0]["url"], {"Accept-Encoding": "identity"})
    assert ident == gzip.decompress(stored)
    oos = [json.loads(ln) for ln in ident.decode().splitlines()]
    assert oos and all(o["resourceType"] == "OperationOutcome" for o in oos)
    assert any("_custom" in o["issue"][0]["diagnostics"] for o in oos)


def test_530_009_worker_memory_and_threads(stack, client, dataset):
    """Compressing keeps the worker's memory bounded (two buffers, zlib's
    state, per writer) and its helper threads end with their task: after
    three gzip exports the workers run as many threads as before, and their
    peak RSS stayed under 64 MiB."""
    import time
    import bfcost

    pids = bfcost.worker_pids(stack)
    assert pids
    before = {p: bfcost.proc_kib(p, "Threads") for p in pids}
    with bfcost.Peak(stack, workers=pids) as pk:
        for _ in range(3):
            exp = bfclient.run_export(client, params={"_type": TYPES})
            assert exp.manifest["output"]
    assert 0 < pk.worker_kib < 64 * 1024, pk.worker_kib
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = {p: bfcost.proc_kib(p, "Threads") for p in pids}
        if after == before:
            break
        time.sleep(0.2)
    assert after == before, (before, after)
