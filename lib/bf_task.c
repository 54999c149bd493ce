/* bf_task: the worker's statements (see bf_task.h). */
#include "bf_task.h"
#include "bf_job_state.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <json-c/json.h>

#define I64(buf, v)                                                            \
    (snprintf((buf), sizeof(buf), "%" PRId64, (int64_t)(v)), (buf))

static const char *dup_or_null(apr_pool_t *p, PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return apr_pstrdup(p, PQgetvalue(res, row, col));
}

bool bf_task_valid_type(const char *s)
{
    size_t i, n;

    if (!s || !(n = strlen(s)) || n > 64 || !isupper((unsigned char)s[0]))
        return false;
    for (i = 0; i < n; i++)
        if (!isalpha((unsigned char)s[i]))
            return false;
    return true;
}

/* ---- worker rows ------------------------------------------------------------
 */

bool bf_task_worker_beat(PGconn *conn, const char *worker_id, const char *host,
                         int pid, const char *version, int64_t task_id)
{
    char b_pid[24], b_task[24];
    const char *v[] = { worker_id, host, I64(b_pid, pid), version,
                        I64(b_task, task_id) };

    return bf_pq_exec(
        conn, "worker heartbeat",
        "INSERT INTO bulkfhir.worker (id, host, pid, version, heartbeat_at, current_task)"
        " VALUES ($1, $2, $3::int, $4, now(), NULLIF($5::bigint, 0))"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(),"
        "   current_task = EXCLUDED.current_task",
        5, v, NULL, NULL);
}

bool bf_task_register(PGconn *conn, const char *worker_id, const char *host,
                      int pid, const char *version)
{
    char b_pid[24];
    const char *v[] = { worker_id, host, I64(b_pid, pid), version };

    return bf_pq_exec(
        conn, "worker register",
        "INSERT INTO bulkfhir.worker (id, host, pid, version)"
        " VALUES ($1, $2, $3::int, $4)"
        " ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,"
        "   version = EXCLUDED.version, started_at = now(), heartbeat_at = now(),"
        "   current_task = NULL",
        4, v, NULL, NULL);
}

bool bf_task_unregister(PGconn *conn, const char *worker_id)
{
    const char *v[] = { worker_id };

    return bf_pq_exec(conn, "worker unregister",
                      "DELETE FROM bulkfhir.worker WHERE id = $1", 1, v, NULL,
                      NULL);
}

/* ---- claim, job
 * --------------------------------------------------------------- */

bool bf_task_claim(PGconn *conn, apr_pool_t *p, const char *worker_id,
                   int lease_seconds, bf_task_t **out)
{
    char b_lease[24];
    const char *v[] = { worker_id, I64(b_lease, lease_seconds) };
    PGresult *res;
    bf_task_t *t;

    *out = NULL;
    if (!bf_pq_exec(
            conn, "claim task",
            "UPDATE bulkfhir.task t SET state = 'running', attempt = t.attempt + 1,"
            "   fencing = t.fencing + 1, locked_by = $1,"
            "   lease_until = now() + make_interval(secs => $2::int),"
            "   started_at = now()"
            " WHERE t.id = (SELECT k.id FROM bulkfhir.task k"
            "                 JOIN bulkfhir.job j ON j.id = k.job_id"
            "                WHERE k.state = 'queued' AND k.run_after <= now()"
            "                  AND j.state IN ('queued', 'running')"
            "                ORDER BY k.id"
            "                  FOR UPDATE OF k SKIP LOCKED LIMIT 1)"
            "   AND t.state = 'queued'"
            " RETURNING t.id, t.job_id, t.resource_type, t.shard, t.shard_count,"
            "   t.attempt, t.max_attempts, t.fencing, t.kind",
            2, v, &res, NULL))
        return false;
    if (PQntuples(res) == 1) {
        t = apr_pcalloc(p, sizeof *t);
        t->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        t->job_id = apr_pstrdup(p, PQgetvalue(res, 0, 1));
        t->resource_type = apr_pstrdup(p, PQgetvalue(res, 0, 2));
        t->shard = atoi(PQgetvalue(res, 0, 3));
        t->shard_count = atoi(PQgetvalue(res, 0, 4));
        t->attempt = atoi(PQgetvalue(res, 0, 5));
        t->max_attempts = atoi(PQgetvalue(res, 0, 6));
        t->fencing = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
        t->kind = apr_pstrdup(p, PQgetvalue(res, 0, 8));
        *out = t;
    }
    PQclear(res);
    return true;
}

