/* bulkfhir-worker: export one task.  Wait for the job's snapshot horizon
 * (DESIGN invariant 1), then stream the resources with binary COPY (text
 * COPY would escape backslashes inside the JSON) into the NDJSON writer,
 * one row at a time (invariant 6: memory does not grow with the export).
 * Between chunks it checks the heartbeat's lease-lost flag and the shutdown
 * flag, so either stops the task within a fraction of a second.
 *
 * A 'type' task writes its type's output, then (with _since) a deleted
 * file of transaction Bundles (R54); an 'organized' task writes resource
 * blocks (R53).  With allowPartialManifests every closed output part is
 * published at once on a second connection (R46), and a retried attempt
 * resumes after the rows an earlier one published.
 *
 * Bounded cost (DESIGN invariant 7): every statement that reads the store
 * for the task runs under the task limits (jit off, statement_timeout,
 * work_mem; sql/0070_task_limits.sql), and the worker's own RSS is checked
 * against memory_limit every 1024 rows and after every large row.  A
 * statement over a limit, or a task that would grow the worker past its
 * cap, ends as WORKER_EXPORT_COSTLY: the task fails at once (a retry would
 * cost the same), its job with a too-costly OperationOutcome.
 *
 * Parts are gzip-compressed as they stream (bulkfhir.setting compression,
 * compression_level; issue #15), read before each task so that every
 * writer of the attempt (and the job's error file) uses the same level. */
#include "config.h"
#include "worker.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apr_strings.h>
#include <json-c/json.h>

#include "bf_pq.h"
#include "bf_task_log.h"
#include "bf_id.h"
#include "bf_share.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A row this large is followed by a memory check at once. */
#define LARGE_ROW_BYTES (1024 * 1024)

int64_t worker_rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    int n;

    if (!f)
        return -1;
    n = fscanf(f, "%lld %lld", &size, &resident);
    fclose(f);
    if (n != 2 || page <= 0)
        return -1;
    return (int64_t)(resident * page / (1024 * 1024));
}

bool worker_memory_over(const worker_t *w, int64_t *rss_mb)
{
    *rss_mb = -1;
    if (w->cfg.memory_limit <= 0)
        return false;
    *rss_mb = worker_rss_mb();
    return *rss_mb > w->cfg.memory_limit;
}

static worker_export_rc over_memory(worker_t *w, apr_pool_t *p, int64_t rss,
                                    const char **msg)
{
    *msg = apr_psprintf(
        p, "worker memory %" PRId64 " MiB is past memory_limit %" PRId64 " MiB",
        rss, w->cfg.memory_limit);
    w->costly_why = apr_psprintf(p,
                                 "it needs more memory than a worker may use"
                                 " (%" PRId64 " MiB)",
                                 w->cfg.memory_limit);
    /* libpq keeps the input buffer a large row needed: start afresh */
    w->reconnect_wanted = true;
    return WORKER_EXPORT_COSTLY;
}

/* A failed statement that a retry would not cure (over a limit): sets
 * w->costly_why and returns true.  57014 is also a cancel (ours, an
 * operator's): only a statement that ran for the timeout counts, or one
 * whose message says so. */
static bool over_limit(worker_t *w, apr_pool_t *p, const char *sqlstate,
                       const char *errmsg, double secs)
{
    int64_t ms = w->limits.statement_timeout_ms;

    if (!sqlstate || !*sqlstate)
        return false;
    if (strcmp(sqlstate, "57014") == 0 && ms > 0 &&
        ((errmsg && strstr(errmsg, "statement timeout")) ||
         secs * 1000 >= 0.9 * (double)ms)) {
        w->costly_why =
            ms >= 10000
                ? apr_psprintf(p,
                               "its query ran past the time limit of %" PRId64
                               " s per statement",
                               ms / 1000)
                : apr_psprintf(p,
                               "its query ran past the time limit of %" PRId64
                               " ms per statement",
                               ms);
        return true;
    }
    if (strcmp(sqlstate, "53200") == 0) /* out_of_memory */
        w->costly_why = "its query needs more memory than the database allows";
    else if (strcmp(sqlstate, "53400") == 0) /* temp_file_limit */
        w->costly_why = "its query needs more temporary space than the"
                        " database allows";
    else if (strcmp(sqlstate, "54001") == 0) /* statement_too_complex */
        w->costly_why = "its query is too complex";
    else
        return false;
    return true;
}

