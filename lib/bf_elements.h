/* bf_elements: the _elements kick-off parameter (SPEC §1.4).  Values are
 * "Type.element" or "element" (root elements only; a bare element applies to
 * every type).  Subsetting runs in SQL (bulkfhir.fhir_subset, sql/0005):
 * resourceType, id, meta, modifierExtension and the type's mandatory root
 * elements are always kept, and meta.tag gets SUBSETTED. */
#ifndef BF_ELEMENTS_H
#define BF_ELEMENTS_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_tables.h>

typedef struct bf_element {
    const char *type; /* NULL for a bare element */
    const char *name;
} bf_element;

/* Parse the (already comma-split) values.  false with *err on a malformed
 * value or an unknown resource type. */
bool bf_elements_parse(apr_pool_t *p, const apr_array_header_t *values,
                       apr_array_header_t **out, const char **err);

/* Parse one value into *out; false with *err (which echoes at most a short
 * printable prefix of v). */
bool bf_elements_parse_one(apr_pool_t *p, const char *v, bf_element *out,
                           const char **err);

/* The SQL text[] literal of root element names to keep for `type`: the
 * requested ones that apply to it plus its mandatory ones; choice elements
 * carry a "[x]" suffix.  Built once from an array: linear in the number of
 * elements. */
const char *bf_elements_keep_sql(apr_pool_t *p, const apr_array_header_t *els,
                                 const char *type);

/* The mandatory (min >= 1) root elements of an R4 type, comma-separated,
 * "" when none or unknown. */
const char *bf_elements_mandatory(const char *type);

#endif
