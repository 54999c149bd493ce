/* Unit tests for lib/bf_jwt.c: SMART client-assertion JWTs (SPEC A3, A4, A6,
 * A7).  Keys are generated here with OpenSSL, so nothing is a fixture. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bf_test.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "bf_jwt.h"

#define TOKEN_URL "https://ehr.example/fhir/token"
#define NOW 1800000000

static apr_pool_t *pool;
static EVP_PKEY *rsa, *ec;

static const char *b64(const void *d, size_t n)
{
    return bf_b64url_encode(pool, d, n);
}

static const char *bn_b64(EVP_PKEY *k, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;

    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64(buf, (size_t)n);
}

/* A JWKS text with one key of each kind, kids "rsa-1" and "ec-1". */
static json_object *jwks_for(EVP_PKEY *r, EVP_PKEY *e, const char *extra)
{
    unsigned char pub[200];
    size_t publen = 0;
    const char *txt;

    assert_int_equal(EVP_PKEY_get_octet_string_param(e, OSSL_PKEY_PARAM_PUB_KEY,
                                                     pub, sizeof pub, &publen),
                     1);
    assert_int_equal(publen, 97);
    txt = apr_psprintf(
        pool,
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa-1\",\"alg\":\"RS384\","
        "\"n\":\"%s\",\"e\":\"%s\"},{\"kty\":\"EC\",\"kid\":\"ec-1\","
        "\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}%s]}",
        bn_b64(r, OSSL_PKEY_PARAM_RSA_N), bn_b64(r, OSSL_PKEY_PARAM_RSA_E),
        b64(pub + 1, 48), b64(pub + 49, 48), extra ? extra : "");
    return json_tokener_parse(txt);
}

/* Sign header.payload with key (RS384 or ES384 by key type). */
static const char *sign(EVP_PKEY *k, const char *header, const char *payload)
{
    const char *input = apr_pstrcat(pool, b64(header, strlen(header)), ".",
                                    b64(payload, strlen(payload)), NULL);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t siglen = sizeof sig;

    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen,
                                    (const unsigned char *)input,
                                    strlen(input)),
                     1);
    EVP_MD_CTX_free(md);
    if (EVP_PKEY_is_a(k, "EC")) { /* DER -> r||s */
        const unsigned char *pp = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &pp, (long)siglen);
        unsigned char raw[96];

        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 48);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 48, 48);
        ECDSA_SIG_free(es);
        return apr_pstrcat(pool, input, ".", b64(raw, 96), NULL);
    }
    return apr_pstrcat(pool, input, ".", b64(sig, siglen), NULL);
}

static const char *claims(const char *iss, const char *sub, const char *aud,
                          long exp, const char *jti)
{
    return apr_psprintf(pool,
                        "{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":\"%s\","
                        "\"exp\":%ld,\"jti\":\"%s\"}",
                        iss, sub, aud, exp, jti);
}

/* Full check as the token endpoint does it; returns NULL or the error. */
static const char *check(const char *compact, json_object *jwks)
{
    bf_jwt *jwt;
    json_object *key;
    const char *err = NULL;

    if (!bf_jwt_parse(pool, compact, &jwt, &err))
        return err;
    if (!bf_jwt_alg_allowed(jwt->alg))
        return "alg";
    if (!bf_jwk_select(jwks, jwt->kid, jwt->alg, &key, &err))
        return err;
    if (!bf_jwt_verify(pool, jwt, key, &err))
        return err;
    if (!bf_jwt_check_claims(jwt, "app", TOKEN_URL, NOW, 60, 300, &err))
        return err;
    return NULL;
}

#define RS_HDR "{\"alg\":\"RS384\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}"
#define ES_HDR "{\"alg\":\"ES384\",\"kid\":\"ec-1\",\"typ\":\"JWT\"}"

static void test_b64url_roundtrip(void **state)
{
    const unsigned char data[] = { 0xfb, 0xff, 0x00, 0x10, 0x7e };
    unsigned char *out;
    size_t n, len;

    for (n = 0; n <= sizeof data; n++) {
        const char *s = bf_b64url_encode(pool, data, n);
        assert_true(bf_b64url_decode(pool, s, strlen(s), &out, &len));
        assert_int_equal(len, n);
        assert_memory_equal(out, data, n);
    }
    assert_false(bf_b64url_decode(pool, "a+b/", 4, &out, &len));
    assert_false(bf_b64url_decode(pool, "abcde", 5, &out, &len));
}

static void test_valid_rs384_and_es384(void **state)
{
    json_object *jwks = jwks_for(rsa, ec, NULL);
    const char *c = claims("app", "app", TOKEN_URL, NOW + 240, "j1");

    assert_null(check(sign(rsa, RS_HDR, c), jwks));
    assert_null(check(sign(ec, ES_HDR, c), jwks));
    json_object_put(jwks);
}

