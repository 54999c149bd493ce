/* bf_task: the worker's statements (see bf_task.h). */
#include "bf_task.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <json-c/json.h>

#include "bf_elements.h"
#include "bf_typefilter.h"

#define I64(buf, v) (snprintf((buf), sizeof(buf), "%" PRId64, (int64_t)(v)), (buf))

static const char *dup_or_null(apr_pool_t *p, PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return apr_pstrdup(p, PQgetvalue(res, row, col));
}

bool bf_task_valid_uuid(const char *s)
{
    size_t i;

    if (!s || strlen(s) != 36)
        return false;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
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

/* FHIR id: [A-Za-z0-9\-\.]{1,64} */
static bool valid_fhir_id(const char *s)
{
    size_t i, n;

    if (!s || !(n = strlen(s)) || n > 64)
        return false;
    for (i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* ---- worker rows ------------------------------------------------------------ */

bool bf_task_worker_beat(PGconn *conn, const char *worker_id,
                         const char *host, int pid, const char *version,
                         int64_t task_id)
{
    char b_pid[24], b_task[24];
    const char *v[] = { worker_id, host, I64(b_pid, pid), version,
                        I64(b_task, task_id) };

    return bf_pq_exec(conn, "worker heartbeat",
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

    return bf_pq_exec(conn, "worker register",
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

/* ---- claim, job --------------------------------------------------------------- */

bool bf_task_claim(PGconn *conn, apr_pool_t *p, const char *worker_id,
                   int lease_seconds, bf_task_t **out)
{
    char b_lease[24];
    const char *v[] = { worker_id, I64(b_lease, lease_seconds) };
    PGresult *res;
    bf_task_t *t;

    *out = NULL;
    if (!bf_pq_exec(conn, "claim task",
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
        "   t.attempt, t.max_attempts, t.fencing",
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
    if (!bf_pq_exec(conn, "job fetch",
        "WITH s AS (UPDATE bulkfhir.job SET state = 'running',"
        "             started_at = coalesce(started_at, now())"
        "            WHERE id = $1 AND state = 'queued' RETURNING id)"
        " SELECT j.id, j.level, j.group_id, j.params::text, j.since::text,"
        "   j.until::text, j.transaction_time::text, j.snapshot::text,"
        "   CASE WHEN EXISTS (SELECT 1 FROM s) THEN 'running' ELSE j.state END"
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
    /* xip of the job snapshot misses transactions whose xid is >= its xmax
     * (xmax is latestCompletedXid + 1, not the next xid to assign); they are
     * covered by waiting until the oldest running xid has passed a horizon
     * taken after the kick-off committed (the first call's xmax) */
    if (!bf_pq_exec(conn, "snapshot wait",
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
                       const char *worker_id, int lease_seconds, bool *held)
{
    char b_id[24], b_f[24], b_l[24];
    const char *v[] = { I64(b_id, task->id), worker_id, I64(b_f, task->fencing),
                        I64(b_l, lease_seconds) };
    PGresult *res;

    *held = false;
    if (!bf_pq_exec(conn, "lease heartbeat",
        "UPDATE bulkfhir.task SET lease_until = now() + make_interval(secs => $4::int)"
        " WHERE id = $1::bigint AND locked_by = $2 AND fencing = $3::bigint"
        "   AND state = 'running'",
        4, v, &res, NULL))
        return false;
    *held = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return true;
}

/* ---- export statement ---------------------------------------------------------- */

static const char *lit(PGconn *conn, apr_pool_t *p, const char *s)
{
    char *q = PQescapeLiteral(conn, s, strlen(s));
    const char *r;

    if (!q)
        return NULL;
    r = apr_pstrdup(p, q);
    PQfreemem(q);
    return r;
}

/* FHIR date/dateTime text (possibly partial) as the first / the first
 * instant after the end of the interval it denotes. */
#define FHIR_START(x) \
    "(CASE length(" x ") WHEN 4 THEN (" x " || '-01-01')::timestamptz" \
    " WHEN 7 THEN (" x " || '-01')::timestamptz ELSE (" x ")::timestamptz END)"
#define FHIR_END(x) \
    "(CASE length(" x ") WHEN 4 THEN (" x " || '-01-01')::timestamptz + interval '1 year'" \
    " WHEN 7 THEN (" x " || '-01')::timestamptz + interval '1 month'" \
    " WHEN 10 THEN (" x ")::timestamptz + interval '1 day'" \
    " ELSE (" x ")::timestamptz END)"
#define PATIENT_REF_ID(x) \
    "substring(" x " from '(?:^|/)Patient/([A-Za-z0-9.-]{1,64})(?:/_history/[^/]*)?$')"

/* The strings of params[key] (an array of strings, or one string), each
 * split at commas; NULL when absent. */
static apr_array_header_t *param_strings(apr_pool_t *p, json_object *params,
                                         const char *key)
{
    json_object *v;
    apr_array_header_t *out;
    size_t i, n;

    if (!params || !json_object_object_get_ex(params, key, &v))
        return NULL;
    out = apr_array_make(p, 4, sizeof(const char *));
    n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 1;
    for (i = 0; i < n; i++) {
        json_object *e = json_object_is_type(v, json_type_array)
                             ? json_object_array_get_idx(v, i) : v;
        char *copy, *tok, *last;

        if (!json_object_is_type(e, json_type_string))
            continue;
        copy = apr_pstrdup(p, json_object_get_string(e));
        if (strcmp(key, "_typeFilter") == 0) {
            /* a comma inside one query belongs to it ([v4b]: repeat instead) */
            APR_ARRAY_PUSH(out, const char *) = copy;
            continue;
        }
        for (tok = apr_strtok(copy, ",", &last); tok; tok = apr_strtok(NULL, ",", &last)) {
            apr_collapse_spaces(tok, tok); /* returns the end, not tok */
            if (*tok)
                APR_ARRAY_PUSH(out, const char *) = tok;
        }
    }
    return out;
}

/* _typeFilter and _elements of the job for this task's type: a boolean SQL
 * expression (or NULL) and the selected column. */
static bool params_sql(apr_pool_t *p, const bf_task_t *task,
                       const bf_task_job_t *job, const char **filter,
                       const char **column, bool *has_patient,
                       const char **err)
{
    json_object *params = job->params ? json_tokener_parse(job->params) : NULL;
    apr_array_header_t *vals, *mine;
    bool ok = false;
    int i;

    *filter = NULL;
    *column = "resource";
    *has_patient = params && json_object_object_get_ex(params, "patient", NULL);
    if ((vals = param_strings(p, params, "_typeFilter")) != NULL) {
        mine = apr_array_make(p, 2, sizeof(bf_typefilter *));
        for (i = 0; i < vals->nelts; i++) {
            bf_typefilter *tf;

            if (!bf_typefilter_parse(p, APR_ARRAY_IDX(vals, i, const char *), &tf, err))
                goto leave;
            if (strcmp(tf->type, task->resource_type) == 0)
                APR_ARRAY_PUSH(mine, bf_typefilter *) = tf;
        }
        /* a type without a filter of its own is exported unfiltered */
        if (mine->nelts > 0 && !bf_typefilter_sql(p, mine, filter, err))
            goto leave;
    }
    if ((vals = param_strings(p, params, "_elements")) != NULL && vals->nelts > 0) {
        apr_array_header_t *els;

        if (!bf_elements_parse(p, vals, &els, err))
            goto leave;
        *column = apr_pstrcat(p, "bulkfhir.fhir_subset(resource, ",
                              bf_elements_keep_sql(p, els, task->resource_type),
                              ")", NULL);
    }
    ok = true;
leave:
    if (params)
        json_object_put(params);
    return ok;
}

bool bf_task_export_sql(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                        const bf_task_job_t *job, const char **sql,
                        const char **err)
{
    const char *type, *t, *q, *members = NULL, *filter, *column, *plist;
    bool has_patient;

    *sql = NULL;
    if (!bf_task_valid_type(task->resource_type)) {
        *err = "invalid resource type";
        return false;
    }
    if (!job->transaction_time || !bf_task_valid_uuid(job->id)) {
        *err = "job without transaction time";
        return false;
    }
    if (!(type = lit(conn, p, task->resource_type))
        || !(t = lit(conn, p, job->transaction_time))) {
        *err = "cannot quote a literal";
        return false;
    }
    if (!params_sql(p, task, job, &filter, &column, &has_patient, err))
        return false;
    q = apr_pstrcat(p,
        "COPY (SELECT ", column, " FROM fhir.resource_version"
        " WHERE resource_type = ", type,
        " AND NOT deleted AND last_updated <= ", t, "::timestamptz"
        " AND (superseded_at IS NULL OR superseded_at > ", t, "::timestamptz)",
        NULL);
    if (job->since) {
        const char *s = lit(conn, p, job->since);
        if (!s) {
            *err = "cannot quote _since";
            return false;
        }
        q = apr_pstrcat(p, q, " AND last_updated > ", s, "::timestamptz", NULL);
    }
    if (job->until) {
        const char *u = lit(conn, p, job->until);
        if (!u) {
            *err = "cannot quote _until";
            return false;
        }
        q = apr_pstrcat(p, q, " AND last_updated <= ", u, "::timestamptz", NULL);
    }
    if (filter)
        q = apr_pstrcat(p, q, " AND (", filter, ")", NULL);
    if (task->shard_count > 1)
        q = apr_psprintf(p, "%s AND (hashtext(id)::bigint & 2147483647) %% %d = %d",
                         q, task->shard_count, task->shard);

    {
        const char *jid = lit(conn, p, job->id);
        if (!jid) {
            *err = "cannot quote the job id";
            return false;
        }
        /* the kick-off's `patient` parameter (NULL when absent) */
        plist = apr_pstrcat(p,
            "(SELECT array_agg(DISTINCT " PATIENT_REF_ID("coalesce(e->>'reference', e #>> '{}')") ")"
            "   FROM bulkfhir.job j,"
            "        jsonb_array_elements(CASE jsonb_typeof(j.params->'patient')"
            "          WHEN 'array' THEN j.params->'patient' ELSE '[]'::jsonb END) e"
            "  WHERE j.id = ", jid, "::uuid)",
            NULL);
    }
    if (job->level && strcmp(job->level, "group") == 0) {
        const char *g;
        if (!valid_fhir_id(job->group_id) || !(g = lit(conn, p, job->group_id))) {
            *err = "invalid group id";
            return false;
        }
        /* members of the Group version valid at T, active, period covers T */
        members = apr_pstrcat(p,
            "(SELECT coalesce(array_agg(DISTINCT x.pid), '{}'::text[]) FROM ("
            " SELECT " PATIENT_REF_ID("m->'entity'->>'reference'") " AS pid, m"
            "   FROM fhir.resource_version g,"
            "        jsonb_array_elements(coalesce(g.resource->'member', '[]'::jsonb)) m"
            "  WHERE g.resource_type = 'Group' AND g.id = ", g,
            "    AND NOT g.deleted AND g.last_updated <= ", t, "::timestamptz"
            "    AND (g.superseded_at IS NULL OR g.superseded_at > ", t, "::timestamptz)"
            ") x WHERE x.pid IS NOT NULL"
            "  AND coalesce(x.m->>'inactive', 'false') <> 'true'"
            "  AND (x.m->'period'->>'start' IS NULL OR "
                FHIR_START("x.m->'period'->>'start'") " <= ", t, "::timestamptz)"
            "  AND (x.m->'period'->>'end' IS NULL OR "
                FHIR_END("x.m->'period'->>'end'") " > ", t, "::timestamptz))",
            NULL);
        /* R24: with a patient list, only listed members */
        if (has_patient)
            members = apr_pstrcat(p, "ARRAY(SELECT unnest(", members,
                                  ") INTERSECT SELECT unnest(", plist, "))", NULL);
    } else if (job->level && strcmp(job->level, "patient") == 0) {
        members = plist;
        /* NULL (no patient parameter): the whole compartment */
        if (strcmp(task->resource_type, "Patient") == 0)
            q = apr_pstrcat(p, q, " AND (", members, " IS NULL OR id = ANY(",
                            members, "::text[]))", NULL);
        else
            q = apr_pstrcat(p, q, " AND patient_ids <> '{}' AND (", members,
                            " IS NULL OR patient_ids && ", members, ")", NULL);
        members = NULL;
    } else if (!job->level || strcmp(job->level, "system") != 0) {
        *err = "unknown export level";
        return false;
    }
    if (members) {
        if (strcmp(task->resource_type, "Patient") == 0)
            q = apr_pstrcat(p, q, " AND id = ANY(", members, "::text[])", NULL);
        else
            q = apr_pstrcat(p, q, " AND patient_ids && ", members, NULL);
    }
    *sql = apr_pstrcat(p, q, ") TO STDOUT (FORMAT binary)", NULL);
    return true;
}

/* ---- publish, fail, release ------------------------------------------------------ */

/* Inside a transaction: lock the job row, then the task row if it is still
 * held by locked_by with this fencing token.  *state gets the job state. */
static bool lock_job_task(PGconn *conn, const bf_task_t *task,
                          const char *locked_by, bool expired_only,
                          const char *what, bool *ours, char state[16])
{
    char b_id[24], b_f[24];
    const char *vj[] = { task->job_id };
    const char *vt[] = { I64(b_id, task->id), locked_by, I64(b_f, task->fencing) };
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
    if (!bf_pq_exec(conn, what, expired_only
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

bool bf_task_publish(PGconn *conn, const bf_task_t *task,
                     const char *worker_id, const bf_ndjson_t *w,
                     bool *published, bool *job_completed)
{
    char b_id[24], b_n[24], b_b[24], b_part[24];
    char state[16];
    bool ours;
    size_t i;
    PGresult *res;

    *published = false;
    *job_completed = false;
    if (!bf_pq_begin(conn, "publish"))
        return false;
    if (!lock_job_task(conn, task, worker_id, false, "publish", &ours, state))
        goto fail;
    if (!ours || (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)) {
        bf_pq_rollback(conn, "publish");
        return true;
    }
    for (i = 0; i < bf_ndjson_part_count(w); i++) {
        const bf_ndjson_part_t *pt = bf_ndjson_part_at(w, i);
        const char *v[] = { task->job_id, I64(b_id, task->id), task->resource_type,
                            I64(b_part, pt->part), pt->name, I64(b_n, pt->count),
                            I64(b_b, pt->bytes) };

        if (!bf_pq_exec(conn, "publish file",
            "INSERT INTO bulkfhir.file (job_id, task_id, kind, resource_type, part,"
            "   name, count, bytes)"
            " VALUES ($1::uuid, $2::bigint, 'output', $3, $4::int, $5, $6::bigint,"
            "   $7::bigint)",
            7, v, NULL, NULL))
            goto fail;
    }
    {
        const char *v[] = { I64(b_id, task->id), I64(b_n, bf_ndjson_total_count(w)),
                            I64(b_b, bf_ndjson_total_bytes(w)) };
        if (!bf_pq_exec(conn, "publish task",
            "UPDATE bulkfhir.task SET state = 'done', resources = $2::bigint,"
            "   bytes = $3::bigint, finished_at = now(), lease_until = NULL"
            " WHERE id = $1::bigint",
            3, v, NULL, NULL))
            goto fail;
    }
    {
        const char *v[] = { task->job_id };
        if (!bf_pq_exec(conn, "complete job",
            "UPDATE bulkfhir.job SET state = 'completed', finished_at = now()"
            " WHERE id = $1 AND state IN ('queued', 'running')"
            "   AND NOT EXISTS (SELECT 1 FROM bulkfhir.task"
            "                    WHERE job_id = $1 AND state <> 'done')",
            1, v, &res, NULL))
            goto fail;
        *job_completed = strcmp(PQcmdTuples(res), "1") == 0;
        PQclear(res);
    }
    if (!bf_pq_commit(conn, "publish")) {
        *job_completed = false;
        goto fail;
    }
    *published = true;
    return true;
fail:
    bf_pq_rollback(conn, "publish");
    return false;
}

bool bf_task_fail(PGconn *conn, const bf_task_t *task, const char *locked_by,
                  const char *message, bool expired_only, bool *applied,
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
        const char *v[] = { I64(b_id, task->id), message, locked_by };
        if (!bf_pq_exec(conn, "fail task",
            "UPDATE bulkfhir.task SET"
            "   errors = errors || jsonb_build_array(jsonb_build_object("
            "     'attempt', attempt, 'at', now(), 'message', $2::text,"
            "     'worker', $3::text)),"
            "   state = CASE WHEN attempt < max_attempts THEN 'queued' ELSE 'failed' END,"
            "   run_after = CASE WHEN attempt < max_attempts"
            "     THEN now() + make_interval(secs => power(2, least(attempt, 16)))"
            "     ELSE run_after END,"
            "   finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END,"
            "   locked_by = NULL, lease_until = NULL"
            " WHERE id = $1::bigint RETURNING state, attempt",
            3, v, &res, NULL))
            goto fail;
        *job_failed = PQntuples(res) == 1
                      && strcmp(PQgetvalue(res, 0, 0), "failed") == 0;
        PQclear(res);
    }
    if (*job_failed) {
        char diag[1024];
        const char *v[] = { task->job_id, diag };

        snprintf(diag, sizeof diag, "task %" PRId64 " (%s) failed after %d attempts: %s",
                 task->id, task->resource_type, task->attempt, message);
        if (!bf_pq_exec(conn, "fail job",
            "UPDATE bulkfhir.job SET state = 'failed', finished_at = now(),"
            "   error = jsonb_build_object('resourceType', 'OperationOutcome',"
            "     'issue', jsonb_build_array(jsonb_build_object('severity', 'error',"
            "       'code', 'exception', 'diagnostics', $2::text)))"
            " WHERE id = $1 AND state IN ('queued', 'running')",
            2, v, NULL, NULL)
            || !bf_pq_exec(conn, "fail job",
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

bool bf_task_release(PGconn *conn, const bf_task_t *task,
                     const char *worker_id, bool *released)
{
    char b_id[24], b_f[24];
    const char *v[] = { I64(b_id, task->id), worker_id, I64(b_f, task->fencing) };
    PGresult *res;

    *released = false;
    if (!bf_pq_exec(conn, "release task",
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

/* ---- sweeper ------------------------------------------------------------------------ */

bool bf_task_expired(PGconn *conn, apr_pool_t *p, int limit,
                     apr_array_header_t **out)
{
    char b_l[24];
    const char *v[] = { I64(b_l, limit) };
    PGresult *res;
    int i;

    *out = apr_array_make(p, 4, sizeof(bf_task_swept_t));
    if (!bf_pq_exec(conn, "sweep expired leases",
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
        APR_ARRAY_PUSH(*out, const char *) = apr_pstrdup(p, PQgetvalue(res, i, 0));
    PQclear(res);
    return true;
}

bool bf_task_cancelled_jobs(PGconn *conn, apr_pool_t *p, int limit,
                            apr_array_header_t **out)
{
    return id_list(conn, p, "sweep cancelled jobs",
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
        "DELETE FROM bulkfhir.file WHERE job_id = $1::uuid", 1, v, NULL, NULL);
}

bool bf_task_live_jobs(PGconn *conn, apr_pool_t *p, int limit,
                       apr_array_header_t **out)
{
    return id_list(conn, p, "sweep live jobs",
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

bool bf_task_running_attempts(PGconn *conn, apr_pool_t *p,
                              const char *job_id, apr_hash_t **out)
{
    return string_set(conn, p, "sweep running attempts",
        "SELECT id::text || '.' || fencing::text FROM bulkfhir.task"
        " WHERE job_id = $1::uuid AND state = 'running'",
        job_id, out);
}

bool bf_task_file_names(PGconn *conn, apr_pool_t *p, const char *job_id,
                        apr_hash_t **out)
{
    return string_set(conn, p, "sweep file names",
        "SELECT name FROM bulkfhir.file WHERE job_id = $1::uuid", job_id, out);
}

bool bf_task_prune_workers(PGconn *conn, int lease_seconds, long *deleted)
{
    char b_l[24];
    const char *v[] = { I64(b_l, lease_seconds) };
    PGresult *res;

    *deleted = 0;
    if (!bf_pq_exec(conn, "prune workers",
        "DELETE FROM bulkfhir.worker"
        " WHERE heartbeat_at < now() - 3 * make_interval(secs => $1::int)",
        1, v, &res, NULL))
        return false;
    *deleted = atol(PQcmdTuples(res));
    PQclear(res);
    return true;
}
