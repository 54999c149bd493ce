"""How many hash shards a kick-off gives a large type (sql/0040_scale.sql,
sql/0062_shards_by_workers.sql): ceil(estimated rows / shard_rows), capped
at max(live workers, 2) -- more shards than workers only re-scan the type
(a whole-table sequential scan for a type as large as Observation).  Ground
truth: the task rows of each job (that shards export each row exactly once
is test_200's).  Own stack without workers, so the live-worker count is
what the test registers in bulkfhir.worker.  Also: a job's tasks are
numbered -- claimed -- largest first (estimated rows per shard)."""
import bfclient
from bfstack import HeldTransaction
from conftest import generate_and_load

BIG = "Observation"


def _shards(st, job):
    return int(st.psql("SELECT max(shard_count) FROM bulkfhir.task WHERE job_id = :'p1' "
                       "AND resource_type = :'p2'", job, BIG)[0][0])


def _kick(st, c):
    r = c.kickoff("$export", params={"_type": BIG})
    assert r.status_code == 202, r.text[:300]
    return bfclient.job_of(r.headers["Content-Location"])


def _live_workers(st, n, age="0 s"):
    st.psql("DELETE FROM bulkfhir.worker")
    for i in range(n):
        st.psql("INSERT INTO bulkfhir.worker (id, host, pid, version, heartbeat_at) "
                "VALUES (:'p1', 'test', :'p2', 'test', now() - :'p3'::interval)",
                "test:%d:x" % i, str(1000 + i), age)


def test_495_001_shards_follow_live_workers(new_stack):
    st = new_stack(workers=0)
    generate_and_load(st, patients=6, seed=5)
    st.psql("ANALYZE fhir.resource_version")
    rows = int(st.psql("SELECT count(*) FROM fhir.resource_version WHERE resource_type = "
                       ":'p1' AND superseded_at IS NULL AND NOT deleted", BIG)[0][0])
    assert rows > 40, rows
    # ~10 rows per shard wanted: many more shards than any worker count below
    st.psql("UPDATE bulkfhir.setting SET value = '10' WHERE name = 'shard_rows'")
    c = bfclient.Client(st.base_url)
    with HeldTransaction(st):          # the jobs stay queued: only plans here
        _live_workers(st, 0)
        assert _shards(st, _kick(st, c)) == 2       # the floor: a later worker can help
        _live_workers(st, 3)
        assert _shards(st, _kick(st, c)) == 3
        _live_workers(st, 3, age="10 minutes")      # not live: heartbeats too old
        assert _shards(st, _kick(st, c)) == 2
        st.psql("UPDATE bulkfhir.setting SET value = '1000000' WHERE name = 'shard_rows'")
        _live_workers(st, 3)
        assert _shards(st, _kick(st, c)) == 1       # small type: never split
        # a job's tasks are numbered (claimed: ORDER BY id) largest first
        r = c.kickoff("$export")
        assert r.status_code == 202, r.text[:300]
        job = bfclient.job_of(r.headers["Content-Location"])
        est = st.psql("SELECT t.resource_type, coalesce(bulkfhir.estimate_type_rows("
                      "t.resource_type), 0) / t.shard_count FROM bulkfhir.task t "
                      "WHERE t.job_id = :'p1' ORDER BY t.id", job)
        sizes = [int(n) for _, n in est]
        assert len(sizes) > 5 and sizes == sorted(sizes, reverse=True), est
        assert est[0][0] == BIG, est
    st.psql("DELETE FROM bulkfhir.worker")
    st.psql("UPDATE bulkfhir.task SET state = 'cancelled' WHERE state = 'queued'")
    st.psql("UPDATE bulkfhir.job SET state = 'cancelled' WHERE state = 'queued'")
