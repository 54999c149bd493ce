/* mod_bulkfhir audit trail (issue #13): what the module records in
 * bulkfhir.audit (sql/0074_audit.sql, lib/bf_audit.c).
 *
 *   token     issued or refused: client (or the claimed one), reason,
 *             remote address
 *   kick-off  accepted (written inside the admission transaction that
 *             records the job, bf_audit_kickoff from limits.c) or refused
 *             (status and the OperationOutcome's text): client, auth mode,
 *             level, Group, patients, every parameter, granted scopes, job
 *             id, remote address
 *   status    a manifest delivered (200), DELETE, 404 (another client's job
 *             is flagged), 410; not the 202 and 429 answers of polling
 *   file      every download: job, file, bytes sent, Range, encoding,
 *             status; another client's file is flagged
 * Job completion, failure, cancellation, the sweeper's removals are
 * recorded by triggers in PostgreSQL, in the transaction that makes them.
 *
 * Records are written after the response (log_transaction hook).  Refusals,
 * tokens, kick-offs and DELETEs are written at once; downloads and manifest
 * reads go to a per-child buffer written by one statement when it holds
 * BulkFhirAuditBatch records or its oldest is older than the batch age
 * (checked on every request of the child), and when the child exits.  Each
 * child writes its own chain ("httpd:host:pid:start"); its threads share
 * it (the chain row lock orders them). */
#include "mod_bulkfhir.h"
#include "bf_audit.h"
#include "bf_id.h"
#include "bf_job.h"
#include "bf_pq.h"
#include "bf_sql.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <unistd.h>

#define AUDIT_BUFFER_MAX 10000 /* records kept while the database is down */

typedef enum { AK_NONE, AK_TOKEN, AK_KICKOFF, AK_STATUS, AK_FILE } audit_kind_e;

/* per request, in r->request_config */
typedef struct {
    bf_req_t *rq;
    audit_kind_e kind;
    const char *level, *group, *job, *file;
    const char *params;  /* normalized kick-off parameters (JSON) */
    const char *reason;  /* the refusal's text */
    const char *claimed; /* token: the client id the assertion claimed */
    const char *scope;   /* token: the scopes granted */
    bool written;        /* kick-off recorded in its transaction */
} audit_req_t;

/* configuration: server-wide, set while reading the config */
static int audit_on = 1;
static int audit_batch = 64;
static int audit_age = 2;

/* per child */
static struct {
    apr_thread_mutex_t *mu;
    const char *chain;
    const char *conninfo; /* main server's, for the flush at exit */
    char **items;         /* malloc'ed bodies */
    char **keys;          /* what makes two records the same, or NULL */
    long *counts;         /* how many requests each entry stands for */
    double *last_at;      /* the last one's time */
    int n, cap;
    volatile apr_uint32_t hint_n;      /* child.n, for due() */
    volatile apr_uint32_t hint_oldest; /* the oldest entry's second */
    long dropped;
} child;

const char *bf_audit_set_on(cmd_parms *cmd, void *dconf, int flag)
{
    (void)cmd;
    (void)dconf;
    audit_on = flag;
    return NULL;
}

const char *bf_audit_set_batch(cmd_parms *cmd, void *dconf, const char *n,
                               const char *secs)
{
    char *end;
    long v = strtol(n, &end, 10), s = audit_age;

    (void)dconf;
    if (end == n || *end || v < 1 || v > 1000)
        return apr_psprintf(cmd->pool, "%s: records must be 1 to 1000",
                            cmd->cmd->name);
    if (secs) {
        s = strtol(secs, &end, 10);
        if (end == secs || *end || s < 1 || s > 3600)
            return apr_psprintf(cmd->pool, "%s: seconds must be 1 to 3600",
                                cmd->cmd->name);
    }
    audit_batch = (int)v;
    audit_age = (int)s;
    return NULL;
}

static int audit_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    audit_on = 1; /* a graceful restart re-reads the directives */
    audit_batch = 64;
    audit_age = 2;
    return OK;
}

