/* bf_job_group: Group read and search for the module (SPEC R12), see
 * bf_job.h.  Groups are ordinary current, non-deleted rows of
 * fhir.resource_version. */
#include "bf_job.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool bf_job_group_read(PGconn *conn, apr_pool_t *p, const char *group_id,
                       const char **json, char sqlstate[6])
{
    const char *v[1] = { group_id };
    PGresult *res;

    *json = NULL;
    if (!bf_pq_exec(conn, "group read",
                    "SELECT resource::text FROM fhir.resource_version "
                    "WHERE resource_type = 'Group' AND id = $1 "
                    "AND superseded_at IS NULL AND NOT deleted",
                    1, v, &res, sqlstate))
        return false;
    if (PQntuples(res) > 0)
        *json = apr_pstrdup(p, PQgetvalue(res, 0, 0));
    PQclear(res);
    return true;
}

bool bf_job_group_search(PGconn *conn, apr_pool_t *p, const bf_group_query_t *q,
                         int limit, apr_array_header_t **found,
                         long long *total, char sqlstate[6])
{
    char b_limit[16];
    const char *v[5] = { q->name, q->id_system, q->id_value, b_limit,
                         q->id_system_none ? "true" : "false" };
    PGresult *res;
    int i, n;

    *found = NULL;
    *total = 0;
    snprintf(b_limit, sizeof b_limit, "%d", limit);
    /* name: starts-with, case-insensitive, on Group.name (string search);
     * identifier: token [system]|[value] over Group.identifier */
    if (!bf_pq_exec(
            conn, "group search",
            "WITH g AS ("
            "  SELECT id, resource FROM fhir.resource_version "
            "   WHERE resource_type = 'Group' AND superseded_at IS NULL "
            "     AND NOT deleted "
            "     AND ($1::text IS NULL OR lower(left(resource->>'name', "
            "          length($1))) = lower($1)) "
            "     AND (($2::text IS NULL AND $3::text IS NULL "
            "           AND NOT $5::boolean) OR EXISTS ("
            "       SELECT 1 FROM jsonb_array_elements(CASE "
            "         jsonb_typeof(resource->'identifier') WHEN 'array' "
            "         THEN resource->'identifier' ELSE '[]' END) i "
            "        WHERE ($3::text IS NULL OR i->>'value' = $3) "
            "          AND ($2::text IS NULL OR i->>'system' = $2) "
            "          AND (NOT $5::boolean OR NOT i ? 'system')))) "
            "SELECT (SELECT count(*) FROM g), id, resource::text "
            "  FROM (SELECT * FROM g ORDER BY id LIMIT $4::integer) x "
            "UNION ALL SELECT (SELECT count(*) FROM g), NULL, NULL "
            " WHERE NOT EXISTS (SELECT 1 FROM g)",
            5, v, &res, sqlstate))
        return false;
    n = PQntuples(res);
    *found = apr_array_make(p, n + 1, sizeof(bf_group_hit_t));
    for (i = 0; i < n; i++) {
        bf_group_hit_t *h;

        *total = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (PQgetisnull(res, i, 1))
            continue;
        h = apr_array_push(*found);
        h->id = apr_pstrdup(p, PQgetvalue(res, i, 1));
        h->json = apr_pstrdup(p, PQgetvalue(res, i, 2));
    }
    PQclear(res);
    return true;
}
