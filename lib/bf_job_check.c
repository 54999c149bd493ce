/* bf_job_check: kick-off checks against the store (see bf_job_check.h). */
#include "bf_job_check.h"
#include "bf_pq.h"

#include <string.h>
#include <apr_strings.h>

bool bf_job_check_patients(PGconn *conn, apr_pool_t *p, const char *params,
                           const char *group_id, const char **bad,
                           const char **why, char sqlstate[6])
{
    const char *v[2];
    PGresult *res;

    *bad = NULL;
    *why = NULL;
    if (!params || !strstr(params, "\"patient\""))
        return true; /* no patient list: nothing to check, no round trip */
    v[0] = params;
    v[1] = group_id;
    /* the first listed patient that is unknown, or not an active member */
    if (!bf_pq_exec(
            conn, "kick-off: patient check",
            "WITH req AS ("
            "  SELECT DISTINCT e #>> '{}' AS ref,"
            "         substring(e #>> '{}' from '(?:^|/)Patient/([A-Za-z0-9.-]{1,64})$') AS pid"
            "    FROM jsonb_array_elements(CASE jsonb_typeof($1::jsonb->'patient')"
            "           WHEN 'array' THEN $1::jsonb->'patient' ELSE '[]'::jsonb END) e)"
            " SELECT ref, CASE WHEN NOT EXISTS ("
            "     SELECT 1 FROM fhir.resource_version r WHERE r.resource_type = 'Patient'"
            "        AND r.id = req.pid AND r.superseded_at IS NULL AND NOT r.deleted)"
            "   THEN 'unknown' ELSE 'not-member' END"
            "   FROM req"
            "  WHERE NOT EXISTS (SELECT 1 FROM fhir.resource_version r"
            "         WHERE r.resource_type = 'Patient' AND r.id = req.pid"
            "           AND r.superseded_at IS NULL AND NOT r.deleted)"
            "     OR ($2::text IS NOT NULL AND NOT EXISTS ("
            "         SELECT 1 FROM fhir.resource_version g,"
            "                jsonb_array_elements(CASE jsonb_typeof(g.resource->'member')"
            "                  WHEN 'array' THEN g.resource->'member' ELSE '[]'::jsonb END) m"
            "          WHERE g.resource_type = 'Group' AND g.id = $2"
            "            AND g.superseded_at IS NULL AND NOT g.deleted"
            "            AND coalesce(m->>'inactive', 'false') <> 'true'"
            "            AND substring(m->'entity'->>'reference' from"
            "                '(?:^|/)Patient/([A-Za-z0-9.-]{1,64})$') = req.pid))"
            "  ORDER BY ref LIMIT 1",
            2, v, &res, sqlstate))
        return false;
    if (PQntuples(res) == 1) {
        *bad = apr_pstrdup(p, PQgetvalue(res, 0, 0));
        *why = strcmp(PQgetvalue(res, 0, 1), "unknown") == 0
                   ? "is not a known Patient"
                   : "is not a member of the Group";
    }
    PQclear(res);
    return true;
}
