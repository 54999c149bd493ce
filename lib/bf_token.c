/* bf_token: SMART Backend Services token issuance (see bf_token.h). */
#include "bf_token.h"
#include "bf_jwks.h"
#include "bf_jwt.h"
#include "bf_log.h"
#include "bf_pq.h"
#include "bf_scope.h"

#include <string.h>
#include <time.h>

#include <apr_strings.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define JWT_CLOCK_SKEW 60

const char *bf_token_hash_hex(apr_pool_t *p, const char *token)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    char *hex;

    EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL);
    hex = apr_palloc(p, 2 + mdlen * 2 + 1);
    hex[0] = '\\';
    hex[1] = 'x';
    for (i = 0; i < mdlen; i++)
        apr_snprintf(hex + 2 + i * 2, 3, "%02x", md[i]);
    return hex;
}

/* RFC 6749 §5.2 error body. */
static void fail(apr_pool_t *p, bf_token_response *res, int status,
                 const char *error, const char *description)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string(error));
    json_object_object_add(o, "error_description",
                           json_object_new_string(description));
    res->status = status;
    res->body = apr_pstrdup(
        p, json_object_to_json_string_ext(
               o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    res->reason = description;
    json_object_put(o);
}

static void unavailable(apr_pool_t *p, bf_token_response *res)
{
    fail(p, res, 503, "temporarily_unavailable",
         "the authorization server cannot reach its database");
}

typedef struct client_row {
    const char *id, *scopes, *jwks_uri;
    json_object *jwks; /* inline JWKS or NULL */
} client_row;

static apr_status_t json_put_cleanup(void *data)
{
    json_object_put(data);
    return APR_SUCCESS;
}

/* 1 found, 0 unknown or disabled, -1 database error. */
static int load_client(apr_pool_t *p, PGconn *conn, const char *id,
                       client_row *c)
{
    const char *params[1] = { id };
    PGresult *res;
    char state[6];

    if (!bf_pq_exec(
            conn, "token: client lookup",
            "SELECT id, scopes, jwks_uri, jwks::text FROM bulkfhir.client"
            " WHERE id = $1 AND enabled",
            1, params, &res, state))
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 0;
    }
    c->id = apr_pstrdup(p, PQgetvalue(res, 0, 0));
    c->scopes = apr_pstrdup(p, PQgetvalue(res, 0, 1));
    c->jwks_uri =
        PQgetisnull(res, 0, 2) ? NULL : apr_pstrdup(p, PQgetvalue(res, 0, 2));
    c->jwks = NULL;
    if (!PQgetisnull(res, 0, 3)) {
        c->jwks = json_tokener_parse(PQgetvalue(res, 0, 3));
        if (c->jwks)
            apr_pool_cleanup_register(p, c->jwks, json_put_cleanup,
                                      apr_pool_cleanup_null);
    }
    PQclear(res);
    return 1;
}

/* A7: the key set to search.  jku, when present, must equal the registered
 * URL; else the inline JWKS, else the registered URL. */
static bool key_for(apr_pool_t *p, const bf_conn_lender *db,
                    const bf_token_config *cfg, const client_row *c,
                    const bf_jwt *jwt, json_object **key, const char **err)
{
    json_object *jwks = NULL;

    if (jwt->jku) {
        if (!c->jwks_uri || strcmp(jwt->jku, c->jwks_uri) != 0) {
            *err = "jku is not the client's registered JWKS URL";
            return false;
        }
        if (!bf_jwks_get(p, db, c->jwks_uri, cfg->jwks_timeout,
                         cfg->jwks_allow_http_loopback, &jwks, err))
            return false;
        return bf_jwk_select(jwks, jwt->kid, jwt->alg, key, err);
    }
    if (c->jwks && bf_jwk_select(c->jwks, jwt->kid, jwt->alg, key, err))
        return true;
    if (!c->jwks_uri) {
        if (!c->jwks)
            *err = "the client has no usable JWKS";
        return false;
    }
    if (!bf_jwks_get(p, db, c->jwks_uri, cfg->jwks_timeout,
                     cfg->jwks_allow_http_loopback, &jwks, err))
        return false;
    return bf_jwk_select(jwks, jwt->kid, jwt->alg, key, err);
}

/* A5: remember the jti until the assertion expires; false if seen before.
 * *dberr is set when the database failed rather than the client. */
static bool jti_fresh(apr_pool_t *p, PGconn *conn, const char *client,
                      const bf_jwt *jwt, bool *dberr)
{
    const char *params[3];
    long rows;

    *dberr = false;
    params[0] = client;
    params[1] = jwt->jti;
    params[2] = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)jwt->exp);
    /* expired rows are removed by the workers' sweeper (bf_sweepq_auth) */
    if (!bf_pq_exec_rows(conn, "token: jti insert",
                         "INSERT INTO bulkfhir.jti (client_id, jti, expires_at)"
                         " VALUES ($1, $2, greatest(to_timestamp($3::bigint),"
                         " now()) + interval '5 minutes')"
                         " ON CONFLICT DO NOTHING",
                         3, params, &rows, NULL)) {
        *dberr = true;
        return false;
    }
    return rows == 1;
}

