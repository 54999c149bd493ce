/* fuzz_typefilter: _typeFilter values.  The input is split on newlines into
 * up to 8 filters; each is parsed with bf_typefilter_parse, and the ones
 * that parse and share the first one's type go to bf_typefilter_sql (as the
 * worker does per task).  bf_sql_literal gets every raw line too.
 *
 * Oracles (abort = finding): bf_sql_literal's output decodes back to its
 * input; the generated SQL has every string literal closed and no ';' or
 * comment outside literals, i.e. a filter value cannot leave its literal. */
#include "fuzz_common.h"
#include <ctype.h>
#include <stdio.h>
#include "bf_sql.h"
#include "bf_typefilter.h"

/* E'...' with '' and \\ doubled must decode to s exactly. */
static void check_literal(const char *lit, const char *s)
{
    size_t i = 2, n = strlen(lit);

    if (n < 3 || lit[0] != 'E' || lit[1] != '\'' || lit[n - 1] != '\'')
        abort();
    for (; i < n - 1; i++, s++) {
        if (lit[i] == '\'' || lit[i] == '\\') {
            if (i + 1 >= n - 1 || lit[i + 1] != lit[i])
                abort(); /* a lone quote or backslash */
            i++;
        }
        if (*s != lit[i])
            abort();
    }
    if (*s)
        abort();
}

/* Lex the SQL: literals are '...' ('' inside) or E'...' (\x and '' inside).
 * Outside them no semicolon, "--" or "/" "*" may appear; the text must not end
 * inside a literal. */
static void check_sql(const char *q)
{
    int in = 0; /* 0 outside, 1 in '...', 2 in E'...' */
    const char *c;

    for (c = q; *c; c++) {
        if (in == 0) {
            if (*c == ';' || (c[0] == '-' && c[1] == '-') ||
                (c[0] == '/' && c[1] == '*'))
                abort();
            if ((*c == 'E' || *c == 'e') && c[1] == '\'' &&
                (c == q || !(isalnum((unsigned char)c[-1]) || c[-1] == '_'))) {
                in = 2;
                c++;
            } else if (*c == '\'')
                in = 1;
        } else if (in == 2 && *c == '\\') {
            if (!c[1])
                abort();
            c++;
        } else if (*c == '\'') {
            if (c[1] == '\'')
                c++;
            else
                in = 0;
        }
    }
    if (in)
        abort();
}

FZ_DEFAULT_INITIALIZE()

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

            check_literal(bf_sql_literal(p, line), line);
            if (bf_typefilter_parse(p, line, &tf, &err)) {
                const bf_typefilter *first =
                    ok->nelts ? APR_ARRAY_IDX(ok, 0, bf_typefilter *) : tf;
                if (strcmp(first->type, tf->type) == 0)
                    APR_ARRAY_PUSH(ok, bf_typefilter *) = tf;
            }
            fz_use(err);
            start = i + 1;
            n++;
        }
    }
    if (ok->nelts && bf_typefilter_sql(p, ok, &sql, &err)) {
        if (getenv("FUZZ_PRINT_SQL"))
            fprintf(stderr, "%s\n", sql);
        check_sql(sql);
    }
    fz_use(err);
    apr_pool_destroy(p);
    return 0;
}
