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

/* Call once per process before any thread fetches (curl_global_init). */
void bf_jwks_global_init(void);

/* true when url is https, or http to a loopback host and allow_loopback. */
bool bf_jwks_url_allowed(const char *url, bool allow_http_loopback);

/* The JWKS at url: from the cache when fresh, else fetched (and cached when
 * allowed).  The returned object is bound to pool p.  On failure *err says
 * why, for the log and error_description. */
bool bf_jwks_get(apr_pool_t *p, PGconn *conn, const char *url,
                 int timeout_s, bool allow_http_loopback, json_object **jwks,
                 const char **err);

/* Parse Cache-Control: max-age seconds to cache, 0 for no caching. */
long bf_jwks_cache_seconds(const char *cache_control);

#endif
