/* bf_sql: the one SQL string-literal quoting helper.
 *
 * It needs no connection: the statements that must carry values as text
 * (COPY, which takes no parameters; _typeFilter clauses; the export's
 * statements built before any connection is at hand) are assembled in a
 * pool, and PQescapeLiteral would need a live PGconn for each.  The form
 * E'...' doubles ' and \, so it reads the same whatever
 * standard_conforming_strings says; it relies on a server-safe client
 * encoding (UTF8, as every bulkfhir connection uses).  Everything else
 * passes values as parameters (PQexecParams). */
#ifndef BF_SQL_H
#define BF_SQL_H

#include <apr_pools.h>

/* An escaped SQL string literal (E'...') for s. */
const char *bf_sql_literal(apr_pool_t *p, const char *s);
/* The same, or NULL when s is not valid UTF-8 (where PQescapeLiteral would
 * refuse it: the server would reject the whole statement). */
const char *bf_sql_literal_utf8(apr_pool_t *p, const char *s);

#endif
