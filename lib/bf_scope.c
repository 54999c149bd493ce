/* bf_scope: SMART v1/v2 system scopes (see bf_scope.h). */
#include "bf_scope.h"
#include "bf_r4.h"

#include <string.h>
#include <apr_strings.h>

/* v2 permission letters, in the only order SMART allows. */
static bool parse_v2(const char *s, unsigned *perms)
{
    static const char order[] = "cruds";
    const char *o = order;
    unsigned bits = 0;

    if (!*s)
        return false;
    for (; *s; s++) {
        const char *at = strchr(o, *s);

        if (!at || !*s)
            return false; /* unknown letter, repeated or out of order */
        bits |= 1u << (at - order);
        o = at + 1;
    }
    *perms = bits;
    return true;
}

bool bf_scope_parse_one(apr_pool_t *p, const char *text, bf_scope *out)
{
    const char *rest, *dot;
    char *type;

    if (strncmp(text, "system/", 7) != 0)
        return false;
    rest = text + 7;
    dot = strrchr(rest, '.');
    if (!dot || dot == rest || strchr(rest, '?'))
        return false;
    type = apr_pstrndup(p, rest, (apr_size_t)(dot - rest));
    if (strcmp(type, "*") != 0 && !bf_r4_is_type(type))
        return false;
    out->text = text;
    out->type = type;
    if (strcmp(dot + 1, "read") == 0)
        out->perms = BF_PERM_R | BF_PERM_S;
    else if (strcmp(dot + 1, "write") == 0)
        out->perms = BF_PERM_C | BF_PERM_U | BF_PERM_D;
    else if (strcmp(dot + 1, "*") == 0)
        out->perms = BF_PERM_C | BF_PERM_R | BF_PERM_U | BF_PERM_D | BF_PERM_S;
    else if (!parse_v2(dot + 1, &out->perms))
        return false;
    return true;
}

/* All well-formed scopes of a space-separated list. */
static apr_array_header_t *parse_list(apr_pool_t *p, const char *list)
{
    apr_array_header_t *arr = apr_array_make(p, 8, sizeof(bf_scope));
    char *copy = apr_pstrdup(p, list ? list : ""), *last, *tok;
    bf_scope sc;

    for (tok = apr_strtok(copy, " \t", &last); tok;
         tok = apr_strtok(NULL, " \t", &last))
        if (bf_scope_parse_one(p, tok, &sc))
            *(bf_scope *)apr_array_push(arr) = sc;
    return arr;
}

static bool covers(const bf_scope *have, const bf_scope *want)
{
    if (strcmp(have->type, "*") != 0 && strcmp(have->type, want->type) != 0)
        return false;
    return (have->perms & want->perms) == want->perms;
}

const char *bf_scope_grant(apr_pool_t *p, const char *requested,
                           const char *registered)
{
    apr_array_header_t *want = parse_list(p, requested);
    apr_array_header_t *have = parse_list(p, registered);
    const char *granted = NULL;
    int i, j;

    for (i = 0; i < want->nelts; i++) {
        const bf_scope *w = &APR_ARRAY_IDX(want, i, bf_scope);

        for (j = 0; j < have->nelts; j++) {
            if (covers(&APR_ARRAY_IDX(have, j, bf_scope), w)) {
                granted = granted ? apr_pstrcat(p, granted, " ", w->text, NULL)
                                  : w->text;
                break;
            }
        }
    }
    return granted;
}

bool bf_scope_can_export(apr_pool_t *p, const char *granted, const char *type)
{
    return bf_scope_allows(p, granted, type, BF_PERM_R | BF_PERM_S);
}

bool bf_scope_allows(apr_pool_t *p, const char *granted, const char *type,
                     unsigned perms)
{
    apr_array_header_t *have = parse_list(p, granted);
    bf_scope want = { NULL, type, perms };
    int j;

    for (j = 0; j < have->nelts; j++)
        if (covers(&APR_ARRAY_IDX(have, j, bf_scope), &want))
            return true;
    return false;
}

apr_array_header_t *bf_scope_export_types(apr_pool_t *p, const char *granted,
                                          bool *all)
{
    apr_array_header_t *have = parse_list(p, granted);
    apr_array_header_t *types = apr_array_make(p, 8, sizeof(const char *));
    const unsigned rs = BF_PERM_R | BF_PERM_S;
    int i, j;

    *all = false;
    for (i = 0; i < have->nelts; i++) {
        const bf_scope *s = &APR_ARRAY_IDX(have, i, bf_scope);

        if ((s->perms & rs) != rs)
            continue;
        if (strcmp(s->type, "*") == 0) {
            *all = true;
            apr_array_clear(types);
            return types;
        }
        for (j = 0; j < types->nelts; j++)
            if (strcmp(APR_ARRAY_IDX(types, j, const char *), s->type) == 0)
                break;
        if (j == types->nelts)
            APR_ARRAY_PUSH(types, const char *) = s->type;
    }
    return types;
}
