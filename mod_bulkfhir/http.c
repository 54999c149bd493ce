/* mod_bulkfhir HTTP helpers: OperationOutcome responses, Prefer, request
 * bodies, the FHIR base URL. */
#include "mod_bulkfhir.h"
#include "bf_oo.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

int bf_http_body(bf_req_t *rq, int status, const char *ctype, const char *body)
{
    request_rec *r = rq->r;

    r->status = status;
    ap_set_content_type(r, ctype);
    if (body) {
        ap_set_content_length(r, (apr_off_t)strlen(body));
        if (!r->header_only)
            ap_rputs(body, r);
    } else {
        ap_set_content_length(r, 0);
    }
    return OK;
}

int bf_http_oo(bf_req_t *rq, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    const char *text, *body;

    va_start(ap, fmt);
    text = apr_pvsprintf(rq->r->pool, fmt, ap);
    va_end(ap);
    bf_audit_reason(rq, status, text);
    body = bf_oo_json(rq->r->pool, status >= 400 ? "error" : "information",
                      code, "%s", text);
    return bf_http_body(rq, status, BF_CT_FHIR_JSON, body);
}

int bf_http_unavailable(bf_req_t *rq, const char *what)
{
    apr_table_setn(rq->r->headers_out, "Retry-After",
                   apr_itoa(rq->r->pool, bf_dir_retry_after(rq->dc)));
    return bf_http_oo(rq, HTTP_SERVICE_UNAVAILABLE, "transient",
                      "%s: the database is unavailable, retry later", what);
}

int bf_http_db_error(bf_req_t *rq, const char *sqlstate, const char *what)
{
    /* connection lost, shut down, timed out, too many connections, lock
     * timeout: worth a retry */
    if (bf_pq_state_is_connection(sqlstate) || !strcmp(sqlstate, "57014") ||
        !strncmp(sqlstate, "53", 2) || !strcmp(sqlstate, "55P03") ||
        !strcmp(sqlstate, "40001") || !strcmp(sqlstate, "40P01"))
        return bf_http_unavailable(rq, what);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, rq->r,
                  "BF01020: %s: database error SQLSTATE %s", what, sqlstate);
    return bf_http_oo(rq, HTTP_INTERNAL_SERVER_ERROR, "exception",
                      "%s: internal database error", what);
}

int bf_http_not_allowed(bf_req_t *rq, const char *allow)
{
    apr_table_setn(rq->r->headers_out, "Allow", allow);
    return bf_http_oo(rq, HTTP_METHOD_NOT_ALLOWED, "not-supported",
                      "method %s is not allowed here (allowed: %s)",
                      rq->r->method, allow);
}

/* The body in bounded chunks: a Content-Length over max is refused before
 * anything is read; the buffer starts at the announced length (or 8 KiB)
 * and doubles as data arrives, never beyond max + 1, so a small body on a
 * server with a large BulkFhirMaxBody costs what it carries. */
#define BODY_CHUNK 8192

static int body_too_large(bf_req_t *rq, apr_off_t max)
{
    rq->r->connection->keepalive = AP_CONN_CLOSE;
    return bf_http_oo(rq, HTTP_REQUEST_ENTITY_TOO_LARGE, "too-long",
                      "the request body is larger than %s %" APR_OFF_T_FMT
                      " bytes",
                      BF_CMD_MAX_BODY, max);
}

bool bf_http_read_body(bf_req_t *rq, apr_off_t max, const char **body,
                       apr_size_t *len, int *rc)
{
    request_rec *r = rq->r;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_size_t got = 0, size, limit = (apr_size_t)max + 1;
    apr_int64_t announced = cl ? apr_atoi64(cl) : -1;
    char *buf, *bigger;
    long n;
    int st;

    *body = NULL;
    *len = 0;
    if (announced > (apr_int64_t)max) {
        *rc = body_too_large(rq, max);
        return false;
    }
    st = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (st != OK) {
        *rc = bf_http_oo(
            rq, st == HTTP_REQUEST_ENTITY_TOO_LARGE ? st : HTTP_BAD_REQUEST,
            "invalid", "the request body cannot be read");
        return false;
    }
    /* room for the announced body and one byte more (to see an overrun) */
    size = announced >= 0 ? (apr_size_t)announced + 1 : BODY_CHUNK;
    if (size > limit)
        size = limit;
    buf = apr_palloc(r->pool, size + 1);
    if (ap_should_client_block(r)) {
        for (;;) {
            if (got == size) {
                if (size >= limit) {
                    *rc = body_too_large(rq, max);
                    return false;
                }
                /* grow: the old block stays in r->pool, the total is at
                 * most twice the body */
                size = size * 2 < limit ? size * 2 : limit;
                bigger = apr_palloc(r->pool, size + 1);
                memcpy(bigger, buf, got);
                buf = bigger;
            }
            n = ap_get_client_block(r, buf + got, size - got);
            if (n <= 0)
                break;
            got += (apr_size_t)n;
        }
        if (got > (apr_size_t)max) {
            *rc = body_too_large(rq, max);
            return false;
        }
        if (n < 0) {
            *rc = bf_http_oo(rq, HTTP_BAD_REQUEST, "invalid",
                             "the request body could not be read");
            r->connection->keepalive = AP_CONN_CLOSE;
            return false;
        }
    }
    buf[got] = '\0';
    *body = buf;
    *len = got;
    return true;
}

const char *bf_http_base_url(request_rec *r, const bf_dir_conf_t *dc,
                             const char *location)
{
    if (dc->base_url)
        return dc->base_url;
    return ap_construct_url(r->pool, location ? location : "", r);
}