static const char *kind_of(const char *rel, audit_kind_e *kind, const char **b)
{
    const char *slash;

    *kind = AK_NONE;
    *b = NULL;
    if (!strcmp(rel, "token"))
        *kind = AK_TOKEN;
    else if (!strcmp(rel, "$export") || !strcmp(rel, "Patient/$export") ||
             (!strncmp(rel, "Group/", 6) && strstr(rel, "/$export")))
        *kind = AK_KICKOFF;
    else if (!strncmp(rel, "bulkstatus/", 11)) {
        *kind = AK_STATUS;
        return rel + 11;
    } else if (!strncmp(rel, "bulkfiles/", 10) &&
               (slash = strchr(rel + 10, '/'))) {
        *kind = AK_FILE;
        *b = slash + 1;
        return rel + 10;
    }
    return NULL;
}

void bf_audit_begin(bf_req_t *rq)
{
    audit_req_t *a;
    const char *job, *file;
    audit_kind_e kind;

    if (!audit_on || !rq->rel)
        return;
    job = kind_of(rq->rel, &kind, &file);
    a = apr_pcalloc(rq->r->pool, sizeof *a);
    a->rq = rq;
    a->kind = kind;
    if (kind == AK_FILE)
        job = apr_pstrndup(rq->r->pool, job, (apr_size_t)(file - 1 - job));
    a->job = job;
    a->file = file;
    if (kind == AK_KICKOFF) {
        a->level = !strcmp(rq->rel, "$export")           ? "system"
                   : !strcmp(rq->rel, "Patient/$export") ? "patient"
                                                         : "group";
        if (!strcmp(a->level, "group"))
            a->group = apr_pstrndup(rq->r->pool, rq->rel + 6,
                                    strcspn(rq->rel + 6, "/"));
    }
    ap_set_module_config(rq->r->request_config, &bulkfhir_module, a);
}

static audit_req_t *req_of(request_rec *r)
{
    return r->request_config
               ? ap_get_module_config(r->request_config, &bulkfhir_module)
               : NULL;
}

void bf_audit_reason(bf_req_t *rq, int status, const char *text)
{
    audit_req_t *a = req_of(rq->r);

    if (a && status >= 400 && !a->reason)
        a->reason = apr_pstrndup(rq->r->pool, text, 500);
}

void bf_audit_token(bf_req_t *rq, const char *claimed, const char *scope,
                    const char *reason)
{
    audit_req_t *a = req_of(rq->r);

    if (!a)
        return;
    if (claimed)
        a->claimed = apr_pstrndup(rq->r->pool, claimed, 200);
    a->scope = scope;
    if (reason && !a->reason)
        a->reason = apr_pstrndup(rq->r->pool, reason, 500);
}

void bf_audit_params(bf_req_t *rq, const char *params_json)
{
    audit_req_t *a = req_of(rq->r);

    if (a)
        a->params = params_json;
}

static const char *auth_name(const bf_req_t *rq)
{
    switch (bf_dir_auth(rq->dc)) {
    case BF_AUTH_SMART:
        return "smart";
    case BF_AUTH_HEADER:
        return "header";
    default:
        return "none";
    }
}

