/* bulkfhir-worker: the sweeper, run by every worker every poll interval.
 * Everything here is safe to run concurrently on many hosts: expired leases
 * are failed under the same job-then-task locks and fencing check as a
 * worker's own failure; file removal only touches names no live attempt and
 * no published row can own.
 *   - running tasks whose lease expired: back to the queue (or the job fails
 *     when the attempts are used up);
 *   - cancelled jobs: directory removed, file rows deleted (looked at again
 *     for a few leases, for a worker that had not noticed yet);
 *   - expired jobs (expires_at passed): directory removed, then the job row
 *     with its tasks and file rows (status then answers 404);
 *   - directories in the export root that no job row owns (every 12th);
 * A file is unlinked only through bf_share_unlink_unused(): the module holds
 * a lock while it serves one (R8, the protocol in lib/bf_share.h), and a
 * busy file waits for the next sweep.
 *   - stale parts (every 12th sweep) in live jobs: a part whose attempt is
 *     not running and that has no file row is garbage (invariant 2);
 *   - worker rows silent for 3 leases are deleted. */
#include "config.h"
#include "worker.h"
#include "bf_id.h"
#include "bf_task_log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>

#include "bf_share.h"
#include "bf_sweepq.h"

/* Unlink dir/name unless it is being served (bf_share_unlink_unused).
 * 1: removed or already gone; 0: busy, try again next sweep; -1: error. */
static int unlink_unused(int dfd, const char *job_id, const char *name)
{
    const char *op;
    int err;

    if (bf_share_unlink_unused(dfd, name, &err, &op))
        return 1;
    if (err == EWOULDBLOCK) {
        bf_log(BF_LOG_INFO, "job %s: %s is being served, removing it later",
               job_id, name);
        return 0;
    }
    if (!strcmp(op, "flock"))
        bf_log(BF_LOG_WARN, "BF02501: job %s: flock %s: %s", job_id, name,
               strerror(err));
    else
        bf_log(BF_LOG_WARN, "BF02500: job %s: remove %s: %s", job_id, name,
               strerror(err));
    return -1;
}

bool worker_remove_job_dir(worker_t *w, apr_pool_t *p, const char *job_id)
{
    const char *dir;
    DIR *d;
    struct dirent *e;
    int removed = 0, left = 0;

    if (!bf_id_is_uuid(job_id))
        return false;
    dir = bf_share_job_dir(p, w->cfg.export_root, job_id);
    d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return true;
        bf_log(BF_LOG_WARN, "BF02030: job %s: open %s: %s", job_id, dir,
               strerror(errno));
        return false;
    }
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlink_unused(dirfd(d), job_id, e->d_name) == 1)
            removed++;
        else
            left++;
    }
    closedir(d);
    if (left)
        return false;
    if (rmdir(dir) != 0 && errno != ENOENT) {
        /* ENOTEMPTY: a late writer; the next sweep takes it */
        if (errno != ENOTEMPTY && errno != EEXIST)
            bf_log(BF_LOG_WARN, "BF02032: job %s: rmdir %s: %s", job_id, dir,
                   strerror(errno));
        return false;
    }
    if (removed)
        bf_log(BF_LOG_INFO, "job %s: removed its directory (%d files)", job_id,
               removed);
    return true;
}

/* The attempt ("task.fencing", as bf_task_running_attempts has it) whose
 * part is stored as name, NULL when name is not a part's (bf_share.h);
 * *row gets the part's published name (its file row's name). */
static const char *attempt_of(apr_pool_t *p, const char *name, const char **row)
{
    const char *published = bf_share_published_name(p, name, NULL);
    bf_share_part_t pt;

    if (!bf_share_part_parse(published, &pt))
        return NULL;
    if (row)
        *row = published;
    return apr_psprintf(p, "%" APR_INT64_T_FMT ".%" APR_INT64_T_FMT,
                        (apr_int64_t)pt.task, (apr_int64_t)pt.fencing);
}

void worker_sweep_job_parts(worker_t *w, apr_pool_t *p, const char *job_id)
{
    const char *dir;
    DIR *d;
    struct dirent *e;
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_hash_t *running, *published;
    int i, dfd;

    if (!bf_id_is_uuid(job_id))
        return;
    /* order matters: list the directory first, then the running attempts,
     * then the file rows; a part listed here either belongs to an attempt
     * still running at the second query or was published before the third */
    dir = bf_share_job_dir(p, w->cfg.export_root, job_id);
    if (!(d = opendir(dir)))
        return;
    while ((e = readdir(d)) != NULL)
        if (attempt_of(p, e->d_name, NULL))
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, e->d_name);
    closedir(d);
    if (names->nelts == 0)
        return;
    if (!bf_task_running_attempts(w->conn, p, job_id, &running) ||
        !bf_task_file_names(w->conn, p, job_id, &published))
        return;
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return;
    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        const char *row = NULL, *attempt = attempt_of(p, name, &row), *op;
        int err;

        if (apr_hash_get(running, attempt, APR_HASH_KEY_STRING) ||
            apr_hash_get(published, row, APR_HASH_KEY_STRING))
            continue;
        /* no file row: nothing serves it, but the share's one unlink path
         * costs no more */
        if (bf_share_unlink_unused(dfd, name, &err, &op))
            bf_log(BF_LOG_INFO, "job %s: removed stale part %s", job_id, name);
        else if (err != EWOULDBLOCK)
            bf_log(BF_LOG_WARN, "BF02033: job %s: %s stale part %s: %s", job_id,
                   op, name, strerror(err));
    }
    close(dfd);
}

