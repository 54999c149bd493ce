/* bf_time: FHIR date/time helpers (httpd-free). */
#ifndef BF_TIME_H
#define BF_TIME_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_time.h>

/* True when s is a FHIR instant: YYYY-MM-DDThh:mm:ss[.fraction](Z|(+|-)hh:mm)
 * with fields in range.  When out != NULL the instant is stored there. */
bool bf_time_parse_instant(const char *s, apr_time_t *out);

/* Format t as a FHIR instant in UTC with microseconds:
 * 2024-01-02T03:04:05.123456Z. */
const char *bf_time_instant(apr_pool_t *p, apr_time_t t);

#endif
