/* mod_bulkfhir token endpoint: POST {base}/token (SPEC §3.3-3.5, A4-A13).
 * The form is parsed here; validation and issuance are bf_token_issue's.
 * Every answer is JSON with Cache-Control: no-store (RFC 6749 §5.1).
 * Failures are logged at info with the client id and the reason, never the
 * assertion or a token. */
#include "mod_bulkfhir.h"
#include "bf_params.h"
#include "bf_token.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <json-c/json.h>

/* client assertions are a few KiB; nothing legitimate comes near this */
#define TOKEN_MAX_BODY (64 * 1024)

static int token_answer(bf_req_t *rq, int status, const char *body)
{
    apr_table_setn(rq->r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(rq->r->headers_out, "Pragma", "no-cache");
    return bf_http_body(rq, status, "application/json", body);
}

/* RFC 6749 §5.2 error answered by the module itself. */
static int token_error(bf_req_t *rq, int status, const char *error,
                       const char *description)
{
    json_object *o = json_object_new_object();
    const char *body;

    json_object_object_add(o, "error", json_object_new_string(error));
    json_object_object_add(o, "error_description",
                           json_object_new_string(description));
    body = apr_pstrdup(rq->r->pool, json_object_to_json_string_ext(
                                        o, JSON_C_TO_STRING_PLAIN |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    bf_audit_reason(rq, status, description);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, rq->r,
                  "token: refused (client -): %s", description);
    return token_answer(rq, status, body);
}

static bool form_content_type(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    size_t n;

    if (!ct)
        return false;
    n = strcspn(ct, "; \t");
    return n == 33 &&
           strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0;
}

/* Fill req from the form.  false + *why on a malformed body or a repeated
 * parameter (RFC 6749 §3.2: parameters MUST NOT be included more than
 * once).  Unknown parameters are ignored (§3.2). */
static bool parse_form(apr_pool_t *p, const char *body, size_t len,
                       bf_token_request *req, const char **why)
{
    static const char *const names[] = { "grant_type", "scope",
                                         "client_assertion_type",
                                         "client_assertion", NULL };
    const char **slots[4] = { &req->grant_type, &req->scope,
                              &req->client_assertion_type,
                              &req->client_assertion };
    const char *s = body, *end = body + len, *amp, *eq;
    char *key, *val;
    int i;

    memset(req, 0, sizeof *req);
    while (s < end) {
        amp = memchr(s, '&', (size_t)(end - s));
        if (!amp)
            amp = end;
        if (amp > s) {
            eq = memchr(s, '=', (size_t)(amp - s));
            key = bf_params_form_decode(p, s, (size_t)((eq ? eq : amp) - s));
            val = eq ? bf_params_form_decode(p, eq + 1, (size_t)(amp - eq - 1))
                     : apr_pstrdup(p, "");
            if (!key || !val) {
                *why = "the form body has a malformed %-escape";
                return false;
            }
            for (i = 0; names[i]; i++) {
                if (strcmp(key, names[i]) != 0)
                    continue;
                if (*slots[i]) {
                    *why =
                        apr_psprintf(p, "parameter %s is repeated", names[i]);
                    return false;
                }
                *slots[i] = val;
            }
        }
        s = amp + 1;
    }
    return true;
}

static PGconn *lend_get(void *baton)
{
    return bf_db_acquire(baton);
}

static void lend_put(void *baton)
{
    bf_db_release(baton);
}

const char *bf_token_url(const bf_req_t *rq)
{
    return apr_pstrcat(rq->r->pool, rq->base, "/token", NULL);
}

int bf_token_handle(bf_req_t *rq)
{
    request_rec *r = rq->r;
    bf_token_config cfg;
    bf_token_request req;
    bf_token_response res;
    bf_conn_lender db = { lend_get, lend_put, rq };
    const char *body, *why = NULL, *cl;
    apr_size_t len;
    int rc;

    if (bf_dir_auth(rq->dc) != BF_AUTH_SMART)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "no token endpoint here (%s is not smart)",
                          BF_CMD_AUTH);
    if (!rq->dc->base_url) { /* config.c refuses this at start-up */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BF01081: %s smart without %s here (%s): no token is "
                      "issued, the assertion's aud has no canonical URL",
                      BF_CMD_AUTH, BF_CMD_BASE_URL, r->uri);
        return token_error(rq, HTTP_INTERNAL_SERVER_ERROR, "server_error",
                           "the authorization server is not configured");
    }
    if (r->method_number != M_POST || r->header_only) {
        apr_table_setn(r->headers_out, "Allow", "POST");
        return token_error(rq, HTTP_METHOD_NOT_ALLOWED, "invalid_request",
                           "the token endpoint takes POST only");
    }
    if (!form_content_type(r))
        return token_error(rq, HTTP_BAD_REQUEST, "invalid_request",
                           "Content-Type must be "
                           "application/x-www-form-urlencoded");
    cl = apr_table_get(r->headers_in, "Content-Length");
    if (cl && apr_atoi64(cl) > TOKEN_MAX_BODY) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return token_error(rq, HTTP_REQUEST_ENTITY_TOO_LARGE, "invalid_request",
                           "the request body is too large");
    }
    if (!bf_http_read_body(rq, TOKEN_MAX_BODY, &body, &len, &rc))
        return rc;
    if (!parse_form(r->pool, body, len, &req, &why))
        return token_error(rq, HTTP_BAD_REQUEST, "invalid_request", why);
    if (!bf_db_acquire(rq)) {
        apr_table_setn(r->headers_out, "Retry-After",
                       apr_itoa(r->pool, bf_dir_retry_after(rq->dc)));
        return token_error(rq, HTTP_SERVICE_UNAVAILABLE,
                           "temporarily_unavailable",
                           "the authorization server cannot reach its "
                           "database");
    }

    memset(&cfg, 0, sizeof cfg);
    cfg.token_url = bf_token_url(rq);
    cfg.lifetime = bf_dir_token_lifetime(rq->dc);
    cfg.jwks_timeout = bf_dir_jwks_timeout(rq->dc);
    cfg.jwks_allow_http_loopback = bf_dir_jwks_loopback(rq->dc) != 0;
    bf_token_issue(r->pool, &db, &cfg, &req, &res);
    bf_audit_token(rq, res.client_id ? res.client_id : res.claimed_id,
                   res.scope, res.reason);
    if (res.status == HTTP_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "token: issued to client %s (scope %s, %d s)",
                      res.client_id, res.scope, cfg.lifetime);
        r->user = apr_pstrdup(r->pool, res.client_id); /* access log */
    } else {
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, 0, r, "token: refused (client %s): %s",
            res.client_id    ? res.client_id
            : res.claimed_id ? ap_escape_logitem(r->pool, res.claimed_id)
                             : "-",
            res.reason ? res.reason : "?");
        if (res.status == HTTP_SERVICE_UNAVAILABLE)
            apr_table_setn(r->headers_out, "Retry-After",
                           apr_itoa(r->pool, bf_dir_retry_after(rq->dc)));
    }
    return token_answer(rq, res.status, res.body);
}
