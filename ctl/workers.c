/* bulkfhirctl workers: the bulkfhir-worker processes registered in the
 * database (every host), with their heartbeat age and current task.  Also
 * the small table printer that `jobs` shares. */
#include "ctl.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char SQL_WORKERS[] =
    "SELECT w.id, w.host, w.pid::text, w.version,"
    "       to_char(w.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
    "       round(extract(epoch FROM now() - w.heartbeat_at))::bigint::text || ' s',"
    "       coalesce(t.id::text || ' ' || t.resource_type"
    "                || CASE WHEN t.shard_count > 1"
    "                        THEN '[' || t.shard || '/' || t.shard_count || ']'"
    "                        ELSE '' END"
    "                || ' job ' || t.job_id::text, '-')"
    "  FROM bulkfhir.worker w"
    "  LEFT JOIN bulkfhir.task t ON t.id = w.current_task"
    " ORDER BY w.host, w.started_at, w.id";

void ctl_print_table(PGresult *res, const char *const *head, int ncol,
                     const char *empty)
{
    int w[16] = { 0 };
    int r, c, rows = PQntuples(res);

    if (ncol > 16)
        ncol = 16;
    for (c = 0; c < ncol; c++)
        w[c] = (int)strlen(head[c]);
    for (r = 0; r < rows; r++)
        for (c = 0; c < ncol; c++)
            if ((int)strlen(PQgetvalue(res, r, c)) > w[c])
                w[c] = (int)strlen(PQgetvalue(res, r, c));
    for (c = 0; c < ncol; c++)
        printf("%-*s%s", c < ncol - 1 ? w[c] : 0, head[c],
               c < ncol - 1 ? "  " : "\n");
    for (r = 0; r < rows; r++)
        for (c = 0; c < ncol; c++)
            printf("%-*s%s", c < ncol - 1 ? w[c] : 0, PQgetvalue(res, r, c),
                   c < ncol - 1 ? "  " : "\n");
    if (rows == 0)
        printf("%s\n", empty);
}

int ctl_workers_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv)
{
    static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    static const char *const head[] = { "ID",      "HOST",          "PID",
                                        "VERSION", "STARTED (UTC)", "HEARTBEAT",
                                        "TASK" };
    PGconn *conn;
    PGresult *res;
    int c;

    (void)p;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: bulkfhirctl workers\n"
                   "  lists the registered bulkfhir-worker processes: id, host,"
                   " pid, version,\n  start time, seconds since the last"
                   " heartbeat, current task\n");
            return 0;
        }
        fprintf(stderr, "usage: bulkfhirctl workers\n");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "usage: bulkfhirctl workers\n");
        return 2;
    }
    conn = bf_pq_connect(g->conninfo, "bulkfhirctl workers", 10);
    if (!conn)
        return 1;
    if (!bf_pq_exec(conn, "list workers", SQL_WORKERS, 0, NULL, &res, NULL)) {
        PQfinish(conn);
        return 1;
    }
    ctl_print_table(res, head, 7, "(no workers)");
    PQclear(res);
    PQfinish(conn);
    return 0;
}
