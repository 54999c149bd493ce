/* bf_id: the two id checks every part shares: a job id (a uuid as the
 * database prints it) and a FHIR resource id. */
#ifndef BF_ID_H
#define BF_ID_H

#include <stdbool.h>
#include <stddef.h>

/* True when s is a canonical textual uuid (8-4-4-4-12 hex digits). */
bool bf_id_is_uuid(const char *s);
/* True when the n bytes at s are a FHIR id: [A-Za-z0-9\-\.]{1,64}. */
bool bf_id_is_fhir_id(const char *s, size_t n);

#endif
