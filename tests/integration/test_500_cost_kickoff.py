"""Bounded cost, kick-off side (issue #11 part A; README "Bounded cost").

Every shape of the outside review is either refused fast with a 400
OperationOutcome `too-costly` naming its limit, or -- the largest shape the
default limits accept -- runs to completion within ~20x an unfiltered export
of the same type, with the worker under 64 MiB and its backends under
512 MiB (RssAnon), exporting exactly what SQL over the store says matches.

Stacks: a private one with the 20-patient data set (KickoffRate 1000/min,
so the many kick-offs here never throttle), and a private one without data
and workers for the rate and body-size checks (KickoffRate 3/min,
BulkFhirMaxBody 1 GiB).  Figures are printed (pytest -s) for tests/README.md."""
import json
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import bfclient
import bfcost
from conftest import generate_and_load

FAST = 0.5          # seconds a refusal may take (it runs no SQL but one insert)
MiB = 1024


def _figure(name, **kw):
    print("\nFIGURE %s %s" % (name, " ".join("%s=%s" % kv for kv in kw.items())))


@pytest.fixture(scope="module")
def cost_stack(new_stack):
    st = new_stack(workers=1, extra_conf="BulkFhirKickoffRate 1000/min\n")
    resources, _, _ = generate_and_load(st, patients=20, seed=7)
    st.dataset = resources
    return st


@pytest.fixture(scope="module")
def limits_stack(new_stack):
    return new_stack(workers=0, extra_conf="BulkFhirKickoffRate 3/min\n"
                                           "BulkFhirMaxBody 1073741824\n")


def _refused(resp, code, limit=None):
    oo = bfclient.assert_operation_outcome(resp, (400,))
    issue = oo["issue"][0]
    assert issue["code"] == code, oo
    text = issue.get("diagnostics", "")
    if limit:
        name, value = limit
        assert name in text and str(value) in text, text
    for leak in ("SQLSTATE", "SELECT", "/tmp/", "jsonb"):
        assert leak not in text, text
    return text


