/* mod_bulkfhir status: GET bulkstatus/{job} (202 progress, 200 manifest,
 * 4xx/5xx OperationOutcome) and DELETE bulkstatus/{job} (cancel).
 *
 *   R42  Retry-After (BulkFhirRetryAfter seconds) and X-Progress
 *        ("<n>% complete", bulkfhir.job_progress) while the job runs
 *   R43  429 + Retry-After + OperationOutcome (throttled) when a running
 *        job is polled sooner than BulkFhirMinPollInterval ms after the
 *        previous poll (bulkfhir.job_status, 0060: one statement per
 *        poll; last_poll_at on the job row)
 *   R16  separate-export-status: 200 + X-Export-Status: <job status>
 *   R46  allowPartialManifests: ?page=N, pages fixed once served
 *        (bulkfhir.manifest_page), link next until the final page
 *        Expires: job.expires_at; after it, 410 Gone + OperationOutcome
 * With BulkFhirStatusCache a GET is first looked up in the shared cache
 * (statuscache.c); what PostgreSQL answers is stored there. */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_job_state.h"
#include "bf_id.h"
#include "bf_manifest.h"
#include "bf_oo.h"
#include "bf_params.h"

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
    if (oo && json_object_object_get_ex(oo, "issue", &issues) &&
        json_object_is_type(issues, json_type_array) &&
        json_object_array_length(issues) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(issues, 0), "code",
                                  &code))
        for (i = 0; map[i].code; i++)
            if (strcmp(map[i].code, json_object_get_string(code)) == 0)
                status = map[i].status;
    if (oo)
        json_object_put(oo);
    return status;
}

/* R16: with separate-export-status the response to the status request is
 * 200 and X-Export-Status carries the job's status ("202 Accepted"). */
static int job_reply(bf_req_t *rq, const bf_job_t *job, int status,
                     const char *ctype, const char *body)
{
    if (job->separate_status) {
        apr_table_setn(rq->r->headers_out, "X-Export-Status",
                       ap_get_status_line(status));
        status = HTTP_OK;
    }
    return bf_http_body(rq, status, ctype, body);
}

static int job_oo(bf_req_t *rq, const bf_job_t *job, int status,
                  const char *code, const char *text)
{
    return job_reply(rq, job, status, BF_CT_FHIR_JSON,
                     bf_oo_json(rq->r->pool,
                                status >= 400 ? "error" : "information", code,
                                "%s", text));
}

/* ?page=N (partial manifests); 1 when absent, 0 when malformed. */
static int page_arg(request_rec *r)
{
    const char *cursor = r->args;
    char *name, *value, *end;
    long n;

    while (bf_query_next(r->pool, &cursor, &name, &value)) {
        if (!name || strcmp(name, "page") != 0)
            continue;
        if (!value)
            return 0;
        n = strtol(value, &end, 10);
        if (end == value || *end || n < 1 || n > 1000000)
            return 0;
        return (int)n;
    }
    return 1;
}

static void set_expires(bf_req_t *rq, const bf_job_t *job)
{
    request_rec *r = rq->r;
    char *date = apr_palloc(r->pool, APR_RFC822_DATE_LEN);
    double at = job->expires_at > 0
                    ? job->expires_at
                    : job->finished_at + (double)bf_dir_file_lifetime(rq->dc);

    apr_rfc822_date(date, apr_time_from_sec((apr_int64_t)at));
    apr_table_setn(r->headers_out, "Expires", date);
}

static const char *manifest(bf_req_t *rq, const bf_job_t *job,
                            apr_array_header_t *files, const char *next)
{
    bf_manifest_t m;

    memset(&m, 0, sizeof m);
    m.files = files;
    m.transaction_time = job->transaction_time;
    m.request = job->request_url;
    m.requires_token = job->requires_token;
    m.base_url = rq->base;
    m.job_id = job->id;
    m.organized_by = job->organized_by;
    m.next_url = next;
    return bf_manifest_json(rq->r->pool, &m);
}

/* R42, X-Progress: how far a running job is, from its counters. */
static void progress_headers(bf_req_t *rq, const bf_job_t *job)
{
    request_rec *r = rq->r;

    apr_table_setn(r->headers_out, "X-Progress",
                   apr_psprintf(r->pool, "%d%% complete", job->progress_pct));
    apr_table_setn(r->headers_out, "Retry-After",
                   apr_itoa(r->pool, bf_dir_retry_after(rq->dc)));
}

/* R46: page N of the partial manifests of a job that asked for them. */
static int partial_get(bf_req_t *rq, const bf_job_t *job, bool running)
{
    request_rec *r = rq->r;
    int page = page_arg(r);
    long long lo, hi;
    bool found, final;
    char sqlstate[6];
    apr_array_header_t *files;
    const char *next = NULL;

    if (page < 1)
        return bf_http_oo(rq, HTTP_BAD_REQUEST, "invalid",
                          "page must be a positive integer");
    if (!bf_job_manifest_page(rq->conn, job->id, page, &found, &lo, &hi, &final,
                              sqlstate))
        return bf_http_db_error(rq, sqlstate, "status");
    if (!found) {
        if (running) { /* nothing new published yet */
            progress_headers(rq, job);
            return job_reply(rq, job, HTTP_ACCEPTED, BF_CT_FHIR_JSON, NULL);
        }
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "export job %s has no manifest page %d", job->id,
                          page);
    }
    if (!bf_job_files(rq->conn, r->pool, job->id, lo, hi, &files, sqlstate))
        return bf_http_db_error(rq, sqlstate, "status");
    if (!final)
        next = apr_psprintf(r->pool, "%s/bulkstatus/%s?page=%d", rq->base,
                            job->id, page + 1);
    if (running) {
        progress_headers(rq, job);
        return job_reply(rq, job, HTTP_ACCEPTED, "application/json",
                         manifest(rq, job, files, next));
    }
    set_expires(rq, job);
    return job_reply(rq, job, HTTP_OK, "application/json",
                     manifest(rq, job, files, next));
}

