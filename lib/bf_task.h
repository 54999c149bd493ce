/* bf_task: every statement the worker runs against bulkfhir.* (DESIGN
 * invariants 1-3): register, claim, job fetch, snapshot wait, heartbeat,
 * publish + complete, fail, release, and the sweeper's statements.
 *
 * Every call that changes a task checks the caller still holds it
 * (locked_by, fencing, state running) in the same statement or
 * transaction.  Lock order is always job row, then task row.  All calls
 * return false on a database error (already logged by bf_pq with the
 * context); *_out flags say what happened when they returned true. */
#ifndef BF_TASK_H
#define BF_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_tables.h>
#include <libpq-fe.h>

#include "bf_ndjson.h"

typedef struct bf_task {
    int64_t id;
    const char *job_id;
    const char *resource_type;
    int shard;
    int shard_count;
    int attempt;
    int max_attempts;
    int64_t fencing;
    const char *kind; /* 'type' | 'organized' (0020) */
} bf_task_t;

typedef struct bf_task_job {
    const char *id;
    const char *level;            /* system | patient | group */
    const char *group_id;         /* NULL unless group */
    const char *params;           /* jsonb as text */
    const char *since;            /* timestamptz as text, or NULL */
    const char *until;            /* timestamptz as text, or NULL */
    const char *transaction_time; /* timestamptz as text */
    const char *snapshot;         /* pg_snapshot as text */
    const char *xid_horizon;      /* xid8 as text (0006), or NULL */
    const char *state;
} bf_task_job_t;

/* bulkfhir.worker: insert or refresh this worker's row; delete it. */
bool bf_task_register(PGconn *conn, const char *worker_id, const char *host,
                      int pid, const char *version);
bool bf_task_unregister(PGconn *conn, const char *worker_id);
/* heartbeat_at = now(), current_task = task_id (0: NULL); re-inserts the row
 * when a sweeper removed it. */
bool bf_task_worker_beat(PGconn *conn, const char *worker_id, const char *host,
                         int pid, const char *version, int64_t task_id);

/* Claim the next queued task of a live job: one UPDATE ... WHERE id =
 * (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING, bumping attempt and
 * fencing.  *out is NULL when nothing is claimable. */
bool bf_task_claim(PGconn *conn, apr_pool_t *p, const char *worker_id,
                   int lease_seconds, bf_task_t **out);

/* Fetch the task's job and mark it running (started_at) when still
 * queued. */
bool bf_task_job_fetch(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                       bf_task_job_t **out);

/* DESIGN invariant 1: > 0 while a transaction that may have stamped
 * versions at or before transaction_time is still in progress.  With the
 * job's xid_horizon (0006: the kick-off's own xid, taken after its
 * snapshot): while pg_snapshot_xmin(pg_current_snapshot()) < xid_horizon.
 * Without it (older jobs): one in the job snapshot's xip, or any xid below
 * a horizon (the next xid as of the first call; horizon "" on the first
 * call, then pass it back). */
bool bf_task_snapshot_pending(PGconn *conn, const bf_task_job_t *job,
                              char horizon[32], long *pending);

/* Extend the lease; *held false when the task is no longer ours (cancelled,
 * failed, or stolen after expiry).  *job_ended true when the job itself is
 * no longer queued or running (cancelled by its client, failed by another
 * task, or deleted): losing the task then is expected, not a fault. */
bool bf_task_heartbeat(PGconn *conn, const bf_task_t *task,
                       const char *worker_id, int lease_seconds, bool *held,
                       bool *job_ended);

/* The COPY statements of a task (lib/bf_task_sql.c); false (message in
 * *err) when the task or job holds a value that cannot be quoted safely,
 * or a statement run to build it failed: then sqlstate (when not NULL)
 * gets its SQLSTATE ("" when none, e.g. 57014 for statement_timeout).
 *
 * Output of a 'type' task: one binary jsonb column.  skip >= 0 orders the
 * rows by id and skips that many (resuming after parts an earlier attempt
 * published); -1: no order. */
bool bf_task_export_sql(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                        const bf_task_job_t *job, int64_t skip,
                        const char **sql, const char **err, char sqlstate[6]);
/* The deleted versions of a 'type' task (R54, R55): one transaction Bundle
 * per line; *sql NULL when the job has no _since. */
bool bf_task_deleted_sql(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                         const bf_task_job_t *job, const char **sql,
                         const char **err, char sqlstate[6]);
/* The resource blocks of an 'organized' task (R53): three binary columns
 * (int8 block lines, int8 block bytes, jsonb); the first two are set on a
 * block's header line only. */
bool bf_task_organized_sql(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                           const bf_task_job_t *job, const char **sql,
                           const char **err, char sqlstate[6]);

