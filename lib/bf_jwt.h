/* bf_jwt: JSON Web Tokens for SMART Backend Services client assertions
 * (SPEC A3, A4, A6, A7).  Compact JWS only; RS384 and ES384 only (an
 * allow-list: "none", HMAC and every other alg are refused).  Crypto is
 * OpenSSL's EVP; nothing here is hand-written cryptography. */
#ifndef BF_JWT_H
#define BF_JWT_H

#include <stdbool.h>
#include <stdint.h>
#include <apr_pools.h>
#include <json-c/json.h>

typedef struct bf_jwt {
    json_object *header; /* owned; released by a cleanup on the pool */
    json_object *claims; /* owned; idem */
    const char *alg, *kid, *typ, *jku;
    const char *iss, *sub, *jti;
    bool has_exp;
    int64_t exp;
    const unsigned char *signing_input; /* "b64(header).b64(payload)" */
    size_t signing_input_len;
    unsigned char *sig;
    size_t sig_len;
} bf_jwt;

/* Decode base64url (no padding required) into pool memory. */
bool bf_b64url_decode(apr_pool_t *p, const char *in, size_t in_len,
                      unsigned char **out, size_t *out_len);
/* Encode into a NUL-terminated pool string, without padding. */
const char *bf_b64url_encode(apr_pool_t *p, const unsigned char *in,
                             size_t in_len);

/* Parse a compact JWS.  On failure *err says why (for error_description;
 * it never contains the token). */
bool bf_jwt_parse(apr_pool_t *p, const char *compact, bf_jwt **out,
                  const char **err);

/* true for the algorithms we verify: RS384, ES384. */
bool bf_jwt_alg_allowed(const char *alg);

/* A7 step 3: among jwks.keys, exactly one key whose kid equals `kid` and
 * whose kty fits `alg` (RSA for RS384, EC for ES384). */
bool bf_jwk_select(json_object *jwks, const char *kid, const char *alg,
                   json_object **key, const char **err);

/* A4: verify the signature of jwt with the JWK `key`. */
bool bf_jwt_verify(apr_pool_t *p, const bf_jwt *jwt, json_object *key,
                   const char **err);

/* A4/A6 claims: typ present and JWT, iss == sub == client_id, aud equals
 * token_url (or an array containing it), exp present, not expired (with `skew`
 * seconds of leeway) and at most max_ahead seconds in the future, jti present.
 */
bool bf_jwt_check_claims(const bf_jwt *jwt, const char *client_id,
                         const char *token_url, int64_t now, int skew,
                         int max_ahead, const char **err);

#endif
