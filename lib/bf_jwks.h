/* bf_jwks: a client's JWKS from its registered jwks_uri (SPEC A2, A7, A8).
 * Fetched with libcurl (GET, Accept: application/json, TLS verified, a
 * timeout and a size limit), cached in bulkfhir.jwks_cache for as long as the
 * response's Cache-Control max-age allows (no-store/no-cache: not cached). */
#ifndef BF_JWKS_H
#define BF_JWKS_H

#include <stdbool.h>
#include <apr_pools.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#define BF_JWKS_MAX_BYTES (256 * 1024)
/* a failed fetch (error, timeout, not a JWKS) is not retried for this long:
 * remembered in the process and in bulkfhir.jwks_cache (every child), its
 * token requests are refused at once meanwhile */
#define BF_JWKS_NEGATIVE_SECONDS 30

/* How lib code borrows the caller's database connection: get returns it
 * (borrowing one again after put; NULL: unavailable), put gives it back,
 * e.g. while a slow HTTP fetch runs. */
typedef struct bf_conn_lender {
    PGconn *(*get)(void *baton);
    void (*put)(void *baton);
    void *baton;
} bf_conn_lender;

/* Call once per process before any thread fetches (curl_global_init, the
 * per-process table of fetches in flight and failed URLs). */
void bf_jwks_global_init(void);

/* true when url (parsed by libcurl's URL API) is https with a host, or
 * http to a loopback host (127.0.0.0/8, ::1, localhost) and
 * allow_http_loopback; never with a user name, password or options. */
bool bf_jwks_url_allowed(const char *url, bool allow_http_loopback);

/* The JWKS at url: from the cache when fresh, else fetched (and cached when
 * allowed) with db's connection given back during the fetch; one fetch per
 * URL at a time in a process (the others wait for its result), a failure
 * remembered for BF_JWKS_NEGATIVE_SECONDS (in the process and, for the
 * other children, in bulkfhir.jwks_cache).  The returned object is bound to
 * pool p.  On failure *err says why, for the log and error_description. */
bool bf_jwks_get(apr_pool_t *p, const bf_conn_lender *db, const char *url,
                 int timeout_s, bool allow_http_loopback, json_object **jwks,
                 const char **err);

/* Parse Cache-Control: max-age seconds to cache, 0 for no caching. */
long bf_jwks_cache_seconds(const char *cache_control);

#endif
