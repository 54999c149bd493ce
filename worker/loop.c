/* bulkfhir-worker: the main loop.  Connect (jittered exponential backoff),
 * LISTEN bulkfhir_task, register; then claim a task, export it, publish or
 * fail it; with nothing to claim wait on the socket for a NOTIFY (a hint
 * only) or poll_seconds.  Sweeps every poll interval. */
#include "config.h"
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apr_strings.h>

#include "bf_pq.h"
#include "bf_task_log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool session_setup(worker_t *w)
{
    return bf_pq_exec(w->conn, "session setup", "SET TimeZone = 'UTC'", 0, NULL,
                      NULL, NULL) &&
           bf_pq_exec(w->conn, "session setup", "SET DateStyle = 'ISO'", 0,
                      NULL, NULL, NULL) &&
           bf_pq_exec(w->conn, "listen", "LISTEN bulkfhir_task", 0, NULL, NULL,
                      NULL) &&
           bf_task_register(w->conn, w->id, w->host, (int)getpid(),
                            WORKER_VERSION);
}

bool worker_db_ensure(worker_t *w)
{
    while (!worker_stop_requested) {
        unsigned ms;

        if (w->conn && bf_pq_healthy(w->conn))
            return true;
        if (w->conn) {
            bf_log(BF_LOG_WARN,
                   "BF02040: worker %s: database connection lost,"
                   " reconnecting",
                   w->id);
            PQfinish(w->conn);
            w->conn = NULL;
        }
        w->conn = bf_pq_connect(w->cfg.database, WORKER_APPNAME, 5);
        w->limits_applied = false; /* a new session has none */
        if (w->conn && session_setup(w)) {
            if (w->backoff_ms)
                bf_log(BF_LOG_NOTICE, "worker %s: database connection restored",
                       w->id);
            w->backoff_ms = 0;
            return true;
        }
        if (w->conn) {
            PQfinish(w->conn);
            w->conn = NULL;
        }
        w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (w->backoff_ms > BACKOFF_MAX_MS)
            w->backoff_ms = BACKOFF_MAX_MS;
        /* full jitter in [backoff/2, backoff] so workers do not stampede */
        ms = w->backoff_ms / 2 + (unsigned)(random() % (w->backoff_ms / 2 + 1));
        worker_wait(-1, 0, (int)ms);
    }
    return false;
}

static void drain_notifies(PGconn *conn)
{
    PGnotify *n;

    if (!PQconsumeInput(conn))
        return;
    while ((n = PQnotifies(conn)) != NULL) {
        bf_log(BF_LOG_DEBUG, "notify %s: %s", n->relname, n->extra);
        PQfreemem(n);
    }
}

static void reload(worker_t *w)
{
    apr_pool_t *np;
    worker_config_t nc;
    bool db_changed;

    worker_reload_requested = 0;
    apr_pool_create(&np, w->pool);
    bf_log(BF_LOG_NOTICE, "worker %s: SIGHUP: reloading %s", w->id,
           w->config_path ? w->config_path : "(no config file)");
    if (!worker_config_load(np, &nc, w->config_path, &w->overrides)) {
        bf_log(BF_LOG_ERR,
               "BF02041: worker %s: reload failed, keeping the"
               " previous configuration",
               w->id);
        apr_pool_destroy(np);
        return;
    }
    if (nc.export_root[0] != '/')
        nc.export_root = apr_pstrcat(np, "/", nc.export_root, NULL);
    db_changed = strcmp(nc.database, w->cfg.database) != 0;
    /* the heartbeat thread copies what it needs at start: restart it */
    worker_hb_stop(&w->hb);
    w->cfg = nc;
    apr_pool_destroy(w->cfg_pool);
    w->cfg_pool = np;
    bf_log_set(NULL, NULL, w->cfg.log_level);
    worker_config_log(np, &w->cfg, w->config_path, w->id);
    if (!worker_hb_start(&w->hb, &w->cfg, w->id, w->host))
        worker_stop_requested = 1;
    if (db_changed && w->conn) {
        bf_task_unregister(w->conn, w->id);
        PQfinish(w->conn);
        w->conn = NULL;
    }
}

