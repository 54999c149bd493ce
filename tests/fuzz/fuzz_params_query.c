/* fuzz_params_query: a GET kick-off query string.  The first byte picks the
 * level (system, patient, group, unchecked) and Prefer: handling=lenient;
 * the rest is the raw query string. */
#include "fuzz_common.h"
#include "bf_params.h"

static const char *levels[] = { "system", "patient", "group", NULL };

FZ_DEFAULT_INITIALIZE()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    bf_params_t *prm = NULL;
    int i;

    if (size < 1)
        return 0;
    p = fz_pool();
    if (bf_params_from_query(p, fz_cstr(p, data + 1, size - 1),
                             levels[data[0] & 3], (data[0] & 4) != 0, &prm)) {
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
    fz_use(bf_params_form_decode(p, (const char *)data + 1, size - 1));
    apr_pool_destroy(p);
    return 0;
}