/* Job directories in the export root with no job row (a job deleted while
 * a worker still wrote, or removed by hand): removed.  One export root per
 * database: the root must not be shared with another installation. */
static void sweep_orphan_dirs(worker_t *w, apr_pool_t *p)
{
    apr_array_header_t *ids = apr_array_make(p, 16, sizeof(const char *));
    apr_hash_t *orphans;
    apr_hash_index_t *hi;
    DIR *d = opendir(w->cfg.export_root);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL && ids->nelts < 1000)
        if (bf_id_is_uuid(e->d_name))
            APR_ARRAY_PUSH(ids, const char *) = apr_pstrdup(p, e->d_name);
    closedir(d);
    if (!bf_sweepq_orphans(w->conn, p, ids, &orphans))
        return;
    for (hi = apr_hash_first(p, orphans); hi; hi = apr_hash_next(hi)) {
        const char *job = apr_hash_this_key(hi);

        if (worker_remove_job_dir(w, p, job))
            bf_log(BF_LOG_NOTICE, "job %s: removed a directory no job owns",
                   job);
    }
}

void worker_sweep(worker_t *w)
{
    apr_pool_t *p;
    apr_array_header_t *arr;
    long pruned;
    int i;

    apr_pool_create(&p, w->pool);
    if (bf_task_expired(w->conn, p, 50, &arr)) {
        for (i = 0; i < arr->nelts; i++) {
            bf_task_swept_t *s = &APR_ARRAY_IDX(arr, i, bf_task_swept_t);
            /* a worker that died running it (crash, OOM kill, SIGKILL): the
             * attempt counts, so a task that kills every worker that takes
             * it is given up after max_attempts in total (poison task) */
            bf_task_failure_t f = {
                "its worker stopped responding (lease expired)",
                worker_outcome(p, &s->task, WORKER_EXPORT_LOST, NULL),
                "exception", false
            };
            bool applied, job_failed;

            if (!bf_task_fail(w->conn, &s->task, s->locked_by, &f, true,
                              &applied, &job_failed) ||
                !applied)
                continue;
            if (job_failed)
                bf_log_task(
                    BF_LOG_WARN, &s->task,
                    "BF02034: lease"
                    " of worker %s expired on attempt %d of %d; the job failed",
                    s->locked_by, s->task.attempt, s->task.max_attempts);
            else
                bf_log_task(
                    BF_LOG_WARN, &s->task,
                    "BF02035: lease"
                    " of worker %s expired on attempt %d of %d; queued again",
                    s->locked_by, s->task.attempt, s->task.max_attempts);
        }
    }
    /* cancelled: files go, rows stay (status answers 404 for them) */
    if (bf_sweepq_cancelled(w->conn, p, 3 * w->cfg.lease_seconds, 100, &arr)) {
        for (i = 0; i < arr->nelts; i++) {
            const char *job = APR_ARRAY_IDX(arr, i, const char *);

            if (worker_remove_job_dir(w, p, job) &&
                bf_task_forget_files(w->conn, job))
                bf_sweepq_mark_removed(w->conn, job);
        }
    }
    /* expired: files, then the rows */
    if (bf_sweepq_expired(w->conn, p, 100, &arr)) {
        for (i = 0; i < arr->nelts; i++) {
            const char *job = APR_ARRAY_IDX(arr, i, const char *);
            bool deleted;

            if (worker_remove_job_dir(w, p, job) &&
                bf_sweepq_delete_expired(w->conn, job, &deleted) && deleted)
                bf_log(BF_LOG_NOTICE, "job %s: expired, files and rows removed",
                       job);
        }
    }
    if (w->sweeps % 12 == 0)
        sweep_orphan_dirs(w, p);
    if (w->sweeps++ % 12 == 0 && bf_task_live_jobs(w->conn, p, 100, &arr)) {
        for (i = 0; i < arr->nelts; i++)
            worker_sweep_job_parts(w, p, APR_ARRAY_IDX(arr, i, const char *));
    }
    if (bf_sweepq_auth(w->conn, &pruned) && pruned)
        bf_log(BF_LOG_INFO, "removed %ld expired token/jti row(s)", pruned);
    if (bf_task_prune_workers(w->conn, w->cfg.lease_seconds, &pruned) && pruned)
        bf_log(BF_LOG_NOTICE, "removed %ld silent worker row(s)", pruned);
    apr_pool_destroy(p);
}
