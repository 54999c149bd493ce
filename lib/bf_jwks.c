/* bf_jwks: fetch and cache client JWKS documents (see bf_jwks.h). */
#include "bf_jwks.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>

#define JWKS_CACHE_MAX_SECONDS 3600 /* never trust a cache longer than this */

/* Per process: the JWKS URLs being fetched and the ones whose last fetch
 * failed (negative cache).  At most one fetch per URL is in flight in a
 * process; requests for the same URL meanwhile wait for its result (at
 * most the fetch timeout) instead of starting their own.  A failure is
 * remembered for BF_JWKS_NEGATIVE_SECONDS: token requests for that URL are
 * refused at once, without a fetch.  Bounded: at most FLIGHT_MAX URLs. */
#define FLIGHT_MAX 256

typedef struct flight {
    char *url;               /* malloc'd; NULL: free slot */
    bool busy;               /* a fetch is in flight */
    unsigned long gen;       /* bumped when a fetch ends */
    apr_time_t failed_until; /* negative cache */
    char err[160];           /* why the last fetch failed */
    int waiters;             /* requests waiting for the fetch in flight */
    char *body;              /* last good body, for the waiters (malloc'd) */
    char *cache_control;     /* its Cache-Control (malloc'd) */
} flight;

static apr_pool_t *flight_pool;
static apr_thread_mutex_t *flight_mu;
static apr_thread_cond_t *flight_cv;
static flight flights[FLIGHT_MAX];

void bf_jwks_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!flight_pool && apr_pool_create(&flight_pool, NULL) == APR_SUCCESS &&
        (apr_thread_mutex_create(&flight_mu, APR_THREAD_MUTEX_DEFAULT,
                                 flight_pool) != APR_SUCCESS ||
         apr_thread_cond_create(&flight_cv, flight_pool) != APR_SUCCESS)) {
        flight_mu = NULL; /* no single-flight: every request fetches */
        flight_cv = NULL;
    }
}

static bool host_is_loopback(const char *host)
{
    struct in_addr a;

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a) == 1)
        return (ntohl(a.s_addr) >> 24) == 127; /* 127.0.0.0/8 */
    return false;
}

/* Parse url with libcurl's URL API and check the parsed parts: https with
 * a host, or (allow_http_loopback) http to a loopback host; never a user
 * name, password or login options.  *out (when not NULL) is the parsed
 * handle the fetch must use, so curl connects to the host checked here. */
static bool url_parse_allowed(const char *url, bool allow_http_loopback,
                              CURLU **out)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL, *part = NULL;
    bool ok = false;

    if (out)
        *out = NULL;
    if (!url || !(u = curl_url()))
        return false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        goto leave;
    /* userinfo: "http://127.0.0.1:1@192.0.2.2/" is a user name */
    if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_OPTIONS, &part, 0) == CURLUE_OK)
        goto leave;
    if (strcasecmp(scheme, "https") == 0)
        ok = true;
    else if (strcasecmp(scheme, "http") == 0)
        ok = allow_http_loopback && host_is_loopback(host);
leave:
    curl_free(scheme);
    curl_free(host);
    curl_free(part);
    if (ok && out)
        *out = u;
    else
        curl_url_cleanup(u);
    return ok;
}

bool bf_jwks_url_allowed(const char *url, bool allow_http_loopback)
{
    return url_parse_allowed(url, allow_http_loopback, NULL);
}

long bf_jwks_cache_seconds(const char *cc)
{
    const char *p;
    long v;

    if (!cc)
        return 0;
    for (p = cc; *p; p++)
        if (strncasecmp(p, "no-store", 8) == 0 ||
            strncasecmp(p, "no-cache", 8) == 0)
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
        return 0; /* abort the transfer */
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
    if (!json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "keys", &keys) ||
        !json_object_is_type(keys, json_type_array)) {
        json_object_put(o);
        return NULL;
    }
    apr_pool_cleanup_register(p, o, json_put_cleanup, apr_pool_cleanup_null);
    return o;
}

