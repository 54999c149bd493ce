/* mod_bulkfhir HTTP helpers: OperationOutcome responses, Prefer, request
 * bodies, the FHIR base URL. */
#include "mod_bulkfhir.h"
#include "bf_oo.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

int bf_http_body(bf_req_t *rq, int status, const char *ctype,
                 const char *body)
{
    request_rec *r = rq->r;

    r->status = status;
    ap_set_content_type(r, ctype);
    if (body) {
        ap_set_content_length(r, (apr_off_t)strlen(body));
        if (!r->header_only)
            ap_rputs(body, r);
    }
    else {
        ap_set_content_length(r, 0);
    }
    return OK;
}

int bf_http_oo(bf_req_t *rq, int status, const char *code, const char *fmt,
               ...)
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
    if (bf_pq_state_is_connection(sqlstate) || !strcmp(sqlstate, "57014")
        || !strncmp(sqlstate, "53", 2) || !strcmp(sqlstate, "55P03")
        || !strcmp(sqlstate, "40001") || !strcmp(sqlstate, "40P01"))
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

typedef struct {
    apr_pool_t *p;
    const char *token;
    bool found;
} prefer_ctx_t;

static int prefer_one(void *baton, const char *key, const char *value)
{
    prefer_ctx_t *c = baton;
    char *copy = apr_pstrdup(c->p, value), *item, *last;

    for (item = apr_strtok(copy, ",", &last); item;
         item = apr_strtok(NULL, ",", &last)) {
        char *semi = strchr(item, ';'); /* preference parameters: ignored */

        if (semi)
            *semi = '\0';
        apr_collapse_spaces(item, item); /* returns the end, not item */
        if (strcasecmp(item, c->token) == 0) {
            c->found = true;
            return 0;
        }
    }
    return 1;
}

bool bf_http_prefer(request_rec *r, const char *token)
{
    prefer_ctx_t c = { r->pool, token, false };

    apr_table_do(prefer_one, &c, r->headers_in, "Prefer", NULL);
    return c.found;
}

bool bf_http_read_body(bf_req_t *rq, apr_off_t max, const char **body,
                       apr_size_t *len, int *rc)
{
    request_rec *r = rq->r;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    char *buf;
    apr_size_t got = 0;
    long n;
    int st;

    *body = NULL;
    *len = 0;
    if (cl && apr_atoi64(cl) > max) {
        *rc = bf_http_oo(rq, HTTP_REQUEST_ENTITY_TOO_LARGE, "too-long",
                         "the request body is larger than %s %" APR_OFF_T_FMT
                         " bytes",
                         BF_CMD_MAX_BODY, max);
        r->connection->keepalive = AP_CONN_CLOSE;
        return false;
    }
    st = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (st != OK) {
        *rc = bf_http_oo(rq, st == HTTP_REQUEST_ENTITY_TOO_LARGE ? st
                                                                 : HTTP_BAD_REQUEST,
                         "invalid", "the request body cannot be read");
        return false;
    }
    buf = apr_palloc(r->pool, (apr_size_t)max + 1);
    if (ap_should_client_block(r)) {
        while ((n = ap_get_client_block(r, buf + got,
                                        (apr_size_t)max + 1 - got))
               > 0) {
            got += (apr_size_t)n;
            if (got > (apr_size_t)max) {
                *rc = bf_http_oo(rq, HTTP_REQUEST_ENTITY_TOO_LARGE,
                                 "too-long",
                                 "the request body is larger than %s "
                                 "%" APR_OFF_T_FMT " bytes",
                                 BF_CMD_MAX_BODY, max);
                r->connection->keepalive = AP_CONN_CLOSE;
                return false;
            }
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
