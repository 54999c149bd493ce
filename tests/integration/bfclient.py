"""A small Bulk Data client for the tests, and the ground-truth comparison.

kickoff() -> poll() -> download(): each step returns what the server said so
the tests can assert on headers and bodies; nothing here hides an error.
"""
import copy
import datetime as dt
import json
import re
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, parse_qsl

import requests

FHIR_JSON = "application/fhir+json"
NDJSON = "application/fhir+ndjson"
DEFAULT_HEADERS = {"Accept": FHIR_JSON, "Prefer": "respond-async"}
INSTANT_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_instant(s):
    assert INSTANT_RE.match(s), "not a FHIR instant: %r" % s
    s2 = s.replace("Z", "+00:00")
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", s2)
    frac = (m.group(2) or ".0")[1:7].ljust(6, "0")
    return dt.datetime.fromisoformat(m.group(1) + "." + frac + m.group(3))


def fmt_instant(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def json_body(resp):
    return json.loads(resp.content.decode("utf-8"), parse_float=Decimal)


def assert_operation_outcome(resp, statuses=None):
    """The response is an error with a FHIR OperationOutcome JSON body (R37, R40)."""
    if statuses is not None:
        assert resp.status_code in statuses, \
            "status %d not in %s: %s" % (resp.status_code, statuses, resp.text[:500])
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() in (FHIR_JSON, "application/json"), \
        "OperationOutcome Content-Type is %r" % ctype
    oo = json_body(resp)
    assert oo.get("resourceType") == "OperationOutcome", oo
    issues = oo.get("issue")
    assert isinstance(issues, list) and issues, oo
    for issue in issues:
        assert issue.get("severity") in ("fatal", "error", "warning", "information"), issue
        assert isinstance(issue.get("code"), str) and issue["code"], issue
    return oo


class Client:
    def __init__(self, base_url, token=None):
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.token = token

    def _headers(self, extra=None):
        h = dict(DEFAULT_HEADERS)
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if extra:
            h.update(extra)
        return {k: v for k, v in h.items() if v is not None}

    def url(self, path):
        return self.base + "/" + path.lstrip("/")

    def get(self, path_or_url, headers=None, **kw):
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        kw.setdefault("timeout", 30)
        return self.http.get(url, headers=self._headers(headers), **kw)

    def kickoff(self, path="$export", params=None, headers=None, timeout=30):
        """GET kick-off; params as a dict or a list of pairs (repeats allowed)."""
        return self.http.get(self.url(path), params=params, headers=self._headers(headers),
                             timeout=timeout)

    def kickoff_post(self, path="$export", parameters=None, body=None, headers=None,
                     content_type=FHIR_JSON, timeout=30):
        """POST kick-off with a Parameters resource built from (name, value[x], value)
        triples, or a raw body."""
        if body is None:
            body = json.dumps({"resourceType": "Parameters",
                               "parameter": [{"name": n, vx: v} for n, vx, v in parameters or []]})
        h = {"Content-Type": content_type}
        h.update(headers or {})
        return self.http.post(self.url(path), data=body, headers=self._headers(h),
                              timeout=timeout)

    def delete(self, url, timeout=30):
        return self.http.delete(url, headers=self._headers(), timeout=timeout)

    def poll(self, status_url, timeout=300, max_sleep=2.0):
        """Poll until the status is no longer 202 (honouring Retry-After up to
        max_sleep, and 429 as "wait").  Returns (final response, [202 responses])."""
        deadline = time.monotonic() + timeout
        interim = []
        while True:
            r = self.http.get(status_url, headers=self._headers({"Accept": "application/json"}),
                              timeout=30)
            if r.status_code not in (202, 429):
                return r, interim
            if r.status_code == 202:
                interim.append(r)
            if time.monotonic() > deadline:
                raise AssertionError("export still %d after %ss: %s %s"
                                     % (r.status_code, timeout, status_url, dict(r.headers)))
            ra = r.headers.get("Retry-After", "1")
            try:
                delay = float(ra)
            except ValueError:
                delay = 1.0
            time.sleep(min(max(delay, 0.1), max_sleep))

    def download(self, url, timeout=120):
        return self.http.get(url, headers=self._headers({"Accept": NDJSON}), timeout=timeout)


class Export:
    """The whole round trip, with every response kept for assertions."""

    def __init__(self, client, kick, t_before, t_after):
        self.client = client
        self.kick = kick
        self.t_before = t_before
        self.t_after = t_after
        self.status_url = kick.headers.get("Content-Location")
        self.final = None
        self.interim = []
        self.manifest = None
        self.files = {}      # url -> (response, [parsed lines])

    def wait(self, timeout=300):
        assert self.kick.status_code == 202, \
            "kick-off: %d %s" % (self.kick.status_code, self.kick.text[:1000])
        assert self.status_url, "kick-off 202 without Content-Location"
        self.final, self.interim = self.client.poll(self.status_url, timeout=timeout)
        assert self.final.status_code == 200, \
            "status: %d %s" % (self.final.status_code, self.final.text[:1000])
        self.manifest = json_body(self.final)
        return self

    def fetch_all(self):
        for item in self.manifest.get("output", []) + self.manifest.get("error", []) + \
                self.manifest.get("deleted", []):
            r = self.client.download(item["url"])
            lines = []
            if r.status_code == 200:
                text = r.content.decode("utf-8")
                assert text == "" or text.endswith("\n"), "file does not end with a newline"
                for ln in text.split("\n"):
                    if ln:
                        lines.append(json.loads(ln, parse_float=Decimal))
            self.files[item["url"]] = (r, lines)
        return self

    def resources(self, kind="output"):
        """{(type, id): [resource, ...]} over every file of that kind."""
        out = {}
        for item in self.manifest.get(kind, []):
            for res in self.files[item["url"]][1]:
                out.setdefault((res.get("resourceType"), res.get("id")), []).append(res)
        return out


def run_export(client, path="$export", params=None, post=None, headers=None, timeout=300):
    t0 = dt.datetime.now(dt.timezone.utc)
    if post is not None:
        kick = client.kickoff_post(path, parameters=post, headers=headers)
    else:
        kick = client.kickoff(path, params=params, headers=headers)
    t1 = dt.datetime.now(dt.timezone.utc)
    return Export(client, kick, t0, t1).wait(timeout).fetch_all()


# ---- ground truth -------------------------------------------------------------
def load_input(paths):
    """Resources from NDJSON files and/or Bundle JSON files, as the loader sees
    them: {(type, id): resource}, and {fullUrl: "Type/id"} for urn:uuid links."""
    resources, links = {}, {}

    def add(res, full_url=None):
        key = (res["resourceType"], res["id"])
        assert key not in resources, "duplicate resource in the input: %s/%s" % key
        resources[key] = res
        if full_url:
            links[full_url] = "%s/%s" % key
        links.setdefault("urn:uuid:" + res["id"], "%s/%s" % key)

    for p in paths:
        p = Path(p)
        if p.is_dir():
            sub = sorted(list(p.glob("*.ndjson")) + list(p.glob("*.json")))
            r2, l2 = load_input([x for x in sub if x.name != "export-manifest.json"])
            for k, v in r2.items():
                assert k not in resources, "duplicate resource in the input: %s/%s" % k
                resources[k] = v
            for k, v in l2.items():
                links.setdefault(k, v)
            continue
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".ndjson":
            for ln in text.splitlines():
                if ln.strip():
                    add(json.loads(ln, parse_float=Decimal))
        else:
            doc = json.loads(text, parse_float=Decimal)
            if doc.get("resourceType") == "Bundle":
                for e in doc.get("entry", []):
                    if "resource" in e:
                        add(e["resource"], e.get("fullUrl"))
            elif "resourceType" in doc:
                add(doc)
    return resources, links


def normalize(res, links=None):
    """The resource with meta.versionId / meta.lastUpdated removed (and meta
    itself when nothing else is left), urn:uuid references resolved."""
    r = copy.deepcopy(res)
    meta = r.get("meta")
    if isinstance(meta, dict):
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if not meta:
            del r["meta"]

    def fix(v):
        if isinstance(v, dict):
            for k, x in list(v.items()):
                if k == "reference" and isinstance(x, str) and links and x in links:
                    v[k] = links[x]
                else:
                    fix(x)
        elif isinstance(v, list):
            for x in v:
                fix(x)
    fix(r)
    return r


def first_difference(a, b, path="$"):
    """A short description of where two JSON values differ (for messages)."""
    if type(a) is not type(b) and not (isinstance(a, (int, Decimal)) and
                                       isinstance(b, (int, Decimal))):
        return "%s: %r != %r" % (path, a, b)
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return "%s.%s: only in %s" % (path, k, "export" if k in a else "input")
            d = first_difference(a[k], b[k], path + "." + k)
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: list length %d != %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    return None if a == b else "%s: %r != %r" % (path, a, b)


def check_manifest_shape(exp, base_url, requires_token=False):
    """Manifest fields every complete status carries (SPEC 1.9, R36, R47)."""
    m = exp.manifest
    ctype = exp.final.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/json", ctype
    for key in ("transactionTime", "request", "requiresAccessToken", "output", "error"):
        assert key in m, "manifest lacks %s: %s" % (key, m)
    tt = parse_instant(m["transactionTime"])
    slack = dt.timedelta(seconds=2)
    assert exp.t_before - slack <= tt <= exp.t_after + slack, \
        "transactionTime %s outside the kick-off window %s..%s" % (tt, exp.t_before, exp.t_after)
    assert m["requiresAccessToken"] is requires_token
    assert isinstance(m["output"], list) and isinstance(m["error"], list)
    base = urlsplit(base_url)
    for kind in ("output", "error", "deleted"):
        for item in m.get(kind, []):
            u = urlsplit(item["url"])
            assert (u.scheme, u.netloc) == (base.scheme, base.netloc), \
                "file url not absolute on this server: %s" % item["url"]
            assert "type" in item, item
            if "count" in item:
                assert isinstance(item["count"], int) and item["count"] >= 0, item
    # kick-off response itself (R36)
    loc = urlsplit(exp.status_url)
    assert (loc.scheme, loc.netloc) == (base.scheme, base.netloc), exp.status_url


def check_files(exp):
    """Every listed file: 200, application/fhir+ndjson, one type per file,
    manifest count = lines (R47, R52)."""
    for kind in ("output", "error", "deleted"):
        for item in exp.manifest.get(kind, []):
            r, lines = exp.files[item["url"]]
            assert r.status_code == 200, "%s: %d %s" % (item["url"], r.status_code, r.text[:300])
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
            assert ctype == NDJSON, "%s: Content-Type %r" % (item["url"], ctype)
            types = {x.get("resourceType") for x in lines}
            assert types <= {item["type"]}, "%s holds %s, manifest says %s" % (
                item["url"], types, item["type"])
            if "count" in item:
                assert item["count"] == len(lines), "%s: count %d, %d lines" % (
                    item["url"], item["count"], len(lines))


def check_exact(exp, expected, links=None):
    """The output is exactly `expected` ({(type,id): resource}): each resource
    once, equal to its input apart from meta.versionId/lastUpdated."""
    got = exp.resources("output")
    dups = sorted("%s/%s x%d" % (k[0], k[1], len(v)) for k, v in got.items() if len(v) > 1)
    assert not dups, "resources exported more than once: %s" % dups[:20]
    missing = sorted("%s/%s" % k for k in expected if k not in got)
    extra = sorted("%s/%s" % k for k in got if k not in expected)
    assert not missing and not extra, "missing %d %s; unexpected %d %s" % (
        len(missing), missing[:10], len(extra), extra[:10])
    diffs = []
    for key, want in expected.items():
        have = normalize(got[key][0])
        want_n = normalize(want, links)
        if have != want_n:
            diffs.append("%s/%s: %s" % (key[0], key[1], first_difference(have, want_n)))
    assert not diffs, "%d resources differ from their input, e.g.:\n%s" % (
        len(diffs), "\n".join(diffs[:10]))


def counts_by_type(resources):
    out = {}
    for t, _ in resources:
        out[t] = out.get(t, 0) + 1
    return out


def request_matches(manifest_request, sent_url):
    """manifest.request names the kick-off: same path, same query parameters."""
    a, b = urlsplit(manifest_request), urlsplit(sent_url)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path) and \
        sorted(parse_qsl(a.query, keep_blank_values=True)) == \
        sorted(parse_qsl(b.query, keep_blank_values=True))


def _plain(v):
    if isinstance(v, Decimal):
        return float(v)     # parse_float gave it: it was written as a decimal
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def dumps(res):
    """JSON text of a resource parsed with Decimal numbers."""
    return json.dumps(_plain(res), ensure_ascii=False, separators=(",", ":"))


# ---- helpers of the cache tests (test_470, test_480) -------------------------
def fresh_get(c, url, timeout=30):
    """A GET on a new connection (likely another httpd child or thread)."""
    return requests.get(url, headers=c._headers({"Accept": "application/json"}),
                        timeout=timeout)


def job_of(url):
    """The job id at the end of a status URL (a ?page=N query dropped)."""
    return url.rstrip("/").rsplit("/", 1)[1].split("?")[0]


def until(what, fn, limit, gap):
    """Call fn() every `gap` seconds until it returns something (not None:
    unlike bfworkers.wait_for, a 4xx response counts); returns (it, seconds
    taken); fails after `limit` seconds."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v is not None:
            return v, time.monotonic() - t0
        assert time.monotonic() - t0 < limit, "%s: not within %.1f s" % (what, limit)
        time.sleep(gap)
