/* bf_typefilter: _typeFilter as real FHIR search over the stored JSON
 * (SPEC R28, R29).  A filter is one FHIR REST query with a single resource
 * type, e.g. "Observation?category=laboratory&date=ge2020-01-01".  Supported
 * parameter types: token (code, system|code, |code, system|; :not),
 * string (starts-with, :exact, :contains), date (eq ne gt lt ge le sa eb),
 * reference (Type/id, id, absolute URL, :Type), uri; :missing on all.
 * Anything else (chains, _has, quantity/number/composite parameters, other
 * modifiers, result parameters such as _sort or _include) is refused at parse
 * time so the client learns of it, never silently ignored. */
#ifndef BF_TYPEFILTER_H
#define BF_TYPEFILTER_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "bf_searchparam.h"

typedef struct bf_tf_clause {
    const bf_searchparam *sp;
    const char *modifier; /* NULL, missing, not, exact, contains, or a type */
    apr_array_header_t *values; /* const char *, ORed */
} bf_tf_clause;

typedef struct bf_typefilter {
    const char *text;            /* as given */
    const char *type;            /* the resource type before '?' */
    apr_array_header_t *clauses; /* bf_tf_clause, ANDed */
} bf_typefilter;

/* Parse and validate one filter.  On failure *err names the problem in words
 * a client can act on. */
bool bf_typefilter_parse(apr_pool_t *p, const char *text, bf_typefilter **out,
                         const char **err);

/* A SQL boolean expression over the jsonb column `resource` that is true for
 * resources matching ANY of the filters (all of one type).  Values are
 * embedded as escaped literals (for COPY, which takes no parameters).  Built
 * once from an array of pieces; a clause is O(paths + values) bytes and one
 * subquery (token: one per system), whatever its number of values. */
bool bf_typefilter_sql(apr_pool_t *p, const apr_array_header_t *filters,
                       const char **sql, const char **err);

/* The number of paths of a search parameter (its '|'-separated list). */
int bf_typefilter_paths(const bf_searchparam *sp);

/* The filter's cost in "terms": the sum over its clauses of paths x values,
 * the most (element, value) comparisons its WHERE clause makes per row
 * beyond one jsonpath query per path (kick-off limit
 * BulkFhirMaxFilterTerms). */
long bf_typefilter_terms(const bf_typefilter *tf);

/* true when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF).  Text that reaches SQL must be. */
bool bf_utf8_valid(const char *s, size_t n);

/* true when text, and text after the filter's own percent-decoding, are
 * valid UTF-8 (a kick-off refuses the filter as invalid otherwise). */
bool bf_typefilter_utf8(apr_pool_t *p, const char *text);

/* Hard caps of one filter, whatever the kick-off limits say (the number of
 * values is bounded by the length; the kick-off limits are in bf_params.h). */
#define BF_TF_MAX_LEN 65536
#define BF_TF_MAX_CLAUSES 32

#endif
