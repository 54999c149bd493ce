/* bf_searchparam: lookup in the generated R4 search parameter table. */
#include "bf_searchparam.h"

#include <stdlib.h>
#include <string.h>

typedef struct key {
    const char *base, *code;
} key;

static int cmp(const void *a, const void *b)
{
    const key *k = a;
    const bf_searchparam *sp = b;
    int c = strcmp(k->base, sp->base);

    return c ? c : strcmp(k->code, sp->code);
}

const bf_searchparam *bf_searchparam_find(const char *base, const char *code)
{
    key k = { base, code };

    if (!base || !code)
        return NULL;
    return bsearch(&k, bf_searchparam_table, bf_searchparam_count,
                   sizeof bf_searchparam_table[0], cmp);
}
