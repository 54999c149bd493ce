/* mod_bulkfhir: FHIR Bulk Data $export for httpd -- shared declarations of
 * the module's files (httpd glue only; the logic lives in lib/). */
#ifndef MOD_BULKFHIR_H
#define MOD_BULKFHIR_H

#include <stdbool.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <libpq-fe.h>

#include "config.h"

#define BF_HANDLER "bulkfhir"
#define BF_CT_FHIR_JSON "application/fhir+json"
#define BF_CT_NDJSON "application/fhir+ndjson"

extern module AP_MODULE_DECLARE_DATA bulkfhir_module;
#ifndef BF_MODULE_MAIN /* mod_bulkfhir.c declares it with the module */
APLOG_USE_MODULE(bulkfhir);
#endif

/* One request being handled. */
typedef struct bf_req_t {
    request_rec *r;
    bf_srv_conf_t *sc;
    bf_dir_conf_t *dc;
    const char *location;  /* FHIR base path (the <Location>), no trailing / */
    const char *base;      /* absolute FHIR base URL, no trailing slash */
    const char *rel;       /* path below the location, no leading slash */
    PGconn *conn;          /* borrowed by bf_db_acquire, returned by cleanup */
    void *lease;           /* dbpool.c: conn's lease (bf_db_release) */
    const char *client_id; /* authenticated client; NULL with auth none */
    const char *scope;     /* its granted scopes */
} bf_req_t;

