"""PostgreSQL outage (DESIGN invariant 5): kick-off and status answer 503 +
Retry-After + OperationOutcome quickly while the database is down, and work
again after it comes back, without restarting httpd.  Own stack."""
import time

import pytest

import bfclient
from bfclient import assert_operation_outcome


@pytest.fixture(scope="module")
def outage_stack(new_stack):
    st = new_stack(workers=1)
    from conftest import generate_and_load
    resources, links, _ = generate_and_load(st, patients=3, seed=5)
    return st, resources, links


def test_090_001_postgres_down_503_then_recovers(outage_stack, allow_log):
    """Invariant 5, R44: with PostgreSQL stopped, kick-off and status polls
    answer 503 with Retry-After and an OperationOutcome within 5 s; after
    `devstack pg start` the same httpd (same pid) accepts a kick-off and the
    export completes with the exact data."""
    st, resources, links = outage_stack
    allow_log(r"^BF\d{5}: ")        # the module's tagged database warnings
    c = bfclient.Client(st.base_url)
    before = bfclient.run_export(c, params={"_type": "Patient"})
    pid = st.httpd_pid()

    def status_after_cache():
        # BulkFhirStatusCache (devstack: on, 1 s) may answer a poll from its
        # entry meanwhile -- the same 200 as before; past its timeout: 503
        r = c.get(before.status_url, timeout=10)
        assert r.status_code in (200, 503), r.text[:300]
        assert r.status_code == 503 or r.content == before.final.content
        time.sleep(1.1)
        return c.get(before.status_url, timeout=10)

    st.devstack("pg", "stop")
    try:
        for what, call in (("kick-off", lambda: c.kickoff("$export", timeout=10)),
                           ("status", status_after_cache),
                           ("kick-off again", lambda: c.kickoff("$export", timeout=10))):
            t0 = time.monotonic()
            r = call()
            took = time.monotonic() - t0
            assert took < 5.0, "%s took %.1fs with PostgreSQL down" % (what, took)
            assert_operation_outcome(r, statuses=(503,))
            assert r.headers.get("Retry-After"), "%s: 503 without Retry-After" % what
            oo = bfclient.json_body(r)
            assert oo["issue"][0]["code"] in ("transient", "exception", "timeout",
                                              "lock-error", "no-store", "throttled"), oo
    finally:
        st.devstack("pg", "start")

    # recovery without a restart: retry for a little while (pools reconnect)
    deadline = time.monotonic() + 20
    while True:
        r = c.kickoff("$export")
        if r.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 202, "kick-off after PostgreSQL came back: %d %s" % (
        r.status_code, r.text[:500])
    assert st.httpd_pid() == pid, "httpd was restarted"
    exp = bfclient.Export(c, r, None, None).wait(timeout=120).fetch_all()
    bfclient.check_files(exp)
    bfclient.check_exact(exp, resources, links)
    # the status of the job from before the outage is served again
    assert c.get(before.status_url).status_code == 200
