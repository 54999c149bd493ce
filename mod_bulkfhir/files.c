/* mod_bulkfhir files: GET/HEAD bulkfiles/{job}/{name}, served from
 * {BulkFhirExportRoot}/{job}/{name} with a file bucket (sendfile); httpd's
 * byterange filter answers Range requests. */
#include "mod_bulkfhir.h"
#include "bf_job.h"

#include <apr_buckets.h>
#include <apr_strings.h>
#include <ctype.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

/* {Type}.{task}.{fencing}.{part}.ndjson: ^[A-Za-z]+\.[0-9]+\.[0-9]+\.[0-9]+\.ndjson$ */
static bool valid_name(const char *s)
{
    const char *p = s;
    int group;

    if (!isalpha((unsigned char)*p))
        return false;
    while (isalpha((unsigned char)*p))
        p++;
    for (group = 0; group < 3; group++) {
        if (*p++ != '.' || !isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return strcmp(p, ".ndjson") == 0;
}

int bf_files_handle(bf_req_t *rq, const char *job_id, const char *name)
{
    request_rec *r = rq->r;
    const char *path, *client;
    char sqlstate[6];
    bool found;
    apr_file_t *fd;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_bucket_brigade *bb;
    int st;

    if (r->method_number != M_GET)
        return bf_http_not_allowed(rq, "GET, HEAD");
    if (!bf_job_is_uuid(job_id) || !valid_name(name))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no such file");
    if (!rq->sc->export_root) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BF01030: job %s: %s is not set, cannot serve %s",
                      job_id, BF_CMD_EXPORT_ROOT, name);
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no such file");
    }
    if (!bf_db_acquire(rq))
        return bf_http_unavailable(rq, "file");
    if (!bf_job_file_lookup(rq->conn, r->pool, job_id, name, &found, &client,
                            sqlstate))
        return bf_http_db_error(rq, sqlstate, "file");
    if (!found || !bf_auth_may_see(rq, client))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no such file");

    path = apr_pstrcat(r->pool, rq->sc->export_root, "/", job_id, "/", name,
                       NULL);
    rv = apr_file_open(&fd, path, APR_READ | APR_SENDFILE_ENABLED, 0,
                       r->pool);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_NORM, fd);
    if (rv != APR_SUCCESS || fi.filetype != APR_REG) {
        char buf[120];

        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BF01031: job %s: published file %s missing on disk "
                      "(%s: %s)",
                      job_id, name, path,
                      rv != APR_SUCCESS ? apr_strerror(rv, buf, sizeof buf)
                                        : "not a regular file");
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "the file is no longer available");
    }

    /* validators: r->finfo feeds ap_set_etag and ap_meets_conditions */
    r->finfo = fi;
    r->filename = apr_pstrdup(r->pool, path);
    ap_update_mtime(r, fi.mtime);
    ap_set_last_modified(r);
    ap_set_etag(r);
    ap_set_content_type(r, BF_CT_NDJSON);
    ap_set_accept_ranges(r);
    st = ap_meets_conditions(r);
    if (st != OK)
        return st;
    ap_set_content_length(r, fi.size);
    if (r->header_only)
        return OK;

    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_brigade_insert_file(bb, fd, 0, fi.size, r->pool);
    APR_BRIGADE_INSERT_TAIL(bb,
                            apr_bucket_eos_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                      "job %s: sending %s aborted", job_id, name);
        return AP_FILTER_ERROR;
    }
    return OK;
}
