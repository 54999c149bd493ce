/* bulkfhir-worker: the sweeper, run by every worker every poll interval.
 * Everything here is safe to run concurrently on many hosts: expired leases
 * are failed under the same job-then-task locks and fencing check as a
 * worker's own failure; file removal only touches names no live attempt and
 * no published row can own.
 *   - running tasks whose lease expired: back to the queue (or the job fails
 *     when the attempts are used up);
 *   - cancelled jobs with no running task: directory removed, file rows
 *     deleted;
 *   - stale parts (every 12th sweep) in live jobs: a part whose attempt is
 *     not running and that has no file row is garbage (invariant 2);
 *   - worker rows silent for 3 leases are deleted. */
#include "config.h"
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>

void worker_remove_job_dir(worker_t *w, apr_pool_t *p, const char *job_id)
{
    const char *dir;
    DIR *d;
    struct dirent *e;
    int removed = 0;

    if (!bf_task_valid_uuid(job_id))
        return;
    dir = apr_pstrcat(p, w->cfg.export_root, "/", job_id, NULL);
    d = opendir(dir);
    if (!d) {
        if (errno != ENOENT)
            bf_log(BF_LOG_WARN, "BF02030: job %s: open %s: %s", job_id, dir,
                   strerror(errno));
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
        else if (errno != ENOENT)
            bf_log(BF_LOG_WARN, "BF02031: job %s: remove %s/%s: %s", job_id, dir,
                   e->d_name, strerror(errno));
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT)
        bf_log(BF_LOG_WARN, "BF02032: job %s: rmdir %s: %s", job_id, dir,
               strerror(errno));
    else
        bf_log(BF_LOG_INFO, "job %s: removed its directory (%d files)", job_id,
               removed);
}

/* "Type.task.fencing.part.ndjson" -> "task.fencing" */
static const char *attempt_of(apr_pool_t *p, const char *name)
{
    const char *dot = strchr(name, '.');
    long long task, fencing;
    int part, end = 0;

    if (!dot || sscanf(dot + 1, "%lld.%lld.%d.ndjson%n", &task, &fencing, &part,
                       &end) != 3 || end == 0 || dot[1 + end] != '\0')
        return NULL;
    /* (apr_psprintf knows no %lld) */
    return apr_psprintf(p, "%" APR_INT64_T_FMT ".%" APR_INT64_T_FMT,
                        (apr_int64_t)task, (apr_int64_t)fencing);
}

void worker_sweep_job_parts(worker_t *w, apr_pool_t *p, const char *job_id)
{
    const char *dir;
    DIR *d;
    struct dirent *e;
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_hash_t *running, *published;
    int i;

    if (!bf_task_valid_uuid(job_id))
        return;
    /* order matters: list the directory first, then the running attempts,
     * then the file rows; a part listed here either belongs to an attempt
     * still running at the second query or was published before the third */
    dir = apr_pstrcat(p, w->cfg.export_root, "/", job_id, NULL);
    if (!(d = opendir(dir)))
        return;
    while ((e = readdir(d)) != NULL)
        if (attempt_of(p, e->d_name))
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, e->d_name);
    closedir(d);
    if (names->nelts == 0)
        return;
    if (!bf_task_running_attempts(w->conn, p, job_id, &running)
        || !bf_task_file_names(w->conn, p, job_id, &published))
        return;
    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);

        if (apr_hash_get(running, attempt_of(p, name), APR_HASH_KEY_STRING)
            || apr_hash_get(published, name, APR_HASH_KEY_STRING))
            continue;
        if (unlink(apr_pstrcat(p, dir, "/", name, NULL)) == 0)
            bf_log(BF_LOG_INFO, "job %s: removed stale part %s", job_id, name);
        else if (errno != ENOENT)
            bf_log(BF_LOG_WARN, "BF02033: job %s: remove stale part %s: %s",
                   job_id, name, strerror(errno));
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
            const char *msg = apr_psprintf(p, "lease of worker %s expired",
                                           s->locked_by);
            bool applied, job_failed;

            if (!bf_task_fail(w->conn, &s->task, s->locked_by, msg, true,
                              &applied, &job_failed) || !applied)
                continue;
            if (job_failed)
                bf_log(BF_LOG_WARN, "BF02034: job %s: task %" PRId64 " (%s): %s"
                       " on attempt %d of %d; the job failed", s->task.job_id,
                       s->task.id, s->task.resource_type, msg, s->task.attempt,
                       s->task.max_attempts);
            else
                bf_log(BF_LOG_WARN, "BF02035: job %s: task %" PRId64 " (%s): %s"
                       " on attempt %d of %d; queued again", s->task.job_id,
                       s->task.id, s->task.resource_type, msg, s->task.attempt,
                       s->task.max_attempts);
        }
    }
    if (bf_task_cancelled_jobs(w->conn, p, 100, &arr)) {
        for (i = 0; i < arr->nelts; i++) {
            const char *job = APR_ARRAY_IDX(arr, i, const char *);
            struct stat sb;

            if (stat(apr_pstrcat(p, w->cfg.export_root, "/", job, NULL), &sb) == 0)
                worker_remove_job_dir(w, p, job);
            bf_task_forget_files(w->conn, job);
        }
    }
    if (w->sweeps++ % 12 == 0 && bf_task_live_jobs(w->conn, p, 100, &arr)) {
        for (i = 0; i < arr->nelts; i++)
            worker_sweep_job_parts(w, p, APR_ARRAY_IDX(arr, i, const char *));
    }
    if (bf_task_prune_workers(w->conn, w->cfg.lease_seconds, &pruned) && pruned)
        bf_log(BF_LOG_NOTICE, "removed %ld silent worker row(s)", pruned);
    apr_pool_destroy(p);
}
