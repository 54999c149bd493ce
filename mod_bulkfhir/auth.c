/* mod_bulkfhir authorization.  BulkFhirAuth none: everyone may do
 * everything.  smart: a SMART Backend Services bearer token issued by the
 * token endpoint; only its sha256 is stored (bulkfhir.token.hash, hashed
 * by bf_token_hash_hex).  header: another httpd module (mod_auth_openidc as
 * an OAuth resource server, mod_auth_basic, ...) has authenticated the
 * request: the client is r->user, its scopes come from the request header
 * or subprocess_env variable named by BulkFhirAuthScopeSource.
 *
 * With smart and header a client sees only its own jobs and files (R4: any
 * other job is a 404) and exports only what its scopes grant (R5, R6).
 *
 * smart with BulkFhirStatusCache: a token PostgreSQL accepted (known, not
 * expired, client enabled) is remembered in the shared cache for at most
 * BulkFhirStatusCacheTimeout and never past its expiry (statuscache.c), so
 * a poll answered from the cache costs no PostgreSQL round trip; a revoked
 * token or a disabled client is refused once that entry is stale. */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_scope.h"
#include "bf_token.h"

#include <apr_strings.h>
#include <json-c/json.h>

static int login_required(bf_req_t *rq, const char *error, const char *text)
{
    apr_table_setn(rq->r->headers_out, "WWW-Authenticate",
                   error
                       ? apr_psprintf(rq->r->pool, "Bearer error=\"%s\"", error)
                       : "Bearer");
    return bf_http_oo(rq, HTTP_UNAUTHORIZED, "login", "%s", text);
}

/* BulkFhirAuth header: trust the identity another module established. */
static bool auth_header(bf_req_t *rq, int *rc)
{
    request_rec *r = rq->r;
    const char *src = bf_dir_auth_scope_source(rq->dc), *scope;
    char *s;

    if (!r->user || !*r->user) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "%s header: no authenticated user (is an "
                      "authentication module configured for %s?)",
                      BF_CMD_AUTH, r->uri);
        *rc = bf_http_oo(rq, HTTP_UNAUTHORIZED, "login",
                         "this request is not authenticated");
        return false;
    }
    if (strncasecmp(src, "header:", 7) == 0)
        scope = apr_table_get(r->headers_in, src + 7);
    else
        scope = apr_table_get(r->subprocess_env, src + 4);
    /* some providers list scopes with commas */
    s = apr_pstrdup(r->pool, scope ? scope : "");
    for (scope = s; *s; s++)
        if (*s == ',')
            *s = ' ';
    rq->client_id = r->user;
    rq->scope = scope;
    apr_table_setn(r->subprocess_env, "BULKFHIR_CLIENT", r->user);
    return true;
}

/* BulkFhirAuth smart, the token not in the cache: PostgreSQL decides, and
 * a token it accepts is cached. */
static bool token_from_db(bf_req_t *rq, const char *hash, const char **client,
                          const char **scope, int *rc)
{
    char sqlstate[6];
    double expires_at;
    bool found;

    if (!bf_db_acquire(rq)) {
        *rc = bf_http_unavailable(rq, "authorization");
        return false;
    }
    if (!bf_job_token_check(rq->conn, rq->r->pool, hash, &found, client, scope,
                            &expires_at, sqlstate)) {
        *rc = bf_http_db_error(rq, sqlstate, "authorization");
        return false;
    }
    if (!found) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, rq->r,
                      "unknown or expired bearer token");
        *rc = login_required(rq, "invalid_token",
                             "the access token is unknown or expired");
        return false;
    }
    bf_statuscache_token_put(rq, hash, *client, *scope, expires_at);
    return true;
}

bool bf_auth_request(bf_req_t *rq, int *rc)
{
    const char *h, *token, *hash, *client, *scope;

    if (bf_dir_auth(rq->dc) == BF_AUTH_HEADER)
        return auth_header(rq, rc);
    if (bf_dir_auth(rq->dc) != BF_AUTH_SMART)
        return true;
    h = apr_table_get(rq->r->headers_in, "Authorization");
    if (!h) {
        *rc = login_required(rq, NULL, "a bearer access token is required");
        return false;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        *rc = login_required(rq, "invalid_request",
                             "the Authorization header must use the Bearer "
                             "scheme");
        return false;
    }
    for (token = h + 7; *token == ' '; token++)
        ;
    if (!*token) {
        *rc = login_required(rq, "invalid_request", "empty bearer token");
        return false;
    }
    hash = bf_token_hash_hex(rq->r->pool, token);
    if (!bf_statuscache_token_get(rq, hash, &client, &scope) &&
        !token_from_db(rq, hash, &client, &scope, rc))
        return false;
    rq->client_id = client;
    rq->scope = scope;
    apr_table_setn(rq->r->subprocess_env, "BULKFHIR_CLIENT", client);
    rq->r->user = apr_pstrdup(rq->r->pool, client); /* for the access log */
    return true;
}

const char *bf_auth_mode_name(bf_auth_mode_e mode)
{
    return mode == BF_AUTH_SMART    ? "smart"
           : mode == BF_AUTH_HEADER ? "header"
                                    : "none";
}

const char *bf_auth_owner(const bf_req_t *rq)
{
    return apr_pstrcat(rq->r->pool, bf_auth_mode_name(bf_dir_auth(rq->dc)), ":",
                       rq->client_id ? rq->client_id : "", NULL);
}

