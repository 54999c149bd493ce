/* load_db: the loader's statements and its COPY stream.
 *
 * Per batch (the whole load unless --batch N):
 *   BEGIN; SELECT pg_current_xact_id(); ts := clock_timestamp()
 *   -- stamping after taking the xid makes transactionTime exact (DESIGN 1)
 *   UPDATE ... SET superseded_at = ts  (current versions this batch replaces)
 *   COPY fhir.resource_version FROM STDIN  (versions numbered by the client)
 *   COMMIT
 * A session advisory lock lets one loader at a time number versions. */
#include "load.h"
#include "bf_id.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COPY_FLUSH (1u << 20)

/* pg_advisory_lock key of load ("bfload" in ASCII) */
#define LOAD_LOCK "108228140049764"

static const char SQL_LOCK[] = "SELECT pg_advisory_lock(" LOAD_LOCK ")";
static const char SQL_ANY[] =
    "SELECT EXISTS (SELECT 1 FROM fhir.resource_version)";
static const char SQL_KEYS_TABLE[] =
    "CREATE TEMP TABLE bf_load_key (resource_type text, id text)";
static const char SQL_KEYS_COPY[] =
    "COPY bf_load_key (resource_type, id) FROM STDIN";
static const char SQL_KEYS_VERSIONS[] =
    "SELECT k.resource_type || '/' || k.id, max(v.version_id),"
    "       bool_or(v.superseded_at IS NULL)"
    "  FROM bf_load_key k"
    "  JOIN fhir.resource_version v"
    "    ON v.resource_type = k.resource_type AND v.id = k.id"
    " GROUP BY k.resource_type, k.id";
static const char SQL_KEYS_DROP[] = "DROP TABLE bf_load_key";
static const char SQL_URNS[] =
    "SELECT id, resource_type FROM fhir.resource_version"
    " WHERE id = ANY ($1::text[]) AND superseded_at IS NULL";
/* Session settings that make a bulk load cheaper; each may be refused (an
 * older server, a build without lz4) and then simply does not apply.
 *   lz4 compresses large resources several times faster than pglz;
 *   a larger GIN pending list merges patient_ids entries in bulk. */
static const char *const SQL_TUNING[] = { "SET default_toast_compression = lz4",
                                          "SET gin_pending_list_limit = '32MB'",
                                          NULL };
static const char SQL_XID[] = "SELECT pg_current_xact_id()";
static const char SQL_TS[] =
    "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',"
    "               'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
static const char SQL_SUPERSEDE[] =
    "UPDATE fhir.resource_version v SET superseded_at = $1::timestamptz"
    "  FROM unnest($2::text[], $3::text[]) AS k(resource_type, id)"
    " WHERE v.resource_type = k.resource_type AND v.id = k.id"
    "   AND v.superseded_at IS NULL";
static const char SQL_COPY[] =
    "COPY fhir.resource_version (resource_type, id, version_id, last_updated,"
    " superseded_at, deleted, patient_ids, resource) FROM STDIN";

/* ---- COPY buffer --------------------------------------------------------- */

static bool flush(load_ctx *c)
{
    if (c->clen && PQputCopyData(c->conn, c->cbuf, (int)c->clen) != 1) {
        bf_log(BF_LOG_ERR, "BF03050: load: COPY: %s", PQerrorMessage(c->conn));
        return false;
    }
    c->clen = 0;
    return true;
}

static bool reserve(load_ctx *c, size_t n)
{
    if (c->clen + n > c->ccap) {
        size_t cap = c->ccap ? c->ccap : 2 * COPY_FLUSH;
        char *nb;

        if (c->clen >= COPY_FLUSH && !flush(c))
            return false;
        while (c->clen + n > cap)
            cap *= 2;
        if (cap > c->ccap) {
            nb = realloc(c->cbuf, cap);
            if (!nb) {
                bf_log(BF_LOG_ERR, "BF03051: load: out of memory");
                return false;
            }
            c->cbuf = nb;
            c->ccap = cap;
        }
    }
    return true;
}

bool load_db_put(load_ctx *c, const char *data, size_t n)
{
    if (!reserve(c, n))
        return false;
    memcpy(c->cbuf + c->clen, data, n);
    c->clen += n;
    if (c->clen >= COPY_FLUSH)
        return flush(c);
    return true;
}

/* COPY text format: backslash, newline, carriage return and tab escaped. */
bool load_db_put_escaped(load_ctx *c, const char *data, size_t n)
{
    size_t i, run = 0;
    char *o;

    if (!reserve(c, 2 * n))
        return false;
    o = c->cbuf + c->clen;
    for (i = 0; i < n; i++) {
        char ch = data[i];

        if (ch != '\\' && ch != '\n' && ch != '\r' && ch != '\t')
            continue;
        memcpy(o, data + run, i - run);
        o += i - run;
        *o++ = '\\';
        *o++ = ch == '\\' ? '\\' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
        run = i + 1;
    }
    memcpy(o, data + run, n - run);
    o += n - run;
    c->clen = (size_t)(o - c->cbuf);
    if (c->clen >= COPY_FLUSH)
        return flush(c);
    return true;
}

