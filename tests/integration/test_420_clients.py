"""Real clients' habits (issue #7 item 5): the requests the SMART
bulk-data-client and Inferno's Bulk Data test kit send, in their order and
with their headers, and the checks they make on the answers.  Content is
checked against the loaded data set (counts per type, ids)."""
import concurrent.futures
import gzip
import json
import re
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

import bfclient

TIMEOUT = 120


def _retry_after_seconds(value):
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110)."""
    if re.fullmatch(r"\d+", value.strip()):
        return int(value)
    when = parsedate_to_datetime(value)
    return max(0.0, when.timestamp() - time.time())


def _expected_counts(dataset):
    return bfclient.counts_by_type(dataset["resources"])


# ---- SMART bulk-data-client ----------------------------------------------------------
def test_420_001_smart_bulk_data_client(stack, dataset):
    """Like smart-on-fhir/bulk-data-client: metadata with Accept:
    application/json, SMART discovery at the host root then the
    CapabilityStatement, kick-off with `Prefer: respond-async,
    handling=lenient`, polls at max(Retry-After, 100 ms) reading the leading
    number of X-Progress, five parallel downloads with Accept-Encoding: gzip,
    deflate, br, identity; every file's line count equals its manifest count
    and the counts per type equal the loaded data."""
    s = requests.Session()
    base = stack.base_url.rstrip("/")
    root = "%s://%s" % urlsplit(base)[:2]

    meta = s.get(base + "/metadata", headers={"Accept": "application/json"}, timeout=30)
    assert meta.status_code == 200, meta.text[:500]
    assert meta.headers["Content-Type"].split(";")[0] in ("application/json",
                                                          "application/fhir+json")
    cap = meta.json()
    assert cap["resourceType"] == "CapabilityStatement"
    assert cap["fhirVersion"].startswith("4.0"), cap.get("fhirVersion")

    # discovery: the client tries the host root first, then the base; a 404 is
    # how a server says "not here" (with BulkFhirAuth none there is no token URL)
    for url in (root + "/.well-known/smart-configuration",
                base + "/.well-known/smart-configuration"):
        wk = s.get(url, headers={"Accept": "application/json"}, timeout=30)
        assert wk.status_code in (200, 404), "%s: %d" % (url, wk.status_code)
        if wk.status_code == 200:
            assert isinstance(wk.json(), dict)

    kick = s.get(base + "/$export",
                 headers={"Accept": "application/fhir+json",
                          "Prefer": "respond-async, handling=lenient"}, timeout=30)
    assert kick.status_code == 202, kick.text[:500]
    status_url = kick.headers["Content-Location"]
    assert status_url.startswith("http"), status_url

    deadline = time.monotonic() + TIMEOUT
    progress = []
    while True:
        r = s.get(status_url, headers={"Accept": "application/json"}, timeout=30)
        if r.status_code != 202:
            break
        xp = r.headers.get("X-Progress")
        if xp is not None:
            m = re.match(r"\s*(\d+(?:\.\d+)?)", xp)
            assert m, "X-Progress %r has no leading number" % xp
            progress.append(float(m.group(1)))
        ra = r.headers.get("Retry-After")
        assert ra is not None, "202 without Retry-After"
        assert time.monotonic() < deadline, "export not done after %ss" % TIMEOUT
        time.sleep(max(_retry_after_seconds(ra), 0.1))
    assert r.status_code == 200, r.text[:500]
    assert progress == sorted(progress), "X-Progress went backwards: %s" % progress
    assert all(0 <= p <= 100 for p in progress), progress
    manifest = r.json()
    assert manifest["requiresAccessToken"] is False
    outputs = manifest["output"]
    assert outputs

    def download(item):
        resp = requests.get(item["url"], timeout=60,
                            headers={"Accept": "application/fhir+ndjson",
                                     "Accept-Encoding": "gzip, deflate, br, identity"})
        return item, resp

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(download, outputs))
    per_type = {}
    encodings = set()
    for item, resp in results:
        assert resp.status_code == 200, "%s: %d" % (item["url"], resp.status_code)
        assert resp.headers["Content-Type"].startswith("application/fhir+ndjson")
        enc = resp.headers.get("Content-Encoding", "identity")
        encodings.add(enc)
        assert enc in ("gzip", "deflate", "identity"), \
            "%s: Content-Encoding %s (requests cannot decode it)" % (item["url"], enc)
        lines = [ln for ln in resp.content.decode("utf-8").split("\n") if ln]
        assert len(lines) == item["count"], \
            "%s: %d lines, manifest count %d" % (item["url"], len(lines), item["count"])
        for ln in lines:
            assert json.loads(ln)["resourceType"] == item["type"]
        per_type[item["type"]] = per_type.get(item["type"], 0) + len(lines)
    assert per_type == _expected_counts(dataset)


# ---- Inferno Bulk Data test kit ----------------------------------------------------------
def test_420_002_inferno_style_export(stack, dataset):
    """Like Inferno's bulk data tests: GET kick-off only, an integer
    Retry-After on every 202 (it sleeps that many seconds), one session and no
    token refresh; complete status is 200 application/json with
    transactionTime, request equal to the kick-off URL, requiresAccessToken
    and absolute output URLs; each file is application/fhir+ndjson and every
    line a resource of the output's type, with the loaded ids."""
    s = requests.Session()
    kick_url = stack.base_url.rstrip("/") + "/Patient/$export"
    kick = s.get(kick_url, headers={"Accept": "application/fhir+json",
                                    "Prefer": "respond-async"}, timeout=30)
    assert kick.status_code == 202, kick.text[:500]
    status_url = kick.headers["Content-Location"]

    deadline = time.monotonic() + TIMEOUT
    while True:
        r = s.get(status_url, headers={"Accept": "application/json"}, timeout=30)
        if r.status_code != 202:
            break
        ra = r.headers.get("Retry-After", "")
        assert re.fullmatch(r"\d+", ra), "Retry-After %r is not an integer" % ra
        assert time.monotonic() < deadline
        time.sleep(min(int(ra), 2) or 1)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    m = r.json()
    for key in ("transactionTime", "request", "requiresAccessToken", "output"):
        assert key in m, "manifest lacks %s" % key
    assert bfclient.request_matches(m["request"], kick_url), (m["request"], kick_url)
    assert isinstance(m["requiresAccessToken"], bool)

    got = {}
    for item in m["output"]:
        assert urlsplit(item["url"]).scheme in ("http", "https"), item["url"]
        f = s.get(item["url"], headers={"Accept": "application/fhir+ndjson"}, timeout=60)
        assert f.status_code == 200
        assert f.headers["Content-Type"].split(";")[0] == "application/fhir+ndjson"
        for ln in f.text.split("\n"):
            if not ln:
                continue
            res = json.loads(ln)
            assert res["resourceType"] == item["type"]
            got[(res["resourceType"], res["id"])] = True
        if "count" in item:
            assert item["count"] == sum(1 for ln in f.text.split("\n") if ln)
    # a Patient-level export holds the compartment resources; every one of
    # them was loaded, and every loaded Patient is there
    assert set(got) <= set(dataset["resources"]), sorted(set(got) - set(dataset["resources"]))[:5]
    patients = {k for k in dataset["resources"] if k[0] == "Patient"}
    assert patients <= set(got)


def test_420_003_gzip_is_the_same_bytes(stack, client):
    """A file asked for with Accept-Encoding: gzip decompresses to exactly the
    bytes served with Accept-Encoding: identity."""
    exp = bfclient.run_export(client, "$export", params={"_type": "Observation"})
    item = exp.manifest["output"][0]
    plain = requests.get(item["url"], headers={"Accept-Encoding": "identity"}, timeout=60)
    assert plain.status_code == 200
    assert plain.headers.get("Content-Encoding", "identity") == "identity"
    raw = requests.get(item["url"], headers={"Accept-Encoding": "gzip"}, timeout=60,
                       stream=True)
    assert raw.status_code == 200
    assert raw.headers.get("Content-Encoding") == "gzip", dict(raw.headers)
    body = raw.raw.read(decode_content=False)
    assert gzip.decompress(body) == plain.content
    assert len(body) < len(plain.content)