static worker_export_rc interrupted(worker_t *w)
{
    if (worker_stop_requested)
        return WORKER_EXPORT_STOPPED;
    if (atomic_load(&w->hb.lease_lost))
        return WORKER_EXPORT_LOST;
    return WORKER_EXPORT_OK;
}

static worker_export_rc db_failure(worker_t *w, apr_pool_t *p, const char **msg,
                                   const char *what)
{
    *msg = apr_psprintf(p, "%s: %s", what, PQerrorMessage(w->conn));
    return bf_pq_healthy(w->conn) || PQstatus(w->conn) == CONNECTION_OK
               ? WORKER_EXPORT_FAILED
               : WORKER_EXPORT_DBERROR;
}

/* Wait until no transaction of the job's snapshot is in progress. */
static worker_export_rc wait_snapshot(worker_t *w, apr_pool_t *p,
                                      const bf_task_t *task,
                                      const bf_task_job_t *job,
                                      const char **msg)
{
    double started = now_s(), logged = 0;
    char horizon[32] = "";
    long pending;

    for (;;) {
        worker_export_rc rc;

        if (!bf_task_snapshot_pending(w->conn, job, horizon, &pending))
            return db_failure(w, p, msg, "snapshot wait");
        if (pending == 0)
            break;
        if (now_s() - logged >= 10) {
            bf_log_task(BF_LOG_INFO, task,
                        "waiting for %ld"
                        " transaction(s) older than the export to end (%.0f s)",
                        pending, now_s() - started);
            logged = now_s();
        }
        if ((rc = interrupted(w)) != WORKER_EXPORT_OK)
            return rc;
        worker_wait(-1, 0, 100);
    }
    return WORKER_EXPORT_OK;
}

/* Stop a COPY in progress: ask the server to cancel, then drain. */
static void cancel_copy(worker_t *w)
{
    PGcancel *c = PQgetCancel(w->conn);
    char err[256];
    char *buf;
    PGresult *res;
    int n;

    if (c) {
        PQcancel(c, err, sizeof err);
        PQfreeCancel(c);
    }
    while ((n = PQgetCopyData(w->conn, &buf, 0)) > 0)
        PQfreemem(buf);
    while ((res = PQgetResult(w->conn)) != NULL)
        PQclear(res);
}

/* Per-part publication context (allowPartialManifests). */
typedef struct part_pub {
    worker_t *w;
    const bf_task_t *task;
    PGconn *conn; /* second connection: the first one is inside the COPY */
    bool lost;    /* the task is no longer ours */
} part_pub_t;

static bool publish_closed_part(void *ctx, bf_ndjson_t *nd,
                                bf_ndjson_part_t *part, const char **err)
{
    part_pub_t *pp = ctx;
    bool ours;

    if (!pp->conn || !bf_pq_healthy(pp->conn)) {
        if (pp->conn)
            PQfinish(pp->conn);
        pp->conn = bf_pq_connect(pp->w->cfg.database, WORKER_APPNAME, 5);
        if (!pp->conn) {
            *err = "per-part publication: cannot connect";
            return false;
        }
    }
    if (!bf_task_publish_part(pp->conn, pp->task, pp->w->id, bf_ndjson_kind(nd),
                              bf_ndjson_resource_type(nd), part, &ours)) {
        *err = "per-part publication failed";
        return false;
    }
    if (!ours) {
        pp->lost = true;
        *err = "per-part publication: the task is no longer ours";
        return false;
    }
    part->published = true;
    bf_log_task(BF_LOG_DEBUG, pp->task, "published part %s", part->name);
    return true;
}