static void add_str(json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

/* patient references out of the normalized parameters */
static void add_params(json_object *o, const char *params)
{
    json_object *prm = params ? json_tokener_parse(params) : NULL, *pat, *e,
                *ref, *list;
    size_t i;

    if (!prm)
        return;
    add_str(o, "params", params);
    if (json_object_object_get_ex(prm, "patient", &pat) &&
        json_object_is_type(pat, json_type_array)) {
        list = json_object_new_array();
        for (i = 0; i < json_object_array_length(pat); i++) {
            e = json_object_array_get_idx(pat, i);
            if (json_object_is_type(e, json_type_object) &&
                json_object_object_get_ex(e, "reference", &ref))
                e = ref;
            if (json_object_is_type(e, json_type_string))
                json_object_array_add(
                    list, json_object_new_string(json_object_get_string(e)));
        }
        json_object_object_add(o, "patients", list);
    }
    json_object_put(prm);
}

/* The record body; NULL when this request is not recorded. */
static const char *body_of(request_rec *r, audit_req_t *a, bool *now)
{
    bf_req_t *rq = a->rq;
    json_object *o;
    const char *action, *client, *out, *enc;
    int st = r->status;
    bool refused = st >= 400;

    *now = true;
    switch (a->kind) {
    case AK_TOKEN:
        action = refused ? "token.refused" : "token.issued";
        break;
    case AK_KICKOFF:
        if (a->written)
            return NULL;
        action = refused ? "kickoff.refused" : "kickoff.accepted";
        break;
    case AK_STATUS:
        if (r->method_number == M_DELETE)
            action = refused ? "status.delete.refused" : "status.delete";
        else if (st == HTTP_ACCEPTED || st == HTTP_TOO_MANY_REQUESTS ||
                 (st == HTTP_OK &&
                  apr_table_get(r->headers_out, "X-Export-Status") &&
                  strncmp(apr_table_get(r->headers_out, "X-Export-Status"),
                          "200", 3) != 0))
            return NULL; /* polling: not recorded */
        else {
            action = refused ? "status.refused" : "status.read";
            *now = refused;
        }
        break;
    case AK_FILE:
        action = refused ? "download.refused" : "download";
        *now = refused;
        break;
    default:
        return NULL;
    }
    client = rq->client_id ? rq->client_id : r->user;
    o = json_object_new_object();
    add_str(o, "action", action);
    json_object_object_add(
        o, "at",
        json_object_new_double((double)r->request_time / APR_USEC_PER_SEC));
    add_str(o, "outcome", refused ? "refused" : "success");
    json_object_object_add(o, "status", json_object_new_int(st));
    add_str(o, "client", client);
    if (!client)
        add_str(o, "claimed_client", a->claimed);
    add_str(o, "remote", r->useragent_ip);
    add_str(o, "auth", auth_name(rq));
    add_str(o, "method", r->method);
    add_str(o, "reason", refused ? a->reason : NULL);
    if (a->kind == AK_KICKOFF) {
        const char *loc = apr_table_get(r->headers_out, "Content-Location");

        if (loc && strrchr(loc, '/'))
            a->job = strrchr(loc, '/') + 1;
        add_str(o, "level", a->level);
        add_str(o, "group", a->group);
        add_str(o, "scope", rq->scope);
        add_params(o, a->params);
        if (!a->params && r->args)
            add_str(o, "query", r->args);
    }
    add_str(o, "job", a->job && bf_id_is_uuid(a->job) ? a->job : NULL);
    if (a->kind == AK_FILE) {
        add_str(o, "file", a->file);
        json_object_object_add(o, "bytes",
                               json_object_new_int64((int64_t)r->bytes_sent));
        add_str(o, "range", apr_table_get(r->headers_in, "Range"));
        enc = apr_table_get(r->headers_out, "Content-Encoding");
        add_str(o, "encoding", enc ? enc : "identity");
    }
    if (a->kind == AK_TOKEN && st == HTTP_OK)
        add_str(o, "scope", a->scope);
    out = apr_pstrdup(r->pool, json_object_to_json_string_ext(
                                   o, JSON_C_TO_STRING_PLAIN |
                                          JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return out;
}

/* Another client's job answered 404: flag it (a lookup after the
 * response, for 404s only). */
static const char *flag_foreign(request_rec *r, audit_req_t *a,
                                const char *body)
{
    const char *v[] = { a->job }, *owner;
    PGresult *res;
    bool foreign = false;

    if (r->status != HTTP_NOT_FOUND || !a->job || !bf_id_is_uuid(a->job) ||
        bf_dir_auth(a->rq->dc) == BF_AUTH_NONE || !bf_db_acquire(a->rq))
        return body;
    if (!bf_pq_exec(a->rq->conn, "audit: job owner",
                    "SELECT client_id FROM bulkfhir.job WHERE id = $1::uuid", 1,
                    v, &res, NULL))
        return body;
    if (PQntuples(res) == 1) {
        owner = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
        foreign = !a->rq->client_id || strcmp(owner, a->rq->client_id) != 0;
    }
    PQclear(res);
    if (!foreign)
        return body;
    /* ...} -> ...,"foreign":true} */
    return apr_pstrcat(r->pool, apr_pstrndup(r->pool, body, strlen(body) - 1),
                       ",\"foreign\":true,\"reason_code\":"
                       "\"not the client's job (404 given)\"}",
                       NULL);
}

/* Make room for one more entry (under the mutex). */
static void grow(void)
{
    int cap = child.cap ? 2 * child.cap : 64;

    if (child.n < child.cap)
        return;
    if (!(child.items = realloc(child.items, sizeof(char *) * (size_t)cap)) ||
        !(child.keys = realloc(child.keys, sizeof(char *) * (size_t)cap)) ||
        !(child.counts = realloc(child.counts, sizeof(long) * (size_t)cap)) ||
        !(child.last_at = realloc(child.last_at, sizeof(double) * (size_t)cap)))
        abort(); /* out of memory: as httpd's own allocator does */
    child.cap = cap;
}

/* Take the buffered bodies (caller frees them): a coalesced entry gets
 * "count" and "last_at" (the repeats' number and the last one's time). */
static char **take(int *n)
{
    char **items = NULL, *b;
    size_t len;
    int i;

    *n = 0;
    apr_thread_mutex_lock(child.mu);
    if (child.n > 0) {
        items = malloc(sizeof(char *) * (size_t)child.n);
        if (!items)
            abort();
        for (i = 0; i < child.n; i++) {
            b = child.items[i];
            if (child.counts[i] > 1 && (len = strlen(b)) > 1) {
                items[i] = malloc(len + 64);
                if (!items[i])
                    abort();
                snprintf(items[i], len + 64,
                         "%.*s,\"count\":%ld,"
                         "\"last_at\":%.6f}",
                         (int)(len - 1), b, child.counts[i], child.last_at[i]);
                free(b);
            } else
                items[i] = b;
            free(child.keys[i]);
        }
        *n = child.n;
        child.n = 0;
        apr_atomic_set32(&child.hint_n, 0);
    }
    apr_thread_mutex_unlock(child.mu);
    return items;
}

/* Add a body (key NULL: never coalesced); under the mutex. */
static void add_locked(const char *key, char *body, double at)
{
    grow();
    child.items[child.n] = body;
    child.keys[child.n] = key ? strdup(key) : NULL;
    child.counts[child.n] = 1;
    child.last_at[child.n] = at;
    if (child.n++ == 0)
        apr_atomic_set32(&child.hint_oldest,
                         (apr_uint32_t)apr_time_sec(apr_time_now()));
    apr_atomic_set32(&child.hint_n, (apr_uint32_t)child.n);
}

/* Put bodies back after a failed write (oldest first), dropping what
 * does not fit. */
static void put_back(char **items, int n)
{
    int i;

    apr_thread_mutex_lock(child.mu);
    for (i = 0; i < n; i++) {
        if (child.n >= AUDIT_BUFFER_MAX) {
            child.dropped++;
            free(items[i]);
        } else
            add_locked(NULL, items[i], 0);
    }
    apr_thread_mutex_unlock(child.mu);
    free(items);
}

/* A record identical to a buffered one (same key: kind, method, client,
 * job, file, status, Range, encoding, address, bytes) only counts. */
static bool bump(const char *key, double at)
{
    int i;

    apr_thread_mutex_lock(child.mu);
    for (i = 0; i < child.n; i++)
        if (child.keys[i] && !strcmp(child.keys[i], key)) {
            child.counts[i]++;
            child.last_at[i] = at;
            apr_thread_mutex_unlock(child.mu);
            return true;
        }
    apr_thread_mutex_unlock(child.mu);
    return false;
}

/* Buffer a record (key NULL: never coalesced). */
static void push(const char *key, const char *body, double at)
{
    if (key && bump(key, at))
        return;
    apr_thread_mutex_lock(child.mu);
    if (child.n >= AUDIT_BUFFER_MAX)
        child.dropped++;
    else
        add_locked(key, strdup(body), at);
    apr_thread_mutex_unlock(child.mu);
}

/* Is the buffer to be written?  Read without the mutex (every request of
 * the child asks): the hints are updated under it; a stale read only moves
 * a write by one request. */
static bool due(void)
{
    apr_uint32_t n = apr_atomic_read32(&child.hint_n);

    if (n == 0)
        return false;
    return n >= (apr_uint32_t)audit_batch ||
           (apr_uint32_t)apr_time_sec(apr_time_now()) -
                   apr_atomic_read32(&child.hint_oldest) >=
               (apr_uint32_t)audit_age;
}

/* Write the buffer (and `extra`, after it) with one statement. */
static void flush(request_rec *r, PGconn *conn, const char *extra)
{
    char **items;
    const char **all;
    int n, i;
    long dropped;

    items = take(&n);
    all = apr_palloc(r->pool, sizeof(char *) * (size_t)(n + 1));
    for (i = 0; i < n; i++)
        all[i] = items[i];
    if (extra)
        all[n] = extra;
    if (conn && bf_audit_append(conn, r->pool, child.chain, all,
                                n + (extra ? 1 : 0), NULL)) {
        for (i = 0; i < n; i++)
            free(items[i]);
        free(items);
        apr_thread_mutex_lock(child.mu);
        dropped = child.dropped;
        child.dropped = 0;
        apr_thread_mutex_unlock(child.mu);
        if (dropped)
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "BF01112: audit: %ld record(s) of this child were "
                          "lost while the database was unavailable",
                          dropped);
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  "BF01111: audit: cannot write %d record(s) (chain %s); "
                  "kept in memory for the next attempt",
                  n + (extra ? 1 : 0), child.chain);
    if (extra)
        push(NULL, extra, 0);
    if (items)
        put_back(items, n);
}

/* Two buffered records with the same key are the same access repeated
 * (a client polling a finished job, fetching one file again). */
static const char *coalesce_key(request_rec *r, audit_req_t *a)
{
    const char *client = a->rq->client_id ? a->rq->client_id : r->user;

    const char *xs = apr_table_get(r->headers_out, "X-Export-Status");

    return apr_psprintf(
        r->pool, "%d|%s|%s|%s|%s|%s|%d|%s|%s|%s|%" APR_OFF_T_FMT, (int)a->kind,
        r->method, xs ? xs : "", client ? client : "", a->job ? a->job : "",
        a->file ? a->file : "", r->status,
        apr_table_get(r->headers_in, "Range")
            ? apr_table_get(r->headers_in, "Range")
            : "",
        apr_table_get(r->headers_out, "Content-Encoding")
            ? apr_table_get(r->headers_out, "Content-Encoding")
            : "",
        r->useragent_ip ? r->useragent_ip : "", (apr_off_t)r->bytes_sent);
}

static int audit_log_transaction(request_rec *r)
{
    audit_req_t *a;
    const char *body, *key = NULL;
    double at = (double)r->request_time / APR_USEC_PER_SEC;
    bool now = false;

    if (!audit_on || !child.mu || !(a = req_of(r)) || !a->rq)
        return DECLINED;
    /* a repeat of a buffered download or manifest read: counted, no body
     * built */
    if (((a->kind == AK_FILE && r->status < 400) ||
         (a->kind == AK_STATUS && r->method_number == M_GET &&
          r->status == HTTP_OK)) &&
        bump(key = coalesce_key(r, a), at))
        body = NULL;
    else
        body = body_of(r, a, &now);
    if (body && now && (a->kind == AK_STATUS || a->kind == AK_FILE))
        body = flag_foreign(r, a, body);
    if (body && !now) {
        push(key ? key : coalesce_key(r, a), body, at);
        body = NULL;
    }
    if (body || due())
        flush(r, bf_db_acquire(a->rq), body);
    return DECLINED;
}

bool bf_audit_kickoff(bf_req_t *rq, const struct bf_job_kickoff_t *k,
                      const char *job_id)
{
    request_rec *r = rq->r;
    audit_req_t *a = req_of(r);
    const char *body, *chain, *arr;
    PGresult *res;
    bool ok;

    if (!a || !audit_on || !child.chain || !rq->conn ||
        PQtransactionStatus(rq->conn) != PQTRANS_INTRANS)
        return true; /* recorded after the response instead */
    a->job = job_id;
    if (!a->params)
        a->params = k->params;
    r->status = HTTP_ACCEPTED; /* what the client will get */
    body = body_of(r, a, &ok);
    if (!body)
        return true;
    chain = bf_sql_literal_utf8(r->pool, child.chain);
    arr =
        bf_sql_literal_utf8(r->pool, bf_audit_array_literal(r->pool, &body, 1));
    if (!chain || !arr)
        return true;
    /* Whatever happens, the admission transaction must stay usable (its
     * COMMIT would silently roll back the job otherwise, e.g. before
     * migration 0074): a savepoint, and audit_append_safe returns NULL
     * rather than raising.  Multi-statement: one round trip. */
    res = PQexec(rq->conn,
                 apr_psprintf(r->pool,
                              "SAVEPOINT bf_audit; SELECT "
                              "bulkfhir.audit_append_safe(%s, %s::text[])",
                              chain, arr));
    ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    a->written = ok && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    PQclear(res);
    if (!ok && PQtransactionStatus(rq->conn) == PQTRANS_INERROR) {
        res = PQexec(rq->conn, "ROLLBACK TO SAVEPOINT bf_audit");
        PQclear(res);
    }
    if (!a->written)
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "job %s: audit record not written in the kick-off "
                      "transaction; recorded after the response",
                      job_id);
    return true;
}

static apr_status_t audit_child_exit(void *data)
{
    server_rec *s = data;
    PGconn *conn;
    apr_pool_t *p;
    char **items;
    int n, i;

    items = take(&n);
    if (n == 0)
        return APR_SUCCESS;
    apr_pool_create(&p, NULL);
    conn = child.conninfo ? bf_pq_connect(child.conninfo, "mod_bulkfhir", 5)
                          : NULL;
    if (!conn || !bf_audit_append(conn, p, child.chain,
                                  (const char *const *)items, n, NULL))
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BF01113: audit: %d record(s) of chain %s lost at child "
                     "exit (database unavailable)",
                     n, child.chain);
    if (conn)
        PQfinish(conn);
    for (i = 0; i < n; i++)
        free(items[i]);
    free(items);
    apr_pool_destroy(p);
    return APR_SUCCESS;
}

