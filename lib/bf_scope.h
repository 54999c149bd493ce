/* bf_scope: SMART system scopes, v1 (system/Type.read|write|*) and v2
 * (system/Type.cruds), SPEC §3.7.  Used by the token endpoint to grant only
 * what a client was registered for (A10) and by kick-off to decide which
 * resource types an access token may export (R5, R6). */
#ifndef BF_SCOPE_H
#define BF_SCOPE_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_tables.h>

enum {
    BF_PERM_C = 1,
    BF_PERM_R = 2,
    BF_PERM_U = 4,
    BF_PERM_D = 8,
    BF_PERM_S = 16
};

typedef struct bf_scope {
    const char *text; /* the scope as written */
    const char *type; /* resource type or "*" */
    unsigned perms;   /* BF_PERM_* after mapping v1 to v2 */
} bf_scope;

/* Parse one scope; false for anything that is not a well-formed, unqualified
 * system scope (patient/, user/, launch, openid, v2 with ?query, letters out
 * of cruds order, unknown resource type). */
bool bf_scope_parse_one(apr_pool_t *p, const char *text, bf_scope *out);

/* The subset of `requested` (space separated) covered by `registered`, as a
 * space-separated string of the requested scopes in their own syntax, or
 * NULL when nothing is granted. */
const char *bf_scope_grant(apr_pool_t *p, const char *requested,
                           const char *registered);

/* May a token with `granted` scopes export resources of `type`?  Needs read
 * and search (v1 read or *, v2 r and s) on the type or on "*". */
bool bf_scope_can_export(apr_pool_t *p, const char *granted, const char *type);

/* Do the `granted` scopes give every BF_PERM_* bit of perms on `type`
 * (through a scope on the type or on "*")? */
bool bf_scope_allows(apr_pool_t *p, const char *granted, const char *type,
                     unsigned perms);

/* The resource types `granted` lets a client export (read and search), in
 * scope order without repeats; *all is true (and the array empty) when a
 * wildcard scope covers every type. */
apr_array_header_t *bf_scope_export_types(apr_pool_t *p, const char *granted,
                                          bool *all);

#endif
