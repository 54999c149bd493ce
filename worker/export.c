/* bulkfhir-worker: export one task.  Wait for the job's snapshot horizon
 * (DESIGN invariant 1), then stream the resources with binary COPY (text
 * COPY would escape backslashes inside the JSON) into the NDJSON writer,
 * one row at a time (invariant 6: memory does not grow with the export).
 * Between chunks it checks the heartbeat's lease-lost flag and the shutdown
 * flag, so either stops the task within a fraction of a second. */
#include "config.h"
#include "worker.h"

#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include <apr_strings.h>

#include "bf_pq.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static worker_export_rc interrupted(worker_t *w)
{
    if (worker_stop_requested)
        return WORKER_EXPORT_STOPPED;
    if (atomic_load(&w->hb.lease_lost))
        return WORKER_EXPORT_LOST;
    return WORKER_EXPORT_OK;
}

static worker_export_rc db_failure(worker_t *w, apr_pool_t *p,
                                   const char **msg, const char *what)
{
    *msg = apr_psprintf(p, "%s: %s", what, PQerrorMessage(w->conn));
    return bf_pq_healthy(w->conn) || PQstatus(w->conn) == CONNECTION_OK
               ? WORKER_EXPORT_FAILED : WORKER_EXPORT_DBERROR;
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
            bf_log(BF_LOG_INFO, "job %s: task %" PRId64 " (%s): waiting for %ld"
                   " transaction(s) older than the export to end (%.0f s)",
                   job->id, task->id, task->resource_type, pending,
                   now_s() - started);
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

worker_export_rc worker_export(worker_t *w, apr_pool_t *p,
                               const bf_task_t *task,
                               const bf_task_job_t *job, bf_ndjson_t **out,
                               const char **msg)
{
    worker_export_rc rc;
    const char *sql, *err = NULL, *dir;
    bf_ndjson_t *nd = NULL;
    bf_copybin_t st;
    PGresult *res;
    double t0;
    unsigned long chunks = 0;
    int n;

    *out = NULL;
    *msg = NULL;
    if ((rc = wait_snapshot(w, p, task, job, msg)) != WORKER_EXPORT_OK)
        return rc;
    if (!bf_task_export_sql(w->conn, p, task, job, &sql, &err)) {
        *msg = apr_psprintf(p, "cannot build the export query: %s", err);
        return WORKER_EXPORT_FAILED;
    }
    if (!bf_task_valid_uuid(job->id)) {
        *msg = "invalid job id";
        return WORKER_EXPORT_FAILED;
    }
    dir = apr_pstrcat(p, w->cfg.export_root, "/", job->id, NULL);
    if (!bf_ndjson_open(&nd, p, dir, task->resource_type, task->id,
                        task->fencing, w->cfg.max_part_resources,
                        w->cfg.max_part_bytes, 0, &err)) {
        *msg = err;
        return WORKER_EXPORT_FAILED;
    }
    *out = nd;
    bf_log(BF_LOG_DEBUG, "job %s: task %" PRId64 " (%s): %s", job->id, task->id,
           task->resource_type, sql);

    t0 = now_s();
    if (!PQsendQuery(w->conn, sql))
        return db_failure(w, p, msg, "COPY");
    res = PQgetResult(w->conn);
    if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
        *msg = apr_psprintf(p, "COPY: %s %s",
                            res ? PQresStatus(PQresultStatus(res)) : "",
                            res ? PQresultErrorMessage(res) : PQerrorMessage(w->conn));
        PQclear(res);
        while ((res = PQgetResult(w->conn)) != NULL)
            PQclear(res);
        return PQstatus(w->conn) == CONNECTION_OK ? WORKER_EXPORT_FAILED
                                                   : WORKER_EXPORT_DBERROR;
    }
    PQclear(res);

    bf_copybin_init(&st);
    for (;;) {
        char *buf = NULL;

        n = PQgetCopyData(w->conn, &buf, 1);
        if (n > 0) {
            bool ok = bf_copybin_feed(&st, buf, (size_t)n, nd);

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
        *msg = apr_psprintf(p, "COPY: %s", res ? PQresultErrorMessage(res)
                                               : PQerrorMessage(w->conn));
        rc = PQstatus(w->conn) == CONNECTION_OK ? WORKER_EXPORT_FAILED
                                                 : WORKER_EXPORT_DBERROR;
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
    {
        double dt = now_s() - t0;

        bf_log(BF_LOG_INFO, "job %s: task %" PRId64 " (%s): %" PRId64
               " resources, %zu part(s), %" PRId64 " bytes in %.2f s (%.0f/s)",
               job->id, task->id, task->resource_type, bf_ndjson_total_count(nd),
               bf_ndjson_part_count(nd), bf_ndjson_total_bytes(nd), dt,
               dt > 0 ? (double)bf_ndjson_total_count(nd) / dt : 0.0);
    }
    return WORKER_EXPORT_OK;
}
