/* bf_sweepq: the sweeper's statements about whole jobs (scale work):
 * cancelled jobs whose files are to be removed, expired jobs to delete,
 * job directories that no job row owns.  Same conventions as bf_task:
 * false on a database error (logged by bf_pq), results in out-params. */
#ifndef BF_SWEEPQ_H
#define BF_SWEEPQ_H

#include <stdbool.h>

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_tables.h>
#include <libpq-fe.h>

/* Cancelled jobs whose files were not removed yet, or removed less than
 * `recheck_seconds` ago (a worker that had not noticed the cancel yet may
 * still have written a part).  const char * ids. */
bool bf_sweepq_cancelled(PGconn *conn, apr_pool_t *p, int recheck_seconds,
                         int limit, apr_array_header_t **out);
/* Remember that the files of a cancelled job are gone (first time only). */
bool bf_sweepq_mark_removed(PGconn *conn, const char *job_id);

/* Finished or cancelled jobs past expires_at (const char * ids). */
bool bf_sweepq_expired(PGconn *conn, apr_pool_t *p, int limit,
                       apr_array_header_t **out);
/* Delete an expired job with its tasks and file rows; *deleted false when
 * it is not expired (any more) or gone. */
bool bf_sweepq_delete_expired(PGconn *conn, const char *job_id, bool *deleted);

/* Of the given job ids (valid uuids), those with no job row, as a set. */
/* Expired access tokens (kept an hour for the log's sake) and jti rows
 * past the replay window: removed here rather than on the token endpoint's
 * request path.  *removed gets how many rows went. */
bool bf_sweepq_auth(PGconn *conn, long *removed);

bool bf_sweepq_orphans(PGconn *conn, apr_pool_t *p,
                       const apr_array_header_t *ids, apr_hash_t **out);

#endif
