/* fuzz_jwk: JWK -> key loading.  The first input byte picks a fixed,
 * validly signed token (even: RS384, odd: ES384); the rest is a JSON JWK
 * (or a JWKS: then bf_jwk_select picks the key first) given to
 * bf_jwt_verify. */
#include "fuzz_common.h"
#include "fuzz_keys.h"
#include "bf_jwt.h"
#include <sanitizer/lsan_interface.h>

static apr_pool_t *keep;
static bf_jwt *tok_rs, *tok_es;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *err;
    (void)argc;
    (void)argv;
    fz_init();
    /* The fixed tokens live for the whole run, referenced only from pool
     * memory LeakSanitizer does not scan: not leaks. */
    __lsan_disable();
    keep = fz_pool();
    if (!bf_jwt_parse(keep, FZ_TOKEN_RS384, &tok_rs, &err) ||
        !bf_jwt_parse(keep, FZ_TOKEN_ES384, &tok_es, &err))
        abort();
    __lsan_enable();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const bf_jwt *jwt;
    json_tokener *tk;
    json_object *obj, *key;
    const char *err = NULL;

    if (size < 1)
        return 0;
    jwt = (data[0] & 1) ? tok_es : tok_rs;
    p = fz_pool();
    tk = json_tokener_new();
    obj = json_tokener_parse_ex(tk, (const char *)data + 1, (int)(size - 1));
    json_tokener_free(tk);
    if (obj) {
        key = obj;
        if (json_object_is_type(obj, json_type_object) &&
            json_object_object_get_ex(obj, "keys", NULL)) {
            if (!bf_jwk_select(obj, jwt->kid, jwt->alg, &key, &err))
                key = NULL;
        }
        if (key)
            (void)bf_jwt_verify(p, jwt, key, &err);
        json_object_put(obj);
    }
    fz_use(err);
    apr_pool_destroy(p);
    return 0;
}