def _months(first, n):
    """n consecutive months 'YYYY-MM' from the month index first (y*12+m)."""
    return ["%04d-%02d" % ((first + i) // 12, (first + i) % 12 + 1) for i in range(n)]


def _date_filter(clauses, first):
    """Observation?date=ge..&date=le..&date=eq.. with 64 month values each
    (the review's shape: 3 clauses x 64 date values in about 1.4 KB)."""
    prefixes = ["ge", "le", ""]
    parts = []
    for c in range(clauses):
        p = prefixes[c % 3]
        start = first - 63 if p == "ge" else first - 32 if p == "" else first
        parts.append("date=" + ",".join(p + m for m in _months(start, 64)))
    return "Observation?" + "&".join(parts)


def _ground_truth_date(st, flt):
    """Observation ids the filter matches, by SQL over the store written the
    slow, obvious way: one EXISTS per value and per path (the semantics the
    old SQL had)."""
    cmp = {"eq": "t <@ q", "ge": "(upper_inf(t) OR upper(t) > upper(q) OR t <@ q)",
           "le": "(lower_inf(t) OR lower(t) < lower(q) OR t <@ q)"}
    paths = ["effective", "effectiveDateTime", "effectivePeriod", "effectiveInstant",
             "effectiveDate"]
    clauses = []
    for part in flt.split("?", 1)[1].split("&"):
        ors = []
        for v in part.split("=", 1)[1].split(","):
            pfx, d = (v[:2], v[2:]) if v[:2] in ("ge", "le") else ("eq", v)
            for p in paths:
                ors.append("EXISTS (SELECT 1 FROM jsonb_path_query(resource, 'lax $.%s') x,"
                           " bulkfhir.fhir_value_range(x) t, bulkfhir.fhir_date_range('%s') q"
                           " WHERE t IS NOT NULL AND %s)" % (p, d, cmp[pfx]))
        clauses.append("(" + " OR ".join(ors) + ")")
    rows = st.psql("SELECT id FROM fhir.resource_version WHERE resource_type = 'Observation'"
                   " AND superseded_at IS NULL AND NOT deleted AND " + " AND ".join(clauses))
    return {r[0] for r in rows}


def _center_month(st):
    rows = st.psql("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY resource->>'effectiveDateTime')"
                   " FROM fhir.resource_version WHERE resource_type = 'Observation'"
                   " AND resource ? 'effectiveDateTime'")
    y, m = rows[0][0][:4], rows[0][0][5:7]
    return int(y) * 12 + int(m) - 1


def bfclient_quote(s):
    return quote(s, safe="")


def _timed_export(client, **kw):
    t = time.monotonic()
    exp = bfclient.run_export(client, **kw)
    return exp, time.monotonic() - t


# ---- the review's _typeFilter shapes ----------------------------------------------------
def _run_accepted(st, name, flt, want):
    """Run the accepted filter and an unfiltered export of its type; check
    time (within 20x), worker RSS, backend RssAnon and the exported ids."""
    client = bfclient.Client(st.base_url)
    t = flt.split("?", 1)[0]
    every = {k[1] for k in st.dataset if k[0] == t}
    assert want and want != every, "the shape selects nothing or everything"
    query = "_type=%s&_typeFilter=%s" % (t, bfclient_quote(flt))
    plain, t_plain = _timed_export(client, params={"_type": t})
    assert {k[1] for k in plain.resources()} == every
    with bfcost.Peak(st) as pk:
        if len(query) < 4000:
            exp, t_flt = _timed_export(client, path="$export?" + query)
        else:   # over httpd's request line limit: the same as a POST
            exp, t_flt = _timed_export(client, post=[
                ("_type", "valueString", t), ("_typeFilter", "valueString", flt)])
    got = {k[1] for k in exp.resources()}
    _figure(name, query_bytes=len(query), job_s="%.2f" % t_flt,
            plain_s="%.2f" % t_plain, worker_kib=pk.worker_kib, backend_kib=pk.backend_kib,
            exported=len(got), of=len(every))
    assert got == want, "%d extra, %d missing" % (len(got - want), len(want - got))
    assert t_flt <= 20 * max(t_plain, 1.0), (t_flt, t_plain)
    assert pk.samples > 0 and pk.worker_kib and pk.worker_kib < 64 * MiB, pk.worker_kib
    assert pk.backend_kib < 512 * MiB, pk.backend_kib
    return query


def test_500_001_accepted_date_shape_runs_bounded(cost_stack):
    """The 1.4 KB GET (3 clauses x 64 date values, 960 terms: under the
    default BulkFhirMaxFilterTerms 1024) runs to completion: its job time is
    within 20x an unfiltered Observation export, the worker stays under
    64 MiB, its backends under 512 MiB, and the export equals the SQL
    ground truth.  (Before the restructured SQL this shape took 63 s and
    556 MiB of backend memory on the same data.)"""
    st = cost_stack
    flt = _date_filter(3, _center_month(st))
    assert 1300 <= len(flt) <= 2000, len(flt)
    _run_accepted(st, "accepted_3x64_dates", flt, _ground_truth_date(st, flt))


def test_500_006_accepted_token_shape_runs_bounded(cost_stack):
    """The token worst case under the limits: 16 clauses x 64 values, each
    value of its own system (one jsonpath per system: 1024 per row), only
    the first value of each clause real (about 12 KB: a POST, under
    BulkFhirMaxTypeFilterBytes 16384).  Runs within the same bounds and
    exports exactly the Observations with that code."""
    st = cost_stack
    obs = {k[1]: r for k, r in st.dataset.items() if k[0] == "Observation"}
    codes = sorted({(c.get("system"), c.get("code")) for r in obs.values()
                    for c in r.get("code", {}).get("coding", [])})
    sys_, code = codes[len(codes) // 2]
    clause = "code=" + ",".join(["%s|%s" % (sys_, code)] +
                                ["s%d|%s" % (i, code) for i in range(63)])
    flt = "Observation?" + "&".join([clause] * 16)
    want = {i for i, r in obs.items()
            if (sys_, code) in {(c.get("system"), c.get("code"))
                                for c in r.get("code", {}).get("coding", [])}}
    _run_accepted(st, "accepted_16x64_token_systems", flt, want)


@pytest.mark.parametrize("clauses,limit", [
    (7, ("BulkFhirMaxFilterTerms", 1024)),     # the 3.7 KB GET
    (11, ("BulkFhirMaxFilterTerms", 1024)),    # the 5.5 KB GET
])
def test_500_002_costly_typefilter_gets_refused_fast(cost_stack, clauses, limit):
    """The 3.7 KB and 5.5 KB GETs (7 and 11 clauses x 64 date values)
    are refused with 400 too-costly naming BulkFhirMaxFilterTerms, in
    well under FAST seconds, and start no job."""
    st = cost_stack
    client = bfclient.Client(st.base_url)
    jobs = st.psql("SELECT count(*) FROM bulkfhir.job")[0][0]
    query = "_typeFilter=" + bfclient_quote(_date_filter(clauses, 2015 * 12))
    r, secs = bfcost.timed(client.get, "$export?" + query)
    _figure("refused_%dx64_dates" % clauses, query_bytes=len(query), secs="%.3f" % secs)
    _refused(r, "too-costly", limit)
    assert secs < FAST, secs
    assert st.psql("SELECT count(*) FROM bulkfhir.job")[0][0] == jobs


def test_500_003_more_values_than_allowed(cost_stack):
    """65 values of one search parameter: too-costly, BulkFhirMaxFilterValues 64."""
    client = bfclient.Client(cost_stack.base_url)
    codes = ",".join("c%d" % i for i in range(65))
    r, secs = bfcost.timed(client.get, "$export?_typeFilter=" +
                           bfclient_quote("Observation?code=" + codes))
    _refused(r, "too-costly", ("BulkFhirMaxFilterValues", 64))
    assert secs < FAST


def test_500_004_eight_filters_in_30k_post(cost_stack):
    """8 filters in a 30 KiB POST (each 7 clauses x 64 dates): refused fast."""
    client = bfclient.Client(cost_stack.base_url)
    params = [("_typeFilter", "valueString", _date_filter(7, 2010 * 12 + i)) for i in range(8)]
    body = json.dumps({"resourceType": "Parameters",
                       "parameter": [{"name": n, vx: v} for n, vx, v in params]})
    assert 28 * 1024 <= len(body) <= 40 * 1024, len(body)
    r, secs = bfcost.timed(client.kickoff_post, body=body)
    _figure("refused_8_filters_post", body_bytes=len(body), secs="%.3f" % secs)
    text = _refused(r, "too-costly")
    assert "BulkFhirMaxFilterTerms" in text or "BulkFhirMaxTypeFilterBytes" in text, text
    assert secs < FAST, secs


def test_500_005_nine_filters_refused(cost_stack):
    """A ninth _typeFilter: too-costly, BulkFhirMaxTypeFilters 8 (small ones)."""
    client = bfclient.Client(cost_stack.base_url)
    params = [("_typeFilter", "Patient?gender=male")] * 9
    r, secs = bfcost.timed(client.kickoff, params=params)
    _refused(r, "too-costly", ("BulkFhirMaxTypeFilters", 8))
    assert secs < FAST


# ---- multi-value semantics of the restructured SQL ------------------------------------
def test_500_010_multi_value_clauses_equal_the_union(cost_stack):
    """A clause with several values (token with two systems and a bare code,
    reference, string) exports exactly the union of the one-value filters
    (R29: filters of a type are ORed) -- the restructured SQL keeps the
    per-value semantics -- and that union equals the Python ground truth."""
    st = cost_stack
    client = bfclient.Client(st.base_url)
    obs = {k[1]: r for k, r in st.dataset.items() if k[0] == "Observation"}
    pats = {k[1]: r for k, r in st.dataset.items() if k[0] == "Patient"}
    codes = sorted({(c.get("system"), c.get("code")) for r in obs.values()
                    for c in r.get("code", {}).get("coding", [])})
    assert len(codes) >= 3
    c1, c2, c3 = codes[0], codes[len(codes) // 2], codes[-1]
    subj = sorted({r.get("subject", {}).get("reference") for r in obs.values()} - {None})[:2]
    names = sorted({n.get("family", "")[:2] for r in pats.values() for n in r.get("name", [])
                    if n.get("family")})[:2]
    vals_code = ["%s|%s" % c1, "%s|%s" % c2, c3[1]]
    multi = [("_type", "Observation,Patient"),
             ("_typeFilter", "Observation?code=%s&subject=%s" % (",".join(vals_code),
                                                                 ",".join(subj))),
             ("_typeFilter", "Patient?name=%s" % ",".join(names))]
    single = [("_type", "Observation,Patient")]
    for c in vals_code:
        for s in subj:
            single.append(("_typeFilter", "Observation?code=%s&subject=%s" % (c, s)))
    for n in names:
        single.append(("_typeFilter", "Patient?name=%s" % n))
    assert len(single) - 1 <= 8
    a = bfclient.run_export(client, params=multi).resources()
    b = bfclient.run_export(client, params=single).resources()
    assert set(a) == set(b)

    def code_ok(r):
        cs = {(c.get("system"), c.get("code")) for c in r.get("code", {}).get("coding", [])}
        return c1 in cs or c2 in cs or any(code == c3[1] for _, code in cs)
    want_obs = {i for i, r in obs.items()
                if code_ok(r) and r.get("subject", {}).get("reference") in subj}
    want_pat = {i for i, r in pats.items()
                if any(str(n.get("family", "")).lower().startswith(x.lower())
                       or any(str(g).lower().startswith(x.lower()) for g in n.get("given", []))
                       for n in r.get("name", []) for x in names)}
    assert want_obs and want_pat
    assert {k[1] for k in a if k[0] == "Observation"} == want_obs
    assert {k[1] for k in a if k[0] == "Patient"} >= want_pat


# ---- _elements -------------------------------------------------------------------------
def _elements_body(n, per=1000):
    names = ["e%d" % i for i in range(n)]
    return json.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "_elements", "valueString": ",".join(names[i:i + per])}
        for i in range(0, n, per)]}, separators=(",", ":"))


