/* bf_job: the job statements the module runs (kick-off, status, cancel,
 * files, token check).  All SQL is parameterised; results are copied into
 * the caller's pool.  Each call returns false on a database failure with
 * the SQLSTATE in sqlstate ("" when the connection broke). */
#ifndef BF_JOB_H
#define BF_JOB_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <libpq-fe.h>

/* New connections: SET statement_timeout (milliseconds; 0 = none). */
bool bf_job_session_setup(PGconn *conn, int statement_timeout_ms);

/* New pooled connections: prepare the per-request statements (status,
 * files, file lookup, token check) once.  False when one could not be
 * prepared (e.g. schema not migrated yet, or a table it names locked by
 * another session for more than 10 ms): each is prepared again on first
 * use, so this is an optimisation, never required. */
bool bf_job_prepare(PGconn *conn);

typedef struct bf_job_kickoff_t {
    const char *client_id; /* NULL: no authorization */
    const char *level;     /* system | patient | group */
    const char *group_id;  /* group level only */
    const char *params;    /* normalized JSON */
    const char *since;     /* instant or NULL */
    const char *until;     /* instant or NULL */
    const char *request_url;
    bool requires_token;
    const char *auth_mode;   /* none | smart | header (0071); NULL: smart when
                                requires_token, else none */
    const char *types;       /* text[] literal or NULL (every stored type) */
    bool separate_status;    /* Prefer: separate-export-status (R15) */
    long long file_lifetime; /* seconds; expires_at = finished_at + this */
    bool organized;          /* organizeOutputBy=Patient: organized tasks */
} bf_job_kickoff_t;

/* Records the job (bulkfhir.kickoff) and its separate_status and
 * file_lifetime (migration 0030) in one transaction: the caller's when one
 * is open (then the caller commits or rolls back), else its own. */
bool bf_job_kickoff(PGconn *conn, apr_pool_t *p, const bf_job_kickoff_t *k,
                    const char **job_id, char sqlstate[6]);

/* A current, non-deleted Group resource with this id exists. */
bool bf_job_group_exists(PGconn *conn, const char *group_id, bool *exists,
                         char sqlstate[6]);

typedef struct bf_job_t {
    const char *id;
    const char *state;     /* queued running completed failed cancelled */
    const char *client_id; /* owner key "<auth mode>:<client id>" (0071,
                              bf_auth_may_see), e.g. "smart:app", "none:" */
    const char *request_url;
    bool requires_token;
    const char *transaction_time; /* instant, UTC, microseconds */
    double finished_at;           /* epoch seconds, 0 when not finished */
    double expires_at;            /* epoch seconds, 0 when not set */
    bool expired;                 /* expires_at has passed */
    bool separate_status;     /* R16: status answers 200 + X-Export-Status */
    bool partial_manifests;   /* params.allowPartialManifests (R46) */
    const char *organized_by; /* params.organizeOutputBy or NULL */
    const char *error;        /* OperationOutcome JSON or NULL */
    long long tasks_total;    /* tasks that are not cancelled */
    long long tasks_done;     /* done or failed */
    /* queued/running jobs only (bulkfhir.job_progress, else 0) */
    int progress_pct;  /* 0..99 */
    long long written; /* resources written so far */
    /* bf_job_status only */
    bool poll_refused;    /* R43: polled sooner than min_ms */
    int poll_wait_ms;     /* then: how long to wait */
    const char *manifest; /* stored manifest for this base or NULL */
} bf_job_t;

typedef struct bf_job_status_q_t {
    int min_ms;            /* R43 gate (BulkFhirMinPollInterval), 0: none */
    bool auth;             /* the gate runs only for a job the caller may */
    const char *client_id; /* see: !auth or job owner key == client_id (the
                              caller's "<auth mode>:<client id>") */
    const char *base;      /* FHIR base: the stored manifest must match */
} bf_job_status_q_t;

/* One status poll in one statement (bulkfhir.job_status, 0060): the job,
 * the R43 gate (last_poll_at is recorded when the poll is allowed),
 * progress and the stored manifest.  *job is NULL when no such job. */
bool bf_job_status(PGconn *conn, apr_pool_t *p, const char *job_id,
                   const bf_job_status_q_t *q, bf_job_t **job,
                   char sqlstate[6]);

/* Store the rendered manifest of a completed job for base (0060). */
bool bf_job_manifest_store(PGconn *conn, const char *job_id, const char *base,
                           const char *manifest, char sqlstate[6]);

/* Published files of a job (bf_manifest_file_t), ordered kind, type, part,
 * with lo < id <= hi (hi < 0: no upper bound). */
bool bf_job_files(PGconn *conn, apr_pool_t *p, const char *job_id, long long lo,
                  long long hi, apr_array_header_t **files, char sqlstate[6]);

/* Page `page` (1..) of a job's partial manifests (R46,
 * bulkfhir.manifest_page_take): recorded on first use, then fixed.
 * *found false when the page does not exist (yet). */
bool bf_job_manifest_page(PGconn *conn, const char *job_id, int page,
                          bool *found, long long *lo, long long *hi,
                          bool *final, char sqlstate[6]);

/* Cancel: job (queued|running|completed|failed) -> cancelled and its
 * queued/running tasks -> cancelled, in one statement.  *found is false when
 * the job does not exist or is already cancelled. */
bool bf_job_cancel(PGconn *conn, const char *job_id, bool *found,
                   char sqlstate[6]);

/* A published file of a job that is not cancelled.  *found false if none;
 * *client_id is the job's owner key ("<auth mode>:<client id>", as
 * bf_job_t.client_id); *expired: the job's expires_at has passed;
 * *types_json: the job's params._type (JSON: a string or an array of
 * strings) or NULL when it has none (every type). */
bool bf_job_file_lookup(PGconn *conn, apr_pool_t *p, const char *job_id,
                        const char *name, bool *found, const char **client_id,
                        bool *expired, const char **types_json,
                        char sqlstate[6]);

/* Bearer token check: hash_hex is the bytea literal "\x<sha256 hex>".
 * *found false when unknown, expired or its client is disabled;
 * *expires_at: the token's expiry, epoch seconds. */
bool bf_job_token_check(PGconn *conn, apr_pool_t *p, const char *hash_hex,
                        bool *found, const char **client_id, const char **scope,
                        double *expires_at, char sqlstate[6]);

/* ---- Group read/search (R12), bf_job_group.c ---- */

/* The current Group resource (JSON) or *json NULL. */
bool bf_job_group_read(PGconn *conn, apr_pool_t *p, const char *group_id,
                       const char **json, char sqlstate[6]);

typedef struct bf_group_query_t {
    const char *name;      /* starts-with, case-insensitive; NULL: any */
    const char *id_system; /* identifier system; NULL: any */
    const char *id_value;  /* identifier value; NULL: any */
    bool id_system_none;   /* "|value": the identifier has no system */
} bf_group_query_t;

typedef struct bf_group_hit_t {
    const char *id;
    const char *json;
} bf_group_hit_t;

/* Matching current Groups ordered by id, at most limit of them
 * (bf_group_hit_t); *total counts all matches. */
bool bf_job_group_search(PGconn *conn, apr_pool_t *p, const bf_group_query_t *q,
                         int limit, apr_array_header_t **found,
                         long long *total, char sqlstate[6]);

#endif