bool bf_task_job_fetch(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                       bf_task_job_t **out)
{
    const char *v[] = { task->job_id };
    PGresult *res;
    bf_task_job_t *j;

    *out = NULL;
    if (!bf_pq_exec(
            conn, "job fetch",
            "WITH s AS (UPDATE bulkfhir.job SET state = 'running',"
            "             started_at = coalesce(started_at, now())"
            "            WHERE id = $1 AND state = 'queued' RETURNING id)"
            " SELECT j.id, j.level, j.group_id, j.params::text, j.since::text,"
            "   j.until::text, j.transaction_time::text, j.snapshot::text,"
            "   CASE WHEN EXISTS (SELECT 1 FROM s) THEN 'running' ELSE j.state END,"
            "   j.xid_horizon::text"
            " FROM bulkfhir.job j WHERE j.id = $1",
            1, v, &res, NULL))
        return false;
    if (PQntuples(res) == 1) {
        j = apr_pcalloc(p, sizeof *j);
        j->id = dup_or_null(p, res, 0, 0);
        j->level = dup_or_null(p, res, 0, 1);
        j->group_id = dup_or_null(p, res, 0, 2);
        j->params = dup_or_null(p, res, 0, 3);
        j->since = dup_or_null(p, res, 0, 4);
        j->until = dup_or_null(p, res, 0, 5);
        j->transaction_time = dup_or_null(p, res, 0, 6);
        j->snapshot = dup_or_null(p, res, 0, 7);
        j->state = dup_or_null(p, res, 0, 8);
        j->xid_horizon = dup_or_null(p, res, 0, 9);
        *out = j;
    }
    PQclear(res);
    return true;
}

