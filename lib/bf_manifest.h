/* bf_manifest: the complete-status body of a bulk export (httpd-free).
 * SPEC §1.9: transactionTime, request, requiresAccessToken, output[],
 * error[] (always present), deleted[] (only when there are such files). */
#ifndef BF_MANIFEST_H
#define BF_MANIFEST_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_tables.h>

typedef struct bf_manifest_file_t {
    const char *kind; /* output | deleted | error */
    const char *type; /* resource type of the lines */
    int part;
    const char *name; /* file name inside the job directory */
    long long count;
} bf_manifest_file_t;

typedef struct bf_manifest_t {
    const char *transaction_time; /* FHIR instant */
    const char *request;          /* the kick-off URL */
    bool requires_token;
    const char *base_url; /* FHIR base, absolute, no trailing slash */
    const char *job_id;
    apr_array_header_t *files; /* bf_manifest_file_t, any order */
} bf_manifest_t;

/* The URL a client downloads a file from: {base}/bulkfiles/{job}/{name}. */
const char *bf_manifest_file_url(apr_pool_t *p, const char *base_url,
                                 const char *job_id, const char *name);

/* Serialise the manifest (JSON, compact) into p.  Items are ordered by
 * type, then part, then name within output, deleted and error. */
const char *bf_manifest_json(apr_pool_t *p, const bf_manifest_t *m);

#endif
