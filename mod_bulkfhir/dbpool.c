/* mod_bulkfhir database pool: one apr_reslist of PGconn per server and
 * child process.  Built in child_init, never in the parent (a libpq
 * connection must not cross fork()).  min 0: a database that is down at
 * start-up costs nothing until a request needs it.  A request borrows one
 * connection and gives it back through a cleanup on r->pool; broken
 * connections are invalidated, so the next request reconnects. */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_pq.h"
#include "schema.h"

#include <apr_reslist.h>
#include <poll.h>

struct bf_dbpool_t {
    apr_reslist_t *rl;
    const char *conninfo;
    int timeout; /* seconds: connect, statement and acquire */
    int max;
    server_rec *s; /* for the schema check's log line */
};

typedef struct {
    struct bf_dbpool_t *dp;
    PGconn *conn;
} lease_t;

static apr_status_t conn_create(void **res, void *params, apr_pool_t *p)
{
    struct bf_dbpool_t *dp = params;
    PGconn *conn = bf_pq_connect(dp->conninfo, "mod_bulkfhir", dp->timeout);
    apr_status_t rv;

    if (!conn)
        return APR_EGENERAL;
    if (!bf_job_session_setup(conn, dp->timeout * 1000)) {
        PQfinish(conn);
        return APR_EGENERAL;
    }
    /* once per pooled connection: an older schema is not served (503) */
    if ((rv = bf_schema_check(conn, dp->s)) != APR_SUCCESS) {
        PQfinish(conn);
        return rv;
    }
    /* per-request statements: parsed and planned once per connection */
    (void)bf_job_prepare(conn);
    *res = conn;
    return APR_SUCCESS;
}

static apr_status_t conn_destroy(void *res, void *params, apr_pool_t *p)
{
    PQfinish(res);
    return APR_SUCCESS;
}

void bf_dbpool_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec *v;
    bf_srv_conf_t *sc, *main_sc;
    struct bf_dbpool_t *dp;
    apr_status_t rv;

    main_sc = ap_get_module_config(s->module_config, &bulkfhir_module);
    for (v = s; v; v = v->next) {
        sc = ap_get_module_config(v->module_config, &bulkfhir_module);
        if (!sc->conninfo)
            continue;
        /* virtual hosts that inherit the main server's database share its
         * pool */
        if (v != s && main_sc->pool && sc->conninfo == main_sc->conninfo &&
            bf_srv_pool_max(sc) == main_sc->pool->max &&
            bf_srv_db_timeout(sc) == main_sc->pool->timeout) {
            sc->pool = main_sc->pool;
            continue;
        }
        dp = apr_pcalloc(pchild, sizeof *dp);
        dp->conninfo = sc->conninfo;
        dp->timeout = bf_srv_db_timeout(sc);
        dp->max = bf_srv_pool_max(sc);
        dp->s = v;
        /* the reslist lives as long as the child; its destructor closes
         * every idle connection when pchild is destroyed */
        rv = apr_reslist_create(&dp->rl, 0, dp->max, dp->max, 0, conn_create,
                                conn_destroy, dp, pchild);
        if (rv != APR_SUCCESS) {
            char buf[120];

            /* the tag leads the line: the status text goes at the end */
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, v,
                         "BF01010: server %s: cannot create the database "
                         "pool: %s",
                         v->server_hostname ? v->server_hostname : "*",
                         apr_strerror(rv, buf, sizeof buf));
            continue;
        }
        apr_reslist_timeout_set(dp->rl, (apr_interval_time_t)dp->timeout *
                                            APR_USEC_PER_SEC);
        sc->pool = dp;
    }
}

/* An idle pooled connection that has something to read was told something
 * by the server (typically: terminating, after a restart) or lost its
 * socket; it is not worth a round trip to find out which. */
static bool conn_stale(PGconn *conn)
{
    struct pollfd pfd;

    if (!bf_pq_healthy(conn) || PQsocket(conn) < 0)
        return true;
    pfd.fd = PQsocket(conn);
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) != 0;
}

static apr_status_t lease_release(void *data)
{
    lease_t *l = data;

    if (bf_pq_healthy(l->conn))
        apr_reslist_release(l->dp->rl, l->conn);
    else
        apr_reslist_invalidate(l->dp->rl, l->conn);
    return APR_SUCCESS;
}

PGconn *bf_db_acquire(bf_req_t *rq)
{
    struct bf_dbpool_t *dp = rq->sc->pool;
    lease_t *l;
    void *res = NULL;
    apr_status_t rv;
    int tries;

    if (rq->conn)
        return rq->conn;
    if (!dp) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, rq->r,
                      "BF01011: no database pool: is %s set for this "
                      "server?",
                      BF_CMD_DATABASE);
        return NULL;
    }
    for (tries = 0; tries <= dp->max; tries++) {
        rv = apr_reslist_acquire(dp->rl, &res);
        if (rv == BF_SCHEMA_EOLD) /* logged by schema.c */
            return NULL;
        if (rv != APR_SUCCESS) {
            ap_log_rerror(
                APLOG_MARK, APLOG_WARNING, 0, rq->r,
                "BF01012: database unavailable (%s %s): %s", BF_CMD_DATABASE,
                bf_config_conninfo_safe(rq->r->pool, dp->conninfo),
                APR_STATUS_IS_TIMEUP(rv) ? "no free pooled connection in time"
                                         : "cannot connect");
            return NULL;
        }
        if (!conn_stale(res))
            break;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, rq->r,
                      "dropping a stale pooled database connection");
        apr_reslist_invalidate(dp->rl, res);
        res = NULL;
    }
    if (!res) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, rq->r,
                      "BF01013: every pooled database connection was stale");
        return NULL;
    }
    l = apr_palloc(rq->r->pool, sizeof *l);
    l->dp = dp;
    l->conn = res;
    apr_pool_cleanup_register(rq->r->pool, l, lease_release,
                              apr_pool_cleanup_null);
    rq->lease = l;
    rq->conn = res;
    return rq->conn;
}

void bf_db_release(bf_req_t *rq)
{
    if (!rq->conn || !rq->lease)
        return;
    /* runs lease_release now and unregisters it */
    apr_pool_cleanup_run(rq->r->pool, rq->lease, lease_release);
    rq->lease = NULL;
    rq->conn = NULL;
}
