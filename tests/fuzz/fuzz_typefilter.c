/* fuzz_typefilter: _typeFilter values.  The input is split on newlines into
 * up to 8 filters; each is parsed with bf_typefilter_parse, and the ones
 * that parse and share the first one's type go to bf_typefilter_sql (as the
 * worker does per task).  bf_sql_literal gets every raw line too. */
#include "fuzz_common.h"
#include "bf_typefilter.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_pool();
    apr_array_header_t *ok = apr_array_make(p, 4, sizeof(bf_typefilter *));
    const char *err = NULL, *sql = NULL;
    size_t start = 0, i;
    int n = 0;

    for (i = 0; i <= size && n < 8; i++) {
        if (i == size || data[i] == '\n') {
            char *line = fz_cstr(p, data + start, i - start);
            bf_typefilter *tf = NULL;

            fz_use(bf_sql_literal(p, line));
            if (bf_typefilter_parse(p, line, &tf, &err)) {
                const bf_typefilter *first = ok->nelts
                    ? APR_ARRAY_IDX(ok, 0, bf_typefilter *) : tf;
                if (strcmp(first->type, tf->type) == 0)
                    APR_ARRAY_PUSH(ok, bf_typefilter *) = tf;
            }
            fz_use(err);
            start = i + 1;
            n++;
        }
    }
    if (ok->nelts && bf_typefilter_sql(p, ok, &sql, &err))
        fz_use(sql);
    fz_use(err);
    apr_pool_destroy(p);
    return 0;
}