static bool copy_start(load_ctx *c, const char *sql)
{
    PGresult *res = PQexec(c->conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COPY_IN;

    if (!ok)
        bf_log(BF_LOG_ERR, "BF03052: load: %s", PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

/* End the COPY; errmsg != NULL aborts it.  *rows gets the row count. */
static bool copy_end(load_ctx *c, const char *errmsg, long *rows)
{
    PGresult *res;
    bool ok = true;

    if (!errmsg && !flush(c))
        errmsg = "client failed";
    c->clen = 0;
    if (PQputCopyEnd(c->conn, errmsg) != 1) {
        bf_log(BF_LOG_ERR, "BF03053: load: COPY end: %s",
               PQerrorMessage(c->conn));
        ok = false;
    }
    while ((res = PQgetResult(c->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            if (!errmsg) {
                const char *m = PQresultErrorMessage(res);
                char line[1024];
                char *nl;

                snprintf(line, sizeof line, "%s", m);
                while ((nl = strchr(line, '\n')))
                    *nl = ' ';
                bf_log(BF_LOG_ERR, "BF03054: load: COPY failed: %s", line);
            }
            ok = false;
        } else if (rows)
            *rows = atol(PQcmdTuples(res));
        PQclear(res);
    }
    return ok && !errmsg;
}

/* ---- before pass 2 --------------------------------------------------------
 */

static bool lookup_versions(load_ctx *c)
{
    apr_hash_index_t *hi;
    PGresult *res = NULL;
    int r;

    if (!bf_pq_exec(c->conn, "load: keys", SQL_KEYS_TABLE, 0, NULL, NULL,
                    NULL) ||
        !copy_start(c, SQL_KEYS_COPY))
        return false;
    for (hi = apr_hash_first(c->pool, c->keys); hi; hi = apr_hash_next(hi)) {
        load_key *k = apr_hash_this_val(hi);

        /* types and ids are validated: nothing to escape */
        if (!load_db_put(c, k->ref, k->type_len) || !load_db_put(c, "\t", 1) ||
            !load_db_put(c, k->ref + k->type_len + 1,
                         strlen(k->ref + k->type_len + 1)) ||
            !load_db_put(c, "\n", 1)) {
            copy_end(c, "client failed", NULL);
            return false;
        }
    }
    if (!copy_end(c, NULL, NULL) ||
        !bf_pq_exec(c->conn, "load: versions", SQL_KEYS_VERSIONS, 0, NULL, &res,
                    NULL))
        return false;
    for (r = 0; r < PQntuples(res); r++) {
        load_key *k =
            apr_hash_get(c->keys, PQgetvalue(res, r, 0), APR_HASH_KEY_STRING);

        if (k) {
            k->store_max = atol(PQgetvalue(res, r, 1));
            k->store_current = PQgetvalue(res, r, 2)[0] == 't';
        }
    }
    if (c->verbose)
        bf_log(BF_LOG_INFO, "load: %d of %u resources already in the store",
               PQntuples(res), apr_hash_count(c->keys));
    PQclear(res);
    return bf_pq_exec(c->conn, "load: keys", SQL_KEYS_DROP, 0, NULL, NULL,
                      NULL);
}

/* Append "s" to an array literal being built in buf. */
static bool arr_add(char **buf, size_t *len, size_t *cap, const char *s,
                    size_t n)
{
    char sep;

    if (*len + n + 4 > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        char *nb;

        while (*len + n + 4 > nc)
            nc *= 2;
        nb = realloc(*buf, nc);
        if (!nb)
            return false;
        *buf = nb;
        *cap = nc;
    }
    sep = *len == 0 ? '{' : ',';
    (*buf)[(*len)++] = sep;
    (*buf)[(*len)++] = '"';
    memcpy(*buf + *len, s, n); /* validated ids: no quotes or backslashes */
    *len += n;
    (*buf)[(*len)++] = '"';
    (*buf)[*len] = '\0';
    return true;
}

static bool lookup_urns(load_ctx *c)
{
    apr_hash_index_t *hi;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *params[1];
    PGresult *res = NULL;
    int r;
    bool ok = false;

    for (hi = apr_hash_first(c->pool, c->wanted); hi; hi = apr_hash_next(hi)) {
        const char *uuid = apr_hash_this_key(hi);

        if (bf_id_is_fhir_id(uuid, strlen(uuid)) &&
            !arr_add(&buf, &len, &cap, uuid, strlen(uuid)))
            goto leave;
    }
    if (!buf) {
        ok = true;
        goto leave;
    }
    buf[len++] = '}';
    buf[len] = '\0';
    params[0] = buf;
    if (!bf_pq_exec(c->conn, "load: resolve urn:uuid", SQL_URNS, 1, params,
                    &res, NULL))
        goto leave;
    for (r = 0; r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        const char *old = apr_hash_get(c->store_urns, id, APR_HASH_KEY_STRING);
        const char *ref =
            apr_pstrcat(c->pool, PQgetvalue(res, r, 1), "/", id, NULL);

        /* an id of two types names neither: "" marks it */
        apr_hash_set(c->store_urns, apr_pstrdup(c->pool, id),
                     APR_HASH_KEY_STRING, old ? "" : ref);
    }
    PQclear(res);
    ok = true;
leave:
    free(buf);
    return ok;
}

bool load_db_prepare(load_ctx *c)
{
    apr_hash_index_t *hi;
    PGresult *res;
    bool any;
    int i;

    for (i = 0; SQL_TUNING[i]; i++)
        bf_pq_exec_quiet(c->conn, "load: tuning", SQL_TUNING[i], 0, NULL, NULL,
                         NULL);
    if (!bf_pq_exec(c->conn, "load: lock", SQL_LOCK, 0, NULL, NULL, NULL) ||
        !bf_pq_exec(c->conn, "load: store", SQL_ANY, 0, NULL, &res, NULL))
        return false;
    any = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (any && (!lookup_versions(c) || !lookup_urns(c)))
        return false;
    for (hi = apr_hash_first(c->pool, c->keys); hi; hi = apr_hash_next(hi)) {
        load_key *k = apr_hash_this_val(hi);

        k->next_version = k->store_max + 1;
    }
    return true;
}

/* ---- batches ----------------------------------------------------------------
 */

bool load_db_batch_begin(load_ctx *c)
{
    long n = c->order->nelts - c->ordinal, i;
    char *types = NULL, *ids = NULL;
    size_t tl = 0, tc = 0, il = 0, ic = 0;
    PGresult *res = NULL;
    bool ok = false;

    if (c->batch && c->batch < n)
        n = c->batch;
    /* count this batch's occurrences per key; a key's first occurrence in
     * the batch supersedes whatever version is current in the store */
    for (i = c->ordinal; i < c->ordinal + n; i++) {
        load_key *k = APR_ARRAY_IDX(c->order, i, load_key *);

        if (k->batch_no != c->batch_no) {
            k->batch_no = c->batch_no;
            k->batch_count = k->batch_seen = 0;
            if ((k->store_current || k->written) &&
                (!arr_add(&types, &tl, &tc, k->ref, k->type_len) ||
                 !arr_add(&ids, &il, &ic, k->ref + k->type_len + 1,
                          strlen(k->ref + k->type_len + 1)))) {
                bf_log(BF_LOG_ERR, "BF03090: load: out of memory");
                goto leave;
            }
        }
        k->batch_count++;
    }
    c->batch_left = n;

    if (!bf_pq_begin(c->conn, "load: begin"))
        goto leave;
    c->in_batch = true;
    if (!bf_pq_exec(c->conn, "load: xid", SQL_XID, 0, NULL, NULL, NULL) ||
        !bf_pq_exec(c->conn, "load: clock", SQL_TS, 0, NULL, &res, NULL))
        goto leave;
    snprintf(c->ts, sizeof c->ts, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (types) {
        const char *params[3];

        types[tl++] = '}';
        types[tl] = '\0';
        ids[il++] = '}';
        ids[il] = '\0';
        params[0] = c->ts;
        params[1] = types;
        params[2] = ids;
        if (!bf_pq_exec(c->conn, "load: supersede", SQL_SUPERSEDE, 3, params,
                        NULL, NULL))
            goto leave;
    }
    if (!copy_start(c, SQL_COPY))
        goto leave;
    ok = true;
leave:
    free(types);
    free(ids);
    return ok;
}

bool load_db_batch_end(load_ctx *c)
{
    long rows = 0;

    if (!copy_end(c, NULL, &rows))
        return false;
    if (!bf_pq_commit(c->conn, "load: commit"))
        return false;
    c->in_batch = false;
    c->batch_no++;
    if (c->verbose)
        bf_log(BF_LOG_INFO, "load: committed batch %ld (%ld rows)", c->batch_no,
               rows);
    return true;
}

void load_db_abort(load_ctx *c)
{
    if (!c->conn)
        return;
    if (PQtransactionStatus(c->conn) == PQTRANS_ACTIVE)
        copy_end(c, "bulkfhirctl load failed", NULL);
    bf_pq_rollback(c->conn, "load: rollback");
    c->in_batch = false;
}
