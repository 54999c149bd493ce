/* bf_limits: per-client kick-off limits (see bf_limits.h). */
#include "bf_limits.h"
#include "bf_pq.h"

#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

bool bf_limits_admit(PGconn *conn, const char *mode, const char *client_id,
                     int default_max, int rate_per_min, bf_admit_t *out,
                     char sqlstate[6])
{
    char max_s[16], rate_s[16];
    const char *v[4] = { mode, client_id, max_s, rate_s };
    PGresult *res = NULL;
    const char *verdict;

    memset(out, 0, sizeof *out);
    snprintf(max_s, sizeof max_s, "%d", default_max);
    snprintf(rate_s, sizeof rate_s, "%d", rate_per_min);
    if (!bf_pq_exec(conn, "admission: begin", "BEGIN", 0, NULL, NULL, sqlstate))
        return false;
    if (!bf_pq_exec(conn, "admission",
                    "SELECT verdict, active, max_jobs, recent, retry_after"
                    " FROM bulkfhir.admit($1, $2, $3::integer, $4::integer)",
                    4, v, &res, sqlstate)) {
        bf_pq_rollback(conn, "admission");
        return false;
    }
    verdict = PQgetvalue(res, 0, 0);
    out->verdict = !strcmp(verdict, "ok")     ? BF_ADMIT_OK
                   : !strcmp(verdict, "busy") ? BF_ADMIT_BUSY
                                              : BF_ADMIT_RATE;
    out->active = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->max_jobs = atoi(PQgetvalue(res, 0, 2));
    out->recent = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    out->retry_after = atoi(PQgetvalue(res, 0, 4));
    PQclear(res);
    if (out->verdict != BF_ADMIT_OK)
        bf_pq_rollback(conn, "admission");
    return true;
}

bool bf_limits_refused(PGconn *conn, const char *mode, const char *client_id,
                       int rate_per_min, bf_admit_t *out, char sqlstate[6])
{
    char rate_s[16];
    const char *v[3] = { mode, client_id, rate_s };
    PGresult *res = NULL;

    memset(out, 0, sizeof *out);
    snprintf(rate_s, sizeof rate_s, "%d", rate_per_min);
    if (!bf_pq_exec(conn, "too-costly refusal",
                    "SELECT verdict, recent, retry_after"
                    " FROM bulkfhir.refuse_kickoff($1, $2, $3::integer)",
                    3, v, &res, sqlstate))
        return false;
    out->verdict =
        !strcmp(PQgetvalue(res, 0, 0), "ok") ? BF_ADMIT_OK : BF_ADMIT_RATE;
    out->recent = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->retry_after = atoi(PQgetvalue(res, 0, 2));
    PQclear(res);
    return true;
}

bool bf_limits_finish(PGconn *conn, bool commit, char sqlstate[6])
{
    if (!commit) {
        bf_pq_rollback(conn, "admission");
        return true;
    }
    if (!bf_pq_exec(conn, "admission: commit", "COMMIT", 0, NULL, NULL,
                    sqlstate)) {
        bf_pq_rollback(conn, "admission");
        return false;
    }
    return true;
}
