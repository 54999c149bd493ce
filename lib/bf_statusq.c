/* bf_statusq: the status page's one query (see bf_statusq.h).  Read-only,
 * one statement: a consistent snapshot without an explicit transaction. */
#include "bf_statusq.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <stdio.h>

/* Per-job figures: task counts by state, progress (finished tasks / tasks),
 * what is published so far (bulkfhir.file rows: a part counts once its row
 * is committed) and the throughput since the job started. */
#define JOB_OBJECT                                                             \
    "jsonb_build_object("                                                      \
    "  'id', j.id, 'client_id', j.client_id, 'level', j.level,"                \
    "  'group_id', j.group_id, 'state', j.state,"                              \
    "  'created_at', j.created_at, 'started_at', j.started_at,"                \
    "  'finished_at', j.finished_at,"                                          \
    "  'age_seconds', round(extract(epoch FROM now() - j.created_at), 1),"     \
    "  'tasks', jsonb_build_object('queued', t.queued, 'running', t.running,"  \
    "     'done', t.done, 'failed', t.failed, 'cancelled', t.cancelled),"      \
    "  'tasks_total', t.total,"                                                \
    "  'progress', CASE WHEN t.total = 0 THEN 1 ELSE"                          \
    "     round((t.done + t.failed + t.cancelled)::numeric / t.total, 4) END," \
    "  'resources', f.resources, 'bytes', f.bytes, 'files', f.files,"          \
    "  'resources_per_second', CASE WHEN j.started_at IS NULL THEN NULL"       \
    "     WHEN extract(epoch FROM coalesce(j.finished_at, now())"              \
    "                   - j.started_at) <= 0 THEN NULL"                        \
    "     ELSE round(f.resources / extract(epoch FROM"                         \
    "          coalesce(j.finished_at, now()) - j.started_at), 1) END)"

#define JOB_FROM                                                                \
    " FROM bulkfhir.job j"                                                      \
    " CROSS JOIN LATERAL (SELECT count(*) AS total,"                            \
    "     count(*) FILTER (WHERE state = 'queued') AS queued,"                  \
    "     count(*) FILTER (WHERE state = 'running') AS running,"                \
    "     count(*) FILTER (WHERE state = 'done') AS done,"                      \
    "     count(*) FILTER (WHERE state = 'failed') AS failed,"                  \
    "     count(*) FILTER (WHERE state = 'cancelled') AS cancelled"             \
    "   FROM bulkfhir.task WHERE job_id = j.id) t"                              \
    " CROSS JOIN LATERAL (SELECT"                                               \
    "     coalesce(sum(count) FILTER (WHERE kind = 'output'), 0) AS resources," \
    "     coalesce(sum(bytes), 0) AS bytes, count(*) AS files"                  \
    "   FROM bulkfhir.file WHERE job_id = j.id) f"

static const char status_sql[] =
    "SELECT jsonb_build_object("
    " 'now', now(),"
    " 'jobs', (SELECT jsonb_object_agg(s, coalesce(c.n, 0))"
    "   FROM unnest(ARRAY['queued','running','completed','failed',"
    "                     'cancelled']) s"
    "   LEFT JOIN (SELECT state, count(*) AS n FROM bulkfhir.job"
    "              GROUP BY state) c ON c.state = s),"
    " 'tasks', (SELECT jsonb_object_agg(s, coalesce(c.n, 0))"
    "   FROM unnest(ARRAY['queued','running','done','failed',"
    "                     'cancelled']) s"
    "   LEFT JOIN (SELECT state, count(*) AS n FROM bulkfhir.task"
    "              GROUP BY state) c ON c.state = s),"
    /* ready: may be claimed now; the rest wait for a retry back-off */
    " 'queue', (SELECT jsonb_build_object('depth', count(*),"
    "     'ready', count(*) FILTER (WHERE run_after <= now()),"
    "     'oldest_seconds', coalesce(round(extract(epoch FROM now()"
    "        - min(run_after) FILTER (WHERE run_after <= now())), 1), 0))"
    "   FROM bulkfhir.task WHERE state = 'queued'),"
    " 'totals', (SELECT jsonb_build_object("
    "     'resources_exported',"
    "        coalesce(sum(count) FILTER (WHERE kind = 'output'), 0),"
    "     'bytes_written', coalesce(sum(bytes), 0), 'files', count(*),"
    "     'resources_per_second_1m', round(coalesce(sum(count) FILTER ("
    "        WHERE kind = 'output' AND created_at > now() - interval '1 minute'),"
    "        0) / 60.0, 1))"
    "   FROM bulkfhir.file),"
    " 'workers', (SELECT coalesce(jsonb_agg(jsonb_build_object("
    "     'id', w.id, 'host', w.host, 'pid', w.pid, 'version', w.version,"
    "     'started_at', w.started_at, 'heartbeat_at', w.heartbeat_at,"
    "     'heartbeat_age_seconds',"
    "        round(extract(epoch FROM now() - w.heartbeat_at), 1),"
    "     'current_task', w.current_task, 'current_job', t.job_id,"
    "     'current_type', t.resource_type)"
    "     ORDER BY w.host, w.pid, w.id), '[]')"
    "   FROM bulkfhir.worker w"
    "   LEFT JOIN bulkfhir.task t ON t.id = w.current_task),"
    " 'active_jobs', (SELECT coalesce(jsonb_agg(o ORDER BY created_at, id),"
    "     '[]') FROM (SELECT " JOB_OBJECT " AS o, j.created_at, j.id" JOB_FROM
    "   WHERE j.state IN ('queued', 'running')"
    "   ORDER BY j.created_at, j.id LIMIT $1::integer) a),"
    " 'recent_jobs', (SELECT coalesce(jsonb_agg(o ORDER BY fin DESC, id),"
    "     '[]') FROM (SELECT " JOB_OBJECT " AS o,"
    "     coalesce(j.finished_at, j.created_at) AS fin, j.id" JOB_FROM
    "   WHERE j.state IN ('completed', 'failed', 'cancelled')"
    "   ORDER BY coalesce(j.finished_at, j.created_at) DESC, j.id"
    "   LIMIT $2::integer) r)"
    ")::text";

bool bf_statusq_fetch(PGconn *conn, apr_pool_t *p, int max_active,
                      int max_recent, const char **json, char sqlstate[6])
{
    char a[16], b[16];
    const char *v[2] = { a, b };
    PGresult *res = NULL;
    bool ok = false;

    *json = NULL;
    snprintf(a, sizeof a, "%d", max_active);
    snprintf(b, sizeof b, "%d", max_recent);
    if (!bf_pq_exec(conn, "status page", status_sql, 2, v, &res, sqlstate))
        goto leave;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        if (sqlstate)
            apr_cpystrn(sqlstate, "XX000", 6);
        goto leave;
    }
    *json = apr_pstrdup(p, PQgetvalue(res, 0, 0));
    ok = true;
leave:
    if (res)
        PQclear(res);
    return ok;
}
