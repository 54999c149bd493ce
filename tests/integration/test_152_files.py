"""File serving: gzip (R51), Range on identity only, the shared flock that
keeps the sweeper off a file being downloaded (R8)."""
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
    job, name = url.rsplit("/", 2)[1:]
    return stack.export_root / job / name


def test_152_001_gzip_when_accepted(stack, client, export):
    """R51: Accept-Encoding: gzip -> Content-Encoding: gzip, Vary:
    Accept-Encoding, and the decompressed body is the file on disk byte for
    byte; without it (or with gzip;q=0) the file is sent as is."""
    url = export.manifest["output"][0]["url"]
    on_disk = local_path(stack, url).read_bytes()
    r = client.http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["Vary"]
    assert r.headers["Content-Type"] == "application/fhir+ndjson"
    raw = r.raw.read()
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == on_disk
    for ae in ("identity", "gzip;q=0, identity", "br"):
        r = client.http.get(url, headers={"Accept-Encoding": ae})
        assert r.status_code == 200
        assert "Content-Encoding" not in r.headers, ae
        assert r.content == on_disk
        assert int(r.headers["Content-Length"]) == len(on_disk)
        assert "Accept-Encoding" in r.headers["Vary"]


def test_152_002_range_is_identity(stack, client, export):
    """Range requests get the identity bytes (206), even with gzip accepted."""
    url = export.manifest["output"][0]["url"]
    on_disk = local_path(stack, url).read_bytes()
    r = client.http.get(url, headers={"Accept-Encoding": "gzip", "Range": "bytes=10-99"})
    assert r.status_code == 206
    assert "Content-Encoding" not in r.headers
    assert r.content == on_disk[10:100]


def test_152_003_precompressed_sibling(stack, client, export):
    """R51: a {name}.gz written next to the file (by the worker) is sent as
    is: Content-Length is its size and it decompresses to the file."""
    url = export.manifest["output"][-1]["url"]
    path = local_path(stack, url)
    data = path.read_bytes()
    gz = gzip.compress(data, compresslevel=1, mtime=0)
    sib = path.with_name(path.name + ".gz")
    sib.write_bytes(gz)
    os.chmod(sib, 0o644)
    try:
        r = client.http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True)
        raw = r.raw.read()
        assert r.headers["Content-Encoding"] == "gzip"
        assert int(r.headers["Content-Length"]) == len(gz)
        assert raw == gz and gzip.decompress(raw) == data
    finally:
        sib.unlink()


def test_152_004_download_holds_shared_lock(stack, client, export):
    """R8: the module takes flock(LOCK_SH) on the file it serves: while a
    sweeper-like holder has LOCK_EX the download waits, and it completes
    with the whole file once the lock is released."""
    url = export.manifest["output"][0]["url"]
    path = local_path(stack, url)
    data = path.read_bytes()
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
