/* bf_share: the export root as the module, the worker and the sweeper share
 * it.  Its names and its lock protocol live here and nowhere else (DESIGN
 * invariant 8); lib/bf_ndjson.c, worker/sweep.c and mod_bulkfhir/files.c
 * call these functions instead of spelling a name or a flock themselves.
 *
 * Layout.  {root}/{job}/{stored name}: one directory per job, named by the
 * job's id (a UUID, checked by the caller: the sweeper takes any UUID-named
 * directory in the root for a job's), holding that job's parts only.
 *
 * Names.  A part's published name (its bulkfhir.file row, its URL
 * bulkfiles/{job}/{name}, the manifest) is
 *     {prefix}.{task}.{fencing}.{part}.ndjson
 * prefix: 1 to 64 ASCII letters, the resource type, or "blocks"
 * (organizeOutputBy), "deleted" (Bundles of deleted resources) or "error"
 * (OperationOutcomes), none of them a resource type; task and fencing: the
 * attempt's task id and fencing token, part 0, 1, ... (decimal digits, no
 * sign, no leading zero).  The fencing token makes the name unique to one
 * attempt: a part is created O_EXCL and never rewritten.  Its stored name
 * (on disk) is the published name with ".gz" appended when the part is
 * stored gzip-compressed (issue #15), else the published name itself; a
 * reader looks for the ".gz" first.
 *
 * Publication.  A part is written and fsynced under its stored name, then
 * published by committing its file row (the attempt's fencing token checked
 * in that transaction).  A part with no file row is not published: no
 * manifest lists it and the module does not serve it; once its attempt is
 * no longer running it is garbage (invariant 2).
 *
 * Who may unlink what, and when.
 *   - the writer (bf_ndjson_abort): its own parts that have no file row, at
 *     once, without a lock (no one can be serving them);
 *   - the sweeper: a part with no file row whose attempt is not running,
 *     and every file of a job that is cancelled, expired or has no job row
 *     (then the directory): always through bf_share_unlink_unused(), which
 *     takes flock(LOCK_EX|LOCK_NB) first and leaves a file being served for
 *     a later sweep;
 *   - the module never unlinks.  It serves a part only after finding its
 *     file row, and holds flock(LOCK_SH) on it from before the first byte
 *     until the response is done (bf_share_open_served()); a file unlinked
 *     between its open and that lock counts as gone (ENOENT).
 * flock() locks belong to the open file description: closing the
 * descriptor releases them.  Over NFS, Linux emulates flock() with
 * whole-file fcntl() locks (flock(2)), where an exclusive lock needs a
 * descriptor open for writing: the sweeper opens the file read-write when
 * it may. */
#ifndef BF_SHARE_H
#define BF_SHARE_H

#include <stdbool.h>
#include <stdint.h>

#include <apr_file_io.h>
#include <apr_pools.h>

#define BF_SHARE_PREFIX_MAX 64

/* {root}/{job_id}; NULL when job_id is empty, ".", ".." or holds a '/'. */
const char *bf_share_job_dir(apr_pool_t *p, const char *root,
                             const char *job_id);
/* {root}/{job_id}/{file}; NULL as above, or when file is empty, ".", ".."
 * or holds a '/'. */
const char *bf_share_file_path(apr_pool_t *p, const char *root,
                               const char *job_id, const char *file);

/* The stored name of a published part name: name + ".gz" when gzip. */
const char *bf_share_stored_name(apr_pool_t *p, const char *name, bool gzip);
/* The reverse: the published name of a stored name (one ".gz" removed when
 * there is one; *gzip, when not NULL, tells whether there was).  Checks
 * nothing else: bf_share_part_parse() says whether it is a part's name. */
const char *bf_share_published_name(apr_pool_t *p, const char *stored,
                                    bool *gzip);

/* A part name's fields. */
typedef struct bf_share_part {
    char prefix[BF_SHARE_PREFIX_MAX + 1];
    int64_t task;
    int64_t fencing;
    int part;
} bf_share_part_t;

/* The published name {prefix}.{task}.{fencing}.{part}.ndjson.  NULL when
 * the prefix is not 1 to 64 letters or a number is negative. */
const char *bf_share_part_name(apr_pool_t *p, const char *prefix, int64_t task,
                               int64_t fencing, int part);
/* Parse a published name (not a stored ".gz" one: see
 * bf_share_published_name); false for anything bf_share_part_name() does
 * not produce, out untouched then. */
bool bf_share_part_parse(const char *name, bf_share_part_t *out);

/* Open path read-only for serving (flags: APR open flags added to APR_READ |
 * APR_BINARY, such as APR_SENDFILE_ENABLED) and take flock(LOCK_SH) on it,
 * held until *fd is closed (with p at the latest).  APR_SUCCESS; APR_ENOENT
 * when the file is missing or was unlinked before the lock was had; another
 * status (an errno) for any other failure. */
apr_status_t bf_share_open_served(apr_file_t **fd, const char *path,
                                  apr_int32_t flags, apr_pool_t *p);
/* The same for the stored file of a published part of a job: the ".gz"
 * one, else the plain one.  *gzip tells which was opened and *path names
 * it (also on failure: the last path tried). */
apr_status_t bf_share_open_part(apr_file_t **fd, bool *gzip, const char **path,
                                const char *root, const char *job_id,
                                const char *name, apr_int32_t flags,
                                apr_pool_t *p);

/* Unlink dirfd/name unless it is being served: open it (O_NOFOLLOW;
 * read-write, else read-only), take flock(LOCK_EX|LOCK_NB), unlink, close. True
 * when it was unlinked or was gone already (a symlink or an entry that cannot
 * be opened is unlinked without a lock: nothing serves it).  False otherwise,
 * with *err EWOULDBLOCK when a reader holds LOCK_SH (try again later), or the
 * errno of the failed step *op ("flock" or "remove"). */
bool bf_share_unlink_unused(int dirfd, const char *name, int *err,
                            const char **op);

#endif
