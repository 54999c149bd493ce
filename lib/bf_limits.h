/* bf_limits: per-client kick-off limits (SPEC R9), httpd-free.
 *
 * Limits belong to an owner: the auth mode (none | smart | header, as
 * job.auth_mode) and the client id together (sql/0076), so a header user
 * named like a SMART client spends its own budget.
 *
 * bf_limits_admit opens a transaction, takes the owner's admission lock
 * (bulkfhir.admit) and says whether one more job may start: at most
 * max_jobs queued+running jobs (bulkfhir.client.max_jobs for a SMART
 * client, else default_max; anonymous jobs share one budget) and at most
 * rate kick-offs per minute.  On BF_ADMIT_OK the transaction stays open: the
 * caller runs bf_job_kickoff in it and then bf_limits_finish(commit).  On any
 * other outcome the transaction is already rolled back. */
#ifndef BF_LIMITS_H
#define BF_LIMITS_H

#include <stdbool.h>
#include <apr_pools.h>
#include <libpq-fe.h>

typedef enum {
    BF_ADMIT_OK = 0,
    BF_ADMIT_BUSY, /* too many active jobs */
    BF_ADMIT_RATE  /* too many kick-offs in the last minute */
} bf_admit_e;

typedef struct bf_admit_t {
    bf_admit_e verdict;
    long long active; /* queued+running jobs of the client now */
    int max_jobs;     /* its limit */
    long long recent; /* kick-offs in the last minute */
    int retry_after;  /* seconds (BF_ADMIT_RATE) */
} bf_admit_t;

/* client_id NULL: anonymous.  false: database failure (sqlstate set, no
 * transaction left open). */
bool bf_limits_admit(PGconn *conn, const char *mode, const char *client_id,
                     int default_max, int rate_per_min, bf_admit_t *out,
                     char sqlstate[6]);

/* A kick-off refused as too costly (README "Bounded cost") counts against
 * the owner's rate: bulkfhir.refuse_kickoff (sql/0073, 0076) records it in its
 * own short transaction unless the client is over rate_per_min already.
 * out->verdict: BF_ADMIT_OK (recorded) or BF_ADMIT_RATE (not recorded,
 * retry_after set); out->recent counts this refusal.  false: database
 * failure (sqlstate set). */
bool bf_limits_refused(PGconn *conn, const char *mode, const char *client_id,
                       int rate_per_min, bf_admit_t *out, char sqlstate[6]);

/* Commit (or roll back) the admission transaction. */
bool bf_limits_finish(PGconn *conn, bool commit, char sqlstate[6]);

#endif