/* The gzip level of this task's parts (bulkfhir.compression_level(), sql/0072),
 * made the default of every writer opened in this process from now on. */
static worker_export_rc read_compression(worker_t *w, apr_pool_t *p,
                                         const char **msg)
{
    PGresult *res;
    int level;

    if (!bf_pq_exec(w->conn, "compression setting",
                    "SELECT bulkfhir.compression_level()", 0, NULL, &res, NULL))
        return db_failure(w, p, msg, "compression setting");
    level = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
                ? atoi(PQgetvalue(res, 0, 0))
                : -1;
    PQclear(res);
    bf_ndjson_set_default_compression(level);
    return WORKER_EXPORT_OK;
}

static bool param_true(const bf_task_job_t *job, const char *key)
{
    json_object *params = job->params ? json_tokener_parse(job->params) : NULL,
                *v;
    bool on = false;

    if (params && json_object_object_get_ex(params, key, &v))
        on = json_object_is_type(v, json_type_boolean)
                 ? json_object_get_boolean(v)
                 : json_object_is_type(v, json_type_string) &&
                       strcmp(json_object_get_string(v), "true") == 0;
    if (params)
        json_object_put(params);
    return on;
}

/* Stream one COPY statement into nd (ncols: see bf_copybin_t). */
static worker_export_rc run_copy(worker_t *w, apr_pool_t *p,
                                 const bf_task_t *task, const char *sql,
                                 int ncols, bf_ndjson_t *nd, const char **msg)
{
    worker_export_rc rc;
    bf_copybin_t st;
    PGresult *res;
    unsigned long chunks = 0;
    int n;

    double t0 = now_s();
    int64_t rss;
    bool costly;

    bf_log_task(BF_LOG_DEBUG, task, "%s", sql);
    if (!PQsendQuery(w->conn, sql))
        return db_failure(w, p, msg, "COPY");
    res = PQgetResult(w->conn);
    if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
        *msg = apr_psprintf(
            p, "COPY: %s %s", res ? PQresStatus(PQresultStatus(res)) : "",
            res ? PQresultErrorMessage(res) : PQerrorMessage(w->conn));
        costly =
            res && over_limit(w, p, PQresultErrorField(res, PG_DIAG_SQLSTATE),
                              PQresultErrorMessage(res), now_s() - t0);
        PQclear(res);
        while ((res = PQgetResult(w->conn)) != NULL)
            PQclear(res);
        if (PQstatus(w->conn) != CONNECTION_OK)
            return WORKER_EXPORT_DBERROR;
        return costly ? WORKER_EXPORT_COSTLY : WORKER_EXPORT_FAILED;
    }
    PQclear(res);

    bf_copybin_init(&st);
    st.ncols = ncols;
    for (;;) {
        char *buf = NULL;

        n = PQgetCopyData(w->conn, &buf, 1);
        if (n > 0) {
            bool ok;

            /* memory_limit: after a large row (while its buffers are
             * held), else every 1024 rows with the interruption check */
            if ((n >= LARGE_ROW_BYTES || ((chunks + 1) & 1023) == 0) &&
                worker_memory_over(w, &rss)) {
                PQfreemem(buf);
                cancel_copy(w);
                return over_memory(w, p, rss, msg);
            }
            ok = bf_copybin_feed(&st, buf, (size_t)n, nd);
            PQfreemem(buf);
            if (!ok) {
                *msg = st.err[0] ? apr_pstrdup(p, st.err) : bf_ndjson_error(nd);
                cancel_copy(w);
                return WORKER_EXPORT_FAILED;
            }
            if ((++chunks & 1023) == 0) {
                /* let a pending SIGTERM in (signals are blocked while busy) */
                worker_wait(-1, 0, 0);
                if ((rc = interrupted(w)) != WORKER_EXPORT_OK) {
                    cancel_copy(w);
                    return rc;
                }
            }
            continue;
        }
        if (n == 0) {
            if ((rc = interrupted(w)) != WORKER_EXPORT_OK) {
                cancel_copy(w);
                return rc;
            }
            worker_wait(PQsocket(w->conn), POLLIN, 500);
            if (!PQconsumeInput(w->conn))
                return db_failure(w, p, msg, "COPY");
            continue;
        }
        break; /* -1: done, -2: error */
    }
    res = PQgetResult(w->conn);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        *msg = apr_psprintf(p, "COPY: %s",
                            res ? PQresultErrorMessage(res)
                                : PQerrorMessage(w->conn));
        costly =
            res && over_limit(w, p, PQresultErrorField(res, PG_DIAG_SQLSTATE),
                              PQresultErrorMessage(res), now_s() - t0);
        rc = PQstatus(w->conn) != CONNECTION_OK ? WORKER_EXPORT_DBERROR
             : costly                           ? WORKER_EXPORT_COSTLY
                                                : WORKER_EXPORT_FAILED;
    } else if (!st.trailer_seen) {
        *msg = "binary COPY: stream ended without trailer";
        rc = WORKER_EXPORT_FAILED;
    } else {
        rc = WORKER_EXPORT_OK;
    }
    PQclear(res);
    while ((res = PQgetResult(w->conn)) != NULL)
        PQclear(res);
    if (rc != WORKER_EXPORT_OK)
        return rc;
    if ((rc = interrupted(w)) != WORKER_EXPORT_OK)
        return rc;
    if (!bf_ndjson_close(nd)) {
        *msg = bf_ndjson_error(nd);
        return WORKER_EXPORT_FAILED;
    }
    return WORKER_EXPORT_OK;
}