static void audit_child_init(apr_pool_t *pchild, server_rec *s)
{
    bf_srv_conf_t *sc =
        ap_get_module_config(s->module_config, &bulkfhir_module);
    char host[256];

    if (!audit_on)
        return;
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    child.chain = apr_psprintf(pchild, "httpd:%s:%ld:%" APR_TIME_T_FMT, host,
                               (long)getpid(), apr_time_now());
    child.conninfo = sc->conninfo;
    child.items = NULL;
    child.keys = NULL;
    child.counts = NULL;
    child.last_at = NULL;
    child.n = child.cap = 0;
    child.dropped = 0;
    if (apr_thread_mutex_create(&child.mu, APR_THREAD_MUTEX_DEFAULT, pchild) !=
        APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "BF01110: audit: cannot create the child's mutex; "
                     "nothing will be recorded by this child");
        child.mu = NULL;
        return;
    }
    /* a connection of its own: the pool may be gone by then */
    apr_pool_cleanup_register(pchild, s, audit_child_exit,
                              apr_pool_cleanup_null);
}

void bf_audit_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(audit_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(audit_child_init, NULL, NULL, APR_HOOK_LAST);
    ap_hook_log_transaction(audit_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
}

/* For the status page and ?metrics: the chain of this child. */
const char *bf_audit_chain(void)
{
    return child.chain;
}

int bf_audit_enabled(void)
{
    return audit_on;
}
