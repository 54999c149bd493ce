/* fuzz_jwt: a client assertion as it arrives at the token endpoint.
 * bf_jwt_parse on the input; on success bf_jwk_select against a fixed JWKS
 * (an RSA and an EC key), bf_jwt_verify with the selected key (fuzzed
 * signature bytes reach the ES384 r||s conversion) and bf_jwt_check_claims.
 * An input starting with '{' is "header JSON\nclaims JSON[\nsignature]":
 * the harness base64url-encodes the parts itself, so the fuzzer mutates the
 * JSON (claims checks) and not only its encoding. */
#include "fuzz_common.h"
#include "fuzz_keys.h"
#include "bf_jwt.h"
#include <apr_strings.h>

static json_object *jwks;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    jwks = json_tokener_parse(FZ_JWKS);
    if (!jwks)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_pool();
    const char *tok = fz_cstr(p, data, size), *err = NULL;
    const char *nl1, *nl2;
    bf_jwt *jwt = NULL;
    json_object *key = NULL;

    if (size && data[0] == '{' && (nl1 = strchr(tok, '\n')) != NULL) {
        const char *claims = nl1 + 1, *sig = "";
        size_t claims_len;

        nl2 = strchr(claims, '\n');
        claims_len = nl2 ? (size_t)(nl2 - claims) : strlen(claims);
        if (nl2)
            sig = bf_b64url_encode(p, (const unsigned char *)nl2 + 1,
                                   strlen(nl2 + 1));
        tok = apr_pstrcat(
            p,
            bf_b64url_encode(p, (const unsigned char *)tok,
                             (size_t)(nl1 - tok)),
            ".", bf_b64url_encode(p, (const unsigned char *)claims, claims_len),
            ".", sig, NULL);
    }
    if (bf_jwt_parse(p, tok, &jwt, &err)) {
        fz_use(jwt->alg);
        fz_use(jwt->kid);
        fz_use(jwt->typ);
        fz_use(jwt->jku);
        fz_use(jwt->iss);
        fz_use(jwt->sub);
        fz_use(jwt->jti);
        if (bf_jwk_select(jwks, jwt->kid, jwt->alg, &key, &err))
            (void)bf_jwt_verify(p, jwt, key, &err);
        (void)bf_jwt_check_claims(jwt, FZ_CLIENT, FZ_AUD, FZ_NOW, 30, 300,
                                  &err);
        (void)bf_b64url_encode(p, jwt->sig, jwt->sig_len);
    }
    fz_use(err);
    apr_pool_destroy(p);
    return 0;
}
