"""Schema version check (issue #16): the module knows the schema version it
was built for (the highest sql/NNNN_*.sql, generated at build time) and
refuses to serve against an older schema -- 503, a transient
OperationOutcome and a tagged error line naming both versions -- instead of
failing in odd ways; `bulkfhirctl migrate --check` exits 3 while migrations
are pending.  Own stack: the test removes the latest migration's row and
puts it back."""
import re
import time
from pathlib import Path

import pytest

import bfclient
from bfclient import assert_operation_outcome

REPO = Path(__file__).resolve().parents[2]


def _latest_migration():
    names = sorted((p.name for p in (REPO / "sql").glob("[0-9]*_*.sql")),
                   key=lambda n: int(n.split("_", 1)[0]))
    return int(names[-1].split("_", 1)[0]), names[-1]


@pytest.fixture(scope="module")
def schema_stack(new_stack):
    st = new_stack(workers=1)
    from conftest import generate_and_load
    resources, links, _ = generate_and_load(st, patients=2, seed=11)
    return st, resources


def _drop_pool_connections(st):
    """New pooled connections run the check: end the module's idle ones."""
    st.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'mod_bulkfhir' AND pid <> pg_backend_pid()")


def _error_log(st):
    return (st.dir / "log" / "httpd-error.log").read_text(errors="replace")


def test_540_001_migrate_check_exit_codes(schema_stack):
    """--check exits 0 on a migrated database and 3 with the latest
    migration's row removed, naming that file; it changes nothing."""
    st, _ = schema_stack
    version, name = _latest_migration()
    p = st.ctl("migrate", "--check", "--sql-dir", REPO / "sql", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "up to date" in p.stdout
    row = st.psql("SELECT name, applied_at FROM bulkfhir.schema_migration"
                  " WHERE version = :'p1'::integer", version)
    assert row and row[0][0] == name, row
    st.psql("DELETE FROM bulkfhir.schema_migration WHERE version = :'p1'::integer",
            version)
    try:
        p = st.ctl("migrate", "--check", "--sql-dir", REPO / "sql", check=False)
        assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
        assert ("pending: %s" % name) in p.stdout.splitlines(), p.stdout
        # read-only: the row is still missing
        assert st.psql("SELECT count(*) FROM bulkfhir.schema_migration"
                       " WHERE version = :'p1'::integer", version) == [["0"]]
    finally:
        st.psql("INSERT INTO bulkfhir.schema_migration (version, name, applied_at)"
                " VALUES (:'p1'::integer, :'p2', :'p3'::timestamptz)",
                version, name, row[0][1])
    p = st.ctl("migrate", "--check", "--sql-dir", REPO / "sql", check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_540_002_old_schema_503_then_serves(schema_stack, allow_log):
    """With the latest migration's row removed, kick-off and the status page
    answer 503 + Retry-After + a transient OperationOutcome (no SQL, no
    versions of the server's internals beyond the log) and the error log
    names both schema versions (BF01090); once the row is back the same
    httpd exports the loaded data again."""
    st, resources = schema_stack
    version, name = _latest_migration()
    allow_log(r"BF01090: ")
    # while no pooled connection passes the schema check, a child's buffered
    # audit records wait in memory (written once the schema is back)
    allow_log(r"BF01111: audit: cannot write")
    c = bfclient.Client(st.base_url)
    pid = st.httpd_pid()
    row = st.psql("SELECT applied_at FROM bulkfhir.schema_migration"
                  " WHERE version = :'p1'::integer", version)
    assert row, "latest migration %s not applied" % name
    previous = st.psql("SELECT coalesce(max(version), 0) FROM bulkfhir.schema_migration"
                       " WHERE version < :'p1'::integer", version)[0][0]
    st.psql("DELETE FROM bulkfhir.schema_migration WHERE version = :'p1'::integer",
            version)
    try:
        _drop_pool_connections(st)
        time.sleep(0.2)
        r = c.kickoff("$export", timeout=10)
        assert_operation_outcome(r, statuses=(503,))
        assert r.headers.get("Retry-After"), "503 without Retry-After"
        oo = bfclient.json_body(r)
        assert oo["issue"][0]["code"] == "transient", oo
        assert "SELECT" not in r.text and "schema_migration" not in r.text, r.text
        page = c.get(st.base_url.rsplit("/fhir", 1)[0] + "/bulkfhir-status?json",
                     timeout=10)
        assert page.status_code == 503, page.status_code
        log = _error_log(st)
        want = re.compile(r"BF01090: database schema version %s is older than the %d "
                          % (previous, version))
        assert want.search(log), "no BF01090 line naming %s and %d in the error log" % (
            previous, version)
    finally:
        st.psql("INSERT INTO bulkfhir.schema_migration (version, name, applied_at)"
                " VALUES (:'p1'::integer, :'p2', :'p3'::timestamptz)",
                version, name, row[0][0])
    # connections made from now on pass the check: the same httpd serves
    deadline = time.monotonic() + 20
    while True:
        r = c.kickoff("$export", params={"_type": "Patient"})
        if r.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 202, r.text[:300]
    assert st.httpd_pid() == pid
    res = bfclient.run_export(c, params={"_type": "Patient"})
    got = {i for (t, i) in res.resources() if t == "Patient"}
    assert got == {i for (t, i) in resources if t == "Patient"}