def test_500_020_huge_elements_post_refused_fast(cost_stack):
    """A 985 KiB POST with 140k distinct _elements: 400 too-costly
    (BulkFhirMaxElements 500) within 1 s, while another client's status
    polls keep being answered."""
    st = cost_stack
    client = bfclient.Client(st.base_url)
    body = _elements_body(140000)
    assert 900 * 1024 <= len(body) <= 1024 * 1024, len(body)
    kick = client.kickoff(params={"_type": "Patient"})
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["Content-Location"]
    results = []

    def costly():
        for _ in range(3):
            results.append(bfcost.timed(client.kickoff_post, body=body))
    th = threading.Thread(target=costly)
    other = bfclient.Client(st.base_url)
    polls = []
    th.start()
    deadline = time.monotonic() + 30
    while th.is_alive() and time.monotonic() < deadline:
        r, secs = bfcost.timed(other.get, status_url, headers={"Accept": "application/json"})
        assert r.status_code in (200, 202, 429), r.text[:300]
        polls.append(secs)
        time.sleep(0.05)
    th.join(timeout=30)
    assert len(results) == 3
    for r, secs in results:
        _refused(r, "too-costly", ("BulkFhirMaxElements", 500))
        assert secs < 1.0, secs
    _figure("refused_140k_elements_post", body_bytes=len(body),
            worst_s="%.3f" % max(s for _, s in results), polls=len(polls),
            worst_poll_s="%.3f" % max(polls or [0]))
    assert polls and max(polls) < 1.0, polls


