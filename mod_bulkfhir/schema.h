/* mod_bulkfhir schema check (schema.c), called by dbpool.c. */
#ifndef BF_SCHEMA_H
#define BF_SCHEMA_H

#include <apr_errno.h>
#include <httpd.h>
#include <libpq-fe.h>

/* The database schema is older than this build needs (logged: BF01090). */
#define BF_SCHEMA_EOLD (APR_OS_START_USERERR + 1090)

/* APR_SUCCESS when the connection's schema has every migration this build
 * was made with; BF_SCHEMA_EOLD when not (logged on s); APR_EGENERAL when
 * the query failed for another reason (the connection's problem). */
apr_status_t bf_schema_check(PGconn *conn, server_rec *s);

#endif
