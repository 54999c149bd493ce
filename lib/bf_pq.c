/* bf_pq: libpq wrapper (see bf_pq.h). */
#include "bf_pq.h"
#include "bf_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void log_failure(bf_log_level_e level, PGconn *conn, PGresult *res,
                        const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    char line[512];
    const char *p, *nl;
    size_t n;

    if (!msg || !*msg)
        msg = PQerrorMessage(conn);
    if (!msg || !*msg)
        msg = "(no message)";
    /* one log line per line of the server's message */
    for (p = msg; *p; p = nl ? nl + 1 : p + strlen(p)) {
        nl = strchr(p, '\n');
        n = nl ? (size_t)(nl - p) : strlen(p);
        if (n == 0)
            continue;
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        bf_log(level, "BF00001: %s: SQLSTATE %s: %s", what,
               state ? state : "-----", line);
    }
}

static bool exec_at(bf_log_level_e level, PGconn *conn, const char *what,
                    const char *sql, int nparams, const char *const *values,
                    PGresult **out, char sqlstate[6])
{
    PGresult *res;
    ExecStatusType st;
    const char *state;
    struct timespec t0, t1;
    bool timed;

    if (out)
        *out = NULL;
    if (sqlstate)
        sqlstate[0] = '\0';
    if (!conn) {
        bf_log(level, "BF00002: %s: no database connection", what);
        return false;
    }
    timed = bf_log_is_level(BF_LOG_DEBUG);
    if (timed)
        clock_gettime(CLOCK_MONOTONIC, &t0);
    res = PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (timed) {
        /* debug: every statement with its time (no parameter values) */
        clock_gettime(CLOCK_MONOTONIC, &t1);
        bf_log(BF_LOG_DEBUG, "%s: SQL %.2f ms, %s, %d row(s)", what,
               (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
               PQresStatus(st), res ? PQntuples(res) : 0);
    }
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return true;
    }
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (sqlstate && state) {
        strncpy(sqlstate, state, 5);
        sqlstate[5] = '\0';
    }
    log_failure(level, conn, res, what);
    PQclear(res);
    return false;
}

bool bf_pq_exec(PGconn *conn, const char *what, const char *sql, int nparams,
                const char *const *values, PGresult **out, char sqlstate[6])
{
    return exec_at(BF_LOG_WARN, conn, what, sql, nparams, values, out,
                   sqlstate);
}

bool bf_pq_exec_quiet(PGconn *conn, const char *what, const char *sql,
                      int nparams, const char *const *values, PGresult **out,
                      char sqlstate[6])
{
    return exec_at(BF_LOG_DEBUG, conn, what, sql, nparams, values, out,
                   sqlstate);
}

bool bf_pq_exec_rows(PGconn *conn, const char *what, const char *sql,
                     int nparams, const char *const *values, long *rows,
                     char sqlstate[6])
{
    PGresult *res;

    *rows = 0;
    if (!bf_pq_exec(conn, what, sql, nparams, values, &res, sqlstate))
        return false;
    *rows = atol(PQcmdTuples(res));
    PQclear(res);
    return true;
}

bool bf_pq_begin(PGconn *conn, const char *what)
{
    return bf_pq_exec(conn, what, "BEGIN", 0, NULL, NULL, NULL);
}

bool bf_pq_commit(PGconn *conn, const char *what)
{
    return bf_pq_exec(conn, what, "COMMIT", 0, NULL, NULL, NULL);
}

void bf_pq_rollback(PGconn *conn, const char *what)
{
    if (conn && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) != PQTRANS_IDLE)
        bf_pq_exec_quiet(conn, what, "ROLLBACK", 0, NULL, NULL, NULL);
}

bool bf_pq_healthy(PGconn *conn)
{
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return false;
    switch (PQtransactionStatus(conn)) {
    case PQTRANS_IDLE:
        return true;
    default:
        return false;
    }
}

PGconn *bf_pq_connect(const char *conninfo, const char *appname,
                      int connect_timeout_s)
{
    /* connect_timeout comes first so that a value in conninfo overrides it */
    const char *keys[] = { "connect_timeout", "dbname", "application_name",
                           NULL };
    const char *vals[] = { NULL, conninfo ? conninfo : "", appname, NULL };
    char timeout[16];
    PGconn *conn;

    snprintf(timeout, sizeof timeout, "%d", connect_timeout_s);
    vals[0] = connect_timeout_s > 0 ? timeout : NULL;
    /* expand_dbname=1: the conninfo string (or URI) is parsed as dbname */
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        bf_log(BF_LOG_WARN, "BF00003: database connect: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];
        char *nl;

        snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
        while ((nl = strchr(msg, '\n')) != NULL)
            *nl = ' ';
        bf_log(BF_LOG_WARN, "BF00004: database connect failed (%s): %s",
               appname, msg);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

bool bf_pq_state_is_connection(const char *sqlstate)
{
    if (!sqlstate || !*sqlstate)
        return true;
    return strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P", 3) == 0;
}