bool bf_task_snapshot_pending(PGconn *conn, const bf_task_job_t *job,
                              char horizon[32], long *pending)
{
    const char *v[] = { job->snapshot, horizon[0] ? horizon : NULL };
    PGresult *res;

    *pending = 0;
    if (job->xid_horizon) {
        /* every xid below the kick-off's own has ended (0006) */
        const char *vh[] = { job->xid_horizon };

        if (!bf_pq_exec(
                conn, "snapshot wait",
                "SELECT CASE WHEN pg_snapshot_xmin(pg_current_snapshot()) < $1::xid8"
                "   THEN 1 ELSE 0 END",
                1, vh, &res, NULL))
            return false;
        *pending = atol(PQgetvalue(res, 0, 0));
        snprintf(horizon, 32, "%s", job->xid_horizon);
        PQclear(res);
        return true;
    }
    /* xip of the job snapshot misses transactions whose xid is >= its xmax
     * (xmax is latestCompletedXid + 1, not the next xid to assign); they are
     * covered by waiting until the oldest running xid has passed a horizon
     * taken after the kick-off committed (the first call's xmax) */
    if (!bf_pq_exec(
            conn, "snapshot wait",
            "WITH c AS (SELECT pg_current_snapshot() AS s)"
            " SELECT (SELECT count(*) FROM pg_snapshot_xip($1::pg_snapshot) x"
            "          WHERE pg_xact_status(x) = 'in progress')"
            "   + CASE WHEN pg_snapshot_xmin(c.s)"
            "          < coalesce($2::xid8, pg_snapshot_xmax(c.s)) THEN 1 ELSE 0 END,"
            "   coalesce($2::xid8, pg_snapshot_xmax(c.s))::text"
            " FROM c",
            2, v, &res, NULL))
        return false;
    *pending = atol(PQgetvalue(res, 0, 0));
    snprintf(horizon, 32, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return true;
}

bool bf_task_heartbeat(PGconn *conn, const bf_task_t *task,
                       const char *worker_id, int lease_seconds, bool *held,
                       bool *job_ended)
{
    char b_id[24], b_f[24], b_l[24];
    const char *v[] = { I64(b_id, task->id), worker_id, I64(b_f, task->fencing),
                        I64(b_l, lease_seconds) };
    const char *vj[] = { task->job_id };
    PGresult *res;
    long rows;

    *held = false;
    *job_ended = false;
    if (!bf_pq_exec_rows(
            conn, "lease heartbeat",
            "UPDATE bulkfhir.task SET lease_until = now() + make_interval(secs => $4::int)"
            " WHERE id = $1::bigint AND locked_by = $2 AND fencing = $3::bigint"
            "   AND state = 'running'",
            4, v, &rows, NULL))
        return false;
    *held = rows == 1;
    if (*held)
        return true;
    /* lost: because the job ended, or taken over (a fault)? */
    if (!bf_pq_exec(conn, "lease heartbeat",
                    "SELECT state FROM bulkfhir.job WHERE id = $1::uuid", 1, vj,
                    &res, NULL))
        return false;
    *job_ended =
        PQntuples(res) == 0 || !bf_job_state_is_live(PQgetvalue(res, 0, 0));
    PQclear(res);
    return true;
}

/* ---- publish, fail, release
 * ------------------------------------------------------ */

/* Inside a transaction: lock the job row, then the task row if it is still
 * held by locked_by with this fencing token.  *state gets the job state. */
static bool lock_job_task(PGconn *conn, const bf_task_t *task,
                          const char *locked_by, bool expired_only,
                          const char *what, bool *ours, char state[16])
{
    char b_id[24], b_f[24];
    const char *vj[] = { task->job_id };
    const char *vt[] = { I64(b_id, task->id), locked_by,
                         I64(b_f, task->fencing) };
    PGresult *res;

    *ours = false;
    state[0] = '\0';
    if (!bf_pq_exec(conn, what,
                    "SELECT state FROM bulkfhir.job WHERE id = $1 FOR UPDATE",
                    1, vj, &res, NULL))
        return false;
    if (PQntuples(res) == 1)
        snprintf(state, 16, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!state[0])
        return true; /* job deleted */
    if (!bf_pq_exec(
            conn, what,
            expired_only
                ? "SELECT 1 FROM bulkfhir.task WHERE id = $1::bigint AND locked_by = $2"
                  " AND fencing = $3::bigint AND state = 'running' AND lease_until < now()"
                  " FOR UPDATE"
                : "SELECT 1 FROM bulkfhir.task WHERE id = $1::bigint AND locked_by = $2"
                  " AND fencing = $3::bigint AND state = 'running' FOR UPDATE",
            3, vt, &res, NULL))
        return false;
    *ours = PQntuples(res) == 1;
    PQclear(res);
    return true;
}

static bool insert_file(PGconn *conn, const bf_task_t *task, const char *kind,
                        const char *resource_type, const bf_ndjson_part_t *pt)
{
    char b_id[24], b_n[24], b_b[24], b_part[24];
    const char *v[] = {
        task->job_id,        I64(b_id, task->id),   kind,
        resource_type,       I64(b_part, pt->part), pt->name,
        I64(b_n, pt->count), I64(b_b, pt->bytes),   pt->continues_in
    };

    return bf_pq_exec(
        conn, "publish file",
        "INSERT INTO bulkfhir.file (job_id, task_id, kind, resource_type, part,"
        "   name, count, bytes, continues_in)"
        " VALUES ($1::uuid, $2::bigint, $3, $4, $5::int, $6, $7::bigint,"
        "   $8::bigint, $9)",
        9, v, NULL, NULL);
}

/* The job's lenient warnings (R60) as an OperationOutcome error file, written
 * and published inside the transaction that completes the job.  *ew gets the
 * writer (to remove the file when the transaction does not commit). */
static bool publish_warnings(PGconn *conn, apr_pool_t *tp,
                             const bf_task_t *task, const char *dir,
                             bf_ndjson_t **ew)
{
    const char *v[] = { task->job_id };
    const char *err = NULL;
    PGresult *res;
    int i, n;
    bool ok = false;

    *ew = NULL;
    if (!bf_pq_exec(
            conn, "lenient warnings",
            "SELECT w #>> '{}' FROM bulkfhir.job j,"
            "   jsonb_array_elements(CASE jsonb_typeof(j.params->'_warnings')"
            "     WHEN 'array' THEN j.params->'_warnings' ELSE '[]'::jsonb END) w"
            " WHERE j.id = $1::uuid",
            1, v, &res, NULL))
        return false;
    n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        return true;
    }
    /* "error.": never the name of a resource type's output */
    if (!bf_ndjson_open(ew, tp, dir, "error", task->id, task->fencing, 0, 0,
                        64 * 1024, &err)) {
        bf_log(BF_LOG_ERR,
               "BF06001: job %s: task %" PRId64 ": warnings file: %s",
               task->job_id, task->id, err);
        goto leave;
    }
    bf_ndjson_set_publish(*ew, "error", "OperationOutcome");
    for (i = 0; i < n; i++) {
        json_object *oo = json_object_new_object(),
                    *issues = json_object_new_array(),
                    *issue = json_object_new_object();
        const char *line;
        bool wrote;

        json_object_object_add(issue, "severity",
                               json_object_new_string("warning"));
        json_object_object_add(issue, "code",
                               json_object_new_string("not-supported"));
        json_object_object_add(issue, "diagnostics",
                               json_object_new_string(PQgetvalue(res, i, 0)));
        json_object_array_add(issues, issue);
        json_object_object_add(oo, "resourceType",
                               json_object_new_string("OperationOutcome"));
        json_object_object_add(oo, "issue", issues);
        line = json_object_to_json_string_ext(
            oo, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        wrote = bf_ndjson_write(*ew, line, strlen(line));
        json_object_put(oo);
        if (!wrote)
            break;
    }
    if (!bf_ndjson_close(*ew)) {
        bf_log(BF_LOG_ERR,
               "BF06002: job %s: task %" PRId64 ": warnings file: %s",
               task->job_id, task->id, bf_ndjson_error(*ew));
        goto leave;
    }
    ok = insert_file(conn, task, "error", "OperationOutcome",
                     bf_ndjson_part_at(*ew, 0));
leave:
    PQclear(res);
    return ok;
}

bool bf_task_publish(PGconn *conn, const bf_task_t *task, const char *worker_id,
                     const bf_ndjson_t *w, bool *published, bool *job_ended,
                     bool *job_completed)
{
    char b_id[24], b_n[24], b_b[24];
    char state[16];
    bool ours;
    size_t i;
    const bf_ndjson_t *x;
    int64_t total_n = 0, total_b = 0;
    apr_pool_t *tp = NULL;
    bf_ndjson_t *ew = NULL;

    *published = false;
    *job_ended = false;
    *job_completed = false;
    if (!bf_pq_begin(conn, "publish"))
        return false;
    if (!lock_job_task(conn, task, worker_id, false, "publish", &ours, state))
        goto fail;
    if (!ours || !bf_job_state_is_live(state)) {
        *job_ended = !bf_job_state_is_live(state);
        bf_pq_rollback(conn, "publish");
        return true;
    }
    for (x = w; x; x = bf_ndjson_next(x)) {
        for (i = 0; i < bf_ndjson_part_count(x); i++) {
            const bf_ndjson_part_t *pt = bf_ndjson_part_at(x, i);

            if (pt->published)
                continue;
            if (!insert_file(conn, task, bf_ndjson_kind(x),
                             bf_ndjson_resource_type(x), pt))
                goto fail;
        }
        if (strcmp(bf_ndjson_kind(x), "output") == 0) {
            total_n += bf_ndjson_total_count(x);
            total_b += bf_ndjson_total_bytes(x);
        }
    }
    {
        const char *v[] = { I64(b_id, task->id), I64(b_n, total_n),
                            I64(b_b, total_b) };
        if (!bf_pq_exec(
                conn, "publish task",
                "UPDATE bulkfhir.task SET state = 'done', resources = $2::bigint,"
                "   bytes = $3::bigint, finished_at = now(), lease_until = NULL"
                " WHERE id = $1::bigint",
                3, v, NULL, NULL))
            goto fail;
    }
    {
        const char *v[] = { task->job_id };
        long rows;

        if (!bf_pq_exec_rows(
                conn, "complete job",
                "UPDATE bulkfhir.job SET state = 'completed', finished_at = now()"
                " WHERE id = $1 AND state IN ('queued', 'running')"
                "   AND NOT EXISTS (SELECT 1 FROM bulkfhir.task"
                "                    WHERE job_id = $1 AND state <> 'done')",
                1, v, &rows, NULL))
            goto fail;
        *job_completed = rows == 1;
    }
    if (*job_completed) {
        apr_pool_create(&tp, NULL);
        if (!publish_warnings(conn, tp, task, bf_ndjson_dir(w), &ew))
            goto fail;
    }
    if (!bf_pq_commit(conn, "publish")) {
        *job_completed = false;
        goto fail;
    }
    if (tp)
        apr_pool_destroy(tp);
    *published = true;
    return true;
fail:
    *job_completed = false;
    bf_pq_rollback(conn, "publish");
    if (ew)
        bf_ndjson_abort(ew);
    if (tp)
        apr_pool_destroy(tp);
    return false;
}

bool bf_task_publish_part(PGconn *conn, const bf_task_t *task,
                          const char *worker_id, const char *kind,
                          const char *resource_type,
                          const bf_ndjson_part_t *part, bool *ours)
{
    char state[16];

    *ours = false;
    if (!bf_pq_begin(conn, "publish part"))
        return false;
    if (!lock_job_task(conn, task, worker_id, false, "publish part", ours,
                       state))
        goto fail;
    if (!*ours || !bf_job_state_is_live(state)) {
        *ours = false;
        bf_pq_rollback(conn, "publish part");
        return true;
    }
    if (!insert_file(conn, task, kind, resource_type, part))
        goto fail;
    if (!bf_pq_commit(conn, "publish part"))
        goto fail;
    return true;
fail:
    *ours = false;
    bf_pq_rollback(conn, "publish part");
    return false;
}

bool bf_task_published_so_far(PGconn *conn, const bf_task_t *task,
                              int64_t *rows, int *parts)
{
    char b_id[24];
    const char *v[] = { I64(b_id, task->id) };
    PGresult *res;

    *rows = 0;
    *parts = 0;
    if (!bf_pq_exec(
            conn, "published parts",
            "SELECT coalesce(sum(count), 0), coalesce(max(part) + 1, 0)"
            " FROM bulkfhir.file WHERE task_id = $1::bigint AND kind = 'output'",
            1, v, &res, NULL))
        return false;
    *rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    *parts = atoi(PQgetvalue(res, 0, 1));
    PQclear(res);
    return true;
}

bool bf_task_fail(PGconn *conn, const bf_task_t *task, const char *locked_by,
                  const bf_task_failure_t *f, bool expired_only, bool *applied,
                  bool *job_failed)
{
    char b_id[24];
    char state[16];
    bool ours;
    PGresult *res;

    *applied = false;
    *job_failed = false;
    if (!bf_pq_begin(conn, "fail task"))
        return false;
    if (!lock_job_task(conn, task, locked_by, expired_only, "fail task", &ours,
                       state))
        goto fail;
    if (!ours) {
        bf_pq_rollback(conn, "fail task");
        return true;
    }
    {
        const char *v[] = { I64(b_id, task->id),
                            f->detail ? f->detail : "failed", locked_by,
                            f->final ? "t" : "f" };
        /* a final failure (too costly) is not retried: it would fail again */
        if (!bf_pq_exec(
                conn, "fail task",
                "UPDATE bulkfhir.task SET"
                "   errors = errors || jsonb_build_array(jsonb_build_object("
                "     'attempt', attempt, 'at', now(), 'message', $2::text,"
                "     'worker', $3::text, 'final', $4::boolean)),"
                "   state = CASE WHEN attempt < max_attempts AND NOT $4::boolean"
                "     THEN 'queued' ELSE 'failed' END,"
                "   run_after = CASE WHEN attempt < max_attempts AND NOT $4::boolean"
                "     THEN now() + make_interval(secs => power(2, least(attempt, 16)))"
                "     ELSE run_after END,"
                "   finished_at = CASE WHEN attempt < max_attempts AND NOT $4::boolean"
                "     THEN NULL ELSE now() END,"
                "   locked_by = NULL, lease_until = NULL"
                " WHERE id = $1::bigint RETURNING state, attempt",
                4, v, &res, NULL))
            goto fail;
        *job_failed =
            PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "failed") == 0;
        PQclear(res);
    }
    if (*job_failed) {
        /* what the client reads: the caller's outcome, never the detail
         * (SQL, SQLSTATE, task ids and paths stay in errors[] and the log) */
        const char *v[] = { task->job_id,
                            f->outcome ? f->outcome : "the export failed",
                            f->code ? f->code : "exception" };

        if (!bf_pq_exec(
                conn, "fail job",
                "UPDATE bulkfhir.job SET state = 'failed', finished_at = now(),"
                "   error = jsonb_build_object('resourceType', 'OperationOutcome',"
                "     'issue', jsonb_build_array(jsonb_build_object('severity', 'error',"
                "       'code', $3::text, 'diagnostics', $2::text)))"
                " WHERE id = $1 AND state IN ('queued', 'running')",
                3, v, NULL, NULL) ||
            !bf_pq_exec(
                conn, "fail job",
                "UPDATE bulkfhir.task SET state = 'cancelled', finished_at = now(),"
                "   lease_until = NULL"
                " WHERE job_id = $1 AND state IN ('queued', 'running')",
                1, v, NULL, NULL))
            goto fail;
    }
    if (!bf_pq_commit(conn, "fail task"))
        goto fail;
    *applied = true;
    return true;
fail:
    *job_failed = false;
    bf_pq_rollback(conn, "fail task");
    return false;
}

