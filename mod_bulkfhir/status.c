/* mod_bulkfhir status: GET bulkstatus/{job} (202 progress, 200 manifest,
 * 4xx/5xx OperationOutcome) and DELETE bulkstatus/{job} (cancel). */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_manifest.h"

#include <apr_date.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <json-c/json.h>

/* The HTTP status for a failed job: 500 unless its OperationOutcome names
 * a client error. */
static int failed_status(const char *error)
{
    static const struct {
        const char *code;
        int status;
    } map[] = { { "not-found", HTTP_NOT_FOUND },
                { "forbidden", HTTP_FORBIDDEN },
                { "security", HTTP_FORBIDDEN },
                { "login", HTTP_UNAUTHORIZED },
                { "invalid", HTTP_BAD_REQUEST },
                { "structure", HTTP_BAD_REQUEST },
                { "required", HTTP_BAD_REQUEST },
                { "value", HTTP_BAD_REQUEST },
                { "not-supported", HTTP_BAD_REQUEST },
                { "too-costly", HTTP_BAD_REQUEST },
                { NULL, 0 } };
    json_object *oo, *issues, *code;
    int status = HTTP_INTERNAL_SERVER_ERROR, i;

    oo = error ? json_tokener_parse(error) : NULL;
    if (oo && json_object_object_get_ex(oo, "issue", &issues)
        && json_object_is_type(issues, json_type_array)
        && json_object_array_length(issues) > 0
        && json_object_object_get_ex(json_object_array_get_idx(issues, 0),
                                     "code", &code))
        for (i = 0; map[i].code; i++)
            if (strcmp(map[i].code, json_object_get_string(code)) == 0)
                status = map[i].status;
    if (oo)
        json_object_put(oo);
    return status;
}

static int status_get(bf_req_t *rq, const bf_job_t *job)
{
    request_rec *r = rq->r;
    char sqlstate[6], *date;
    bf_manifest_t m;
    int pct;
    apr_time_t expires;

    if (!strcmp(job->state, "queued") || !strcmp(job->state, "running")) {
        pct = job->tasks_total > 0
                  ? (int)(job->tasks_done * 100 / job->tasks_total)
                  : 0;
        apr_table_setn(r->headers_out, "X-Progress",
                       apr_psprintf(r->pool,
                                    "%d%% complete (%" APR_INT64_T_FMT
                                    " of %" APR_INT64_T_FMT " tasks)",
                                    pct, (apr_int64_t)job->tasks_done,
                                    (apr_int64_t)job->tasks_total));
        apr_table_setn(r->headers_out, "Retry-After",
                       apr_itoa(r->pool, bf_dir_retry_after(rq->dc)));
        return bf_http_body(rq, HTTP_ACCEPTED, BF_CT_FHIR_JSON, NULL);
    }
    if (!strcmp(job->state, "failed")) {
        if (job->error)
            return bf_http_body(rq, failed_status(job->error),
                                BF_CT_FHIR_JSON, job->error);
        return bf_http_oo(rq, HTTP_INTERNAL_SERVER_ERROR, "exception",
                          "export job %s failed", job->id);
    }
    if (strcmp(job->state, "completed") != 0)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "export job %s was cancelled", job->id);

    memset(&m, 0, sizeof m);
    if (!bf_job_files(rq->conn, r->pool, job->id, &m.files, sqlstate))
        return bf_http_db_error(rq, sqlstate, "status");
    m.transaction_time = job->transaction_time;
    m.request = job->request_url;
    m.requires_token = job->requires_token;
    m.base_url = rq->base;
    m.job_id = job->id;
    expires = apr_time_from_sec((apr_int64_t)job->finished_at
                                + bf_dir_file_lifetime(rq->dc));
    date = apr_palloc(r->pool, APR_RFC822_DATE_LEN);
    apr_rfc822_date(date, expires);
    apr_table_setn(r->headers_out, "Expires", date);
    return bf_http_body(rq, HTTP_OK, "application/json",
                        bf_manifest_json(r->pool, &m));
}

int bf_status_handle(bf_req_t *rq, const char *job_id)
{
    request_rec *r = rq->r;
    bf_job_t *job;
    char sqlstate[6];
    bool found;

    if (r->method_number != M_GET && r->method_number != M_DELETE)
        return bf_http_not_allowed(rq, "GET, DELETE");
    if (!bf_job_is_uuid(job_id))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "no export job %s", job_id);
    if (!bf_db_acquire(rq))
        return bf_http_unavailable(rq, "status");
    if (!bf_job_get(rq->conn, r->pool, job_id, &job, sqlstate))
        return bf_http_db_error(rq, sqlstate, "status");
    /* another client's job does not exist for this one */
    if (!job || !bf_auth_may_see(rq, job->client_id))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "no export job %s", job_id);
    if (r->method_number == M_GET)
        return status_get(rq, job);

    if (!strcmp(job->state, "cancelled"))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "export job %s was already cancelled", job_id);
    if (!bf_job_cancel(rq->conn, job->id, &found, sqlstate))
        return bf_http_db_error(rq, sqlstate, "cancel");
    if (!found)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "export job %s was already cancelled", job_id);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "job %s: cancelled by client %s (was %s)", job->id,
                  rq->client_id ? rq->client_id : "-", job->state);
    return bf_http_oo(rq, HTTP_ACCEPTED, "informational",
                      "export job %s cancelled", job->id);
}
