/* fuzz_elements: _elements values, comma-split as the kick-off does; the
 * parsed list then builds the keep-list SQL for a few types. */
#include "fuzz_common.h"
#include "bf_elements.h"

static const char *types[] = { "Patient", "Observation", "Encounter",
                               "MedicationRequest", "Bogus" };

FZ_DEFAULT_INITIALIZE()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_pool();
    apr_array_header_t *vals = apr_array_make(p, 4, sizeof(const char *));
    apr_array_header_t *els = NULL;
    const char *err = NULL;
    size_t start = 0, i;

    for (i = 0; i <= size; i++) {
        if (i == size || data[i] == ',') {
            APR_ARRAY_PUSH(vals, const char *) =
                fz_cstr(p, data + start, i - start);
            start = i + 1;
        }
    }
    if (bf_elements_parse(p, vals, &els, &err)) {
        for (i = 0; i < sizeof types / sizeof *types; i++) {
            fz_use(bf_elements_keep_sql(p, els, types[i]));
            fz_use(bf_elements_mandatory(types[i]));
        }
    }
    fz_use(err);
    apr_pool_destroy(p);
    return 0;
}