def test_500_021_25k_elements_refused(cost_stack):
    """A valid-looking job with 25k _elements is refused by the limit."""
    client = bfclient.Client(cost_stack.base_url)
    r, secs = bfcost.timed(client.kickoff_post, body=_elements_body(25000))
    _refused(r, "too-costly", ("BulkFhirMaxElements", 500))
    assert secs < FAST


# ---- input hygiene ---------------------------------------------------------------------
@pytest.mark.parametrize("query", [
    "_typeFilter=Patient%3Fname%3D%FF",            # invalid after query decoding
    "_typeFilter=Patient%3Fname%3D%25FF",          # ... after the filter's own decoding
    "_typeFilter=Patient%3Fname%3D%25C0%25AF",     # an overlong '/'
    "_since=2020-01-01T00:00:00Z%FF",
    "_type=Pat%C3ient",
    "_elements=na%EDme",
    "_outputFormat=%F0%9F%98",                    # a truncated sequence
    "x%FF=1",
])
def test_500_030_invalid_utf8_is_400(cost_stack, query):
    """Invalid UTF-8 anywhere in the decoded parameters: 400 invalid (never
    a 500, never a job), the echo is short and printable."""
    st = cost_stack
    client = bfclient.Client(st.base_url)
    jobs = st.psql("SELECT count(*) FROM bulkfhir.job")[0][0]
    for lenient in (None, "respond-async, handling=lenient"):
        r = client.get("$export?" + query, headers={"Prefer": lenient} if lenient else None)
        text = _refused(r, "invalid")
        assert "UTF-8" in text, text
        assert all(c.isprintable() for c in text), text
    assert st.psql("SELECT count(*) FROM bulkfhir.job")[0][0] == jobs


