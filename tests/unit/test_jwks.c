/* Unit tests for lib/bf_jwks.c: JWKS URL policy and caching (SPEC A2, A8). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "bf_test.h"

#include <string.h>

#include <apr_general.h>

#include "bf_jwks.h"

/* A8: never cache longer than Cache-Control allows; cache per max-age. */
static void test_cache_seconds(void **state)
{
    assert_int_equal(bf_jwks_cache_seconds(NULL), 0);
    assert_int_equal(bf_jwks_cache_seconds(""), 0);
    assert_int_equal(bf_jwks_cache_seconds("no-store"), 0);
    assert_int_equal(bf_jwks_cache_seconds("max-age=600, no-cache"), 0);
    assert_int_equal(bf_jwks_cache_seconds("public, max-age=120"), 120);
    assert_int_equal(bf_jwks_cache_seconds("Max-Age=30"), 30);
    assert_int_equal(bf_jwks_cache_seconds("max-age=0"), 0);
    assert_int_equal(bf_jwks_cache_seconds("max-age=-5"), 0);
    assert_int_equal(bf_jwks_cache_seconds("max-age=99999999"),
                     3600); /* capped */
}

/* A2: JWKS URLs are fetched over TLS; plain http only to loopback, and only
 * when allowed (tests). */
static void test_url_policy(void **state)
{
    assert_true(bf_jwks_url_allowed("https://client.example/jwks.json", false));
    assert_false(bf_jwks_url_allowed("https://", false));
    assert_false(bf_jwks_url_allowed("http://client.example/jwks.json", true));
    assert_false(bf_jwks_url_allowed("http://127.0.0.1:8080/jwks", false));
    assert_true(bf_jwks_url_allowed("http://127.0.0.1:8080/jwks", true));
    assert_true(bf_jwks_url_allowed("http://localhost/jwks", true));
    assert_false(
        bf_jwks_url_allowed("http://127.0.0.1.evil.example/jwks", true));
    assert_false(bf_jwks_url_allowed("file:///etc/passwd", true));
    assert_false(bf_jwks_url_allowed(NULL, true));
    /* the host is the parsed one: userinfo that looks like a loopback
     * prefix is refused, as is any user name or password */
    assert_false(
        bf_jwks_url_allowed("http://127.0.0.1:1@192.0.2.2/jwks.json", true));
    assert_false(bf_jwks_url_allowed("http://localhost@192.0.2.2/jwks", true));
    assert_false(
        bf_jwks_url_allowed("https://user:pw@client.example/jwks", false));
    assert_false(bf_jwks_url_allowed("http://[::1]@192.0.2.2/jwks", true));
    assert_false(bf_jwks_url_allowed("http://192.0.2.2/jwks", true));
    assert_true(bf_jwks_url_allowed("http://127.0.0.2:8080/jwks", true));
    assert_true(bf_jwks_url_allowed("http://[::1]:8080/jwks", true));
    assert_false(bf_jwks_url_allowed("http://[::1]:8080/jwks", false));
}

static int lent, given_back;

static PGconn *lend_get(void *baton)
{
    (void)baton;
    lent++;
    return NULL; /* no database: the cache is skipped */
}

static void lend_put(void *baton)
{
    (void)baton;
    given_back++;
}

/* A failed fetch is not retried within BF_JWKS_NEGATIVE_SECONDS (the second
 * request is refused without a fetch); the connection is given back while
 * fetching; a URL the policy refuses is never fetched.  Only loopback:
 * nothing listens on 127.0.0.1 port 1, so the fetch fails at once. */
static void test_negative_cache(void **state)
{
    bf_conn_lender db = { lend_get, lend_put, NULL };
    const char *url = "http://127.0.0.1:1/jwks.json", *err = NULL;
    json_object *jwks;
    apr_pool_t *p;

    assert_int_equal(apr_initialize(), APR_SUCCESS);
    assert_int_equal(apr_pool_create(&p, NULL), APR_SUCCESS);
    bf_jwks_global_init();
    assert_false(bf_jwks_get(p, &db, url, 2, true, &jwks, &err));
    assert_non_null(strstr(err, "could not be fetched"));
    assert_int_equal(given_back, 1);
    err = NULL;
    assert_false(bf_jwks_get(p, &db, url, 2, true, &jwks, &err));
    assert_non_null(strstr(err, "not fetched again"));
    assert_int_equal(given_back, 2); /* given back, but nothing fetched */
    given_back = 0;
    assert_false(bf_jwks_get(p, &db, "http://127.0.0.1:1@192.0.2.2/jwks.json",
                             2, true, &jwks, &err));
    assert_non_null(strstr(err, "not allowed"));
    assert_int_equal(given_back, 0);
    apr_pool_destroy(p);
    apr_terminate();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_seconds),
        cmocka_unit_test(test_url_policy),
        cmocka_unit_test(test_negative_cache),
    };

    return bf_test_run(tests, NULL);
}
