/* fuzz_params_body: a POST kick-off Parameters body.  The first byte picks the
 * level (system, patient, group, unchecked) and Prefer: handling=lenient;
 * the rest is the body (JSON, exact length, no NUL added). */
#include "fuzz_common.h"
#include "bf_params.h"

static const char *levels[] = { "system", "patient", "group", NULL };

FZ_DEFAULT_INITIALIZE()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    bf_params_t *prm = NULL;
    int i;
    char *body;

    if (size < 1)
        return 0;
    p = fz_pool();
    /* an exact-size malloc copy so ASan sees any read past len */
    body = malloc(size - 1 ? size - 1 : 1);
    if (size > 1)
        memcpy(body, data + 1, size - 1);
    if (bf_params_from_body(p, body, size - 1, levels[data[0] & 3],
                            (data[0] & 4) != 0, &prm)) {
        fz_use(prm->json);
        fz_use(prm->since);
        fz_use(prm->until);
        fz_use(bf_params_types_literal(p, prm));
        for (i = 0; prm->ignored && i < prm->ignored->nelts; i++)
            fz_use(APR_ARRAY_IDX(prm->ignored, i, const char *));
    } else if (prm) {
        fz_use(prm->error);
        fz_use(prm->error_code);
    }
    apr_pool_destroy(p);
    free(body);
    return 0;
}
