/* bf_job_check: kick-off checks that need the store (SPEC §1.4 `patient`:
 * "SHOULD return an error if a listed patient does not exist, or for a Group
 * export is not a member"). */
#ifndef BF_JOB_CHECK_H
#define BF_JOB_CHECK_H

#include <stdbool.h>
#include <apr_pools.h>
#include <libpq-fe.h>

/* params: the normalized kick-off parameters as JSON text (its "patient" array
 * of "Patient/id" references, if any).  group_id: the Group of a Group export,
 * else NULL.  On success *bad is NULL when every listed patient exists (and
 * is an active member of the Group), else the first offending reference and
 * *why the reason.  false on a database error (sqlstate set). */
bool bf_job_check_patients(PGconn *conn, apr_pool_t *p, const char *params,
                           const char *group_id, const char **bad,
                           const char **why, char sqlstate[6]);

#endif
