/* bf_audit: append, verify, AuditEvent (see bf_audit.h). */
#include "bf_audit.h"
#include "bf_log.h"
#include "bf_oo.h"
#include "bf_pq.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- append ------------------------------------------------------------- */

/* A text[] literal element: "..." with " and \ escaped. */
const char *bf_audit_array_literal(apr_pool_t *p, const char *const *v, int n)
{
    apr_size_t len = 3;
    const char *s;
    char *out, *o;
    int i;

    for (i = 0; i < n; i++)
        len += 2 * strlen(v[i]) + 3;
    out = o = apr_palloc(p, len);
    *o++ = '{';
    for (i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        *o++ = '"';
        for (s = v[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                *o++ = '\\';
            *o++ = *s;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

bool bf_audit_append(PGconn *conn, apr_pool_t *p, const char *chain,
                     const char *const *bodies, int n, char sqlstate[6])
{
    const char *v[2];

    if (n <= 0)
        return true;
    v[0] = chain;
    v[1] = bf_audit_array_literal(p, bodies, n);
    return bf_pq_exec(conn, "audit append",
                      "SELECT bulkfhir.audit_append($1, $2::text[])", 2, v,
                      NULL, sqlstate);
}

/* ---- verify ------------------------------------------------------------- */

void bf_audit_hash(const unsigned char prev[32], const char *chain,
                   long long seq, const char *body, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char num[32];
    unsigned int len = 32;

    snprintf(num, sizeof num, "\n%lld\n", seq);
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, prev, 32);
    EVP_DigestUpdate(ctx, chain, strlen(chain));
    EVP_DigestUpdate(ctx, num, strlen(num));
    EVP_DigestUpdate(ctx, body, strlen(body));
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
}

/* 64 hex digits -> 32 bytes */
static bool unhex32(const char *s, unsigned char out[32])
{
    int i;
    unsigned int b;

    if (strlen(s) != 64)
        return false;
    for (i = 0; i < 32; i++) {
        if (sscanf(s + 2 * i, "%2x", &b) != 1)
            return false;
        out[i] = (unsigned char)b;
    }
    return true;
}

/* a row of bulkfhir.audit_chain */
typedef struct {
    long long last_seq, pruned_seq;
    unsigned char last_hash[32];
    bool has_hash, seen;
} chain_row_t;

typedef struct {
    const char *name;
    long long seq; /* last seq checked; 0: none yet */
    unsigned char hash[32];
    bool broken;
    chain_row_t *row; /* NULL: the chain has no row */
} chain_state_t;

static void note_broken(apr_pool_t *p, bf_audit_verify_t *out,
                        chain_state_t *cs, long long id, long long seq,
                        const char *at, const char *why)
{
    if (cs->broken)
        return;
    cs->broken = true;
    out->broken++;
    if (out->first_chain &&
        (id == 0 || (out->first_id != 0 && out->first_id < id)))
        return;
    out->first_id = id;
    out->first_seq = seq;
    out->first_chain = apr_pstrdup(p, cs->name);
    out->first_at = apr_pstrdup(p, at ? at : "-");
    out->first_why = why;
}

static const char *missing(apr_pool_t *p, long long from, long long to)
{
    return apr_psprintf(p,
                        "records %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT
                        " of the chain are missing",
                        (apr_int64_t)from, (apr_int64_t)to);
}

static void check_row(apr_pool_t *p, bf_audit_verify_t *out, chain_state_t *cs,
                      PGresult *res, int i, bool since)
{
    static const unsigned char zero[32] = { 0 };
    long long id = atoll(PQgetvalue(res, i, 0));
    long long seq = atoll(PQgetvalue(res, i, 2));
    const char *body = PQgetvalue(res, i, 3);
    const char *at = PQgetvalue(res, i, 6);
    unsigned char prev[32], hash[32], calc[32];
    long long first;

    out->records++;
    if (!unhex32(PQgetvalue(res, i, 4), prev) ||
        !unhex32(PQgetvalue(res, i, 5), hash)) {
        note_broken(p, out, cs, id, seq, at, "hash is not 32 bytes");
        return;
    }
    if (cs->seq == 0) { /* first record checked of this chain */
        first = cs->row ? cs->row->pruned_seq + 1 : 1;
        if (!since && seq != first)
            note_broken(p, out, cs, id, seq, at, missing(p, first, seq - 1));
        else if (seq == 1 && memcmp(prev, zero, 32) != 0)
            note_broken(p, out, cs, id, seq, at,
                        "the chain's first record has a non-zero prev_hash");
    } else if (seq != cs->seq + 1) {
        note_broken(p, out, cs, id, seq, at, missing(p, cs->seq + 1, seq - 1));
    } else if (memcmp(prev, cs->hash, 32) != 0) {
        note_broken(p, out, cs, id, seq, at,
                    "prev_hash differs from the previous record's hash");
    }
    bf_audit_hash(prev, cs->name, seq, body, calc);
    if (memcmp(calc, hash, 32) != 0)
        note_broken(p, out, cs, id, seq, at,
                    "the stored hash does not match the record's contents");
    cs->seq = seq;
    memcpy(cs->hash, hash, 32);
}

/* The chain's recorded tail must be the last record seen. */
static void check_tail(apr_pool_t *p, bf_audit_verify_t *out, chain_state_t *cs)
{
    chain_row_t *row = cs->row;

    if (!row) {
        note_broken(p, out, cs, 0, cs->seq, NULL,
                    "the chain has no row in bulkfhir.audit_chain");
        return;
    }
    row->seen = true;
    if (row->last_seq != cs->seq || !row->has_hash ||
        memcmp(row->last_hash, cs->hash, 32) != 0)
        note_broken(p, out, cs, 0, cs->seq + 1, NULL,
                    row->last_seq > cs->seq
                        ? missing(p, cs->seq + 1, row->last_seq)
                        : "the chain's recorded tail differs from its last "
                          "record");
}

/* Every row of bulkfhir.audit_chain, by name. */
static bool load_chains(PGconn *conn, apr_pool_t *p, apr_hash_t **out)
{
    PGresult *res;
    chain_row_t *row;
    int i;

    *out = apr_hash_make(p);
    if (!bf_pq_exec(conn, "audit verify",
                    "SELECT name, last_seq, pruned_seq, "
                    "coalesce(encode(last_hash, 'hex'), '') "
                    "FROM bulkfhir.audit_chain",
                    0, NULL, &res, NULL))
        return false;
    for (i = 0; i < PQntuples(res); i++) {
        row = apr_pcalloc(p, sizeof *row);
        row->last_seq = atoll(PQgetvalue(res, i, 1));
        row->pruned_seq = atoll(PQgetvalue(res, i, 2));
        row->has_hash = unhex32(PQgetvalue(res, i, 3), row->last_hash);
        apr_hash_set(*out, apr_pstrdup(p, PQgetvalue(res, i, 0)),
                     APR_HASH_KEY_STRING, row);
    }
    PQclear(res);
    return true;
}

bool bf_audit_verify(PGconn *conn, apr_pool_t *p, const char *since,
                     bf_audit_verify_t *out)
{
    const char *v[] = { since };
    chain_state_t cs;
    apr_hash_t *chains;
    apr_hash_index_t *hi;
    chain_row_t *row;
    PGresult *res;
    int i, n;
    bool ok = false;

    memset(out, 0, sizeof *out);
    memset(&cs, 0, sizeof cs);
    if (!bf_pq_exec(conn, "audit verify",
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                    NULL, NULL))
        return false;
    if (!load_chains(conn, p, &chains))
        goto leave;
    /* --since: each chain from its first record at or after T (a chain's
     * times are not ordered: buffered records carry their request's) */
    if (!bf_pq_exec(conn, "audit verify",
                    since ? "DECLARE bf_audit_v NO SCROLL CURSOR FOR "
                            "SELECT a.id, a.chain, a.seq, a.body, "
                            "encode(a.prev_hash, 'hex'), "
                            "encode(a.hash, 'hex'), a.at "
                            "FROM bulkfhir.audit a JOIN (SELECT chain, "
                            "min(seq) AS s0 FROM bulkfhir.audit WHERE at >= "
                            "$1::timestamptz GROUP BY chain) k "
                            "ON k.chain = a.chain AND a.seq >= k.s0 "
                            "ORDER BY a.chain, a.seq"
                          : "DECLARE bf_audit_v NO SCROLL CURSOR FOR "
                            "SELECT id, chain, seq, body, "
                            "encode(prev_hash, 'hex'), encode(hash, 'hex'), "
                            "at FROM bulkfhir.audit ORDER BY chain, seq",
                    since ? 1 : 0, since ? v : NULL, NULL, NULL))
        goto leave;
    for (;;) {
        if (!bf_pq_exec(conn, "audit verify", "FETCH 2000 FROM bf_audit_v", 0,
                        NULL, &res, NULL))
            goto leave;
        n = PQntuples(res);
        for (i = 0; i < n; i++) {
            const char *chain = PQgetvalue(res, i, 1);

            if (!cs.name || strcmp(cs.name, chain) != 0) {
                if (cs.name)
                    check_tail(p, out, &cs);
                memset(&cs, 0, sizeof cs);
                cs.name = apr_pstrdup(p, chain);
                cs.row = apr_hash_get(chains, cs.name, APR_HASH_KEY_STRING);
                out->chains++;
            }
            check_row(p, out, &cs, res, i, since != NULL);
        }
        PQclear(res);
        if (n == 0)
            break;
    }
    if (cs.name)
        check_tail(p, out, &cs);
    /* a chain with records on record but none left (all removed) */
    for (hi = apr_hash_first(p, chains); !since && hi; hi = apr_hash_next(hi)) {
        const void *key;

        apr_hash_this(hi, &key, NULL, (void **)&row);
        if (row->seen || row->last_seq <= row->pruned_seq)
            continue;
        memset(&cs, 0, sizeof cs);
        cs.name = key;
        out->chains++;
        note_broken(p, out, &cs, 0, row->pruned_seq + 1, NULL,
                    missing(p, row->pruned_seq + 1, row->last_seq));
    }
    ok = true;
leave:
    bf_pq_rollback(conn, "audit verify");
    return ok;
}

/* ---- AuditEvent -----------------------------------------------------------
 */

#define SYS_DCM "http://dicom.nema.org/resources/ontology/DCM"
#define SYS_EVENT_TYPE "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define SYS_REST "http://hl7.org/fhir/restful-interaction"
#define SYS_ENTITY_TYPE                                                        \
    "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define SYS_OBJECT_ROLE "http://terminology.hl7.org/CodeSystem/object-role"
#define SYS_SOURCE_TYPE                                                        \
    "http://terminology.hl7.org/CodeSystem/security-source-type"
#define SYS_CLIENT "urn:bulkfhir:client"
#define SYS_JOB "urn:bulkfhir:job"

static json_object *coding(const char *system, const char *code,
                           const char *display)
{
    json_object *c = json_object_new_object();

    json_object_object_add(c, "system", json_object_new_string(system));
    json_object_object_add(c, "code", json_object_new_string(code));
    if (display)
        json_object_object_add(c, "display", json_object_new_string(display));
    return c;
}

static json_object *concept(const char *system, const char *code,
                            const char *display)
{
    json_object *cc = json_object_new_object(), *a = json_object_new_array();

    json_object_array_add(a, coding(system, code, display));
    json_object_object_add(cc, "coding", a);
    return cc;
}

static const char *str(json_object *body, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(body, key, &v) || !v ||
        json_object_is_type(v, json_type_null))
        return NULL;
    return json_object_get_string(v);
}

typedef struct {
    const char *action;
    const char *type_sys, *type_code, *type_display;
    const char *sub_sys, *sub_code, *sub_display;
    const char *verb; /* C R U D E */
} event_map_t;

/* action prefix -> AuditEvent type, subtype, action */
static const event_map_t MAP[] = {
    { "token", SYS_DCM, "110114", "User Authentication", SYS_DCM, "110122",
      "Login", "E" },
    { "kickoff", SYS_DCM, "110106", "Export", SYS_REST, "operation",
      "operation", "E" },
    { "download", SYS_DCM, "110106", "Export", SYS_REST, "read", "read", "R" },
    { "status.delete", SYS_EVENT_TYPE, "rest", "RESTful Operation", SYS_REST,
      "delete", "delete", "D" },
    { "status", SYS_EVENT_TYPE, "rest", "RESTful Operation", SYS_REST, "read",
      "read", "R" },
    { "job.deleted", SYS_DCM, "110106", "Export", SYS_REST, "delete", "delete",
      "D" },
    { "job.files_removed", SYS_DCM, "110106", "Export", SYS_REST, "delete",
      "delete", "D" },
    { "job.cancelled", SYS_DCM, "110106", "Export", SYS_REST, "delete",
      "delete", "D" },
    { "job", SYS_DCM, "110106", "Export", SYS_REST, "operation", "operation",
      "E" },
    { "audit", SYS_DCM, "110101", "Audit Log Used", NULL, NULL, NULL, "D" },
    { NULL, SYS_EVENT_TYPE, "rest", "RESTful Operation", NULL, NULL, NULL, "E" }
};

static const event_map_t *event_map(const char *action)
{
    const event_map_t *m;
    size_t n;

    for (m = MAP; m->action; m++) {
        n = strlen(m->action);
        if (!strncmp(action, m->action, n) &&
            (action[n] == '\0' || action[n] == '.'))
            return m;
    }
    return m;
}

static const char *recorded(apr_pool_t *p, double at)
{
    time_t t = (time_t)at;
    struct tm tm;
    char buf[40];
    int ms = (int)((at - (double)t) * 1000.0);

    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return apr_psprintf(p, "%s.%03dZ", buf, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

static void add_detail(json_object *details, const char *type,
                       const char *value)
{
    json_object *d;

    if (!value || !*value)
        return;
    d = json_object_new_object();
    json_object_object_add(d, "type", json_object_new_string(type));
    json_object_object_add(d, "valueString", json_object_new_string(value));
    json_object_array_add(details, d);
}

static json_object *entity(json_object *what, const char *type_code,
                           const char *type_display, const char *role_code,
                           const char *role_display, const char *name)
{
    json_object *e = json_object_new_object();

    json_object_object_add(e, "what", what);
    json_object_object_add(e, "type",
                           coding(SYS_ENTITY_TYPE, type_code, type_display));
    json_object_object_add(e, "role",
                           coding(SYS_OBJECT_ROLE, role_code, role_display));
    if (name)
        json_object_object_add(e, "name", json_object_new_string(name));
    return e;
}

static json_object *identifier_ref(const char *system, const char *value)
{
    json_object *r = json_object_new_object(), *id = json_object_new_object();

    json_object_object_add(id, "system", json_object_new_string(system));
    json_object_object_add(id, "value", json_object_new_string(value));
    json_object_object_add(r, "identifier", id);
    return r;
}

static json_object *reference(const char *ref)
{
    json_object *r = json_object_new_object();

    json_object_object_add(r, "reference", json_object_new_string(ref));
    return r;
}

/* "Patient/x" from x, "Patient/x" or {"reference": "Patient/x"} text */
static const char *patient_ref(apr_pool_t *p, const char *v)
{
    if (!v)
        return "Patient/unknown";
    return strncmp(v, "Patient/", 8) == 0 ? v
                                          : apr_pstrcat(p, "Patient/", v, NULL);
}

/* The entities: the job (with what was asked and what left), its Group,
 * its patients, the file. */
static void add_entities(apr_pool_t *p, json_object *ev, json_object *body)
{
    json_object *ents = json_object_new_array(), *det, *e, *v, *pat;
    const char *job = str(body, "job"), *group = str(body, "group");
    const char *file = str(body, "file");
    size_t i;

    if (job) {
        e = entity(identifier_ref(SYS_JOB, job), "2", "System Object", "20",
                   "Job", "bulk data export job");
        det = json_object_new_array();
        add_detail(det, "level", str(body, "level"));
        add_detail(det, "parameters", str(body, "params"));
        add_detail(det, "query", str(body, "query"));
        add_detail(det, "scope", str(body, "scope"));
        add_detail(det, "state", str(body, "state"));
        if (json_object_object_get_ex(body, "output", &v))
            add_detail(
                det, "output",
                json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        add_detail(det, "resources", str(body, "resources"));
        add_detail(det, "bytes", file ? NULL : str(body, "bytes"));
        add_detail(det, "duration_s", str(body, "duration_s"));
        if (json_object_array_length(det) > 0)
            json_object_object_add(e, "detail", det);
        else
            json_object_put(det);
        json_object_array_add(ents, e);
    }
    if (group)
        json_object_array_add(
            ents, entity(reference(apr_pstrcat(p, "Group/", group, NULL)), "1",
                         "Person", "1", "Patient", NULL));
    if (json_object_object_get_ex(body, "patients", &pat) &&
        json_object_is_type(pat, json_type_array))
        for (i = 0; i < json_object_array_length(pat); i++)
            json_object_array_add(
                ents, entity(reference(patient_ref(
                                 p, json_object_get_string(
                                        json_object_array_get_idx(pat, i)))),
                             "1", "Person", "1", "Patient", NULL));
    if (file && job) {
        e = entity(identifier_ref("urn:bulkfhir:file",
                                  apr_pstrcat(p, job, "/", file, NULL)),
                   "2", "System Object", "4", "Domain Resource", file);
        det = json_object_new_array();
        add_detail(det, "bytes", str(body, "bytes"));
        add_detail(det, "range", str(body, "range"));
        add_detail(det, "encoding", str(body, "encoding"));
        add_detail(det, "status", str(body, "status"));
        if (json_object_array_length(det) > 0)
            json_object_object_add(e, "detail", det);
        else
            json_object_put(det);
        json_object_array_add(ents, e);
    }
    if (json_object_array_length(ents) > 0)
        json_object_object_add(ev, "entity", ents);
    else
        json_object_put(ents);
}

static json_object *agents(json_object *body)
{
    json_object *a = json_object_new_array(), *ag, *net, *by;
    const char *client = str(body, "client"), *remote = str(body, "remote");

    ag = json_object_new_object();
    json_object_object_add(ag, "type",
                           concept(SYS_DCM, "110153", "Source Role ID"));
    json_object_object_add(ag, "who",
                           client ? identifier_ref(SYS_CLIENT, client)
                                  : json_object_new_object());
    if (!client)
        json_object_object_add(
            json_object_object_get(ag, "who"), "display",
            json_object_new_string(str(body, "claimed_client")
                                       ? str(body, "claimed_client")
                                       : "anonymous or unauthenticated"));
    json_object_object_add(ag, "requestor", json_object_new_boolean(1));
    if (remote) {
        net = json_object_new_object();
        json_object_object_add(net, "address", json_object_new_string(remote));
        json_object_object_add(net, "type", json_object_new_string("2"));
        json_object_object_add(ag, "network", net);
    }
    json_object_array_add(a, ag);
    if (json_object_object_get_ex(body, "by", &by)) {
        ag = json_object_new_object();
        json_object_object_add(
            ag, "type", concept(SYS_DCM, "110152", "Destination Role ID"));
        json_object_object_add(
            ag, "name",
            json_object_new_string(
                json_object_to_json_string_ext(by, JSON_C_TO_STRING_PLAIN)));
        json_object_object_add(ag, "requestor", json_object_new_boolean(0));
        json_object_array_add(a, ag);
    }
    return a;
}

const char *bf_audit_event(apr_pool_t *p, long long id, const char *chain,
                           const char *body_text)
{
    json_object *body = json_tokener_parse(body_text), *ev, *src, *st;
    const event_map_t *m;
    const char *action, *outcome, *reason, *out;
    int status;

    if (!body || !json_object_is_type(body, json_type_object)) {
        if (body)
            json_object_put(body);
        return NULL;
    }
    action = str(body, "action") ? str(body, "action") : "unknown";
    m = event_map(action);
    ev = json_object_new_object();
    json_object_object_add(ev, "resourceType",
                           json_object_new_string("AuditEvent"));
    json_object_object_add(
        ev, "id",
        json_object_new_string(apr_psprintf(
            p, "bulkfhir-audit-%" APR_INT64_T_FMT, (apr_int64_t)id)));
    json_object_object_add(ev, "type",
                           coding(m->type_sys, m->type_code, m->type_display));
    if (m->sub_sys) {
        st = json_object_new_array();
        json_object_array_add(st,
                              coding(m->sub_sys, m->sub_code, m->sub_display));
        json_object_object_add(ev, "subtype", st);
    }
    json_object_object_add(ev, "action", json_object_new_string(m->verb));
    json_object_object_add(
        ev, "recorded",
        json_object_new_string(
            recorded(p, str(body, "at") ? atof(str(body, "at")) : 0)));
    status = str(body, "status") ? atoi(str(body, "status")) : 0;
    outcome = str(body, "outcome");
    json_object_object_add(
        ev, "outcome",
        json_object_new_string(
            (outcome && !strcmp(outcome, "failure")) || status >= 500   ? "8"
            : (outcome && !strcmp(outcome, "refused")) || status >= 400 ? "4"
                                                                        : "0"));
    reason = str(body, "reason");
    json_object_object_add(
        ev, "outcomeDesc",
        json_object_new_string(apr_psprintf(
            p, "%s%s%s%s", action, status ? apr_psprintf(p, " %d", status) : "",
            reason ? ": " : "", reason ? reason : "")));
    json_object_object_add(ev, "agent", agents(body));
    src = json_object_new_object();
    json_object_object_add(src, "site", json_object_new_string(chain));
    json_object_object_add(src, "observer", json_object_new_object());
    json_object_object_add(json_object_object_get(src, "observer"), "display",
                           json_object_new_string("mod_bulkfhir"));
    st = json_object_new_array();
    json_object_array_add(st,
                          coding(SYS_SOURCE_TYPE, "4", "Application Server"));
    json_object_object_add(src, "type", st);
    json_object_object_add(ev, "source", src);
    add_entities(p, ev, body);
    out = bf_json_to_pool(p, ev);
    json_object_put(ev);
    json_object_put(body);
    return out;
}
