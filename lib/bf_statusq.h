/* bf_statusq: the read-only queries behind the operator status page
 * (mod_bulkfhir/status_page.c): jobs, tasks, workers and the queue, as one
 * JSON document built by PostgreSQL. */
#ifndef BF_STATUSQ_H
#define BF_STATUSQ_H

#include <stdbool.h>

#include <apr_pools.h>
#include <libpq-fe.h>

/* The status document (see docs/status-page.md for its fields):
 *   {"now", "jobs": {state: n}, "tasks": {state: n},
 *    "queue": {"depth", "ready", "oldest_seconds"},
 *    "totals": {"resources_exported", "bytes_written", "files",
 *               "resources_per_second_1m"},
 *    "workers": [...], "active_jobs": [...], "recent_jobs": [...]}
 * active_jobs holds at most max_active queued/running jobs (oldest first),
 * recent_jobs the max_recent most recently finished ones.  *json is
 * allocated in p.  False on a database error (logged; *sqlstate set). */
bool bf_statusq_fetch(PGconn *conn, apr_pool_t *p, int max_active,
                      int max_recent, const char **json, char sqlstate[6]);

#endif