/* A job is visible only to requests authenticated the way it was created
 * (0071): same auth mode and client id.  With none, every anonymous job is
 * anyone's; a job created with a token is never visible from a <Location>
 * with BulkFhirAuth none, and a header-mode user is not the SMART client
 * of the same name. */
bool bf_auth_may_see(const bf_req_t *rq, const char *job_owner)
{
    return job_owner && strcmp(job_owner, bf_auth_owner(rq)) == 0;
}

bool bf_auth_scope_covers(apr_pool_t *p, const char *scope,
                          const apr_array_header_t *types, const char **missing)
{
    int i;

    *missing = "*";
    if (!scope)
        return false;
    /* no _type: every type, which needs a wildcard read+search scope */
    if (!types)
        return bf_scope_can_export(p, scope, "*");
    for (i = 0; i < types->nelts; i++) {
        *missing = APR_ARRAY_IDX(types, i, const char *);
        if (!bf_scope_can_export(p, scope, *missing))
            return false;
    }
    *missing = NULL;
    return true;
}

bool bf_auth_kickoff(bf_req_t *rq, const char *group_id,
                     apr_array_header_t **types, int *rc)
{
    apr_pool_t *p = rq->r->pool;
    apr_array_header_t *granted;
    const char *missing;
    bool all;

    if (bf_dir_auth(rq->dc) == BF_AUTH_NONE)
        return true;
    /* R6: a Group export needs permission to read that Group */
    if (group_id && !bf_scope_allows(p, rq->scope, "Group", BF_PERM_R)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, rq->r,
                      "kick-off refused: client %s may not read Group/%s",
                      rq->client_id, group_id);
        *rc = bf_http_oo(rq, HTTP_FORBIDDEN, "forbidden",
                         "the access token's scopes do not allow reading "
                         "Group/%s (system/Group.rs or system/Group.read is "
                         "needed)",
                         group_id);
        return false;
    }
    /* R5, A14: every type asked for must be granted */
    if (*types) {
        if (bf_auth_scope_covers(p, rq->scope, *types, &missing))
            return true;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, rq->r,
                      "kick-off refused: client %s may not export %s",
                      rq->client_id, missing);
        *rc = bf_http_oo(rq, HTTP_FORBIDDEN, "forbidden",
                         "the access token's scopes do not allow reading "
                         "%s resources",
                         missing);
        return false;
    }
    /* no _type: everything the scopes grant, and only that */
    granted = bf_scope_export_types(p, rq->scope, &all);
    if (all)
        return true;
    if (granted->nelts == 0) {
        *rc = bf_http_oo(rq, HTTP_FORBIDDEN, "forbidden",
                         "the access token's scopes do not allow reading "
                         "any resource type");
        return false;
    }
    *types = granted;
    return true;
}

/* The job's _type (JSON: a string or an array of strings, each maybe
 * comma-separated) as an array; NULL when absent (every type). */
static apr_array_header_t *job_types(apr_pool_t *p, const char *types_json)
{
    json_object *v = types_json ? json_tokener_parse(types_json) : NULL, *e;
    apr_array_header_t *out;
    size_t i, n;
    char *copy, *tok, *last;

    if (!v)
        return NULL;
    out = apr_array_make(p, 4, sizeof(const char *));
    n = json_object_is_type(v, json_type_array) ? json_object_array_length(v)
                                                : 1;
    for (i = 0; i < n; i++) {
        e = json_object_is_type(v, json_type_array)
                ? json_object_array_get_idx(v, i)
                : v;
        if (!json_object_is_type(e, json_type_string))
            continue;
        copy = apr_pstrdup(p, json_object_get_string(e));
        for (tok = apr_strtok(copy, ",", &last); tok;
             tok = apr_strtok(NULL, ",", &last)) {
            apr_collapse_spaces(tok, tok);
            if (*tok)
                APR_ARRAY_PUSH(out, const char *) = tok;
        }
    }
    json_object_put(v);
    return out;
}

bool bf_auth_file_scope(bf_req_t *rq, const char *name, const char *types_json,
                        int *rc)
{
    const char *dot = strchr(name, '.');
    const char *type, *missing;

    if (bf_dir_auth(rq->dc) == BF_AUTH_NONE || !dot)
        return true;
    type = apr_pstrndup(rq->r->pool, name, (apr_size_t)(dot - name));
    /* organizeOutputBy=Patient: a blocks file holds the job's types, so
     * the scopes must cover those (all types when the job had no _type) */
    if (!strcmp(type, "blocks")) {
        if (bf_auth_scope_covers(rq->r->pool, rq->scope,
                                 job_types(rq->r->pool, types_json), &missing))
            return true;
        *rc = bf_http_oo(rq, HTTP_FORBIDDEN, "forbidden",
                         "the access token's scopes do not allow reading "
                         "%s resources",
                         strcmp(missing, "*") ? missing : "all");
        return false;
    }
    /* error and deleted-resource files go with the export itself */
    if (!strcmp(type, "OperationOutcome") || !strcmp(type, "Bundle") ||
        bf_scope_can_export(rq->r->pool, rq->scope, type))
        return true;
    *rc = bf_http_oo(rq, HTTP_FORBIDDEN, "forbidden",
                     "the access token's scopes do not allow reading %s "
                     "resources",
                     type);
    return false;
}