bool bf_task_release(PGconn *conn, const bf_task_t *task, const char *worker_id,
                     bool *released)
{
    char b_id[24], b_f[24];
    const char *v[] = { I64(b_id, task->id), worker_id,
                        I64(b_f, task->fencing) };
    PGresult *res;

    *released = false;
    if (!bf_pq_exec(
            conn, "release task",
            "WITH r AS (UPDATE bulkfhir.task SET state = 'queued', locked_by = NULL,"
            "             lease_until = NULL, attempt = greatest(attempt - 1, 0),"
            "             run_after = now()"
            "            WHERE id = $1::bigint AND locked_by = $2"
            "              AND fencing = $3::bigint AND state = 'running'"
            "            RETURNING job_id)"
            " SELECT pg_notify('bulkfhir_task', job_id::text) FROM r",
            3, v, &res, NULL))
        return false;
    *released = PQntuples(res) == 1;
    PQclear(res);
    return true;
}

/* ---- sweeper
 * ------------------------------------------------------------------------ */

bool bf_task_expired(PGconn *conn, apr_pool_t *p, int limit,
                     apr_array_header_t **out)
{
    char b_l[24];
    const char *v[] = { I64(b_l, limit) };
    PGresult *res;
    int i;

    *out = apr_array_make(p, 4, sizeof(bf_task_swept_t));
    if (!bf_pq_exec(
            conn, "sweep expired leases",
            "SELECT id, job_id, resource_type, attempt, max_attempts, fencing, locked_by"
            " FROM bulkfhir.task WHERE state = 'running' AND lease_until < now()"
            " ORDER BY id LIMIT $1::int",
            1, v, &res, NULL))
        return false;
    for (i = 0; i < PQntuples(res); i++) {
        bf_task_swept_t *s = apr_array_push(*out);

        memset(s, 0, sizeof *s);
        s->task.id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        s->task.job_id = apr_pstrdup(p, PQgetvalue(res, i, 1));
        s->task.resource_type = apr_pstrdup(p, PQgetvalue(res, i, 2));
        s->task.attempt = atoi(PQgetvalue(res, i, 3));
        s->task.max_attempts = atoi(PQgetvalue(res, i, 4));
        s->task.fencing = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        s->locked_by = dup_or_null(p, res, i, 6);
        if (!s->locked_by)
            s->locked_by = "";
    }
    PQclear(res);
    return true;
}

