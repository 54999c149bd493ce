/* mod_bulkfhir schema check: the module refuses to serve against a database
 * whose schema is older than the newest migration it was built with
 * (BF_SCHEMA_VERSION, generated from the highest sql/NNNN_*.sql at build
 * time).  dbpool.c asks once per pooled connection, when the pool creates
 * it: an old schema fails the creation, so each request answers 503 (a
 * transient OperationOutcome) and logs BF01090 until `bulkfhirctl migrate`
 * has run; the connections made after that serve again. */
#include "mod_bulkfhir.h"
#include "bf_pq.h"
#include "schema.h"
#include "bf_schema_version.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_VERSION[] =
    "SELECT coalesce(max(version), 0) FROM bulkfhir.schema_migration";

apr_status_t bf_schema_check(PGconn *conn, server_rec *s)
{
    PGresult *res = NULL;
    char sqlstate[6] = "";
    int have = 0;

    if (!bf_pq_exec_quiet(conn, "schema check", SQL_VERSION, 0, NULL, &res,
                          sqlstate)) {
        /* 42P01, 3F000: no bookkeeping table (or schema) at all */
        if (strcmp(sqlstate, "42P01") != 0 && strcmp(sqlstate, "3F000") != 0)
            return APR_EGENERAL; /* the connection's problem: BF01012 */
    } else {
        have = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    if (have >= BF_SCHEMA_VERSION)
        return APR_SUCCESS;
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                 "BF01090: database schema version %d is older than the %d "
                 "this mod_bulkfhir needs: answering 503 until an "
                 "administrator runs `bulkfhirctl migrate`",
                 have, BF_SCHEMA_VERSION);
    return BF_SCHEMA_EOLD;
}
