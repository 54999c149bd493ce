/* bf_sql: SQL string literals (see bf_sql.h). */
#include "bf_sql.h"
#include "bf_typefilter.h" /* bf_utf8_valid */

#include <string.h>

const char *bf_sql_literal(apr_pool_t *p, const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n * 2 + 4);

    out[o++] = 'E';
    out[o++] = '\'';
    for (i = 0; i < n; i++) {
        if (s[i] == '\'' || s[i] == '\\')
            out[o++] = s[i];
        out[o++] = s[i];
    }
    out[o++] = '\'';
    out[o] = '\0';
    return out;
}

const char *bf_sql_literal_utf8(apr_pool_t *p, const char *s)
{
    return bf_utf8_valid(s, strlen(s)) ? bf_sql_literal(p, s) : NULL;
}
