/* bf_pq: a thin libpq wrapper.  Every call returns bool; failures are logged
 * once, here, with tag BF00001, the caller's context string, the SQLSTATE and
 * each line of the server's message.  Statements are always parameterised. */
#ifndef BF_PQ_H
#define BF_PQ_H

#include <stdbool.h>
#include <libpq-fe.h>

/* Execute sql with text parameters.  On success, when out != NULL, *out is the
 * result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) for the caller to PQclear();
 * when out == NULL the result is cleared here.  On failure *out is NULL and,
 * when sqlstate != NULL, the 5-character SQLSTATE (or "" when the connection
 * broke before the server answered) is copied there.  `what` names the
 * operation and its context for the log, e.g. "job 3f2…: publish". */
bool bf_pq_exec(PGconn *conn, const char *what, const char *sql, int nparams,
                const char *const *values, PGresult **out, char sqlstate[6]);

/* Same, with a log level for failures (e.g. BF_LOG_DEBUG for an expected
 * unique violation that the caller handles). */
bool bf_pq_exec_quiet(PGconn *conn, const char *what, const char *sql,
                      int nparams, const char *const *values, PGresult **out,
                      char sqlstate[6]);

/* Execute a statement that changes rows; *rows gets the number it affected
 * (PQcmdTuples).  Same failure handling as bf_pq_exec. */
bool bf_pq_exec_rows(PGconn *conn, const char *what, const char *sql,
                     int nparams, const char *const *values, long *rows,
                     char sqlstate[6]);

bool bf_pq_begin(PGconn *conn, const char *what);
bool bf_pq_commit(PGconn *conn, const char *what);
/* Roll back if a transaction is open; never fails loudly. */
void bf_pq_rollback(PGconn *conn, const char *what);

/* True when the connection is usable (status OK and not mid-transaction
 * failure).  A pool drops connections for which this is false. */
bool bf_pq_healthy(PGconn *conn);

/* Connect; logs a warn line (without the password) on failure and returns
 * NULL.  application_name is set to `appname`; connect_timeout defaults to
 * connect_timeout_s (0: libpq's default) unless the conninfo sets one. */
PGconn *bf_pq_connect(const char *conninfo, const char *appname,
                      int connect_timeout_s);

/* SQLSTATE classes callers care about. */
bool bf_pq_state_is_connection(const char *sqlstate); /* "" or 08xxx, 57Pxx */

#endif