/* What clients may see of an error (it ends up in the job's
 * OperationOutcome when the attempts are used up): every absolute path is
 * cut to its last component, so no server directory leaks.  The worker log
 * keeps the full message. */
const char *worker_public_message(apr_pool_t *p, const char *msg)
{
    char *out, *o;
    const char *s;

    if (!msg)
        return NULL;
    out = o = apr_palloc(p, strlen(msg) + 1);
    for (s = msg; *s;) {
        if (*s == '/' && (s == msg || strchr(" \t'\"(=", s[-1]))) {
            const char *end = s, *last = s + 1;

            while (*end && !strchr(" \t'\"),;", *end) &&
                   !(*end == ':' && (end[1] == ' ' || !end[1]))) {
                if (*end == '/')
                    last = end + 1;
                end++;
            }
            memcpy(o, last, (size_t)(end - last));
            o += end - last;
            s = end;
            continue;
        }
        *o++ = *s++;
    }
    *o = '\0';
    return out;
}

/* What a client reads when a failure ends its job: the type, what went
 * wrong and what to do; never SQL, SQLSTATE, task ids, worker ids or
 * paths (the task's errors[] and the worker log keep the detail). */
const char *worker_outcome(apr_pool_t *p, const bf_task_t *task,
                           worker_export_rc rc, const char *why)
{
    const char *type = bf_task_valid_type(task->resource_type)
                           ? task->resource_type
                           : "a resource type";

    if (rc == WORKER_EXPORT_COSTLY)
        return apr_psprintf(
            p,
            "The export of %s is too costly: %s. Narrow it"
            " (_typeFilter, fewer types in _type, or _since) and"
            " try again.",
            type, why ? why : "it is over a limit");
    if (rc == WORKER_EXPORT_LOST) /* lease expired: the worker died */
        return apr_psprintf(
            p,
            "The export of %s was given up after %d attempts:"
            " each time, the worker running it stopped (crashed,"
            " ran out of memory or was killed). It may be too"
            " costly: narrow it (_typeFilter, fewer types in"
            " _type, or _since) and try again.",
            type, task->attempt);
    /* the one server condition worth naming: a full disk (errno text) */
    if (why && (strstr(why, strerror(ENOSPC)) || strstr(why, strerror(EDQUOT))))
        return apr_psprintf(p,
                            "The export of %s failed after %d attempt(s): the"
                            " server's export storage is full (%s).",
                            type, task->attempt,
                            strstr(why, strerror(ENOSPC)) ? strerror(ENOSPC)
                                                          : strerror(EDQUOT));
    return apr_psprintf(p,
                        "The export of %s failed after %d attempt(s) with an"
                        " internal error; the server's operators can find the"
                        " details in its logs.",
                        type, task->attempt);
}

