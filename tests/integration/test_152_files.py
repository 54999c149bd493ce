"""File serving: parts stored gzip-compressed by the worker, sent as stored
to gzip clients (R51, Range over the gzip bytes) and inflated for the
others; the shared flock that keeps the sweeper off a file being downloaded
(R8)."""
import fcntl
import gzip
import os
import threading
import time

import pytest

import bfclient


@pytest.fixture(scope="module")
def export(stack, dataset):
    client = bfclient.Client(stack.base_url)
    exp = bfclient.run_export(client, params={"_type": "Patient,Observation"})
    return exp


def local_path(stack, url):
    """The part as the worker stored it: {name}.gz (compression = gzip, the
    default, issue #15)."""
    job, name = url.rsplit("/", 2)[1:]
    return stack.export_root / job / (name + ".gz")


def test_152_001_gzip_when_accepted(stack, client, export):
    """R51: Accept-Encoding: gzip -> Content-Encoding: gzip, Vary:
    Accept-Encoding, and the body is the worker's stored .gz byte for byte
    (Content-Length its size); without it (or with gzip;q=0) the NDJSON the
    stored file inflates to."""
    url = export.manifest["output"][0]["url"]
    stored = local_path(stack, url).read_bytes()
    ndjson = gzip.decompress(stored)
    r = client.http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["Vary"]
    assert r.headers["Content-Type"] == "application/fhir+ndjson"
    assert int(r.headers["Content-Length"]) == len(stored)
    raw = r.raw.read()
    assert raw[:2] == b"\x1f\x8b"
    assert raw == stored
    assert ndjson.count(b"\n") == export.manifest["output"][0]["count"]
    for ae in ("identity", "gzip;q=0, identity", "br"):
        r = client.http.get(url, headers={"Accept-Encoding": ae})
        assert r.status_code == 200
        assert "Content-Encoding" not in r.headers, ae
        assert r.content == ndjson
        assert "Accept-Encoding" in r.headers["Vary"]


def test_152_002_range_over_gzip(stack, client, export):
    """Range with gzip accepted: 206 over the stored gzip bytes; an identity
    client's Range is ignored (200, the whole NDJSON, Accept-Ranges: none)."""
    url = export.manifest["output"][0]["url"]
    stored = local_path(stack, url).read_bytes()
    r = client.http.get(url, headers={"Accept-Encoding": "gzip", "Range": "bytes=10-99"},
                        stream=True)
    assert r.status_code == 206
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.raw.read() == stored[10:100]
    r = client.http.get(url, headers={"Accept-Encoding": "identity", "Range": "bytes=10-99"})
    assert r.status_code == 200
    assert r.headers["Accept-Ranges"] == "none"
    assert r.content == gzip.decompress(stored)


def test_152_003_worker_writes_gzip_parts(stack, client, export):
    """The worker stores every published part as {name}.gz only (no plain
    sibling), a gzip file holding exactly the manifest's count of lines."""
    job = export.manifest["output"][0]["url"].rsplit("/", 2)[1]
    names = {o["url"].rsplit("/", 1)[1]: o["count"] for o in export.manifest["output"]}
    on_disk = set(os.listdir(stack.export_root / job))
    assert on_disk == {n + ".gz" for n in names}
    for name, count in names.items():
        data = gzip.decompress((stack.export_root / job / (name + ".gz")).read_bytes())
        assert data.count(b"\n") == count and data.endswith(b"\n")


def test_152_004_download_holds_shared_lock(stack, client, export):
    """R8: the module takes flock(LOCK_SH) on the file it serves: while a
    sweeper-like holder has LOCK_EX the download waits, and it completes
    with the whole file once the lock is released."""
    url = export.manifest["output"][0]["url"]
    path = local_path(stack, url)
    data = gzip.decompress(path.read_bytes())
    result = {}
    with open(path, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)   # what the sweeper takes (NB) to unlink

        def fetch():
            result["r"] = client.http.get(url, headers={"Accept-Encoding": "identity"},
                                          timeout=30)
        t = threading.Thread(target=fetch)
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the download did not wait for the exclusive lock"
        fcntl.flock(fh, fcntl.LOCK_UN)
        t.join(30)
    assert result["r"].status_code == 200 and result["r"].content == data



def test_152_005_unlinked_file_is_gone(stack, client, allow_log):
    """A published file removed from disk (swept) answers 410 +
    OperationOutcome, with a BF01031 warning."""
    allow_log(r"^BF01031: ")
    exp = bfclient.run_export(client, params={"_type": "Patient"})
    url = exp.manifest["output"][0]["url"]
    local_path(stack, url).unlink()
    bfclient.assert_operation_outcome(client.download(url), statuses=(410,))
