/* bf_token: the SMART Backend Services token endpoint, httpd-free
 * (SPEC §3.3–3.5, A4–A13).  The module parses the form and sends the
 * response; everything else is here. */
#ifndef BF_TOKEN_H
#define BF_TOKEN_H

#include <stdbool.h>
#include <apr_pools.h>
#include <libpq-fe.h>

#include "bf_jwks.h"

#define BF_ASSERTION_TYPE                                                      \
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define BF_TOKEN_MAX_LIFETIME 300 /* A12: expires_in SHOULD NOT exceed 300 */
#define BF_JWT_MAX_AHEAD 300      /* exp at most 5 minutes in the future */

typedef struct bf_token_config {
    const char *token_url;         /* absolute; the required aud */
    int lifetime;                  /* seconds, 1..300 */
    int jwks_timeout;              /* seconds for a jwks_uri fetch */
    bool jwks_allow_http_loopback; /* http://127.0.0.1 JWKS URLs (tests) */
} bf_token_config;

typedef struct bf_token_request {
    const char *grant_type;
    const char *scope;
    const char *client_assertion_type;
    const char *client_assertion;
} bf_token_request;

typedef struct bf_token_response {
    int status;             /* 200, 400, 401 or 503 */
    const char *body;       /* JSON: the token, or an RFC 6749 §5.2 error */
    const char *client_id;  /* the client, once known (for the log) */
    const char *claimed_id; /* the assertion's iss, once parsed (may be
                               unregistered: escape before logging) */
    const char *scope;      /* the granted scopes on success */
    const char *reason;     /* why it failed, for the log; never a secret */
} bf_token_response;

/* Validate the request and, when it is good, issue a token stored only as
 * its SHA-256 hash.  The database connection comes from db, which is given
 * back while a JWKS URL is fetched (bf_jwks_get). */
void bf_token_issue(apr_pool_t *p, const bf_conn_lender *db,
                    const bf_token_config *cfg, const bf_token_request *req,
                    bf_token_response *res);

/* The bytea literal ("\x" + 64 hex digits) of SHA-256(token), as stored in
 * bulkfhir.token.hash. */
const char *bf_token_hash_hex(apr_pool_t *p, const char *token);

#endif
