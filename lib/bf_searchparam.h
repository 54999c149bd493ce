/* bf_searchparam: the R4 search parameters usable in _typeFilter (SPEC R28,
 * R29, R62), compiled in from search-parameters.json by
 * scripts/gen-searchparams.  Paths are dotted element paths, '|'-separated;
 * "a@Patient" restricts a reference to that type, "a[k=v]" keeps elements
 * whose k equals v. */
#ifndef BF_SEARCHPARAM_H
#define BF_SEARCHPARAM_H

typedef enum {
    BF_SP_TOKEN,
    BF_SP_STRING,
    BF_SP_DATE,
    BF_SP_REFERENCE,
    BF_SP_URI
} bf_sp_type_e;

typedef struct bf_searchparam {
    const char *base; /* resource type */
    const char *code; /* parameter name */
    bf_sp_type_e type;
    const char *paths;
} bf_searchparam;

/* sorted by (base, code) */
extern const bf_searchparam bf_searchparam_table[];
extern const unsigned bf_searchparam_count;

/* The parameter `code` of resource type `base`, or NULL. */
const bf_searchparam *bf_searchparam_find(const char *base, const char *code);

#endif
