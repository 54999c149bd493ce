/* bulkfhir-worker: the lease heartbeat.  Its own thread and its own
 * connection, so a slow COPY or a full disk never delays it (hfs#1041: a
 * heartbeat inline with batch work lets leases lapse under load).  Every
 * interval it extends the current task's lease and refreshes the worker row;
 * zero rows for the task means the lease is lost (the job cancelled or
 * failed: a notice; expired and taken by another worker: a warning) and the
 * exporter stops between rows. */
#include "config.h"
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bf_pq.h"
#include "bf_task_log.h"

static void deadline_after(struct timespec *ts, int seconds)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += seconds;
}

static void *hb_main(void *arg)
{
    worker_hb_t *hb = arg;
    PGconn *conn = NULL;
    struct timespec due;

    pthread_mutex_lock(&hb->mu);
    deadline_after(&due, hb->interval_seconds);
    while (!hb->stop) {
        bf_task_t task;
        char job_id[40], type[72];
        bool has_task;
        unsigned gen;
        int lease;
        bool held = true, ended = false, ok = true;

        if (pthread_cond_timedwait(&hb->cv, &hb->mu, &due) != ETIMEDOUT)
            continue; /* woken: stop, or spurious */
        deadline_after(&due, hb->interval_seconds);
        /* copy what this beat needs; the main thread may move on meanwhile */
        has_task = hb->has_task && !atomic_load(&hb->lease_lost);
        task = hb->task;
        memcpy(job_id, hb->job_id, sizeof job_id);
        memcpy(type, hb->resource_type, sizeof type);
        task.job_id = job_id;
        task.resource_type = type;
        gen = hb->gen;
        lease = hb->lease_seconds;
        pthread_mutex_unlock(&hb->mu);

        if (conn && !bf_pq_healthy(conn)) {
            PQfinish(conn);
            conn = NULL;
        }
        if (!conn)
            conn = bf_pq_connect(hb->conninfo, WORKER_APPNAME " heartbeat", 5);
        if (conn) {
            if (has_task)
                ok = bf_task_heartbeat(conn, &task, hb->worker_id, lease, &held,
                                       &ended);
            if (ok)
                ok =
                    bf_task_worker_beat(conn, hb->worker_id, hb->host, hb->pid,
                                        WORKER_VERSION, has_task ? task.id : 0);
            if (!ok && !bf_pq_healthy(conn)) {
                PQfinish(conn);
                conn = NULL;
            }
        }
        if (has_task && (!conn || !ok))
            /* the lease may lapse; publish re-checks it, so keep going */
            bf_log_task(BF_LOG_WARN, &task,
                        "BF02020: heartbeat failed, retrying in %d s",
                        hb->interval_seconds);

        pthread_mutex_lock(&hb->mu);
        if (has_task && ok && !held && gen == hb->gen) {
            atomic_store(&hb->lease_lost, true);
            if (ended) /* the client cancelled, or another task failed it */
                bf_log_task(BF_LOG_NOTICE, &task,
                            "the job"
                            " ended (cancelled or failed), stopping the task");
            else
                bf_log_task(
                    BF_LOG_WARN, &task,
                    "BF02021: lease lost (expired and taken over), stopping it");
        }
    }
    pthread_mutex_unlock(&hb->mu);
    if (conn)
        PQfinish(conn);
    return NULL;
}

bool worker_hb_start(worker_hb_t *hb, const worker_config_t *c,
                     const char *worker_id, const char *host)
{
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    memset(hb, 0, sizeof *hb);
    pthread_mutex_init(&hb->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&hb->cv, &ca);
    pthread_condattr_destroy(&ca);
    hb->conninfo = strdup(c->database);
    hb->worker_id = strdup(worker_id);
    hb->host = strdup(host);
    hb->pid = (int)getpid();
    hb->lease_seconds = c->lease_seconds;
    hb->interval_seconds = c->heartbeat_seconds;
    atomic_init(&hb->lease_lost, false);
    /* signals belong to the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&hb->thread, NULL, hb_main, hb);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        bf_log(BF_LOG_ERR, "BF02022: heartbeat thread: %s", strerror(rc));
        return false;
    }
    hb->started = true;
    return true;
}

void worker_hb_set_task(worker_hb_t *hb, const bf_task_t *task)
{
    pthread_mutex_lock(&hb->mu);
    hb->gen++;
    atomic_store(&hb->lease_lost, false);
    if (task) {
        hb->has_task = true;
        hb->task = *task;
        snprintf(hb->job_id, sizeof hb->job_id, "%s", task->job_id);
        snprintf(hb->resource_type, sizeof hb->resource_type, "%s",
                 task->resource_type);
        hb->task.job_id = NULL;
        hb->task.resource_type = NULL;
    } else {
        hb->has_task = false;
    }
    pthread_mutex_unlock(&hb->mu);
}

void worker_hb_stop(worker_hb_t *hb)
{
    if (!hb->started)
        return;
    pthread_mutex_lock(&hb->mu);
    hb->stop = true;
    pthread_cond_signal(&hb->cv);
    pthread_mutex_unlock(&hb->mu);
    pthread_join(hb->thread, NULL);
    pthread_mutex_destroy(&hb->mu);
    pthread_cond_destroy(&hb->cv);
    free(hb->conninfo);
    free(hb->worker_id);
    free(hb->host);
    hb->started = false;
}
