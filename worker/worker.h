/* bulkfhir-worker: claims export tasks from PostgreSQL and writes NDJSON
 * parts to the export root (DESIGN invariants 1-6).
 *
 *   main.c       CLI, daemonize, signals, pidfile
 *   config.c     config table, file parsing, logging the config in effect
 *   loop.c       connect/LISTEN/claim/wait loop, task outcome handling
 *   heartbeat.c  the lease heartbeat thread (its own connection)
 *   export.c     snapshot wait and binary COPY streaming of one task
 *   sweep.c      expired leases, cancelled job dirs, stale parts, old workers
 */
#ifndef WORKER_H
#define WORKER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <apr_pools.h>
#include <apr_tables.h>
#include <libpq-fe.h>

#include "bf_log.h"
#include "bf_task.h"

#define WORKER_VERSION PACKAGE_VERSION
#define WORKER_APPNAME "bulkfhir-worker"

/* ---- config.c ---- */
typedef struct worker_config {
    const char *database; /* conninfo or URI */
    const char *export_root;
    int lease_seconds;
    int heartbeat_seconds;
    int poll_seconds;
    int64_t max_part_resources;
    int64_t max_part_bytes;
    int64_t memory_limit; /* MiB of RSS, checked per chunk; 0: off */
    bf_log_level_e log_level;
} worker_config_t;

/* key = value overrides from the command line, applied after the file */
typedef struct worker_overrides {
    apr_array_header_t *keys;   /* const char * */
    apr_array_header_t *values; /* const char * */
} worker_overrides_t;

void worker_config_defaults(worker_config_t *c);
/* Set one key; false with *err on an unknown key or a bad value. */
bool worker_config_set(apr_pool_t *p, worker_config_t *c, const char *key,
                       const char *value, const char **err);
/* Defaults, then the file (when path != NULL), then the overrides. */
bool worker_config_load(apr_pool_t *p, worker_config_t *c, const char *path,
                        const worker_overrides_t *ov);
void worker_config_log(apr_pool_t *p, const worker_config_t *c,
                       const char *path, const char *worker_id);
bool worker_parse_log_level(const char *s, bf_log_level_e *out);

/* ---- main.c: signal flags (handlers only set these) ---- */
extern volatile sig_atomic_t worker_stop_requested;
extern volatile sig_atomic_t worker_reload_requested;
/* Wait for fd (or just sleep when fd < 0) up to timeout_ms with the
 * shutdown/reload signals unblocked; returns >0 when fd is ready, 0 on
 * timeout or signal, -1 on error. */
int worker_wait(int fd, short events, int timeout_ms);

/* ---- heartbeat.c ---- */
typedef struct worker_hb {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    bool stop;
    /* set by the main thread under mu; gen counts task changes */
    bool has_task;
    bf_task_t task;
    char job_id[40];
    char resource_type[72];
    unsigned gen;
    int lease_seconds;
    int interval_seconds;
    /* fixed for the thread's life */
    char *conninfo;
    char *worker_id;
    char *host;
    int pid;
    /* set by the thread, read by the exporter between rows */
    atomic_bool lease_lost;
} worker_hb_t;

bool worker_hb_start(worker_hb_t *hb, const worker_config_t *c,
                     const char *worker_id, const char *host);
void worker_hb_set_task(worker_hb_t *hb, const bf_task_t *task);
void worker_hb_stop(worker_hb_t *hb);

/* ---- loop.c ---- */
typedef struct worker {
    apr_pool_t *pool;
    worker_config_t cfg;
    apr_pool_t *cfg_pool;
    const char *config_path;
    worker_overrides_t overrides;
    const char *id;
    const char *host;
    bool once;
    PGconn *conn;
    worker_hb_t hb;
    unsigned backoff_ms;
    unsigned sweeps;
    /* the limits of the task in progress (export.c, sql/0070) */
    bf_task_limits_t limits;
    bool limits_applied;    /* on w->conn, until reset */
    bool limits_read;       /* w->limits are this task's */
    bool limits_warned;     /* the no-0070 fallback was logged */
    bool reconnect_wanted;  /* drop w->conn after the task */
    const char *costly_why; /* WORKER_EXPORT_COSTLY: for the client */
} worker_t;

int worker_run(worker_t *w);
/* RssAnon (KiB) of conn's backend when it runs on this host and /proc
 * shows it, else -1. */
int64_t worker_backend_anon_kib(PGconn *conn);
/* msg with every absolute path cut to its last component (for clients). */
const char *worker_public_message(apr_pool_t *p, const char *msg);
/* (Re)connect with jittered exponential backoff until connected or a stop
 * is requested; LISTENs and registers.  False when stopping. */
bool worker_db_ensure(worker_t *w);

/* ---- export.c ---- */
typedef enum {
    WORKER_EXPORT_OK,      /* parts closed and durable, ready to publish */
    WORKER_EXPORT_FAILED,  /* *msg says why; counts as a failed attempt */
    WORKER_EXPORT_LOST,    /* lease lost: drop the attempt silently */
    WORKER_EXPORT_STOPPED, /* shutdown requested: release the task */
    WORKER_EXPORT_DBERROR, /* the connection broke */
    WORKER_EXPORT_COSTLY   /* over a limit (statement_timeout, memory):
                            * *msg the detail, w->costly_why what the
                            * client reads; the job fails at once */
} worker_export_rc;

/* The client-facing diagnostics of a job that rc ends (why: the
 * WORKER_EXPORT_COSTLY reason, or the internal message of a failure, read
 * only for a full disk; WORKER_EXPORT_LOST: its worker died). */
const char *worker_outcome(apr_pool_t *p, const bf_task_t *task,
                           worker_export_rc rc, const char *why);

/* The worker's resident memory in MiB (/proc/self/statm), -1 unknown. */
int64_t worker_rss_mb(void);
/* True (with *rss_mb) when memory_limit is set and the RSS is past it. */
bool worker_memory_over(const worker_t *w, int64_t *rss_mb);

worker_export_rc worker_export(worker_t *w, apr_pool_t *p,
                               const bf_task_t *task, const bf_task_job_t *job,
                               bf_ndjson_t **out, const char **msg);

/* ---- sweep.c ---- */
void worker_sweep(worker_t *w);

/* Remove the files (each with bf_share_unlink_unused) and the directory of
 * one job; false when something is left (busy file, late writer, error). */
bool worker_remove_job_dir(worker_t *w, apr_pool_t *p, const char *job_id);
/* Remove the parts of a job that no running attempt and no file row owns. */
void worker_sweep_job_parts(worker_t *w, apr_pool_t *p, const char *job_id);

#endif