/* Building the statement failed (a statement it ran, or a value). */
static worker_export_rc build_failure(worker_t *w, apr_pool_t *p,
                                      const char **msg, const char *err,
                                      const char *sqlstate, double t0)
{
    *msg = apr_psprintf(p, "cannot build the export query: %s%s%s", err,
                        *sqlstate ? ": SQLSTATE " : "", sqlstate);
    if (PQstatus(w->conn) != CONNECTION_OK)
        return WORKER_EXPORT_DBERROR;
    /* the failing statement's message is in the BF00001 lines before */
    return over_limit(w, p, sqlstate, NULL, now_s() - t0)
               ? WORKER_EXPORT_COSTLY
               : WORKER_EXPORT_FAILED;
}

static worker_export_rc open_writer(worker_t *w, apr_pool_t *p,
                                    const bf_task_t *task, const char *dir,
                                    const char *prefix, bf_ndjson_t **nd,
                                    const char **msg)
{
    const char *err = NULL;

    if (!bf_ndjson_open(nd, p, dir, prefix, task->id, task->fencing,
                        w->cfg.max_part_resources, w->cfg.max_part_bytes, 0,
                        &err)) {
        *msg = err;
        return WORKER_EXPORT_FAILED;
    }
    return WORKER_EXPORT_OK;
}

