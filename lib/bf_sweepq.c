/* bf_sweepq: the sweeper's job-level statements (see bf_sweepq.h). */
#include "bf_sweepq.h"
#include "bf_pq.h"

#include <stdio.h>
#include <string.h>

#include <apr_strings.h>

static bool id_list(PGconn *conn, apr_pool_t *p, const char *what,
                    const char *sql, int nparams, const char *const *v,
                    apr_array_header_t **out)
{
    PGresult *res;
    int i;

    *out = apr_array_make(p, 4, sizeof(const char *));
    if (!bf_pq_exec(conn, what, sql, nparams, v, &res, NULL))
        return false;
    for (i = 0; i < PQntuples(res); i++)
        APR_ARRAY_PUSH(*out, const char *) =
            apr_pstrdup(p, PQgetvalue(res, i, 0));
    PQclear(res);
    return true;
}

bool bf_sweepq_cancelled(PGconn *conn, apr_pool_t *p, int recheck_seconds,
                         int limit, apr_array_header_t **out)
{
    char b_s[24], b_l[24];
    const char *v[] = { b_s, b_l };

    snprintf(b_s, sizeof b_s, "%d", recheck_seconds);
    snprintf(b_l, sizeof b_l, "%d", limit);
    return id_list(
        conn, p, "sweep cancelled jobs",
        "SELECT id FROM bulkfhir.job WHERE state = 'cancelled'"
        "   AND (files_removed_at IS NULL"
        "        OR files_removed_at > now() - make_interval(secs => $1::int))"
        " ORDER BY files_removed_at NULLS FIRST LIMIT $2::int",
        2, v, out);
}

bool bf_sweepq_mark_removed(PGconn *conn, const char *job_id)
{
    const char *v[] = { job_id };

    return bf_pq_exec(conn, "mark job files removed",
                      "UPDATE bulkfhir.job SET files_removed_at = now()"
                      " WHERE id = $1::uuid AND files_removed_at IS NULL",
                      1, v, NULL, NULL);
}

bool bf_sweepq_expired(PGconn *conn, apr_pool_t *p, int limit,
                       apr_array_header_t **out)
{
    char b_l[24];
    const char *v[] = { b_l };

    snprintf(b_l, sizeof b_l, "%d", limit);
    return id_list(conn, p, "sweep expired jobs",
                   "SELECT id FROM bulkfhir.job WHERE expires_at < now()"
                   "   AND state IN ('completed', 'failed', 'cancelled')"
                   " ORDER BY expires_at LIMIT $1::int",
                   1, v, out);
}

bool bf_sweepq_delete_expired(PGconn *conn, const char *job_id, bool *deleted)
{
    const char *v[] = { job_id };
    long rows;

    *deleted = false;
    /* tasks and file rows go with it (ON DELETE CASCADE) */
    if (!bf_pq_exec_rows(
            conn, "delete expired job",
            "DELETE FROM bulkfhir.job WHERE id = $1::uuid AND expires_at < now()"
            "   AND state IN ('completed', 'failed', 'cancelled')",
            1, v, &rows, NULL))
        return false;
    *deleted = rows == 1;
    return true;
}

bool bf_sweepq_orphans(PGconn *conn, apr_pool_t *p,
                       const apr_array_header_t *ids, apr_hash_t **out)
{
    const char *arr = "{";
    const char *v[1];
    PGresult *res;
    int i;

    *out = apr_hash_make(p);
    if (ids->nelts == 0)
        return true;
    /* the ids are uuids checked by the caller: safe inside an array literal */
    for (i = 0; i < ids->nelts; i++)
        arr = apr_pstrcat(p, arr, i ? "," : "",
                          APR_ARRAY_IDX(ids, i, const char *), NULL);
    v[0] = apr_pstrcat(p, arr, "}", NULL);
    if (!bf_pq_exec(
            conn, "sweep orphan directories",
            "SELECT x::text FROM unnest($1::uuid[]) x"
            " WHERE NOT EXISTS (SELECT 1 FROM bulkfhir.job j WHERE j.id = x)",
            1, v, &res, NULL))
        return false;
    for (i = 0; i < PQntuples(res); i++) {
        const char *s = apr_pstrdup(p, PQgetvalue(res, i, 0));
        apr_hash_set(*out, s, APR_HASH_KEY_STRING, s);
    }
    PQclear(res);
    return true;
}

bool bf_sweepq_auth(PGconn *conn, long *removed)
{
    long tokens = 0, jtis = 0;
    bool ok;

    ok =
        bf_pq_exec_rows(
            conn, "sweep tokens",
            "DELETE FROM bulkfhir.token WHERE expires_at < now() - interval '1 hour'",
            0, NULL, &tokens, NULL) &&
        bf_pq_exec_rows(
            conn, "sweep jti",
            "DELETE FROM bulkfhir.jti WHERE expires_at < now() - interval '10 minutes'",
            0, NULL, &jtis, NULL);
    *removed = tokens + jtis;
    return ok;
}