static void test_tampered_and_wrong_key(void **state)
{
    json_object *jwks = jwks_for(rsa, ec, NULL);
    const char *c = claims("app", "app", TOKEN_URL, NOW + 240, "j1");
    const char *good = sign(rsa, RS_HDR, c);
    const char *other =
        sign(rsa, RS_HDR, claims("app", "app", TOKEN_URL, NOW + 200, "j2"));
    /* payload of one token with the signature of another */
    char *bad = apr_pstrcat(
        pool,
        apr_pstrndup(pool, other, (apr_size_t)(strrchr(other, '.') - other)),
        strrchr(good, '.'), NULL);

    assert_string_equal(check(bad, jwks), "the JWT signature does not verify");
    /* an RS384 header on an EC-signed token: no key matches kid+kty */
    assert_non_null(check(sign(ec, RS_HDR, c), jwks));
    /* the EC key signs, header names the RSA kid with ES384 alg */
    assert_non_null(check(
        sign(ec, "{\"alg\":\"ES384\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}", c),
        jwks));
    json_object_put(jwks);
}

static void test_alg_allow_list(void **state)
{
    json_object *jwks = jwks_for(rsa, ec, NULL);
    const char *c = claims("app", "app", TOKEN_URL, NOW + 240, "j1");
    const char *none =
        apr_pstrcat(pool, b64("{\"alg\":\"none\",\"kid\":\"rsa-1\"}", 29), ".",
                    b64(c, strlen(c)), ".", NULL);

    assert_false(bf_jwt_alg_allowed("none"));
    assert_false(bf_jwt_alg_allowed("HS384"));
    assert_false(bf_jwt_alg_allowed("RS256"));
    assert_true(bf_jwt_alg_allowed("RS384"));
    assert_true(bf_jwt_alg_allowed("ES384"));
    assert_non_null(check(none, jwks));
    json_object_put(jwks);
}

static void test_kid_must_match_exactly_one(void **state)
{
    /* a second RSA key with the same kid: A7 requires exactly one */
    json_object *dup = jwks_for(
        rsa, ec,
        ",{\"kty\":\"RSA\",\"kid\":\"rsa-1\",\"n\":\"AQAB\",\"e\":\"AQAB\"}");
    json_object *key;
    const char *err;

    assert_false(bf_jwk_select(dup, "rsa-1", "RS384", &key, &err));
    assert_true(bf_jwk_select(dup, "ec-1", "ES384", &key, &err));
    assert_false(bf_jwk_select(dup, "nope", "ES384", &key, &err));
    assert_false(bf_jwk_select(dup, NULL, "ES384", &key, &err));
    json_object_put(dup);
}

static void test_claims(void **state)
{
    json_object *jwks = jwks_for(rsa, ec, NULL);

    assert_non_null(check(
        sign(rsa, RS_HDR, claims("app", "other", TOKEN_URL, NOW + 60, "j")),
        jwks));
    assert_non_null(check(
        sign(rsa, RS_HDR, claims("x", "x", TOKEN_URL, NOW + 60, "j")), jwks));
    assert_non_null(
        check(sign(rsa, RS_HDR,
                   claims("app", "app", "https://evil/token", NOW + 60, "j")),
              jwks));
    assert_non_null(
        check(sign(rsa, RS_HDR, claims("app", "app", TOKEN_URL, NOW - 61, "j")),
              jwks));
    assert_non_null(check(
        sign(rsa, RS_HDR, claims("app", "app", TOKEN_URL, NOW + 3600, "j")),
        jwks));
    assert_non_null(
        check(sign(rsa, RS_HDR, claims("app", "app", TOKEN_URL, NOW + 60, "")),
              jwks));
    assert_non_null(check(
        sign(rsa, "{\"alg\":\"RS384\",\"kid\":\"rsa-1\",\"typ\":\"JOSE+X\"}",
             claims("app", "app", TOKEN_URL, NOW + 60, "j")),
        jwks));
    /* typ is required (SMART Backend Services: fixed value JWT) */
    assert_non_null(check(sign(rsa, "{\"alg\":\"RS384\",\"kid\":\"rsa-1\"}",
                               claims("app", "app", TOKEN_URL, NOW + 60, "j")),
                          jwks));
    json_object_put(jwks);
}

static void test_garbage(void **state)
{
    bf_jwt *jwt;
    const char *err;

    assert_false(bf_jwt_parse(pool, "", &jwt, &err));
    assert_false(bf_jwt_parse(pool, "a.b", &jwt, &err));
    assert_false(bf_jwt_parse(pool, "a.b.c.d", &jwt, &err));
    assert_false(bf_jwt_parse(pool, "!!.??.**", &jwt, &err));
    assert_false(bf_jwt_parse(pool, "e30.e30.", &jwt, &err)); /* no alg */
    assert_true(bf_jwt_parse(pool, "eyJhbGciOiJSUzM4NCJ9.e30.", &jwt, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_roundtrip),
        cmocka_unit_test(test_valid_rs384_and_es384),
        cmocka_unit_test(test_tampered_and_wrong_key),
        cmocka_unit_test(test_alg_allow_list),
        cmocka_unit_test(test_kid_must_match_exactly_one),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_garbage),
    };
    int rc;

    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    rc = bf_test_run(tests, &pool);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return rc;
}