static bool id_list(PGconn *conn, apr_pool_t *p, const char *what,
                    const char *sql, int limit, apr_array_header_t **out)
{
    char b_l[24];
    const char *v[] = { I64(b_l, limit) };
    PGresult *res;
    int i;

    *out = apr_array_make(p, 4, sizeof(const char *));
    if (!bf_pq_exec(conn, what, sql, 1, v, &res, NULL))
        return false;
    for (i = 0; i < PQntuples(res); i++)
        APR_ARRAY_PUSH(*out, const char *) =
            apr_pstrdup(p, PQgetvalue(res, i, 0));
    PQclear(res);
    return true;
}

bool bf_task_cancelled_jobs(PGconn *conn, apr_pool_t *p, int limit,
                            apr_array_header_t **out)
{
    return id_list(
        conn, p, "sweep cancelled jobs",
        "SELECT j.id FROM bulkfhir.job j WHERE j.state = 'cancelled'"
        "   AND NOT EXISTS (SELECT 1 FROM bulkfhir.task t"
        "                    WHERE t.job_id = j.id AND t.state = 'running')"
        " ORDER BY j.created_at LIMIT $1::int",
        limit, out);
}

bool bf_task_forget_files(PGconn *conn, const char *job_id)
{
    const char *v[] = { job_id };

    return bf_pq_exec(conn, "forget files",
                      "DELETE FROM bulkfhir.file WHERE job_id = $1::uuid", 1, v,
                      NULL, NULL);
}