/* Publish the parts of every writer in the chain w (bf_ndjson_chain; one
 * bulkfhir.file row each, parts already published skipped), mark the task
 * done and, when it was the last unfinished task, the job completed; all
 * in one transaction that first locks the job row and checks the task is
 * still ours.  The transaction that completes the job also writes and
 * publishes the job's lenient warnings (params._warnings, R60) as an
 * OperationOutcome error file in w's directory.  *published false: not
 * ours any more (the caller deletes the parts), and *job_ended true when
 * that is because the job was cancelled, failed or deleted meanwhile;
 * *job_completed true when this completed the job. */
bool bf_task_publish(PGconn *conn, const bf_task_t *task, const char *worker_id,
                     const bf_ndjson_t *w, bool *published, bool *job_ended,
                     bool *job_completed);

/* Per-part publication (allowPartialManifests, R46): commit one file row
 * for a closed part while the task is still ours (fencing checked).
 * *ours false: the task is no longer ours; the row was not written. */
bool bf_task_publish_part(PGconn *conn, const bf_task_t *task,
                          const char *worker_id, const char *kind,
                          const char *resource_type,
                          const bf_ndjson_part_t *part, bool *ours);
/* Rows and parts an earlier attempt of the task already published
 * (kind output), to resume after them. */
bool bf_task_published_so_far(PGconn *conn, const bf_task_t *task,
                              int64_t *rows, int *parts);

/* Why an attempt failed.  detail goes to the task's errors[] (operators:
 * the status page, SQL), outcome to the job's OperationOutcome when this
 * failure ends the job (clients: never SQL, SQLSTATE, task ids or paths). */
typedef struct bf_task_failure {
    const char *detail;  /* full message, paths already cut */
    const char *outcome; /* client-facing diagnostics */
    const char *code;    /* its issue code: "exception", "too-costly" */
    bool final;          /* deterministic (e.g. too costly): no retry */
} bf_task_failure_t;

/* Record a failed attempt (errors[] gets {attempt, at, message, worker}):
 * back to queued with run_after = now() + 2^attempt s, or, with no attempts
 * left or a final failure, the task failed, the job failed with an
 * OperationOutcome (f->outcome, f->code) and its other unfinished tasks
 * cancelled.  expired_only: only when the lease has expired (the sweeper).
 * *applied false when the task was not ours (as given by locked_by/fencing);
 * *job_failed when the job failed. */
bool bf_task_fail(PGconn *conn, const bf_task_t *task, const char *locked_by,
                  const bf_task_failure_t *f, bool expired_only, bool *applied,
                  bool *job_failed);

/* The limits of a task's statements (sql/0070_task_limits.sql), applied on
 * conn for the statements that follow: jit off, statement_timeout,
 * work_mem.  *fallback true when the database has no 0070 yet (built-in
 * defaults applied).  bf_task_limits_reset: back to the session defaults. */
typedef struct bf_task_limits {
    int64_t statement_timeout_ms; /* 0: none */
    int64_t work_mem_kb;
    int64_t backend_memory_mb; /* reconnect bound, 0: never */
} bf_task_limits_t;
bool bf_task_limits_set(PGconn *conn, bf_task_limits_t *out, bool *fallback);
bool bf_task_limits_reset(PGconn *conn);
/* The memory of conn's backend's memory contexts, bytes; -1 when the
 * server cannot say (before PostgreSQL 14, no privilege). */
bool bf_task_backend_memory(PGconn *conn, int64_t *bytes);

/* Give the task back (shutdown): queued again at once, the attempt not
 * counted, a NOTIFY so another worker takes it. */
bool bf_task_release(PGconn *conn, const bf_task_t *task, const char *worker_id,
                     bool *released);

/* Sweeper: up to `limit` running tasks whose lease expired, with their
 * holder (array of bf_task_swept_t); the caller passes each to
 * bf_task_fail(..., expired_only = true). */
typedef struct bf_task_swept {
    bf_task_t task;
    const char *locked_by;
} bf_task_swept_t;
bool bf_task_expired(PGconn *conn, apr_pool_t *p, int limit,
                     apr_array_header_t **out);

/* Cancelled jobs none of whose tasks is running (const char * ids). */
bool bf_task_cancelled_jobs(PGconn *conn, apr_pool_t *p, int limit,
                            apr_array_header_t **out);
/* Delete the file rows of a cancelled job (after its directory is gone). */
bool bf_task_forget_files(PGconn *conn, const char *job_id);
/* Jobs whose directory may hold stale parts: queued or running. */
bool bf_task_live_jobs(PGconn *conn, apr_pool_t *p, int limit,
                       apr_array_header_t **out);
/* Running attempts of a job: "task.fencing" strings in a set (hash). */
bool bf_task_running_attempts(PGconn *conn, apr_pool_t *p, const char *job_id,
                              apr_hash_t **out);
/* Published file names of a job, as a set. */
bool bf_task_file_names(PGconn *conn, apr_pool_t *p, const char *job_id,
                        apr_hash_t **out);
/* Delete worker rows whose heartbeat is older than 3 leases. */
bool bf_task_prune_workers(PGconn *conn, int lease_seconds, long *deleted);

/* True for a resource type name: ^[A-Z][A-Za-z]{0,63}$. */
bool bf_task_valid_type(const char *s);

#endif
