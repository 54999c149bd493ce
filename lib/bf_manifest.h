/* bf_manifest: the complete-status body of a bulk export (httpd-free).
 * SPEC §1.9: transactionTime, request, requiresAccessToken,
 * outputOrganizedBy (with organizeOutputBy), output[], error[] (always
 * present), deleted[] (only when there are such files), link[] (partial
 * manifests).  output items carry `type` unless the output is organized
 * (then `continuesInFile` where a block continues); deleted items have type
 * Bundle, error items OperationOutcome. */
#ifndef BF_MANIFEST_H
#define BF_MANIFEST_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_tables.h>

typedef struct bf_manifest_file_t {
    const char *kind; /* output | deleted | error */
    const char *type; /* resource type of the lines; NULL: organized */
    int part;
    const char *name; /* file name inside the job directory */
    long long count;
    const char *continues_in; /* name of the file a block continues in */
    long long id;             /* bulkfhir.file.id */
} bf_manifest_file_t;

typedef struct bf_manifest_t {
    const char *transaction_time; /* FHIR instant */
    const char *request;          /* the kick-off URL */
    bool requires_token;
    const char *base_url; /* FHIR base, absolute, no trailing slash */
    const char *job_id;
    apr_array_header_t *files; /* bf_manifest_file_t, any order */
    const char *organized_by;  /* organizeOutputBy honoured (R53) or NULL */
    const char *next_url;      /* partial manifests: link next (R46) */
} bf_manifest_t;

/* The URL a client downloads a file from: {base}/bulkfiles/{job}/{name}. */
const char *bf_manifest_file_url(apr_pool_t *p, const char *base_url,
                                 const char *job_id, const char *name);

/* Serialise the manifest (JSON, compact) into p.  Items are ordered by
 * type, then part, then name within output, deleted and error. */
const char *bf_manifest_json(apr_pool_t *p, const bf_manifest_t *m);

#endif
