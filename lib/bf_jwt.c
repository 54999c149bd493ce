/* bf_jwt: compact JWS parsing and RS384/ES384 verification (see bf_jwt.h). */
#include "bf_jwt.h"

#include <string.h>

#include <apr_strings.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

/* a client assertion is a few hundred bytes */
#define JWT_MAX_LEN (16 * 1024)
#define RSA_MIN_BITS 2048

/* ---- base64url -------------------------------------------------------- */

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

bool bf_b64url_decode(apr_pool_t *p, const char *in, size_t in_len,
                      unsigned char **out, size_t *out_len)
{
    unsigned char *buf;
    size_t i, o = 0;
    unsigned int acc = 0;
    int bits = 0, v;

    while (in_len > 0 && in[in_len - 1] == '=')
        in_len--; /* tolerate padding */
    if (in_len % 4 == 1)
        return false;
    buf = apr_palloc(p, in_len * 3 / 4 + 1);
    for (i = 0; i < in_len; i++) {
        v = b64url_val((unsigned char)in[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* leftover bits must be zero (canonical encoding) */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return false;
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return true;
}

const char *bf_b64url_encode(apr_pool_t *p, const unsigned char *in,
                             size_t in_len)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = apr_palloc(p, (in_len + 2) / 3 * 4 + 1);
    size_t i, o = 0;

    for (i = 0; i + 2 < in_len; i += 3) {
        unsigned int v =
            (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (in_len - i == 1) {
        unsigned int v = (unsigned)in[i] << 16;
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
    } else if (in_len - i == 2) {
        unsigned int v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

/* ---- parsing ------------------------------------------------------------ */

static apr_status_t json_put_cleanup(void *data)
{
    json_object_put(data);
    return APR_SUCCESS;
}

/* Decode one base64url segment holding a JSON object, bound to pool p. */
static json_object *segment_json(apr_pool_t *p, const char *seg, size_t len)
{
    unsigned char *raw;
    size_t raw_len;
    json_tokener *tok;
    json_object *obj;

    if (!bf_b64url_decode(p, seg, len, &raw, &raw_len) || raw_len == 0)
        return NULL;
    if (memchr(raw, '\0', raw_len))
        return NULL;
    tok = json_tokener_new();
    if (!tok)
        return NULL;
    obj = json_tokener_parse_ex(tok, (const char *)raw, (int)raw_len);
    if (obj && (json_tokener_get_error(tok) != json_tokener_success ||
                json_tokener_get_parse_end(tok) != raw_len)) {
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    if (!obj)
        return NULL;
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return NULL;
    }
    apr_pool_cleanup_register(p, obj, json_put_cleanup, apr_pool_cleanup_null);
    return obj;
}

/* A string member, or NULL when absent or not a string. */
static const char *str_member(json_object *o, const char *name)
{
    json_object *v;

    if (!json_object_object_get_ex(o, name, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

bool bf_jwt_parse(apr_pool_t *p, const char *compact, bf_jwt **out,
                  const char **err)
{
    const char *dot1, *dot2;
    size_t len;
    bf_jwt *jwt;
    json_object *v;

    *out = NULL;
    if (!compact || !*compact) {
        *err = "the assertion is empty";
        return false;
    }
    len = strlen(compact);
    if (len > JWT_MAX_LEN) {
        *err = "the assertion is too long";
        return false;
    }
    dot1 = strchr(compact, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.')) {
        *err = "the assertion is not a compact JWS (three dot-separated parts)";
        return false;
    }
    jwt = apr_pcalloc(p, sizeof *jwt);
    jwt->header = segment_json(p, compact, (size_t)(dot1 - compact));
    if (!jwt->header) {
        *err = "the JWT header is not base64url-encoded JSON";
        return false;
    }
    jwt->claims = segment_json(p, dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!jwt->claims) {
        *err = "the JWT payload is not base64url-encoded JSON";
        return false;
    }
    if (!bf_b64url_decode(p, dot2 + 1, strlen(dot2 + 1), &jwt->sig,
                          &jwt->sig_len)) {
        *err = "the JWT signature is not base64url";
        return false;
    }
    jwt->signing_input = (const unsigned char *)compact;
    jwt->signing_input_len = (size_t)(dot2 - compact);
    jwt->alg = str_member(jwt->header, "alg");
    jwt->kid = str_member(jwt->header, "kid");
    jwt->typ = str_member(jwt->header, "typ");
    jwt->jku = str_member(jwt->header, "jku");
    jwt->iss = str_member(jwt->claims, "iss");
    jwt->sub = str_member(jwt->claims, "sub");
    jwt->jti = str_member(jwt->claims, "jti");
    if (json_object_object_get_ex(jwt->claims, "exp", &v) &&
        (json_object_is_type(v, json_type_int) ||
         json_object_is_type(v, json_type_double))) {
        jwt->has_exp = true;
        jwt->exp = json_object_get_int64(v);
    }
    if (!jwt->alg) {
        *err = "the JWT header has no alg";
        return false;
    }
    *out = jwt;
    return true;
}

bool bf_jwt_alg_allowed(const char *alg)
{
    return alg && (strcmp(alg, "RS384") == 0 || strcmp(alg, "ES384") == 0);
}

/* ---- keys --------------------------------------------------------------- */

static const char *kty_for_alg(const char *alg)
{
    if (strcmp(alg, "RS384") == 0)
        return "RSA";
    if (strcmp(alg, "ES384") == 0)
        return "EC";
    return NULL;
}

bool bf_jwk_select(json_object *jwks, const char *kid, const char *alg,
                   json_object **key, const char **err)
{
    json_object *keys, *k, *found = NULL;
    const char *kty = alg ? kty_for_alg(alg) : NULL;
    size_t i, n, matches = 0;

    *key = NULL;
    if (!kty) {
        *err = "the JWT alg is not RS384 or ES384";
        return false;
    }
    if (!kid) {
        *err = "the JWT header has no kid";
        return false;
    }
    if (!jwks || !json_object_object_get_ex(jwks, "keys", &keys) ||
        !json_object_is_type(keys, json_type_array)) {
        *err = "the client's JWKS has no keys array";
        return false;
    }
    n = json_object_array_length(keys);
    for (i = 0; i < n; i++) {
        const char *kkid, *kkty;

        k = json_object_array_get_idx(keys, i);
        if (!json_object_is_type(k, json_type_object))
            continue;
        kkid = str_member(k, "kid");
        kkty = str_member(k, "kty");
        if (kkid && kkty && strcmp(kkid, kid) == 0 && strcmp(kkty, kty) == 0) {
            found = k;
            matches++;
        }
    }
    if (matches != 1) {
        *err =
            matches
                ? "more than one key in the client's JWKS matches kid and alg"
                : "no key in the client's JWKS matches kid and alg";
        return false;
    }
    *key = found;
    return true;
}

/* Decode a base64url JWK member into a BIGNUM; NULL when absent or bad. */
static BIGNUM *jwk_bn(apr_pool_t *p, json_object *key, const char *name,
                      size_t *len_out)
{
    const char *s = str_member(key, name);
    unsigned char *raw;
    size_t len;

    if (!s || !bf_b64url_decode(p, s, strlen(s), &raw, &len) || len == 0)
        return NULL;
    if (len_out)
        *len_out = len;
    return BN_bin2bn(raw, (int)len, NULL);
}

static EVP_PKEY *rsa_key(apr_pool_t *p, json_object *key, const char **err)
{
    BIGNUM *n = jwk_bn(p, key, "n", NULL), *e = jwk_bn(p, key, "e", NULL);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!n || !e) {
        *err = "the RSA key lacks n or e";
        goto leave;
    }
    if (BN_num_bits(n) < RSA_MIN_BITS) {
        *err = "the RSA key is shorter than 2048 bits";
        goto leave;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        *err = "the RSA key could not be loaded";
        pkey = NULL;
    }
leave:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *ec_key(apr_pool_t *p, json_object *key, const char **err)
{
    const char *crv = str_member(key, "crv");
    const char *xs = str_member(key, "x"), *ys = str_member(key, "y");
    unsigned char *x, *y, pub[1 + 48 + 48];
    size_t xl, yl;
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!crv || strcmp(crv, "P-384") != 0) {
        *err = "ES384 needs an EC key on curve P-384";
        return NULL;
    }
    if (!xs || !ys || !bf_b64url_decode(p, xs, strlen(xs), &x, &xl) ||
        !bf_b64url_decode(p, ys, strlen(ys), &y, &yl) || xl != 48 || yl != 48) {
        *err = "the EC key has bad x or y";
        return NULL;
    }
    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, x, 48);
    memcpy(pub + 49, y, 48);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 (char *)"P-384", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub,
                                                  sizeof pub);
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        *err = "the EC key is not a valid P-384 point";
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* JWS ES384 signatures are r||s (48 bytes each); OpenSSL wants DER. */
static unsigned char *ecdsa_der(apr_pool_t *p, const unsigned char *sig,
                                size_t sig_len, size_t *der_len)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL, *out = NULL;
    int len;

    if (sig_len != 96)
        return NULL;
    r = BN_bin2bn(sig, 48, NULL);
    s = BN_bin2bn(sig + 48, 48, NULL);
    es = ECDSA_SIG_new();
    if (!r || !s || !es || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    len = i2d_ECDSA_SIG(es, &der);
    if (len > 0) {
        out = apr_pmemdup(p, der, (apr_size_t)len);
        *der_len = (size_t)len;
    }
    OPENSSL_free(der);
    ECDSA_SIG_free(es); /* frees r and s */
    return out;
}

bool bf_jwt_verify(apr_pool_t *p, const bf_jwt *jwt, json_object *key,
                   const char **err)
{
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md = NULL;
    const unsigned char *sig = jwt->sig;
    size_t sig_len = jwt->sig_len;
    const char *kty =
        bf_jwt_alg_allowed(jwt->alg) ? kty_for_alg(jwt->alg) : NULL;
    bool ok = false;

    if (!kty) {
        *err = "the JWT alg is not RS384 or ES384";
        return false;
    }
    if (strcmp(kty, "RSA") == 0)
        pkey = rsa_key(p, key, err);
    else {
        pkey = ec_key(p, key, err);
        if (pkey) {
            sig = ecdsa_der(p, jwt->sig, jwt->sig_len, &sig_len);
            if (!sig) {
                *err = "the ES384 signature is not 96 bytes";
                goto leave;
            }
        }
    }
    if (!pkey)
        goto leave;
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pkey) != 1) {
        *err = "signature verification could not start";
        goto leave;
    }
    if (EVP_DigestVerify(md, sig, sig_len, jwt->signing_input,
                         jwt->signing_input_len) != 1) {
        *err = "the JWT signature does not verify";
        goto leave;
    }
    ok = true;
leave:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    return ok;
}

/* ---- claims ------------------------------------------------------------- */

static bool aud_matches(json_object *claims, const char *token_url)
{
    json_object *aud, *v;
    size_t i, n;

    if (!json_object_object_get_ex(claims, "aud", &aud))
        return false;
    if (json_object_is_type(aud, json_type_string))
        return strcmp(json_object_get_string(aud), token_url) == 0;
    if (!json_object_is_type(aud, json_type_array))
        return false;
    n = json_object_array_length(aud);
    for (i = 0; i < n; i++) {
        v = json_object_array_get_idx(aud, i);
        if (json_object_is_type(v, json_type_string) &&
            strcmp(json_object_get_string(v), token_url) == 0)
            return true;
    }
    return false;
}

bool bf_jwt_check_claims(const bf_jwt *jwt, const char *client_id,
                         const char *token_url, int64_t now, int skew,
                         int max_ahead, const char **err)
{
    /* SMART Backend Services: typ is required, fixed value JWT */
    if (!jwt->typ) {
        *err = "the JWT header has no typ (it must be JWT)";
        return false;
    }
    if (strcmp(jwt->typ, "JWT") != 0) {
        *err = "the JWT header typ is not JWT";
        return false;
    }
    if (!jwt->iss || !jwt->sub) {
        *err = "the JWT has no iss or sub";
        return false;
    }
    if (strcmp(jwt->iss, client_id) != 0 || strcmp(jwt->sub, client_id) != 0) {
        *err = "iss and sub must both equal the client_id";
        return false;
    }
    if (!aud_matches(jwt->claims, token_url)) {
        *err = "aud is not this token endpoint";
        return false;
    }
    if (!jwt->has_exp) {
        *err = "the JWT has no numeric exp";
        return false;
    }
    /* exp comes from the client and may be INT64_MAX: compare against
     * now - skew, which cannot overflow, not exp + skew */
    if (jwt->exp < now - skew) {
        *err = "the JWT has expired";
        return false;
    }
    if (jwt->exp > now + max_ahead + skew) {
        *err = "exp is more than 5 minutes in the future";
        return false;
    }
    if (!jwt->jti || !*jwt->jti) {
        *err = "the JWT has no jti";
        return false;
    }
    if (strlen(jwt->jti) > 255) {
        *err = "the jti is longer than 255 characters";
        return false;
    }
    return true;
}