def test_500_031_invalid_utf8_in_a_body_is_400(cost_stack):
    """Raw invalid bytes in a Parameters body (a value, a name): 400 invalid."""
    client = bfclient.Client(cost_stack.base_url)
    for body in (b'{"resourceType":"Parameters","parameter":[{"name":"_type",'
                 b'"valueString":"Pat\xffient"}]}',
                 b'{"resourceType":"Parameters","parameter":[{"name":"_typeFilter",'
                 b'"valueString":"Patient?name=%FF"}]}',
                 b'{"resourceType":"Parameters","parameter":[{"name":"x\xc0\xaf",'
                 b'"valueString":"1"}]}'):
        r = client.kickoff_post(body=body)
        _refused(r, "invalid")


# ---- the rate and the body ----------------------------------------------------------------
def test_500_040_too_costly_counts_against_the_rate(limits_stack):
    """BulkFhirKickoffRate 3/min: three too-costly kick-offs use up the
    anonymous client's minute, so the next valid kick-off gets 429 (and so
    does a fourth costly one, without being recorded)."""
    st = limits_stack
    client = bfclient.Client(st.base_url)
    costly = {"_typeFilter": _date_filter(7, 2015 * 12)}
    for _ in range(3):
        _refused(client.kickoff(params=costly), "too-costly",
                 ("BulkFhirMaxFilterTerms", 1024))
    rows = st.psql("SELECT count(*) FROM bulkfhir.kickoff_refusal WHERE client = ''")
    assert rows[0][0] == "3"
    r = client.kickoff(params={"_type": "Patient"})
    oo = bfclient.assert_operation_outcome(r, (429,))
    assert oo["issue"][0]["code"] == "throttled"
    assert int(r.headers["Retry-After"]) >= 1
    r = client.kickoff(params=costly)
    bfclient.assert_operation_outcome(r, (429,))
    assert st.psql("SELECT count(*) FROM bulkfhir.kickoff_refusal")[0][0] == "3"
    assert st.psql("SELECT count(*) FROM bulkfhir.job")[0][0] == "0"


