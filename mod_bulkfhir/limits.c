/* mod_bulkfhir per-client limits (SPEC R9, §5 item 6): the kick-off runs in
 * the admission transaction of bf_limits_admit, so a client never has more
 * than its max_jobs queued+running jobs, nor more kick-offs per minute than
 * BulkFhirKickoffRate.  Refusals are 429 + Retry-After + OperationOutcome
 * (code throttled).  Cancelled jobs do not count: a DELETE frees the slot at
 * once. */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_limits.h"

#include <apr_strings.h>

/* a busy client waits for one of its jobs to end: no use polling faster */
#define BUSY_RETRY_MIN 10

bool bf_limits_kickoff(bf_req_t *rq, const bf_job_kickoff_t *k,
                       const char **job_id, int *rc)
{
    request_rec *r = rq->r;
    const char *who = k->client_id ? k->client_id : "(anonymous)";
    bf_admit_t a;
    char sqlstate[6];
    int retry;

    if (!bf_limits_admit(rq->conn, bf_auth_mode_name(bf_dir_auth(rq->dc)),
                         k->client_id, bf_dir_max_active_jobs(rq->dc),
                         bf_dir_kickoff_rate(rq->dc), &a, sqlstate)) {
        *rc = bf_http_db_error(rq, sqlstate, "kick-off");
        return false;
    }
    if (a.verdict == BF_ADMIT_BUSY) {
        retry = bf_dir_retry_after(rq->dc);
        if (retry < BUSY_RETRY_MIN)
            retry = BUSY_RETRY_MIN;
        apr_table_setn(r->headers_out, "Retry-After", apr_itoa(r->pool, retry));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "kick-off refused: client %s has %" APR_INT64_T_FMT
                      " active jobs (limit %d)",
                      who, (apr_int64_t)a.active, a.max_jobs);
        *rc = bf_http_oo(rq, HTTP_TOO_MANY_REQUESTS, "throttled",
                         "too many export jobs in progress for this client "
                         "(%" APR_INT64_T_FMT " of at most %d queued or "
                         "running); wait for one to finish or DELETE one",
                         (apr_int64_t)a.active, a.max_jobs);
        return false;
    }
    if (a.verdict == BF_ADMIT_RATE) {
        apr_table_setn(r->headers_out, "Retry-After",
                       apr_itoa(r->pool, a.retry_after));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "kick-off refused: client %s started %" APR_INT64_T_FMT
                      " jobs in the last minute (%s %d/min)",
                      who, (apr_int64_t)a.recent, BF_CMD_KICKOFF_RATE,
                      bf_dir_kickoff_rate(rq->dc));
        *rc = bf_http_oo(rq, HTTP_TOO_MANY_REQUESTS, "throttled",
                         "too many kick-offs: at most %d per minute for this "
                         "client; retry in %d s",
                         bf_dir_kickoff_rate(rq->dc), a.retry_after);
        return false;
    }
    if (!bf_job_kickoff(rq->conn, r->pool, k, job_id, sqlstate)) {
        bf_limits_finish(rq->conn, false, NULL);
        *rc = bf_http_db_error(rq, sqlstate, "kick-off");
        return false;
    }
    bf_audit_kickoff(rq, k, *job_id); /* in this transaction (issue #13) */
    if (!bf_limits_finish(rq->conn, true, sqlstate)) {
        *rc = bf_http_db_error(rq, sqlstate, "kick-off");
        return false;
    }
    return true;
}