int64_t worker_backend_anon_kib(PGconn *conn)
{
    const char *host = PQhost(conn);
    char path[64], comm[32] = "", line[256];
    int pid = PQbackendPID(conn);
    int64_t kib = -1;
    FILE *f;

    /* only a server on this host: a unix socket or loopback */
    if (pid <= 0 || !host ||
        !(host[0] == '/' || !strcmp(host, "localhost") ||
          !strcmp(host, "127.0.0.1") || !strcmp(host, "::1")))
        return -1;
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    if (!fgets(comm, sizeof comm, f))
        comm[0] = '\0';
    fclose(f);
    if (strncmp(comm, "postgres", 8) != 0) /* another pid namespace */
        return -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8)) {
            kib = strtoll(line + 8, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* After a task: drop the connection when its backend kept much memory (a
 * big task's caches and allocator arenas stay with a long-lived backend)
 * or the task asked for it.  The backend's memory is what its memory
 * contexts hold (PostgreSQL 14+), and, when the server runs on this host,
 * its private resident memory (RssAnon), whichever is larger. */
static void backend_check(worker_t *w, const bf_task_t *task)
{
    int64_t ctx = -1, anon = -1, mb, bound = w->limits.backend_memory_mb;
    bool read = w->limits_read;

    w->limits_read = false;
    if (!w->conn || !bf_pq_healthy(w->conn)) {
        w->reconnect_wanted = false;
        return;
    }
    if (!w->reconnect_wanted && read && bound > 0) {
        if (!bf_task_backend_memory(w->conn, &ctx))
            return;
        anon = worker_backend_anon_kib(w->conn);
        mb = ctx / (1024 * 1024);
        if (anon / 1024 > mb)
            mb = anon / 1024;
        if (mb <= bound)
            return;
        bf_log_task(BF_LOG_NOTICE, task,
                    "database backend"
                    " %d holds %" PRId64 " MiB (contexts %" PRId64
                    " MiB, RssAnon %" PRId64
                    " MiB), over task_backend_memory_mb %" PRId64 ";"
                    " reconnecting",
                    PQbackendPID(w->conn), mb,
                    ctx < 0 ? -1 : ctx / (1024 * 1024),
                    anon < 0 ? -1 : anon / 1024, bound);
    } else if (w->reconnect_wanted) {
        bf_log_task(BF_LOG_NOTICE, task,
                    "reconnecting to"
                    " release the memory the task held");
    } else {
        return;
    }
    w->reconnect_wanted = false;
    w->limits_applied = false;
    PQfinish(w->conn);
    w->conn = NULL;
    worker_db_ensure(w);
}

/* msg on one line (a server message ends with a newline, a DETAIL adds
 * more): for the task's errors[] and the log. */
static const char *one_line(apr_pool_t *p, const char *msg)
{
    char *s = apr_pstrdup(p, msg), *c;
    size_t n;

    for (c = s; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

/* Run one claimed task to its end: published, failed, released or lost. */
static void run_task(worker_t *w, apr_pool_t *p, const bf_task_t *task)
{
    bf_task_job_t *job = NULL;
    bf_ndjson_t *nd = NULL;
    const char *msg = NULL;
    worker_export_rc rc;
    bool published, ended, completed, applied, failed = false, released;
    bf_task_failure_t f = { NULL, NULL, NULL, false };

    worker_hb_set_task(&w->hb, task);
    bf_log_task(BF_LOG_INFO, task,
                "claimed, attempt %d of %d,"
                " fencing %" PRId64,
                task->attempt, task->max_attempts, task->fencing);
    if (!bf_task_job_fetch(w->conn, p, task, &job)) {
        rc = bf_pq_healthy(w->conn) ? WORKER_EXPORT_FAILED
                                    : WORKER_EXPORT_DBERROR;
        msg = "cannot read the job";
    } else if (!job) {
        rc = WORKER_EXPORT_LOST; /* job deleted */
        msg = "job gone";
    } else {
        rc = worker_export(w, p, task, job, &nd, &msg);
    }
    /* publish and fail run without the task's limits */
    if (w->limits_applied && bf_pq_healthy(w->conn)) {
        if (bf_task_limits_reset(w->conn))
            w->limits_applied = false;
        else
            w->reconnect_wanted = true;
    }

    switch (rc) {
    case WORKER_EXPORT_OK:
        if (!bf_task_publish(w->conn, task, w->id, nd, &published, &ended,
                             &completed)) {
            /* outcome unknown (the commit may have happened): keep the parts;
             * if unpublished they are stale once the lease moves on */
            bf_log_task(
                BF_LOG_WARN, task,
                "BF02042: publish"
                " failed; the lease will expire and the task run again");
            break;
        }
        if (!published) {
            if (ended) /* the client cancelled, or another task failed it */
                bf_log_task(BF_LOG_NOTICE, task,
                            "not"
                            " published, the job ended meanwhile (cancelled or"
                            " failed); parts deleted");
            else
                bf_log_task(
                    BF_LOG_WARN, task,
                    "BF02043: not"
                    " published, the task is no longer ours (taken over after"
                    " its lease expired); parts deleted");
            bf_ndjson_abort(nd);
            break;
        }
        bf_log_task(BF_LOG_INFO, task, "published %zu file(s)",
                    bf_ndjson_part_count(nd));
        if (completed) {
            bf_log(BF_LOG_NOTICE, "job %s: completed", task->job_id);
            worker_sweep_job_parts(w, p, task->job_id);
        }
        break;
    case WORKER_EXPORT_DBERROR:
        bf_log_task(BF_LOG_WARN, task, "BF02044: %s", msg);
        bf_ndjson_abort(nd);
        if (!worker_db_ensure(w))
            break; /* stopping: the lease will expire */
        /* record the failed attempt on the new connection */
        __attribute__((fallthrough));
    case WORKER_EXPORT_FAILED:
    case WORKER_EXPORT_COSTLY:
        bf_ndjson_abort(nd);
        msg = one_line(p, msg ? msg : "export failed");
        f.detail = worker_public_message(p, msg);
        f.outcome = worker_outcome(
            p, task, rc, rc == WORKER_EXPORT_COSTLY ? w->costly_why : msg);
        f.code = rc == WORKER_EXPORT_COSTLY ? "too-costly" : "exception";
        f.final = rc == WORKER_EXPORT_COSTLY;
        if (!bf_task_fail(w->conn, task, w->id, &f, false, &applied, &failed))
            applied = true; /* not recorded: still worth a warning */
        if (applied && f.final)
            bf_log_task(BF_LOG_WARN, task,
                        "BF02050: too costly"
                        " on attempt %d, not retried: %s (%s)",
                        task->attempt, w->costly_why, msg);
        if (!applied) /* cancelled (or taken over) under us: not a fault */
            bf_log_task(
                BF_LOG_NOTICE, task,
                "attempt %d"
                " failed after the task stopped being ours (%s); not counted",
                task->attempt, msg);
        else if (!f.final)
            bf_log_task(BF_LOG_WARN, task,
                        "BF02045: attempt %d"
                        " of %d failed: %s",
                        task->attempt, task->max_attempts, msg);
        if (applied && failed)
            bf_log(BF_LOG_WARN,
                   "BF02046: job %s: failed: task %" PRId64 " (%s)"
                   " %s",
                   task->job_id, task->id, task->resource_type,
                   f.final ? "was too costly"
                           : apr_psprintf(p, "used all %d attempts",
                                          task->max_attempts));
        break;
    case WORKER_EXPORT_LOST:
        bf_ndjson_abort(nd);
        bf_log_task(BF_LOG_NOTICE, task,
                    "stopped, lease lost"
                    " (%s); parts deleted",
                    msg ? msg : "cancelled or taken over");
        break;
    case WORKER_EXPORT_STOPPED:
        bf_ndjson_abort(nd);
        if (bf_task_release(w->conn, task, w->id, &released) && released)
            bf_log_task(BF_LOG_NOTICE, task,
                        "shutting down,"
                        " lease released");
        break;
    }
    worker_hb_set_task(&w->hb, NULL);
    backend_check(w, task);
}

int worker_run(worker_t *w)
{
    double last_sweep = 0;
    int rc = 0;

    if (!worker_hb_start(&w->hb, &w->cfg, w->id, w->host))
        return 1;
    while (!worker_stop_requested) {
        apr_pool_t *tp;
        bf_task_t *task = NULL;

        if (worker_reload_requested)
            reload(w);
        if (!worker_db_ensure(w))
            break;
        if (mono_s() - last_sweep >= w->cfg.poll_seconds) {
            worker_sweep(w);
            last_sweep = mono_s();
        }
        drain_notifies(w->conn);
        apr_pool_create(&tp, w->pool);
        if (!bf_task_claim(w->conn, tp, w->id, w->cfg.lease_seconds, &task)) {
            apr_pool_destroy(tp);
            if (bf_pq_healthy(w->conn))
                worker_wait(-1, 0, w->cfg.poll_seconds * 1000);
            continue;
        }
        if (task) {
            run_task(w, tp, task);
            apr_pool_destroy(tp);
            continue;
        }
        apr_pool_destroy(tp);
        if (w->once)
            break;
        /* nothing claimable: sleep until a NOTIFY, a signal or the poll */
        if (worker_wait(PQsocket(w->conn), POLLIN, w->cfg.poll_seconds * 1000) >
            0)
            drain_notifies(w->conn);
    }
    worker_hb_stop(&w->hb);
    if (w->conn) {
        if (bf_pq_healthy(w->conn))
            bf_task_unregister(w->conn, w->id);
        PQfinish(w->conn);
        w->conn = NULL;
    }
    bf_log(BF_LOG_NOTICE, "worker %s: stopped", w->id);
    return rc;
}