bool bf_task_live_jobs(PGconn *conn, apr_pool_t *p, int limit,
                       apr_array_header_t **out)
{
    return id_list(
        conn, p, "sweep live jobs",
        "SELECT id FROM bulkfhir.job WHERE state IN ('queued', 'running')"
        " ORDER BY created_at LIMIT $1::int",
        limit, out);
}

static bool string_set(PGconn *conn, apr_pool_t *p, const char *what,
                       const char *sql, const char *job_id, apr_hash_t **out)
{
    const char *v[] = { job_id };
    PGresult *res;
    int i;

    *out = apr_hash_make(p);
    if (!bf_pq_exec(conn, what, sql, 1, v, &res, NULL))
        return false;
    for (i = 0; i < PQntuples(res); i++) {
        const char *s = apr_pstrdup(p, PQgetvalue(res, i, 0));
        apr_hash_set(*out, s, APR_HASH_KEY_STRING, s);
    }
    PQclear(res);
    return true;
}

bool bf_task_running_attempts(PGconn *conn, apr_pool_t *p, const char *job_id,
                              apr_hash_t **out)
{
    return string_set(
        conn, p, "sweep running attempts",
        "SELECT id::text || '.' || fencing::text FROM bulkfhir.task"
        " WHERE job_id = $1::uuid AND state = 'running'",
        job_id, out);
}