/* config.c */
extern const command_rec bf_cmds[];
void *bf_create_srv_conf(apr_pool_t *p, server_rec *s);
void *bf_merge_srv_conf(apr_pool_t *p, void *base, void *add);
void *bf_create_dir_conf(apr_pool_t *p, char *path);
void *bf_merge_dir_conf(apr_pool_t *p, void *base, void *add);
int bf_config_pre(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
/* check_config (also under configtest): BulkFhirAuth smart needs
 * BulkFhirBaseURL in the same or an enclosing scope. */
int bf_config_check(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s);
int bf_config_post(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                   server_rec *s);
/* A conninfo safe to log: host/port/dbname/user only. */
const char *bf_config_conninfo_safe(apr_pool_t *p, const char *conninfo);

/* dbpool.c: per-child PGconn pools */
void bf_dbpool_child_init(apr_pool_t *pchild, server_rec *s);
/* Borrow a connection for the rest of the request (cached in rq->conn).
 * NULL when the database is unreachable (logged). */
PGconn *bf_db_acquire(bf_req_t *rq);
/* Give the borrowed connection back before the request ends (e.g. while
 * waiting on the network); bf_db_acquire borrows one again. */
void bf_db_release(bf_req_t *rq);

/* http.c: responses and request helpers.  The bf_http_* responders write a
 * complete response and return OK for the handler to return. */
int bf_http_oo(bf_req_t *rq, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int bf_http_body(bf_req_t *rq, int status, const char *ctype, const char *body);
int bf_http_unavailable(bf_req_t *rq, const char *what);
int bf_http_db_error(bf_req_t *rq, const char *sqlstate, const char *what);
int bf_http_not_allowed(bf_req_t *rq, const char *allow);
/* Read the request body, at most max bytes.  False: response written,
 * *rc is the handler's return value. */
bool bf_http_read_body(bf_req_t *rq, apr_off_t max, const char **body,
                       apr_size_t *len, int *rc);
const char *bf_http_base_url(request_rec *r, const bf_dir_conf_t *dc,
                             const char *location);

/* auth.c: false means a response was written and *rc is to be returned */
bool bf_auth_request(bf_req_t *rq, int *rc);
/* "none", "smart", "header" (job.auth_mode, 0071). */
const char *bf_auth_mode_name(bf_auth_mode_e mode);
/* The request's owner key "<auth mode>:<client id>" (bf_job_t.client_id). */
const char *bf_auth_owner(const bf_req_t *rq);
/* The request may see a job whose owner key is job_owner: same auth mode
 * and client id. */
bool bf_auth_may_see(const bf_req_t *rq, const char *job_owner);
/* The granted scopes cover reading these types (NULL: all types). */
bool bf_auth_scope_covers(apr_pool_t *p, const char *scope,
                          const apr_array_header_t *types,
                          const char **missing);

/* endpoints */
int bf_kickoff_handle(bf_req_t *rq, const char *level, const char *group_id);
int bf_status_handle(bf_req_t *rq, const char *job_id);
int bf_files_handle(bf_req_t *rq, const char *job_id, const char *name);
int bf_metadata_handle(bf_req_t *rq);
int bf_group_handle(bf_req_t *rq, const char *group_id); /* NULL: search */

/* security (token.c, wellknown.c, limits.c, auth.c) */
struct json_object;
int bf_token_handle(bf_req_t *rq);
const char *bf_token_url(const bf_req_t *rq); /* {base}/token, absolute */
int bf_wellknown_handle(bf_req_t *rq);
/* Adds the oauth-uris extension to rest.security (smart only). */
void bf_wellknown_security(const bf_req_t *rq, struct json_object *security);
/* Scope checks of a kick-off (R5, R6, A14): false means a 403 was written.
 * Without _type, *types becomes the granted types (unless all are). */
bool bf_auth_kickoff(bf_req_t *rq, const char *group_id,
                     apr_array_header_t **types, int *rc);
struct bf_job_kickoff_t;
/* Per-client limits (R9) around bf_job_kickoff: false means a response
 * (429, 503, 500) was written and *rc is to be returned. */
bool bf_limits_kickoff(bf_req_t *rq, const struct bf_job_kickoff_t *k,
                       const char **job_id, int *rc);
/* R3: the token's scopes cover the type of export file `name` (its
 * "{Type}." prefix; for organized "blocks." files every type of the job:
 * types_json is its params._type, NULL for all); false means a 403 was
 * written. */
bool bf_auth_file_scope(bf_req_t *rq, const char *name, const char *types_json,
                        int *rc);
/* statuscache.c: job status shared by the children (BulkFhirStatusCache) */
struct bf_job_t;
const char *bf_statuscache_set(cmd_parms *cmd, const char *arg);
const char *bf_statuscache_describe(void); /* provider[:args] or "none" */
int bf_statuscache_pre_config(apr_pool_t *pconf, apr_pool_t *plog);
int bf_statuscache_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                               server_rec *s);
void bf_statuscache_child_init(apr_pool_t *pchild, server_rec *s);
/* A GET answered from a cached entry: true with *job (from the entry, R43
 * gate applied: poll_refused) when the entry is fresh or refuses the poll;
 * false: ask PostgreSQL, then bf_statuscache_put. */
bool bf_statuscache_get(bf_req_t *rq, const char *job_id,
                        struct bf_job_t **job);
/* Cache what PostgreSQL answered (job->manifest: the body served for
 * rq->base); partial-manifest jobs and large entries are not cached. */
void bf_statuscache_put(bf_req_t *rq, const struct bf_job_t *job);
/* DELETE: drop the job's entry (later polls ask PostgreSQL). */
void bf_statuscache_forget(bf_req_t *rq, const char *job_id);
/* BulkFhirAuth smart: a bearer token PostgreSQL accepted less than
 * BulkFhirStatusCacheTimeout ago and not yet expired (hash_hex as
 * bf_token_hash_hex); false: ask PostgreSQL, then put what it accepted
 * (unknown tokens are not cached). */
bool bf_statuscache_token_get(bf_req_t *rq, const char *hash_hex,
                              const char **client_id, const char **scope);
void bf_statuscache_token_put(bf_req_t *rq, const char *hash_hex,
                              const char *client_id, const char *scope,
                              double expires_at);

/* audit.c: the audit trail (issue #13); each call is one line at the
 * point it records */
#define BF_CMD_AUDIT "BulkFhirAudit"
#define BF_CMD_AUDIT_BATCH "BulkFhirAuditBatch"
void bf_audit_register_hooks(apr_pool_t *p);
const char *bf_audit_set_on(cmd_parms *cmd, void *dconf, int flag);
const char *bf_audit_set_batch(cmd_parms *cmd, void *dconf, const char *n,
                               const char *secs);
void bf_audit_begin(bf_req_t *rq); /* a routed request */
void bf_audit_reason(bf_req_t *rq, int status, const char *text);
void bf_audit_token(bf_req_t *rq, const char *claimed, const char *scope,
                    const char *reason);
void bf_audit_params(bf_req_t *rq, const char *params_json);
/* inside the admission transaction, after the job row: never aborts it */
bool bf_audit_kickoff(bf_req_t *rq, const struct bf_job_kickoff_t *k,
                      const char *job_id);
int bf_audit_enabled(void);

/* status_page.c: SetHandler bulkfhir-status (operators; own hook) */
int bf_status_page_handler(request_rec *r);

#endif
