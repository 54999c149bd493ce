/* bf_job: job statements used by the module (see bf_job.h). */
#include "bf_job.h"
#include "bf_log.h"
#include "bf_manifest.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dup_or_null(apr_pool_t *p, PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col)
               ? NULL
               : apr_pstrdup(p, PQgetvalue(res, row, col));
}

bool bf_job_session_setup(PGconn *conn, int statement_timeout_ms)
{
    char ms[32];
    const char *v[1] = { ms };

    snprintf(ms, sizeof ms, "%d", statement_timeout_ms);
    return bf_pq_exec(conn, "session setup",
                      "SELECT set_config('statement_timeout', $1, false)", 1, v,
                      NULL, NULL);
}

bool bf_job_kickoff(PGconn *conn, apr_pool_t *p, const bf_job_kickoff_t *k,
                    const char **job_id, char sqlstate[6])
{
    const char *v[9] = { k->client_id,   k->level,
                         k->group_id,    k->params,
                         k->since,       k->until,
                         k->request_url, k->requires_token ? "true" : "false",
                         k->types };
    const char *u[5];
    char life[32];
    PGresult *res;
    /* inside the caller's transaction (the admission of bf_limits) or in
     * our own: kickoff()'s NOTIFY is delivered at COMMIT, so no worker sees
     * the job before its 0030 columns are set */
    bool own = PQtransactionStatus(conn) == PQTRANS_IDLE;

    *job_id = NULL;
    if (own && !bf_pq_exec(conn, "kick-off", "BEGIN", 0, NULL, NULL, sqlstate))
        return false;
    if (!bf_pq_exec(conn, "kick-off",
                    "SELECT bulkfhir.kickoff($1, $2, $3, $4::jsonb, "
                    "$5::timestamptz, $6::timestamptz, $7, $8::boolean, "
                    "$9::text[])",
                    9, v, &res, sqlstate))
        goto fail;
    *job_id = apr_pstrdup(p, PQgetvalue(res, 0, 0));
    PQclear(res);
    snprintf(life, sizeof life, "%lld",
             k->file_lifetime > 0 ? k->file_lifetime : 0LL);
    u[0] = *job_id;
    u[1] = k->separate_status ? "true" : "false";
    u[2] = life;
    /* 0071: the job is visible only to requests authenticated this way */
    u[3] = k->auth_mode ? k->auth_mode : k->requires_token ? "smart" : "none";
    /* organizeOutputBy=Patient without _type, narrowed by the scopes
     * (bf_auth_kickoff): the blocks hold params._type (bf_task_sql), so the
     * granted types become the job's _type -- else the blocks would hold
     * every type and the file check (the job's types) would refuse them */
    u[4] = k->organized ? k->types : NULL;
    if (!bf_pq_exec(conn, "kick-off",
                    "UPDATE bulkfhir.job SET separate_status = $2::boolean, "
                    "file_lifetime = $3::integer, auth_mode = $4, "
                    "params = CASE WHEN $5::text[] IS NOT NULL "
                    "AND NOT params ? '_type' THEN params || "
                    "jsonb_build_object('_type', "
                    "array_to_string($5::text[], ',')) ELSE params END "
                    "WHERE id = $1::uuid",
                    5, u, NULL, sqlstate))
        goto fail;
    /* R53: resource blocks instead of one task per type (0031) */
    if (k->organized && !bf_pq_exec(conn, "kick-off",
                                    "SELECT bulkfhir.plan_organized($1::uuid)",
                                    1, u, NULL, sqlstate))
        goto fail;
    if (own && !bf_pq_exec(conn, "kick-off", "COMMIT", 0, NULL, NULL, sqlstate))
        goto fail;
    return true;
fail:
    *job_id = NULL;
    if (own)
        bf_pq_rollback(conn, "kick-off");
    return false;
}