worker_export_rc worker_export(worker_t *w, apr_pool_t *p,
                               const bf_task_t *task, const bf_task_job_t *job,
                               bf_ndjson_t **out, const char **msg)
{
    worker_export_rc rc;
    const char *sql, *err = NULL, *dir;
    bf_ndjson_t *nd = NULL, *del = NULL;
    part_pub_t pp = { w, task, NULL, false };
    bool organized = task->kind && strcmp(task->kind, "organized") == 0;
    bool fallback;
    int64_t skip = -1, rss;
    char state[6] = "";
    double t0;

    *out = NULL;
    *msg = NULL;
    w->costly_why = NULL;
    if ((rc = wait_snapshot(w, p, task, job, msg)) != WORKER_EXPORT_OK)
        return rc;
    if (!bf_id_is_uuid(job->id)) {
        *msg = "invalid job id";
        return WORKER_EXPORT_FAILED;
    }
    /* every statement from here on reads the store: under the limits */
    if (!bf_task_limits_set(w->conn, &w->limits, &fallback))
        return db_failure(w, p, msg, "task limits");
    w->limits_applied = true;
    w->limits_read = true;
    if (fallback && !w->limits_warned) {
        bf_log(
            BF_LOG_WARN,
            "BF02052: worker %s: the database has no"
            " bulkfhir.task_limits_set (migration 0070): built-in task limits"
            " (jit off, statement_timeout 900 s, work_mem 16 MiB); run"
            " bulkfhirctl migrate",
            w->id);
        w->limits_warned = true;
    }
    bf_log_task(BF_LOG_DEBUG, task,
                "limits: jit off,"
                " statement_timeout %" PRId64 " ms, work_mem %" PRId64 " kB",
                w->limits.statement_timeout_ms, w->limits.work_mem_kb);
    dir = bf_share_job_dir(p, w->cfg.export_root, job->id);
    if ((rc = read_compression(w, p, msg)) != WORKER_EXPORT_OK)
        return rc;
    t0 = now_s();

    if (organized) {
        /* "blocks.": never the name of a resource type's output */
        if (!bf_task_organized_sql(w->conn, p, task, job, &sql, &err, state))
            return build_failure(w, p, msg, err, state, t0);
        if (worker_memory_over(w, &rss))
            return over_memory(w, p, rss, msg);
        if ((rc = open_writer(w, p, task, dir, "blocks", &nd, msg)) !=
            WORKER_EXPORT_OK)
            return rc;
        bf_ndjson_set_publish(nd, "output", NULL);
        *out = nd;
        rc = run_copy(w, p, task, sql, 3, nd, msg);
    } else {
        int first_part = 0;

        if (param_true(job, "allowPartialManifests")) {
            if (!bf_task_published_so_far(w->conn, task, &skip, &first_part))
                return db_failure(w, p, msg, "published parts");
        }
        if (!bf_task_export_sql(w->conn, p, task, job, skip, &sql, &err, state))
            return build_failure(w, p, msg, err, state, t0);
        if (worker_memory_over(w, &rss))
            return over_memory(w, p, rss, msg);
        if ((rc = open_writer(w, p, task, dir, task->resource_type, &nd,
                              msg)) != WORKER_EXPORT_OK)
            return rc;
        *out = nd;
        if (skip >= 0) {
            bf_ndjson_set_first_part(nd, first_part);
            bf_ndjson_on_part_closed(nd, publish_closed_part, &pp);
        }
        rc = run_copy(w, p, task, sql, 1, nd, msg);
        if (rc == WORKER_EXPORT_OK) {
            double td = now_s();

            if (!bf_task_deleted_sql(w->conn, p, task, job, &sql, &err,
                                     state)) {
                rc = build_failure(w, p, msg, err, state, td);
            } else if (sql) {
                /* "deleted.": never the name of a resource type's output */
                rc = open_writer(w, p, task, dir, "deleted", &del, msg);
                if (rc == WORKER_EXPORT_OK) {
                    bf_ndjson_set_publish(del, "deleted", "Bundle");
                    bf_ndjson_chain(nd, del);
                    rc = run_copy(w, p, task, sql, 1, del, msg);
                }
            }
        }
    }
    if (pp.conn)
        PQfinish(pp.conn);
    if (pp.lost && rc == WORKER_EXPORT_FAILED)
        rc = WORKER_EXPORT_LOST;
    if (rc != WORKER_EXPORT_OK)
        return rc;
    {
        double dt = now_s() - t0;

        bf_log(BF_LOG_INFO,
               "job %s: task %" PRId64 " (%s%s): %" PRId64
               " resources, %zu part(s), %" PRId64 " bytes (%" PRId64
               " on disk), %" PRId64
               " deleted Bundle line(s) in %.2f s (%.0f/s)",
               job->id, task->id, organized ? "organized by " : "",
               task->resource_type, bf_ndjson_total_count(nd),
               bf_ndjson_part_count(nd), bf_ndjson_total_bytes(nd),
               bf_ndjson_total_stored(nd), del ? bf_ndjson_total_count(del) : 0,
               dt, dt > 0 ? (double)bf_ndjson_total_count(nd) / dt : 0.0);
    }
    return WORKER_EXPORT_OK;
}
