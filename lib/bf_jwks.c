/* bf_jwks: fetch and cache client JWKS documents (see bf_jwks.h). */
#include "bf_jwks.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <curl/curl.h>

#define JWKS_CACHE_MAX_SECONDS 3600   /* never trust a cache longer than this */

void bf_jwks_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool bf_jwks_url_allowed(const char *url, bool allow_http_loopback)
{
    if (!url)
        return false;
    if (strncmp(url, "https://", 8) == 0)
        return url[8] != '\0';
    if (allow_http_loopback)
        return strncmp(url, "http://127.0.0.1:", 17) == 0
               || strncmp(url, "http://127.0.0.1/", 17) == 0
               || strncmp(url, "http://localhost:", 17) == 0
               || strncmp(url, "http://localhost/", 17) == 0
               || strncmp(url, "http://[::1]", 12) == 0;
    return false;
}

long bf_jwks_cache_seconds(const char *cc)
{
    const char *p;
    long v;

    if (!cc)
        return 0;
    for (p = cc; *p; p++)
        if (strncasecmp(p, "no-store", 8) == 0
            || strncasecmp(p, "no-cache", 8) == 0)
            return 0;
    p = strcasestr(cc, "max-age=");
    if (!p)
        return 0;
    v = strtol(p + 8, NULL, 10);
    if (v <= 0)
        return 0;
    return v > JWKS_CACHE_MAX_SECONDS ? JWKS_CACHE_MAX_SECONDS : v;
}

typedef struct fetch_ctx {
    apr_pool_t *p;
    char *buf;
    size_t len, cap;
    bool too_big;
    const char *cache_control;
} fetch_ctx;

static size_t on_body(char *data, size_t size, size_t n, void *baton)
{
    fetch_ctx *f = baton;
    size_t add = size * n;

    if (f->len + add > BF_JWKS_MAX_BYTES) {
        f->too_big = true;
        return 0;   /* abort the transfer */
    }
    if (f->len + add + 1 > f->cap) {
        size_t cap = (f->len + add + 1) * 2;
        char *nb = apr_palloc(f->p, cap);

        if (f->len)
            memcpy(nb, f->buf, f->len);
        f->buf = nb;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, data, add);
    f->len += add;
    f->buf[f->len] = '\0';
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *baton)
{
    fetch_ctx *f = baton;
    size_t len = size * n;

    if (len > 14 && strncasecmp(data, "Cache-Control:", 14) == 0) {
        char *v = apr_pstrndup(f->p, data + 14, len - 14);
        char *e = v + strlen(v);

        while (*v && isspace((unsigned char)*v))
            v++;
        while (e > v && isspace((unsigned char)e[-1]))
            *--e = '\0';
        f->cache_control = v;
    }
    return len;
}

static apr_status_t json_put_cleanup(void *data)
{
    json_object_put(data);
    return APR_SUCCESS;
}

static json_object *parse_jwks(apr_pool_t *p, const char *text)
{
    json_object *o = json_tokener_parse(text), *keys;

    if (!o)
        return NULL;
    if (!json_object_is_type(o, json_type_object)
        || !json_object_object_get_ex(o, "keys", &keys)
        || !json_object_is_type(keys, json_type_array)) {
        json_object_put(o);
        return NULL;
    }
    apr_pool_cleanup_register(p, o, json_put_cleanup, apr_pool_cleanup_null);
    return o;
}

static bool fetch(apr_pool_t *p, const char *url, int timeout_s,
                  fetch_ctx *f, const char **err)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    long code = 0;
    CURLcode rc;

    if (!c) {
        *err = "cannot start the JWKS fetch";
        return false;
    }
    memset(f, 0, sizeof *f);
    f->p = p;
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)BF_JWKS_MAX_BYTES);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (f->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        *err = "the JWKS document is too large";
        return false;
    }
    if (rc != CURLE_OK) {
        *err = apr_psprintf(p, "the JWKS URL could not be fetched: %s",
                            curl_easy_strerror(rc));
        return false;
    }
    if (code != 200) {
        *err = apr_psprintf(p, "the JWKS URL answered HTTP %ld", code);
        return false;
    }
    return true;
}

bool bf_jwks_get(apr_pool_t *p, PGconn *conn, const char *url,
                 int timeout_s, bool allow_http_loopback, json_object **jwks,
                 const char **err)
{
    const char *params[3];
    PGresult *res = NULL;
    fetch_ctx f;
    long ttl;
    char ttl_s[24];

    *jwks = NULL;
    if (!bf_jwks_url_allowed(url, allow_http_loopback)) {
        *err = "the registered JWKS URL is not https";
        return false;
    }
    params[0] = url;
    if (bf_pq_exec(conn, "jwks cache: read",
                   "SELECT body::text FROM bulkfhir.jwks_cache"
                   " WHERE url = $1 AND expires_at > now()",
                   1, params, &res, NULL)
        && PQntuples(res) == 1) {
        *jwks = parse_jwks(p, PQgetvalue(res, 0, 0));
        PQclear(res);
        if (*jwks)
            return true;
    }
    else
        PQclear(res);

    if (!fetch(p, url, timeout_s, &f, err))
        return false;
    if (!f.buf || !(*jwks = parse_jwks(p, f.buf))) {
        *err = "the JWKS URL did not return a JSON object with a keys array";
        return false;
    }
    ttl = bf_jwks_cache_seconds(f.cache_control);
    if (ttl > 0) {
        snprintf(ttl_s, sizeof ttl_s, "%ld", ttl);
        params[1] = json_object_to_json_string_ext(*jwks,
                                                   JSON_C_TO_STRING_PLAIN);
        params[2] = ttl_s;
        /* a failed cache write only costs a later re-fetch */
        bf_pq_exec(conn, "jwks cache: write",
                   "INSERT INTO bulkfhir.jwks_cache (url, body, expires_at)"
                   " VALUES ($1, $2::jsonb, now() + make_interval(secs => $3::int))"
                   " ON CONFLICT (url) DO UPDATE SET body = EXCLUDED.body,"
                   " fetched_at = now(), expires_at = EXCLUDED.expires_at",
                   3, params, NULL, NULL);
    }
    else {
        bf_pq_exec(conn, "jwks cache: drop",
                   "DELETE FROM bulkfhir.jwks_cache WHERE url = $1", 1, params,
                   NULL, NULL);
    }
    return true;
}