def _children(ppid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                out.append(int(d.name))
    return out


def test_500_041_small_body_does_not_allocate_max_body(limits_stack):
    """BulkFhirMaxBody 1 GiB: small POSTs do not make an httpd child reserve
    it (the body is read in chunks as it arrives): the children's peak
    virtual size (VmPeak) grows by less than 256 MiB over 20 POSTs."""
    st = limits_stack
    client = bfclient.Client(st.base_url)
    kids = _children(st.httpd_pid())
    assert kids
    before = {p: bfcost.proc_kib(p, "VmPeak") or 0 for p in kids}
    body = json.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "_outputFormat", "valueString": "text/csv"}]})
    for _ in range(20):
        r = client.kickoff_post(body=body)
        bfclient.assert_operation_outcome(r, (400,))
    grew = max((bfcost.proc_kib(p, "VmPeak") or 0) - before[p] for p in kids
               if bfcost.proc_kib(p, "VmPeak"))
    _figure("small_post_1GiB_maxbody", vmpeak_growth_kib=grew)
    assert grew < 256 * MiB, grew


def test_500_050_capability_statement_states_the_limits(limits_stack):
    """The CapabilityStatement's documentation states the limits in effect
    (here the defaults, and the stack's own rate and body size)."""
    client = bfclient.Client(limits_stack.base_url)
    doc = bfclient.json_body(client.get("metadata"))["rest"][0]["documentation"]
    for item in ("BulkFhirMaxTypeFilters 8", "BulkFhirMaxFilterValues 64",
                 "BulkFhirMaxTypeFilterBytes 16384", "BulkFhirMaxFilterTerms 1024",
                 "BulkFhirMaxElements 500", "BulkFhirMaxPatients 1000",
                 "BulkFhirMaxTypes 200", "BulkFhirMaxBody 1073741824",
                 "BulkFhirKickoffRate 3", "too-costly"):
        assert item in doc, item


def test_500_022_many_parameter_entries_refused_fast(cost_stack):
    """A 1 MiB body of 23k separate `_elements` parameter entries (JSON
    objects, not one comma list): refused by BulkFhirMaxElements within 1 s."""
    client = bfclient.Client(cost_stack.base_url)
    body = json.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "_elements", "valueString": "e%d" % i} for i in range(23000)]},
        separators=(",", ":"))
    assert 800 * 1024 <= len(body) <= 1024 * 1024, len(body)
    r, secs = bfcost.timed(client.kickoff_post, body=body)
    _figure("refused_23k_entries_post", body_bytes=len(body), secs="%.3f" % secs)
    _refused(r, "too-costly", ("BulkFhirMaxElements", 500))
    assert secs < 1.0, secs


def test_500_042_content_length_over_the_limit_refused_before_reading(limits_stack):
    """A Content-Length over BulkFhirMaxBody (here 1 GiB) is answered 413
    at once, without waiting for (or reading) the body."""
    import socket
    from urllib.parse import urlsplit
    u = urlsplit(limits_stack.base_url)
    s = socket.create_connection((u.hostname, u.port), timeout=5)
    try:
        t = time.monotonic()
        s.sendall(("POST %s/$export HTTP/1.1\r\nHost: %s\r\n"
                   "Content-Type: application/fhir+json\r\n"
                   "Content-Length: %d\r\n\r\n" % (u.path, u.netloc, 2 * 1024 ** 3)).encode())
        s.sendall(b"{")
        head = b""
        while b"\r\n\r\n" not in head and time.monotonic() - t < 5:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        secs = time.monotonic() - t
    finally:
        s.close()
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"too-long" in head or b"application/fhir+json" in head, head[:400]
    assert secs < 1.0, secs