bool bf_job_group_exists(PGconn *conn, const char *group_id, bool *exists,
                         char sqlstate[6])
{
    const char *v[1] = { group_id };
    PGresult *res;

    *exists = false;
    if (!bf_pq_exec(conn, "group lookup",
                    "SELECT 1 FROM fhir.resource_version "
                    "WHERE resource_type = 'Group' AND id = $1 "
                    "AND superseded_at IS NULL AND NOT deleted",
                    1, v, &res, sqlstate))
        return false;
    *exists = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

/* The statements prepared once per connection (bf_job_prepare) */
enum {
    STMT_STATUS,
    STMT_MANIFEST_STORE,
    STMT_FILES,
    STMT_MANIFEST_PAGE,
    STMT_FILE_LOOKUP,
    STMT_TOKEN_CHECK,
    STMT_COUNT
};

static const struct {
    const char *name;
    const char *sql;
    int nparams;
} stmts[STMT_COUNT] = {
    [STMT_STATUS] = { "bf_job_status",
                      "SELECT * FROM bulkfhir.job_status($1::uuid, "
                      "$2::integer, $3::boolean, $4, $5)",
                      5 },
    [STMT_MANIFEST_STORE] = { "bf_job_manifest_store",
                              "UPDATE bulkfhir.job SET manifest = $3, "
                              "manifest_base = $2 "
                              "WHERE id = $1::uuid AND state = 'completed'",
                              3 },
    [STMT_FILES] = { "bf_job_files",
                     "SELECT f.kind, f.resource_type, f.part, f.name, f.count, "
                     "f.continues_in, f.id "
                     "FROM bulkfhir.file f WHERE f.job_id = $1::uuid "
                     "AND f.id > $2::bigint "
                     "AND ($3::bigint IS NULL OR f.id <= $3::bigint) "
                     "ORDER BY f.kind, f.resource_type, f.part, f.name",
                     3 },
    [STMT_MANIFEST_PAGE] = { "bf_job_manifest_page",
                             "SELECT lo, hi, final "
                             "FROM bulkfhir.manifest_page_take($1::uuid, $2::integer)",
                             2 },
    [STMT_FILE_LOOKUP] = { "bf_job_file_lookup",
                           "SELECT bulkfhir.job_owner(j.auth_mode, j.requires_token, "
                           "j.client_id), "
                           "coalesce(j.expires_at < now(), false), "
                           "(j.params->'_type')::text "
                           "FROM bulkfhir.file f "
                           "JOIN bulkfhir.job j ON j.id = f.job_id "
                           "WHERE f.job_id = $1::uuid AND f.name = $2 "
                           "AND j.state <> 'cancelled'",
                           2 },
    [STMT_TOKEN_CHECK] = { "bf_job_token_check",
                           "SELECT t.client_id, t.scope, "
                           "extract(epoch FROM t.expires_at)::float8 "
                           "FROM bulkfhir.token t "
                           "JOIN bulkfhir.client c ON c.id = t.client_id AND c.enabled "
                           "WHERE t.hash = $1::bytea AND t.expires_at > now()",
                           1 },
};

/* A statement prepared once per connection under `name` (no parse/plan
 * per request): the first use on a connection fails with 26000 and
 * prepares it; 0A000 (a cached plan whose result type changed under a
 * migration) deallocates and prepares it again.  Inside a transaction it
 * runs unnamed (bf_pq_exec), so a failed first try cannot abort it. */
static bool exec_prepared(PGconn *conn, const char *what, int stmt,
                          const char *const *v, PGresult **out,
                          char sqlstate[6])
{
    const char *name = stmts[stmt].name, *sql = stmts[stmt].sql;
    int n = stmts[stmt].nparams;
    PGresult *res = NULL;
    const char *st, *msg;
    char dealloc[80];
    int tries;

    if (!conn || PQtransactionStatus(conn) != PQTRANS_IDLE)
        return bf_pq_exec(conn, what, sql, n, v, out, sqlstate);
    if (out)
        *out = NULL;
    if (sqlstate)
        sqlstate[0] = '\0';
    for (tries = 0; tries < 3; tries++) {
        res = PQexecPrepared(conn, name, n, v, NULL, NULL, 0);
        if (res && (PQresultStatus(res) == PGRES_TUPLES_OK ||
                    PQresultStatus(res) == PGRES_COMMAND_OK)) {
            if (out)
                *out = res;
            else
                PQclear(res);
            return true;
        }
        st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (tries == 2 || !st ||
            (strcmp(st, "26000") != 0 && strcmp(st, "0A000") != 0))
            break;
        if (strcmp(st, "0A000") == 0) {
            snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", name);
            PQclear(res);
            res = PQexec(conn, dealloc);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                break;
        }
        PQclear(res);
        res = PQprepare(conn, name, sql, n, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            break;
        PQclear(res);
        res = NULL;
    }
    st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = PQerrorMessage(conn);
    if (sqlstate && st) {
        strncpy(sqlstate, st, 5);
        sqlstate[5] = '\0';
    }
    bf_log(BF_LOG_WARN, "BF05001: %s: SQLSTATE %s: %.*s", what,
           st ? st : "-----", (int)strcspn(msg ? msg : "", "\n"),
           msg ? msg : "");
    PQclear(res);
    return false;
}

bool bf_job_prepare(PGconn *conn)
{
    PGresult *res;
    bool ok = true;
    int i;

    /* Preparing takes a lock on every table a statement names: a table
     * locked by someone else (LOCK TABLE, a migration, VACUUM FULL) must not
     * stall every new connection, so give up quickly and let such a
     * statement be prepared on first use, where only the requests that need
     * that table wait. */
    res = PQexec(conn, "SET lock_timeout = '10ms'");
    PQclear(res);
    for (i = 0; i < STMT_COUNT; i++) {
        res = PQprepare(conn, stmts[i].name, stmts[i].sql, stmts[i].nparams,
                        NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            /* e.g. the schema is not migrated yet: prepared on first use */
            bf_log(BF_LOG_DEBUG, "prepare %s: %s", stmts[i].name,
                   PQresultErrorMessage(res));
            ok = false;
        }
        PQclear(res);
    }
    res = PQexec(conn, "RESET lock_timeout");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        ok = false; /* a broken connection shows on its first use */
    PQclear(res);
    return ok;
}

bool bf_job_status(PGconn *conn, apr_pool_t *p, const char *job_id,
                   const bf_job_status_q_t *q, bf_job_t **job, char sqlstate[6])
{
    char ms[16];
    const char *v[5] = { job_id, ms, q->auth ? "true" : "false", q->client_id,
                         q->base };
    PGresult *res;
    bf_job_t *j;
    char what[80];

    *job = NULL;
    snprintf(ms, sizeof ms, "%d", q->min_ms > 0 ? q->min_ms : 0);
    snprintf(what, sizeof what, "job %s: status", job_id);
    if (!exec_prepared(conn, what, STMT_STATUS, v, &res, sqlstate))
        return false;
    if (PQntuples(res) == 1) {
        j = apr_pcalloc(p, sizeof *j);
        j->id = apr_pstrdup(p, PQgetvalue(res, 0, 0));
        j->state = apr_pstrdup(p, PQgetvalue(res, 0, 1));
        j->client_id = dup_or_null(p, res, 0, 2);
        j->request_url = apr_pstrdup(p, PQgetvalue(res, 0, 3));
        j->requires_token = PQgetvalue(res, 0, 4)[0] == 't';
        j->transaction_time = apr_pstrdup(p, PQgetvalue(res, 0, 5));
        j->finished_at = strtod(PQgetvalue(res, 0, 6), NULL);
        j->error = dup_or_null(p, res, 0, 7);
        j->tasks_total = strtoll(PQgetvalue(res, 0, 8), NULL, 10);
        j->tasks_done = strtoll(PQgetvalue(res, 0, 9), NULL, 10);
        j->expires_at = strtod(PQgetvalue(res, 0, 10), NULL);
        j->expired = PQgetvalue(res, 0, 11)[0] == 't';
        j->separate_status = PQgetvalue(res, 0, 12)[0] == 't';
        j->partial_manifests = PQgetvalue(res, 0, 13)[0] == 't';
        j->organized_by = dup_or_null(p, res, 0, 14);
        j->progress_pct = atoi(PQgetvalue(res, 0, 15));
        j->written = strtoll(PQgetvalue(res, 0, 16), NULL, 10);
        j->poll_refused = PQgetvalue(res, 0, 17)[0] != 't';
        j->poll_wait_ms = atoi(PQgetvalue(res, 0, 18));
        j->manifest = dup_or_null(p, res, 0, 19);
        *job = j;
    }
    PQclear(res);
    return true;
}

bool bf_job_manifest_store(PGconn *conn, const char *job_id, const char *base,
                           const char *manifest, char sqlstate[6])
{
    const char *v[3] = { job_id, base, manifest };
    char what[80];

    snprintf(what, sizeof what, "job %s: store manifest", job_id);
    return exec_prepared(conn, what, STMT_MANIFEST_STORE, v, NULL, sqlstate);
}

bool bf_job_files(PGconn *conn, apr_pool_t *p, const char *job_id, long long lo,
                  long long hi, apr_array_header_t **files, char sqlstate[6])
{
    char b_lo[24], b_hi[24];
    const char *v[3] = { job_id, b_lo, hi < 0 ? NULL : b_hi };
    PGresult *res;
    int i, n;
    char what[80];

    *files = NULL;
    snprintf(b_lo, sizeof b_lo, "%lld", lo);
    snprintf(b_hi, sizeof b_hi, "%lld", hi);
    snprintf(what, sizeof what, "job %s: files", job_id);
    /* continues_in (0020) names the next file of a resource block */
    if (!exec_prepared(conn, what, STMT_FILES, v, &res, sqlstate))
        return false;
    n = PQntuples(res);
    *files = apr_array_make(p, n + 1, sizeof(bf_manifest_file_t));
    for (i = 0; i < n; i++) {
        bf_manifest_file_t *f = apr_array_push(*files);

        f->kind = apr_pstrdup(p, PQgetvalue(res, i, 0));
        f->type = dup_or_null(p, res, i, 1);
        f->part = atoi(PQgetvalue(res, i, 2));
        f->name = apr_pstrdup(p, PQgetvalue(res, i, 3));
        f->count = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        f->continues_in = dup_or_null(p, res, i, 5);
        f->id = strtoll(PQgetvalue(res, i, 6), NULL, 10);
    }
    PQclear(res);
    return true;
}

bool bf_job_manifest_page(PGconn *conn, const char *job_id, int page,
                          bool *found, long long *lo, long long *hi,
                          bool *final, char sqlstate[6])
{
    char b_page[16];
    const char *v[2] = { job_id, b_page };
    PGresult *res;
    char what[80];

    *found = *final = false;
    *lo = *hi = 0;
    snprintf(b_page, sizeof b_page, "%d", page);
    snprintf(what, sizeof what, "job %s: manifest page", job_id);
    if (!exec_prepared(conn, what, STMT_MANIFEST_PAGE, v, &res, sqlstate))
        return false;
    if (PQntuples(res) == 1) {
        *found = true;
        *lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *hi = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        *final = PQgetvalue(res, 0, 2)[0] == 't';
    }
    PQclear(res);
    return true;
}

bool bf_job_cancel(PGconn *conn, const char *job_id, bool *found,
                   char sqlstate[6])
{
    const char *v[1] = { job_id };
    PGresult *res;
    char what[80];

    *found = false;
    snprintf(what, sizeof what, "job %s: cancel", job_id);
    /* one statement: the job row and its live tasks change together */
    if (!bf_pq_exec(conn, what,
                    "WITH j AS ("
                    "  UPDATE bulkfhir.job SET state = 'cancelled', "
                    "         finished_at = coalesce(finished_at, now()) "
                    "   WHERE id = $1::uuid AND state IN ('queued', "
                    "         'running', 'completed', 'failed') "
                    "  RETURNING id), "
                    "t AS ("
                    "  UPDATE bulkfhir.task SET state = 'cancelled', "
                    "         finished_at = now() "
                    "   WHERE job_id IN (SELECT id FROM j) "
                    "     AND state IN ('queued', 'running') "
                    "  RETURNING 1) "
                    "SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM t)",
                    1, v, &res, sqlstate))
        return false;
    *found = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    return true;
}

bool bf_job_file_lookup(PGconn *conn, apr_pool_t *p, const char *job_id,
                        const char *name, bool *found, const char **client_id,
                        bool *expired, const char **types_json,
                        char sqlstate[6])
{
    const char *v[2] = { job_id, name };
    PGresult *res;
    char what[80];

    *found = *expired = false;
    *client_id = *types_json = NULL;
    snprintf(what, sizeof what, "job %s: file lookup", job_id);
    if (!exec_prepared(conn, what, STMT_FILE_LOOKUP, v, &res, sqlstate))
        return false;
    if (PQntuples(res) > 0) {
        *found = true;
        *client_id = dup_or_null(p, res, 0, 0);
        *expired = PQgetvalue(res, 0, 1)[0] == 't';
        *types_json = dup_or_null(p, res, 0, 2);
    }
    PQclear(res);
    return true;
}

bool bf_job_token_check(PGconn *conn, apr_pool_t *p, const char *hash_hex,
                        bool *found, const char **client_id, const char **scope,
                        double *expires_at, char sqlstate[6])
{
    const char *v[1] = { hash_hex };
    PGresult *res;

    *found = false;
    *client_id = *scope = NULL;
    *expires_at = 0;
    if (!exec_prepared(conn, "token check", STMT_TOKEN_CHECK, v, &res,
                       sqlstate))
        return false;
    if (PQntuples(res) > 0) {
        *found = true;
        *client_id = apr_pstrdup(p, PQgetvalue(res, 0, 0));
        *scope = apr_pstrdup(p, PQgetvalue(res, 0, 1));
        *expires_at = strtod(PQgetvalue(res, 0, 2), NULL);
    }
    PQclear(res);
    return true;
}
