/* bf_oo: FHIR OperationOutcome bodies.  Every error the module answers, every
 * failed job and every error-file line is one of these. */
#ifndef BF_OO_H
#define BF_OO_H

#include <apr_pools.h>
#include <json-c/json.h>

/* severity: fatal | error | warning | information
 * code: an R4 IssueType code (invalid, not-found, not-supported, forbidden,
 *       login, security, throttled, transient, exception, processing, ...) */
json_object *bf_oo_new(const char *severity, const char *code,
                       const char *text);
/* Append one more issue to an OperationOutcome made by bf_oo_new(). */
void bf_oo_add(json_object *oo, const char *severity, const char *code,
               const char *text);
/* Convenience: a one-issue OperationOutcome serialised into pool p. */
const char *bf_oo_json(apr_pool_t *p, const char *severity, const char *code,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Serialise any json-c object into pool p (compact, no trailing newline). */
const char *bf_json_to_pool(apr_pool_t *p, json_object *obj);

#endif