static bool fetch(apr_pool_t *p, const char *url, bool allow_http_loopback,
                  int timeout_s, fetch_ctx *f, const char **err)
{
    CURL *c;
    CURLU *u;
    struct curl_slist *hdrs = NULL;
    long code = 0;
    CURLcode rc;

    memset(f, 0, sizeof *f);
    f->p = p;
    if (!url_parse_allowed(url, allow_http_loopback, &u)) {
        *err = "the registered JWKS URL is not allowed";
        return false;
    }
    c = curl_easy_init();
    if (!c) {
        curl_url_cleanup(u);
        *err = "cannot start the JWKS fetch";
        return false;
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    /* the parsed URL whose host was checked, not the string again */
    curl_easy_setopt(c, CURLOPT_CURLU, u);
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
    curl_url_cleanup(u);
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
    if (!f->buf || !parse_jwks(p, f->buf)) {
        *err = "the JWKS URL did not return a JSON object with a keys array";
        return false;
    }
    return true;
}

/* The slot of url, or a free one (claimed for url); NULL when all
 * FLIGHT_MAX are in use.  Under flight_mu. */
static flight *flight_slot(const char *url, apr_time_t now)
{
    flight *free_slot = NULL, *f;
    int i;

    for (i = 0; i < FLIGHT_MAX; i++) {
        f = &flights[i];
        if (f->url && strcmp(f->url, url) == 0)
            return f;
        if (!free_slot && (!f->url || (!f->busy && f->waiters == 0 &&
                                       f->failed_until <= now)))
            free_slot = f;
    }
    if (!free_slot)
        return NULL;
    free(free_slot->url);
    free(free_slot->body);
    free(free_slot->cache_control);
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->url = strdup(url);
    return free_slot->url ? free_slot : NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Fetch url once for every request of this process that wants it now;
 * a failure is remembered for BF_JWKS_NEGATIVE_SECONDS.  On success *body
 * (a JWKS document) and *cc (Cache-Control or NULL) are in pool p. */
static bool flight_fetch(apr_pool_t *p, const char *url, bool allow_loopback,
                         int timeout_s, const char **body, const char **cc,
                         bool *fetched, const char **err)
{
    flight *s;
    fetch_ctx f;
    apr_time_t now, deadline;
    unsigned long gen;
    bool ok;

    *body = *cc = NULL;
    *fetched = false;
    if (!flight_mu) {
        *fetched = true;
        ok = fetch(p, url, allow_loopback, timeout_s, &f, err);
        *body = f.buf;
        *cc = f.cache_control;
        return ok;
    }
    apr_thread_mutex_lock(flight_mu);
    now = apr_time_now();
    s = flight_slot(url, now);
    if (!s) { /* FLIGHT_MAX URLs in use: no sharing for this one */
        apr_thread_mutex_unlock(flight_mu);
        *fetched = true;
        ok = fetch(p, url, allow_loopback, timeout_s, &f, err);
        *body = f.buf;
        *cc = f.cache_control;
        return ok;
    }
    if (s->failed_until > now) {
        *err = apr_psprintf(p, "%s (not fetched again for %d s)", s->err,
                            (int)apr_time_sec(s->failed_until - now + 999999));
        apr_thread_mutex_unlock(flight_mu);
        return false;
    }
    if (s->busy) { /* another request of this process is fetching it */
        gen = s->gen;
        deadline = now + apr_time_from_sec(timeout_s + 1);
        s->waiters++;
        while (s->gen == gen && (now = apr_time_now()) < deadline)
            apr_thread_cond_timedwait(flight_cv, flight_mu, deadline - now);
        s->waiters--;
        ok = false;
        if (s->gen == gen)
            *err = "the JWKS URL is being fetched for another request";
        else if (s->body) {
            *body = apr_pstrdup(p, s->body);
            *cc = s->cache_control ? apr_pstrdup(p, s->cache_control) : NULL;
            ok = true;
        } else
            *err = apr_pstrdup(p, s->err);
        if (s->waiters == 0) {
            free(s->body);
            free(s->cache_control);
            s->body = s->cache_control = NULL;
        }
        apr_thread_mutex_unlock(flight_mu);
        return ok;
    }
    s->busy = true;
    apr_thread_mutex_unlock(flight_mu);

    *fetched = true;
    ok = fetch(p, url, allow_loopback, timeout_s, &f, err);

    apr_thread_mutex_lock(flight_mu);
    s->busy = false;
    s->gen++;
    free(s->body);
    free(s->cache_control);
    s->body = s->cache_control = NULL;
    if (ok) {
        s->failed_until = 0;
        if (s->waiters > 0) { /* they take it, the last one frees it */
            s->body = dup_or_null(f.buf);
            s->cache_control = dup_or_null(f.cache_control);
        }
    } else {
        s->failed_until =
            apr_time_now() + apr_time_from_sec(BF_JWKS_NEGATIVE_SECONDS);
        apr_cpystrn(s->err, *err, sizeof s->err);
    }
    apr_thread_cond_broadcast(flight_cv);
    apr_thread_mutex_unlock(flight_mu);
    *body = f.buf;
    *cc = f.cache_control;
    return ok;
}

bool bf_jwks_get(apr_pool_t *p, const bf_conn_lender *db, const char *url,
                 int timeout_s, bool allow_http_loopback, json_object **jwks,
                 const char **err)
{
    const char *params[3], *body, *cc;
    PGresult *res = NULL;
    PGconn *conn;
    long ttl;
    char ttl_s[24];
    bool fetched;

    *jwks = NULL;
    if (!bf_jwks_url_allowed(url, allow_http_loopback)) {
        *err = allow_http_loopback
                   ? "the registered JWKS URL is not allowed (https, or http "
                     "to a loopback host; no user name or password)"
                   : "the registered JWKS URL is not allowed (https only; "
                     "no user name or password)";
        return false;
    }
    params[0] = url;
    conn = db->get(db->baton);
    /* a fresh key set, or a failure another child remembered (0071) */
    if (conn &&
        bf_pq_exec(conn, "jwks cache: read",
                   "SELECT body::text, failure, ceil(extract(epoch FROM "
                   "failed_until - now()))::int FROM bulkfhir.jwks_cache"
                   " WHERE url = $1 AND ((body IS NOT NULL AND expires_at >"
                   " now()) OR failed_until > now())",
                   1, params, &res, NULL) &&
        PQntuples(res) == 1) {
        if (!PQgetisnull(res, 0, 1)) {
            *err = apr_psprintf(p, "%s (not fetched again for %s s)",
                                PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
            PQclear(res);
            return false;
        }
        *jwks = parse_jwks(p, PQgetvalue(res, 0, 0));
        PQclear(res);
        if (*jwks)
            return true;
    } else
        PQclear(res);

    /* no pooled connection is held while the URL is fetched */
    db->put(db->baton);
    if (!flight_fetch(p, url, allow_http_loopback, timeout_s, &body, &cc,
                      &fetched, err)) {
        /* the fetch that failed tells the other children */
        if (fetched && (conn = db->get(db->baton))) {
            snprintf(ttl_s, sizeof ttl_s, "%d", BF_JWKS_NEGATIVE_SECONDS);
            params[1] = ttl_s;
            params[2] = *err;
            /* a failed write only costs each child its own fetch */
            bf_pq_exec(conn, "jwks cache: failure",
                       "INSERT INTO bulkfhir.jwks_cache (url, body, "
                       "expires_at, failed_until, failure) VALUES ($1, NULL,"
                       " now(), now() + make_interval(secs => $2::int),"
                       " left($3, 200)) ON CONFLICT (url) DO UPDATE SET"
                       " body = NULL, fetched_at = now(), expires_at = now(),"
                       " failed_until = EXCLUDED.failed_until,"
                       " failure = EXCLUDED.failure",
                       3, params, NULL, NULL);
        }
        return false;
    }
    if (!body || !(*jwks = parse_jwks(p, body))) {
        *err = "the JWKS URL did not return a JSON object with a keys array";
        return false;
    }
    conn = db->get(db->baton);
    if (!conn) /* the caller finds the database gone on its next step */
        return true;
    ttl = bf_jwks_cache_seconds(cc);
    if (ttl > 0) {
        snprintf(ttl_s, sizeof ttl_s, "%ld", ttl);
        params[1] =
            json_object_to_json_string_ext(*jwks, JSON_C_TO_STRING_PLAIN);
        params[2] = ttl_s;
        /* a failed cache write only costs a later re-fetch */
        bf_pq_exec(
            conn, "jwks cache: write",
            "INSERT INTO bulkfhir.jwks_cache (url, body, expires_at)"
            " VALUES ($1, $2::jsonb, now() + make_interval(secs => $3::int))"
            " ON CONFLICT (url) DO UPDATE SET body = EXCLUDED.body,"
            " fetched_at = now(), expires_at = EXCLUDED.expires_at,"
            " failed_until = NULL, failure = NULL",
            3, params, NULL, NULL);
    } else {
        bf_pq_exec(conn, "jwks cache: drop",
                   "DELETE FROM bulkfhir.jwks_cache WHERE url = $1", 1, params,
                   NULL, NULL);
    }
    return true;
}