bool bf_task_file_names(PGconn *conn, apr_pool_t *p, const char *job_id,
                        apr_hash_t **out)
{
    return string_set(conn, p, "sweep file names",
                      "SELECT name FROM bulkfhir.file WHERE job_id = $1::uuid",
                      job_id, out);
}

bool bf_task_prune_workers(PGconn *conn, int lease_seconds, long *deleted)
{
    char b_l[24];
    const char *v[] = { I64(b_l, lease_seconds) };

    return bf_pq_exec_rows(
        conn, "prune workers",
        "DELETE FROM bulkfhir.worker"
        " WHERE heartbeat_at < now() - 3 * make_interval(secs => $1::int)",
        1, v, deleted, NULL);
}

/* ---- limits (sql/0070_task_limits.sql)
 * ------------------------------------------ */

bool bf_task_limits_set(PGconn *conn, bf_task_limits_t *out, bool *fallback)
{
    PGresult *res;
    char state[6];

    *fallback = false;
    out->statement_timeout_ms = 900000;
    out->work_mem_kb = 16384;
    out->backend_memory_mb = 256;
    if (!bf_pq_exec_quiet(
            conn, "task limits",
            "SELECT statement_timeout_ms, work_mem_kb, backend_memory_mb"
            " FROM bulkfhir.task_limits_set()",
            0, NULL, &res, state)) {
        if (strcmp(state, "42883") != 0) /* other than: no such function */
            return false;
        /* a database not migrated to 0070 yet: the same defaults */
        *fallback = true;
        return bf_pq_exec(conn, "task limits",
                          "SELECT set_config('jit', 'off', false),"
                          "   set_config('work_mem', '16384kB', false),"
                          "   set_config('statement_timeout', '900000', false)",
                          0, NULL, NULL, NULL);
    }
    if (PQntuples(res) == 1) {
        out->statement_timeout_ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        out->work_mem_kb = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        out->backend_memory_mb = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    }
    PQclear(res);
    return true;
}

bool bf_task_limits_reset(PGconn *conn)
{
    return bf_pq_exec(
        conn, "task limits",
        "SELECT set_config(name, reset_val, false)"
        " FROM pg_settings WHERE name IN ('statement_timeout', 'work_mem')"
        " ORDER BY name",
        0, NULL, NULL, NULL);
}

bool bf_task_backend_memory(PGconn *conn, int64_t *bytes)
{
    PGresult *res;
    char state[6];

    *bytes = -1;
    if (!bf_pq_exec_quiet(conn, "backend memory",
                          "SELECT bulkfhir.backend_memory_bytes()", 0, NULL,
                          &res, state))
        return strcmp(state, "42883") == 0; /* before 0070: unknown */
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        *bytes = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}