/* GET: job from PostgreSQL or from the status cache (then rq->conn is NULL:
 * bf_statuscache_get gives no partial-manifest job, and a completed one
 * only with its manifest for rq->base).  A manifest rendered here is left
 * in job->manifest for bf_statuscache_put. */
static int status_get(bf_req_t *rq, bf_job_t *job)
{
    request_rec *r = rq->r;
    char sqlstate[6];
    apr_array_header_t *files;
    bf_job_state_e state = bf_job_state_parse(job->state);
    bool running = bf_job_state_live(state);
    const char *body;
    int wait_ms, min_ms = bf_dir_min_poll_interval(rq->dc);

    /* R43: the status request itself is refused, whatever the job; the
     * gate ran in bulkfhir.job_status (bf_status_handle) */
    if (running && min_ms > 0 && job->poll_refused) {
        wait_ms = job->poll_wait_ms;
        apr_table_setn(
            r->headers_out, "Retry-After",
            apr_itoa(r->pool, wait_ms > 1000 ? (wait_ms + 999) / 1000 : 1));
        return bf_http_oo(rq, HTTP_TOO_MANY_REQUESTS, "throttled",
                          "export job %s is polled too often: wait at "
                          "least %d ms between polls",
                          job->id, min_ms);
    }
    if (job->expired)
        return bf_http_oo(rq, HTTP_GONE, "not-found",
                          "export job %s has expired; its files were or "
                          "will soon be removed",
                          job->id);
    if (job->partial_manifests && (running || state == BF_JOB_STATE_COMPLETED))
        return partial_get(rq, job, running);
    if (running) {
        progress_headers(rq, job);
        return job_reply(rq, job, HTTP_ACCEPTED, BF_CT_FHIR_JSON, NULL);
    }
    if (state == BF_JOB_STATE_FAILED) {
        if (job->error)
            return job_reply(rq, job, failed_status(job->error),
                             BF_CT_FHIR_JSON, job->error);
        return job_oo(rq, job, HTTP_INTERNAL_SERVER_ERROR, "exception",
                      apr_psprintf(r->pool, "export job %s failed", job->id));
    }
    if (state != BF_JOB_STATE_COMPLETED)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "export job %s was cancelled", job->id);

    /* a completed job's manifest does not change: rendered once per
     * base URL, stored on the job row (0060) and served as is */
    body = job->manifest;
    if (!body) {
        if (!bf_job_files(rq->conn, r->pool, job->id, 0, -1, &files, sqlstate))
            return bf_http_db_error(rq, sqlstate, "status");
        body = manifest(rq, job, files, NULL);
        /* best effort: without it the next poll renders again */
        (void)bf_job_manifest_store(rq->conn, job->id, rq->base, body,
                                    sqlstate);
        job->manifest = body;
    }
    set_expires(rq, job);
    return job_reply(rq, job, HTTP_OK, "application/json", body);
}

int bf_status_handle(bf_req_t *rq, const char *job_id)
{
    request_rec *r = rq->r;
    bf_job_t *job;
    bf_job_status_q_t q;
    char sqlstate[6];
    bool found;
    int rc;

    if (r->method_number != M_GET && r->method_number != M_DELETE)
        return bf_http_not_allowed(rq, "GET, DELETE");
    if (!bf_id_is_uuid(job_id))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no export job %s",
                          job_id);
    /* GET: a fresh entry of the shared cache answers without PostgreSQL */
    if (r->method_number == M_GET && bf_statuscache_get(rq, job_id, &job))
        return bf_auth_may_see(rq, job->client_id)
                   ? status_get(rq, job)
                   : bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                                "no export job %s", job_id);
    if (!bf_db_acquire(rq))
        return bf_http_unavailable(rq, "status");
    /* else one statement answers the poll (gate, progress, manifest) */
    q.min_ms = r->method_number == M_GET ? bf_dir_min_poll_interval(rq->dc) : 0;
    q.auth = true; /* the gate only for the owner, as bf_auth_may_see */
    q.client_id = bf_auth_owner(rq);
    q.base = rq->base;
    if (!bf_job_status(rq->conn, r->pool, job_id, &q, &job, sqlstate))
        return bf_http_db_error(rq, sqlstate, "status");
    /* another client's job does not exist for this one */
    if (!job || !bf_auth_may_see(rq, job->client_id))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no export job %s",
                          job_id);
    if (r->method_number == M_GET) {
        rc = status_get(rq, job);
        bf_statuscache_put(rq, job);
        return rc;
    }

    if (bf_job_state_parse(job->state) ==
        BF_JOB_STATE_CANCELLED) { /* e.g. by bulkfhirctl */
        bf_statuscache_forget(rq, job->id);
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "export job %s was already cancelled", job_id);
    }
    if (!bf_job_cancel(rq->conn, job->id, &found, sqlstate))
        return bf_http_db_error(rq, sqlstate, "cancel");
    /* later polls through this httpd see the cancel at once */
    bf_statuscache_forget(rq, job->id);
    if (!found)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "export job %s was already cancelled", job_id);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "job %s: cancelled by client %s (was %s)", job->id,
                  rq->client_id ? rq->client_id : "-", job->state);
    return bf_http_oo(rq, HTTP_ACCEPTED, "informational",
                      "export job %s cancelled", job->id);
}