static bool store_token(apr_pool_t *p, PGconn *conn, const char *client,
                        const char *scope, int lifetime, const char **token)
{
    unsigned char raw[32];
    const char *params[4];

    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    *token = bf_b64url_encode(p, raw, sizeof raw);
    params[0] = bf_token_hash_hex(p, *token);
    params[1] = client;
    params[2] = scope;
    params[3] = apr_itoa(p, lifetime);
    return bf_pq_exec(
        conn, "token: store",
        "INSERT INTO bulkfhir.token (hash, client_id, scope, expires_at)"
        " VALUES ($1::bytea, $2, $3, now() + make_interval(secs => $4::int))",
        4, params, NULL, NULL);
}

void bf_token_issue(apr_pool_t *p, const bf_conn_lender *db,
                    const bf_token_config *cfg, const bf_token_request *req,
                    bf_token_response *res)
{
    PGconn *conn;
    bf_jwt *jwt;
    client_row client;
    json_object *key, *ok;
    const char *err = NULL, *granted, *token;
    bool dberr;
    int lifetime;

    memset(res, 0, sizeof *res);
    if (!req->grant_type || !*req->grant_type) {
        fail(p, res, 400, "invalid_request", "grant_type is required");
        return;
    }
    if (strcmp(req->grant_type, "client_credentials") != 0) {
        fail(p, res, 400, "unsupported_grant_type",
             "only grant_type=client_credentials is supported");
        return;
    }
    if (!req->client_assertion_type ||
        strcmp(req->client_assertion_type, BF_ASSERTION_TYPE) != 0) {
        fail(p, res, 400, "invalid_request",
             "client_assertion_type must be " BF_ASSERTION_TYPE);
        return;
    }
    if (!req->client_assertion || !*req->client_assertion) {
        fail(p, res, 400, "invalid_request", "client_assertion is required");
        return;
    }
    if (!req->scope || !*req->scope) {
        fail(p, res, 400, "invalid_scope", "scope is required");
        return;
    }
    if (!bf_jwt_parse(p, req->client_assertion, &jwt, &err)) {
        fail(p, res, 401, "invalid_client", err);
        return;
    }
    if (!bf_jwt_alg_allowed(jwt->alg)) {
        fail(p, res, 401, "invalid_client",
             "the assertion must be signed with RS384 or ES384");
        return;
    }
    res->claimed_id = jwt->iss;
    if (!jwt->iss) {
        fail(p, res, 401, "invalid_client", "the assertion has no iss");
        return;
    }
    conn = db->get(db->baton);
    if (!conn) {
        unavailable(p, res);
        return;
    }
    switch (load_client(p, conn, jwt->iss, &client)) {
    case -1:
        unavailable(p, res);
        return;
    case 0:
        fail(p, res, 401, "invalid_client", "unknown or disabled client");
        return;
    }
    res->client_id = client.id;
    /* the claims first: an assertion that cannot be valid costs no JWKS
     * fetch; the key lookup may give the connection back while it fetches */
    if (!bf_jwt_check_claims(jwt, client.id, cfg->token_url,
                             (int64_t)time(NULL), JWT_CLOCK_SKEW,
                             BF_JWT_MAX_AHEAD, &err) ||
        !key_for(p, db, cfg, &client, jwt, &key, &err) ||
        !bf_jwt_verify(p, jwt, key, &err)) {
        fail(p, res, 401, "invalid_client", err);
        return;
    }
    conn = db->get(db->baton);
    if (!conn) {
        unavailable(p, res);
        return;
    }
    if (!jti_fresh(p, conn, client.id, jwt, &dberr)) {
        if (dberr)
            unavailable(p, res);
        else
            fail(p, res, 401, "invalid_client",
                 "this jti was already used (replayed assertion)");
        return;
    }
    granted = bf_scope_grant(p, req->scope, client.scopes);
    if (!granted) {
        fail(p, res, 400, "invalid_scope",
             "none of the requested scopes is allowed for this client");
        return;
    }
    lifetime = cfg->lifetime > 0 && cfg->lifetime <= BF_TOKEN_MAX_LIFETIME
                   ? cfg->lifetime
                   : BF_TOKEN_MAX_LIFETIME;
    if (!store_token(p, conn, client.id, granted, lifetime, &token)) {
        unavailable(p, res);
        return;
    }
    ok = json_object_new_object();
    json_object_object_add(ok, "access_token", json_object_new_string(token));
    json_object_object_add(ok, "token_type", json_object_new_string("bearer"));
    json_object_object_add(ok, "expires_in", json_object_new_int(lifetime));
    json_object_object_add(ok, "scope", json_object_new_string(granted));
    res->status = 200;
    res->scope = granted;
    res->body = apr_pstrdup(
        p, json_object_to_json_string_ext(
               ok, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(ok);
}
