/* bulkfhirctl jobs: list export jobs (filter by state and client) and
 * cancel one, as DELETE on its status URL would. */
#include "ctl.h"
#include "bf_id.h"
#include "bf_job.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

/* progress: finished tasks of the tasks not cancelled, as the status
 * endpoint's X-Progress counts them */
static const char SQL_JOBS[] =
    "SELECT j.id::text, coalesce(j.client_id, '-'), j.level, j.state,"
    "       CASE WHEN t.total = 0 THEN '-'"
    "            ELSE t.finished || '/' || t.total || ' tasks' END,"
    "       to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
    "       coalesce(to_char(j.finished_at AT TIME ZONE 'UTC',"
    "                        'YYYY-MM-DD HH24:MI:SS'), '-')"
    "  FROM bulkfhir.job j"
    "  CROSS JOIN LATERAL ("
    "    SELECT count(*) FILTER (WHERE state <> 'cancelled') AS total,"
    "           count(*) FILTER (WHERE state IN ('done', 'failed')) AS finished"
    "      FROM bulkfhir.task WHERE job_id = j.id) t"
    " WHERE ($1::text IS NULL OR j.state = $1)"
    "   AND ($2::text IS NULL OR j.client_id = $2)"
    " ORDER BY j.created_at DESC LIMIT $3::int";

static void jobs_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bulkfhirctl jobs [--state S] [--client C] [--limit N]\n"
        "       bulkfhirctl jobs cancel ID\n"
        "  --state S    queued | running | completed | failed | cancelled\n"
        "  --client C   only the jobs of that client\n"
        "  --limit N    newest N jobs (default 100)\n"
        "  cancel ID    cancel a job as DELETE on its status URL does: its\n"
        "               workers stop within a heartbeat, its files are removed\n");
}

static int jobs_cancel(const ctl_globals *g, int argc, char **argv)
{
    PGconn *conn;
    bool found;
    char sqlstate[6] = "";

    if (argc != 2) {
        fprintf(stderr, "usage: bulkfhirctl jobs cancel ID\n");
        return 2;
    }
    if (!bf_id_is_uuid(argv[1])) {
        fprintf(stderr, "bulkfhirctl jobs cancel: '%s' is not a job id\n",
                argv[1]);
        return 2;
    }
    conn = bf_pq_connect(g->conninfo, "bulkfhirctl jobs", 10);
    if (!conn)
        return 1;
    if (!bf_job_cancel(conn, argv[1], &found, sqlstate)) {
        PQfinish(conn);
        return 1;
    }
    PQfinish(conn);
    if (!found) {
        fprintf(stderr,
                "bulkfhirctl jobs cancel: no job %s, or already cancelled\n",
                argv[1]);
        return 1;
    }
    printf("cancelled job %s\n", argv[1]);
    return 0;
}

int ctl_jobs_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        { "state", required_argument, NULL, 's' },
        { "client", required_argument, NULL, 'c' },
        { "limit", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    static const char *const head[] = {
        "ID",       "CLIENT",        "LEVEL",         "STATE",
        "PROGRESS", "CREATED (UTC)", "FINISHED (UTC)"
    };
    static const char *const states[] = { "queued", "running", "completed",
                                          "failed", "cancelled" };
    const char *state = NULL, *client = NULL, *limit = "100";
    const char *v[3];
    PGconn *conn;
    PGresult *res;
    size_t i;
    int c;

    (void)p;
    if (argc >= 2 && strcmp(argv[1], "cancel") == 0)
        return jobs_cancel(g, argc - 1, argv + 1);
    while ((c = getopt_long(argc, argv, "s:c:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state = optarg;
            break;
        case 'c':
            client = optarg;
            break;
        case 'n':
            limit = optarg;
            break;
        case 'h':
            jobs_usage(stdout);
            return 0;
        default:
            jobs_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bulkfhirctl jobs: unexpected argument '%s'\n",
                argv[optind]);
        jobs_usage(stderr);
        return 2;
    }
    if (state) {
        for (i = 0; i < sizeof states / sizeof states[0]; i++)
            if (strcmp(state, states[i]) == 0)
                break;
        if (i == sizeof states / sizeof states[0]) {
            fprintf(stderr, "bulkfhirctl jobs: unknown state '%s'\n", state);
            return 2;
        }
    }
    if (strspn(limit, "0123456789") != strlen(limit) || !*limit ||
        strlen(limit) > 6) {
        fprintf(stderr, "bulkfhirctl jobs: --limit must be a number\n");
        return 2;
    }
    conn = bf_pq_connect(g->conninfo, "bulkfhirctl jobs", 10);
    if (!conn)
        return 1;
    v[0] = state;
    v[1] = client;
    v[2] = limit;
    if (!bf_pq_exec(conn, "list jobs", SQL_JOBS, 3, v, &res, NULL)) {
        PQfinish(conn);
        return 1;
    }
    ctl_print_table(res, head, 7, "(no jobs)");
    PQclear(res);
    PQfinish(conn);
    return 0;
}
