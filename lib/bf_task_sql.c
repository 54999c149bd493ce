/* bf_task_sql: the COPY statements a task streams (see bf_task.h): the
 * output of a type task, its deleted Bundles, and the resource blocks of an
 * organized task.  COPY takes no parameters: every value is validated, then
 * quoted with bf_sql_literal_utf8 (bf_sql.h).
 *
 * Every statement selects the versions valid at the job's transactionTime T
 * (last_updated <= T and not superseded at T), DESIGN invariant 1.  Alias r
 * is always the row being exported, c a compartment row, so the _typeFilter
 * SQL (over an unqualified `resource`) binds to r.
 *
 * Statements are built linearly: the pieces go into an array (sb_t) that
 * is joined once; lists over types, members and CASE branches never
 * re-copy what was built so far. */
#include "bf_task.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <json-c/json.h>

#include "bf_elements.h"
#include "bf_id.h"
#include "bf_pq.h"
#include "bf_sql.h"
#include "bf_r4.h"
#include "bf_typefilter.h"

/* Bundles per line in a deleted file, entries per Bundle */
#define DELETED_PER_BUNDLE 1000

typedef struct xq {
    PGconn *conn;
    apr_pool_t *p;
    const bf_task_t *task;
    const bf_task_job_t *job;
    const char *T;                /* quoted transaction time */
    const char *since, *until;    /* quoted, or NULL */
    bool compartment;             /* patient or group level */
    const char *members;          /* text[] of patient ids, NULL: all */
    int members_n;                /* its length once materialized, else -1 */
    apr_array_header_t *types;    /* _type (const char *), NULL: all */
    apr_array_header_t *filters;  /* every bf_typefilter * of the job */
    apr_array_header_t *elements; /* bf_element, NULL: no _elements */
    int assoc;                    /* includeAssociatedData without Provenance
                                   * in _type: ASSOC_LATEST | ASSOC_RELEVANT */
    const char *req_array;        /* ARRAY[...] of the valid _type, cached */
    char *sqlstate;               /* of the last failed statement, or NULL */
} xq_t;

/* A statement under construction: pieces appended, joined once. */
typedef struct sb {
    apr_pool_t *p;
    apr_array_header_t *parts; /* const char * */
} sb_t;

static void sb_init(sb_t *b, apr_pool_t *p, int n)
{
    b->p = p;
    b->parts = apr_array_make(p, n, sizeof(const char *));
}

/* Append the strings up to a NULL. */
static void sb_add(sb_t *b, ...)
{
    va_list ap;
    const char *s;

    va_start(ap, b);
    while ((s = va_arg(ap, const char *)) != NULL)
        if (*s)
            APR_ARRAY_PUSH(b->parts, const char *) = s;
    va_end(ap);
}

static bool sb_empty(const sb_t *b)
{
    return b->parts->nelts == 0;
}

static const char *sb_join(const sb_t *b)
{
    return apr_array_pstrcat(b->p, b->parts, 0);
}

#define ASSOC_LATEST 1
#define ASSOC_RELEVANT 2

/* FHIR date/dateTime text (possibly partial) as the first / the first
 * instant after the end of the interval it denotes. */
#define FHIR_START(x)                                                          \
    "(CASE length(" x ") WHEN 4 THEN (" x " || '-01-01')::timestamptz"         \
    " WHEN 7 THEN (" x " || '-01')::timestamptz ELSE (" x                      \
    ")::timestamptz END)"
#define FHIR_END(x)                                                            \
    "(CASE length(" x ") WHEN 4 THEN (" x                                      \
    " || '-01-01')::timestamptz + interval '1 year'"                           \
    " WHEN 7 THEN (" x " || '-01')::timestamptz + interval '1 month'"          \
    " WHEN 10 THEN (" x ")::timestamptz + interval '1 day'"                    \
    " ELSE (" x ")::timestamptz END)"
/* A reference `[...]/Type/id[/_history/v]`: m[1] the type, m[2] the id, or
 * no match.  The type is [A-Z][A-Za-z]{0,63} and the id [A-Za-z0-9.-]{1,64};
 * both are whole '/'-separated segments, so the bounds can be checked on the
 * captures with length(), which is the same match: PostgreSQL's engine is
 * ~20x slower with the bounded repeats in the expression. */
#define REF_RE "'(?:^|/)([A-Z][A-Za-z]*)/([A-Za-z0-9.-]+)(?:/_history/[^/]*)?$'"
#define REF_OK(m) "length(" m "[1]) <= 64 AND length(" m "[2]) <= 64"
/* FROM items tm, tr(rt, rid): type and id of reference x (text), NULL when
 * it is not a `Type/id` reference (regexp_match in FROM: evaluated once) */
#define TARGET_REF(x)                                                          \
    "regexp_match(" x ", " REF_RE ") tm(m),"                                   \
    " LATERAL (SELECT CASE WHEN " REF_OK(                                      \
        "tm.m") " THEN tm.m[1] END AS rt,"                                     \
                " CASE WHEN " REF_OK("tm.m") " THEN tm.m[2] END AS rid) tr"
/* the id of a `[...]/Patient/id[/_history/v]` reference x, else NULL (the
 * {1,64} bound checked with length(), as for REF_RE) */
#define PATIENT_REF_RE "'(?:^|/)Patient/([A-Za-z0-9.-]+)(?:/_history/[^/]*)?$'"
#define PATIENT_REF_ID(x)                                                      \
    "(CASE WHEN length(substring(" x " from " PATIENT_REF_RE ")) <= 64"        \
    " THEN substring(" x " from " PATIENT_REF_RE ") END)"

/* The strings of params[key] (an array of strings, or one string), each
 * split at commas (not _typeFilter); NULL when absent. */
static apr_array_header_t *param_strings(apr_pool_t *p, json_object *params,
                                         const char *key)
{
    json_object *v;
    apr_array_header_t *out;
    size_t i, n;

    if (!params || !json_object_object_get_ex(params, key, &v))
        return NULL;
    out = apr_array_make(p, 4, sizeof(const char *));
    n = json_object_is_type(v, json_type_array) ? json_object_array_length(v)
                                                : 1;
    for (i = 0; i < n; i++) {
        json_object *e = json_object_is_type(v, json_type_array)
                             ? json_object_array_get_idx(v, i)
                             : v;
        char *copy, *tok, *last;

        if (!json_object_is_type(e, json_type_string))
            continue;
        copy = apr_pstrdup(p, json_object_get_string(e));
        if (strcmp(key, "_typeFilter") == 0) {
            /* a comma inside one query belongs to it ([v4b]: repeat instead) */
            APR_ARRAY_PUSH(out, const char *) = copy;
            continue;
        }
        for (tok = apr_strtok(copy, ",", &last); tok;
             tok = apr_strtok(NULL, ",", &last)) {
            apr_collapse_spaces(tok, tok); /* returns the end, not tok */
            if (*tok)
                APR_ARRAY_PUSH(out, const char *) = tok;
        }
    }
    return out;
}

/* "a.last_updated <= T AND (a.superseded_at IS NULL OR ... > T)" plus
 * _since / _until */
static const char *valid_at(const xq_t *x, const char *a, bool changed)
{
    const char *s = apr_psprintf(
        x->p,
        "%s.last_updated <= %s::timestamptz AND (%s.superseded_at IS NULL OR"
        " %s.superseded_at > %s::timestamptz)",
        a, x->T, a, a, x->T);

    if (changed && x->since)
        s = apr_psprintf(x->p, "%s AND %s.last_updated > %s::timestamptz", s, a,
                         x->since);
    if (changed && x->until)
        s = apr_psprintf(x->p, "%s AND %s.last_updated <= %s::timestamptz", s,
                         a, x->until);
    return s;
}

/* Up to this many members, the compartment test is `patient_ids && members`
 * (the GIN index serves a small group); above, a hashed test per row. */
#define MEMBERS_OVERLAP_MAX 64

/* In the export's Patient compartments (compartment levels only). */
static const char *member_of(const xq_t *x, const char *a, bool is_patient)
{
    if (is_patient)
        return x->members ? apr_psprintf(x->p, "%s.id = ANY(%s::text[])", a,
                                         x->members)
                          : "true";
    if (x->members && x->members_n > MEMBERS_OVERLAP_MAX)
        /* `&&` compares every element with every member (no hashing): with
         * many members, test the first patient id through the hashed
         * `= ANY (constant)`, and with `&&` only the rows in several
         * compartments; true exactly where `&&` is.  (No subquery: that
         * would keep the R32 reference scan from running in parallel.) */
        return apr_psprintf(x->p,
                            "coalesce(%s.patient_ids[1] = ANY(%s::text[])"
                            " OR (cardinality(%s.patient_ids) > 1 AND"
                            " %s.patient_ids && %s::text[]), false)",
                            a, x->members, a, a, x->members);
    return x->members ? apr_psprintf(x->p, "%s.patient_ids && %s::text[]", a,
                                     x->members)
                      : apr_psprintf(x->p, "%s.patient_ids <> '{}'", a);
}

/* Row a (any type) belongs to an exported compartment. */
static const char *in_compartment(const xq_t *x, const char *a)
{
    return apr_psprintf(x->p, "(%s OR (%s.resource_type = 'Patient' AND %s))",
                        member_of(x, a, false), a, member_of(x, a, true));
}

/* Row a is of a requested type. */
static const char *requested(const xq_t *x, const char *a)
{
    if (!x->types)
        return "true";
    return apr_psprintf(x->p, "%s.resource_type = ANY(%s::text[])", a,
                        x->req_array);
}

/* ARRAY['T1','T2',...] of the valid requested types, joined once. */
static const char *requested_array(apr_pool_t *p,
                                   const apr_array_header_t *types)
{
    apr_array_header_t *q =
        apr_array_make(p, types->nelts, sizeof(const char *));
    int i;

    for (i = 0; i < types->nelts; i++) {
        const char *t = APR_ARRAY_IDX(types, i, const char *);

        if (bf_task_valid_type(t)) /* [A-Z][A-Za-z]*: no quoting needed */
            APR_ARRAY_PUSH(q, const char *) = apr_pstrcat(p, "'", t, "'", NULL);
    }
    if (q->nelts == 0)
        return "ARRAY[NULL]";
    return apr_pstrcat(p, "ARRAY[", apr_array_pstrcat(p, q, ','), "]", NULL);
}

static bool is_requested(const xq_t *x, const char *type)
{
    int i;

    if (!x->types)
        return true;
    for (i = 0; i < x->types->nelts; i++)
        if (strcmp(APR_ARRAY_IDX(x->types, i, const char *), type) == 0)
            return true;
    return false;
}

/* The _typeFilter expression for one type, NULL when it has none (R28,
 * R29: the filters of a type are ORed; other types are not filtered). */
static bool filter_for(const xq_t *x, const char *type, const char **sql,
                       const char **err)
{
    apr_array_header_t *mine = apr_array_make(x->p, 2, sizeof(bf_typefilter *));
    int i;

    *sql = NULL;
    for (i = 0; x->filters && i < x->filters->nelts; i++) {
        bf_typefilter *tf = APR_ARRAY_IDX(x->filters, i, bf_typefilter *);
        if (strcmp(tf->type, type) == 0)
            APR_ARRAY_PUSH(mine, bf_typefilter *) = tf;
    }
    return mine->nelts == 0 || bf_typefilter_sql(x->p, mine, sql, err);
}

/* Elements per bf_elements_keep_sql call: it appends one at a time, so
 * its cost grows with the square of the list; chunks keep it linear. */
#define ELEMENTS_CHUNK 64

/* The exported column for rows of one type (_elements subsetting): the
 * keep list as `(chunk || chunk || ...)` arrays (fhir_subset tests
 * membership, so the mandatory elements repeated in each chunk are
 * harmless), built in a subpool of which only the result is kept. */
static const char *column_for(const xq_t *x, const char *type)
{
    apr_pool_t *sp;
    apr_array_header_t *chunk, *keeps;
    const char *col;
    int i, j, n;

    if (!x->elements)
        return "resource";
    apr_pool_create(&sp, x->p);
    n = x->elements->nelts;
    keeps =
        apr_array_make(sp, 2 * (n / ELEMENTS_CHUNK + 1), sizeof(const char *));
    for (i = 0; i == 0 || i < n; i += ELEMENTS_CHUNK) {
        int m = n - i < ELEMENTS_CHUNK ? n - i : ELEMENTS_CHUNK;

        chunk = apr_array_make(sp, m > 0 ? m : 1, x->elements->elt_size);
        for (j = 0; j < m; j++)
            *(bf_element *)apr_array_push(chunk) =
                APR_ARRAY_IDX(x->elements, i + j, bf_element);
        if (i > 0)
            APR_ARRAY_PUSH(keeps, const char *) = " || ";
        APR_ARRAY_PUSH(keeps, const char *) =
            bf_elements_keep_sql(sp, chunk, type);
    }
    col = apr_pstrcat(x->p, "bulkfhir.fhir_subset(resource, (",
                      apr_array_pstrcat(sp, keeps, 0), "))", NULL);
    apr_pool_destroy(sp);
    return col;
}

/* Evaluate the member list once and embed it as a literal array: as a
 * subquery the planner cannot see its size and scans the patient_ids GIN
 * index for every row of the type (BENCHMARKS.md, Group export profile). */
static bool materialize_members(xq_t *x, const char **err)
{
    PGresult *res = NULL;
    const char *sql, *arr;

    sql = apr_pstrcat(
        x->p, "SELECT m::text, coalesce(cardinality(m), 0) FROM (SELECT (",
        x->members, ") AS m) s", NULL);
    if (!bf_pq_exec(x->conn, "export: compartment members", sql, 0, NULL, &res,
                    x->sqlstate) ||
        PQntuples(res) != 1) {
        PQclear(res);
        *err = "cannot read the compartment members";
        return false;
    }
    arr = PQgetisnull(res, 0, 0) ? "{}" : PQgetvalue(res, 0, 0);
    arr = bf_sql_literal_utf8(x->p, arr);
    x->members_n = atoi(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (!arr) {
        *err = "cannot quote the member list";
        return false;
    }
    x->members = apr_pstrcat(x->p, arr, "::text[]", NULL);
    return true;
}

static bool xq_init(xq_t *x, PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                    const bf_task_job_t *job, const char **err,
                    char sqlstate[6])
{
    json_object *params = NULL;
    apr_array_header_t *vals, *plist_vals;
    bool ok = false;
    int i;

    memset(x, 0, sizeof *x);
    if (sqlstate)
        sqlstate[0] = '\0';
    x->sqlstate = sqlstate;
    x->members_n = -1;
    x->conn = conn;
    x->p = p;
    x->task = task;
    x->job = job;
    if (!bf_task_valid_type(task->resource_type)) {
        *err = "invalid resource type";
        return false;
    }
    if (!job->transaction_time || !bf_id_is_uuid(job->id)) {
        *err = "job without transaction time";
        return false;
    }
    if (!(x->T = bf_sql_literal_utf8(p, job->transaction_time)) ||
        (job->since && !(x->since = bf_sql_literal_utf8(p, job->since))) ||
        (job->until && !(x->until = bf_sql_literal_utf8(p, job->until)))) {
        *err = "cannot quote a literal";
        return false;
    }
    params = job->params ? json_tokener_parse(job->params) : NULL;
    x->types = param_strings(p, params, "_type");
    if (x->types)
        x->req_array = requested_array(p, x->types);
    if ((vals = param_strings(p, params, "_typeFilter")) != NULL) {
        x->filters = apr_array_make(p, vals->nelts, sizeof(bf_typefilter *));
        for (i = 0; i < vals->nelts; i++) {
            bf_typefilter *tf;

            if (!bf_typefilter_parse(p, APR_ARRAY_IDX(vals, i, const char *),
                                     &tf, err))
                goto leave;
            APR_ARRAY_PUSH(x->filters, bf_typefilter *) = tf;
        }
    }
    /* R25-R27: associated Provenance only when the client's _type omits
     * Provenance (otherwise every Provenance is exported as usual); R26:
     * Relevant is the least restrictive and wins */
    if ((vals = param_strings(p, params, "includeAssociatedData")) != NULL &&
        x->types && !is_requested(x, "Provenance")) {
        for (i = 0; i < vals->nelts; i++) {
            const char *v = APR_ARRAY_IDX(vals, i, const char *);

            if (!strcmp(v, "RelevantProvenanceResources"))
                x->assoc = ASSOC_RELEVANT;
            else if (!strcmp(v, "LatestProvenanceResources") && !x->assoc)
                x->assoc = ASSOC_LATEST;
        }
    }
    if ((vals = param_strings(p, params, "_elements")) != NULL &&
        vals->nelts > 0 && !bf_elements_parse(p, vals, &x->elements, err))
        goto leave;

    /* the kick-off's `patient` list as text[] (NULL when absent) */
    plist_vals = NULL;
    if (params && json_object_object_get_ex(params, "patient", NULL)) {
        const char *jid = bf_sql_literal_utf8(p, job->id);

        if (!jid) {
            *err = "cannot quote the job id";
            goto leave;
        }
        plist_vals = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(plist_vals, const char *) = apr_pstrcat(
            p,
            "(SELECT array_agg(DISTINCT " PATIENT_REF_ID(
                "coalesce(e->>'reference', e #>> '{}')") ")"
                                                         "   FROM bulkfhir.job j,"
                                                         "        jsonb_array_elements(CASE jsonb_typeof(j.params->'patient')"
                                                         "          WHEN 'array' THEN j.params->'patient' ELSE '[]'::jsonb END) e"
                                                         "  WHERE j.id = ",
            jid, "::uuid)", NULL);
    }
    if (job->level && strcmp(job->level, "group") == 0) {
        const char *g;

        if (!bf_id_is_fhir_id(job->group_id,
                              job->group_id ? strlen(job->group_id) : 0) ||
            !(g = bf_sql_literal_utf8(p, job->group_id))) {
            *err = "invalid group id";
            goto leave;
        }
        /* members of the Group version valid at T: Patient entities, not
         * inactive, whose period covers T (other members are ignored) */
        x->members = apr_pstrcat(
            p,
            "(SELECT coalesce(array_agg(DISTINCT gm.pid), '{}'::text[]) FROM ("
            " SELECT " PATIENT_REF_ID(
                "m->'entity'->>'reference'") " AS pid, m"
                                             "   FROM fhir.resource_version g,"
                                             "        jsonb_array_elements(CASE jsonb_typeof(g.resource->'member')"
                                             "          WHEN 'array' THEN g.resource->'member' ELSE '[]'::jsonb END) m"
                                             "  WHERE g.resource_type = 'Group' AND g.id = ",
            g, "    AND NOT g.deleted AND ", valid_at(x, "g", false),
            ") gm WHERE gm.pid IS NOT NULL"
            "  AND coalesce(gm.m->>'inactive', 'false') <> 'true'"
            "  AND (gm.m->'period'->>'start' IS NULL OR " FHIR_START(
                "gm.m->'period'->>'start'") " <= ",
            x->T,
            "::timestamptz)"
            "  AND (gm.m->'period'->>'end' IS NULL OR " FHIR_END(
                "gm.m->'period'->>'end'") " > ",
            x->T, "::timestamptz))", NULL);
        /* R24: with a patient list, only listed members */
        if (plist_vals)
            x->members = apr_pstrcat(p, "ARRAY(SELECT unnest(", x->members,
                                     ") INTERSECT SELECT unnest(",
                                     APR_ARRAY_IDX(plist_vals, 0, const char *),
                                     "))", NULL);
        x->compartment = true;
        if (!materialize_members(x, err))
            goto leave;
    } else if (job->level && strcmp(job->level, "patient") == 0) {
        /* NULL (no patient parameter): every compartment */
        x->members =
            plist_vals ? APR_ARRAY_IDX(plist_vals, 0, const char *) : NULL;
        x->compartment = true;
        if (x->members && !materialize_members(x, err))
            goto leave;
    } else if (!job->level || strcmp(job->level, "system") != 0) {
        *err = "unknown export level";
        goto leave;
    }
    ok = true;
leave:
    if (params)
        json_object_put(params);
    return ok;
}

/* Shard predicate over alias a's id (the planner's shards). */
static const char *shard_of(const xq_t *x, const char *a)
{
    if (x->task->shard_count <= 1)
        return "";
    return apr_psprintf(
        x->p, " AND (hashtext(%s.id)::bigint & 2147483647) %% %d = %d", a,
        x->task->shard_count, x->task->shard);
}

/* Whether rows of `type` outside every compartment are exported by this
 * task (always for Practitioner & co., rarely for Observation & co.): only
 * then does it need the job's referenced-resource set. */
static bool has_outside_rows(const xq_t *x, const char *type, bool *has,
                             const char **err)
{
    PGresult *res = NULL;
    const char *sql;

    sql = apr_pstrcat(x->p,
                      "SELECT EXISTS (SELECT 1 FROM fhir.resource_version r"
                      " WHERE r.resource_type = ",
                      bf_sql_literal_utf8(x->p, type),
                      " AND r.patient_ids = '{}' AND NOT r.deleted AND ",
                      valid_at(x, "r", true), ")", NULL);
    if (!bf_pq_exec(x->conn, "export: rows outside compartments", sql, 0, NULL,
                    &res, x->sqlstate) ||
        PQntuples(res) != 1) {
        PQclear(res);
        *err = "cannot look for resources outside compartments";
        return false;
    }
    *has = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return true;
}

/* The referenced-resource set of the job (R32 MAY; see the README's export
 * rules and sql/0061_job_refs.sql): (type, id) of every resource of a
 * requested type with rows outside every compartment that an exported
 * compartment resource of another type references.  The references are
 * the strings at `$.**.reference` read as `[...]/Type/id[/_history/v]`.
 *
 * The regular expression is the one the per-type scans used, with `*`/`+`
 * for the bounded repeats ({0,63}, {1,64}) and the bounds checked with
 * length(): PostgreSQL's engine is ~20x slower on bounded repeats, and the
 * type and id are whole '/'-separated segments, so the match is the same.
 * Only strings that contain "Type/" for a candidate type reach it, once per
 * distinct (source type, string). */
static const char *referenced_sql(const xq_t *x, const char *types)
{
    return apr_pstrcat(
        x->p,
        "SELECT coalesce(array_agg(s.t), '{}')::text, coalesce(array_agg(s.i), '{}')::text"
        "  FROM (SELECT DISTINCT m[1] AS t, m[2] AS i"
        "   FROM (SELECT DISTINCT c.resource_type AS st, rf.v #>> '{}' AS ref"
        "     FROM fhir.resource_version c,"
        "          jsonb_path_query(c.resource, 'strict $.**.reference') rf(v)"
        "    WHERE NOT c.deleted AND ",
        valid_at(x, "c", false), "      AND ", requested(x, "c"), " AND ",
        in_compartment(x, "c"), "      AND EXISTS (SELECT 1 FROM unnest(",
        types,
        "::text[]) tt(t)"
        "                   WHERE strpos(rf.v #>> '{}', tt.t || '/') > 0)) d,"
        "   regexp_match(d.ref, " REF_RE ") m"
        "  WHERE " REF_OK("m") " AND m[1] <> d.st"
                               "    AND m[1] = ANY (",
        types, "::text[])) s", NULL);
}

/* Fill the job's referenced-resource set unless another task did
 * (sql/0061_job_refs.sql): the job_refset row is inserted first, so a
 * concurrent task of the same job waits for this transaction and then
 * finds the set.  The set is read by a plain SELECT (which may run in
 * parallel, an INSERT ... SELECT may not) and inserted from parameters. */
static bool refs_fill(const xq_t *x, const char **err)
{
    PGresult *res = NULL;
    const char *v[3], *sql, *types;
    char n[24];
    long rows = 0;
    bool ok = false;

    v[0] = x->job->id; /* a checked uuid (xq_init) */
    if (!bf_pq_begin(x->conn, "export: referenced ids"))
        goto leave;
    if (!bf_pq_exec_rows(
            x->conn, "export: referenced ids",
            "INSERT INTO bulkfhir.job_refset (job_id) VALUES ($1::uuid)"
            " ON CONFLICT DO NOTHING",
            1, v, &rows, x->sqlstate))
        goto leave;
    if (rows == 0) { /* filled by another task */
        ok = bf_pq_commit(x->conn, "export: referenced ids");
        goto leave;
    }
    /* the cost estimates of jsonb_path_query make JIT compile this
     * statement for longer than it runs */
    if (!bf_pq_exec(x->conn, "export: referenced ids", "SET LOCAL jit = off", 0,
                    NULL, NULL, x->sqlstate))
        goto leave;
    /* the requested types with rows outside every compartment (the
     * has_outside_rows() test of each of them, in one scan) */
    sql = apr_pstrcat(
        x->p,
        "SELECT coalesce(array_agg(DISTINCT r.resource_type), '{}')::text"
        " FROM fhir.resource_version r WHERE r.patient_ids = '{}'"
        " AND r.resource_type <> 'Patient' AND NOT r.deleted AND ",
        valid_at(x, "r", true), " AND ", requested(x, "r"), NULL);
    if (!bf_pq_exec(x->conn, "export: types outside compartments", sql, 0, NULL,
                    &res, x->sqlstate) ||
        PQntuples(res) != 1)
        goto leave;
    types = bf_sql_literal_utf8(x->p, PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (!types)
        goto leave;
    if (!bf_pq_exec(x->conn, "export: referenced ids", referenced_sql(x, types),
                    0, NULL, &res, x->sqlstate) ||
        PQntuples(res) != 1)
        goto leave;
    v[1] = PQgetvalue(res, 0, 0);
    v[2] = PQgetvalue(res, 0, 1);
    if (!bf_pq_exec_rows(
            x->conn, "export: referenced ids",
            "INSERT INTO bulkfhir.job_ref (job_id, resource_type, id)"
            " SELECT $1::uuid, u.t, u.i FROM unnest($2::text[], $3::text[]) u(t, i)",
            3, v, &rows, x->sqlstate))
        goto leave;
    snprintf(n, sizeof n, "%ld", rows);
    v[1] = n;
    if (!bf_pq_exec(
            x->conn, "export: referenced ids",
            "UPDATE bulkfhir.job_refset SET refs = $2::bigint, filled_at = now()"
            " WHERE job_id = $1::uuid",
            2, v, NULL, x->sqlstate))
        goto leave;
    ok = bf_pq_commit(x->conn, "export: referenced ids");
leave:
    PQclear(res);
    if (!ok) {
        bf_pq_rollback(x->conn, "export: referenced ids");
        *err = "cannot collect the referenced resources";
    }
    return ok;
}

/* Row r is in the job's referenced-resource set (filled by refs_fill). */
static const char *referenced(const xq_t *x, const char *type)
{
    return apr_psprintf(
        x->p,
        "EXISTS (SELECT 1 FROM bulkfhir.job_ref f WHERE f.job_id = '%s'::uuid"
        " AND f.resource_type = %s AND f.id = r.id)",
        x->job->id, type);
}

/* Provenance whose target is an exported compartment resource (R27). */
static const char *provenance_of_compartment(const xq_t *x)
{
    return apr_psprintf(
        x->p,
        "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof(r.resource->'target')"
        "          WHEN 'array' THEN r.resource->'target' ELSE '[]'::jsonb END) tg(v),"
        "        " TARGET_REF(
            "tg.v->>'reference'") ","
                                  "        fhir.resource_version c"
                                  "  WHERE c.resource_type = tr.rt AND c.id = tr.rid AND NOT c.deleted"
                                  "    AND %s AND %s AND %s)",
        valid_at(x, "c", false), requested(x, "c"), in_compartment(x, "c"));
}

/* R25, R26: the Provenance associated with what this job exports: valid at
 * T, with a target that is a row the job exports (requested type, valid at
 * T and changed in _since/_until, its _typeFilter, in an exported
 * compartment).  Latest: per target only the Provenance with the greatest
 * `recorded` (ties keep all); Relevant: all.  A predicate on r. */
static bool associated_provenance(const xq_t *x, const char **pred,
                                  const char **err)
{
    const char *filter;
    sb_t fcase;
    int i;

    sb_init(&fcase, x->p, 4 * x->types->nelts + 1);
    for (i = 0; i < x->types->nelts; i++) {
        const char *t = APR_ARRAY_IDX(x->types, i, const char *);

        if (!bf_task_valid_type(t))
            continue;
        if (!filter_for(x, t, &filter, err))
            return false;
        if (filter)
            sb_add(&fcase, " WHEN '", t, "' THEN (", filter, ")", NULL);
    }
    /* the exported target rows: c is the only relation with `resource` in
     * that scope, so the _typeFilter SQL binds to it */
    *pred = apr_pstrcat(
        x->p,
        "r.id IN (SELECT a.pid FROM (SELECT pv.id AS pid, tr.rt, tr.rid,"
        "   lower(bulkfhir.fhir_date_range(pv.resource->>'recorded')) AS rec,"
        "   max(lower(bulkfhir.fhir_date_range(pv.resource->>'recorded')))"
        "     OVER (PARTITION BY tr.rt, tr.rid) AS mx"
        "  FROM fhir.resource_version pv,"
        "       jsonb_array_elements(CASE jsonb_typeof(pv.resource->'target')"
        "         WHEN 'array' THEN pv.resource->'target' ELSE '[]'::jsonb END) tg(v),"
        "       " TARGET_REF(
            "tg.v->>'reference'") "  WHERE pv.resource_type = 'Provenance' AND NOT pv.deleted AND ",
        valid_at(x, "pv", false),
        "    AND EXISTS (SELECT 1 FROM fhir.resource_version c"
        "      WHERE c.resource_type = tr.rt AND c.id = tr.rid AND NOT c.deleted AND ",
        valid_at(x, "c", true), " AND ", requested(x, "c"),
        x->compartment
            ? apr_pstrcat(x->p, " AND ", in_compartment(x, "c"), NULL)
            : "",
        !sb_empty(&fcase)
            ? apr_pstrcat(x->p, " AND coalesce(CASE c.resource_type",
                          sb_join(&fcase), " ELSE true END, false)", NULL)
            : "",
        ")) a",
        x->assoc == ASSOC_LATEST ? " WHERE a.rec IS NOT DISTINCT FROM a.mx"
                                 : "",
        ")", NULL);
    return true;
}

bool bf_task_export_sql(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                        const bf_task_job_t *job, int64_t skip,
                        const char **sql, const char **err, char sqlstate[6])
{
    xq_t x;
    const char *type, *filter;
    sb_t q;
    bool is_patient;

    *sql = NULL;
    if (!xq_init(&x, conn, p, task, job, err, sqlstate))
        return false;
    if (!filter_for(&x, task->resource_type, &filter, err))
        return false;
    type = bf_sql_literal_utf8(p, task->resource_type);
    is_patient = strcmp(task->resource_type, "Patient") == 0;
    sb_init(&q, p, 24);
    sb_add(&q, "COPY (SELECT ", column_for(&x, task->resource_type),
           " FROM fhir.resource_version r WHERE r.resource_type = ", type,
           " AND NOT r.deleted AND ", valid_at(&x, "r", true), NULL);
    if (filter)
        sb_add(&q, " AND (", filter, ")", NULL);
    sb_add(&q, shard_of(&x, "r"), NULL);
    if (x.assoc && strcmp(task->resource_type, "Provenance") == 0) {
        const char *pred;

        if (!associated_provenance(&x, &pred, err))
            return false;
        sb_add(&q, " AND ", pred, NULL);
    } else if (x.compartment) {
        if (is_patient) {
            sb_add(&q, " AND ", member_of(&x, "r", true), NULL);
        } else {
            bool outside;

            if (!has_outside_rows(&x, task->resource_type, &outside, err) ||
                (outside && !refs_fill(&x, err)))
                return false;
            sb_add(&q, " AND (", member_of(&x, "r", false), NULL);
            if (outside)
                sb_add(&q, " OR (r.patient_ids = '{}' AND ",
                       referenced(&x, type), ")", NULL);
            if (strcmp(task->resource_type, "Provenance") == 0)
                sb_add(&q, " OR ", provenance_of_compartment(&x), NULL);
            sb_add(&q, ")", NULL);
        }
    }
    if (skip >= 0)
        /* per-part publication: a deterministic order to resume after the
         * rows already published by an earlier attempt */
        sb_add(&q,
               apr_psprintf(p, " ORDER BY r.id OFFSET %" APR_INT64_T_FMT,
                            (apr_int64_t)skip),
               NULL);
    sb_add(&q, ") TO STDOUT (FORMAT binary)", NULL);
    *sql = sb_join(&q);
    return true;
}

bool bf_task_deleted_sql(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                         const bf_task_job_t *job, const char **sql,
                         const char **err, char sqlstate[6])
{
    xq_t x;
    const char *type, *filter, *q;
    sb_t b;

    *sql = NULL;
    if (sqlstate)
        sqlstate[0] = '\0';
    if (!job->since)
        return true; /* deleted files only answer _since (R54) */
    if (!xq_init(&x, conn, p, task, job, err, sqlstate))
        return false;
    if (x.assoc && strcmp(task->resource_type, "Provenance") == 0)
        return true; /* Provenance was not requested: no deletions of it */
    if (!filter_for(&x, task->resource_type, &filter, err))
        return false;
    type = bf_sql_literal_utf8(p, task->resource_type);
    /* r: the deleted version valid at T, with the patient_ids and resource
     * of the last version before it that was not deleted */
    q = apr_psprintf(
        p,
        "SELECT d.id, lv.patient_ids, lv.resource FROM fhir.resource_version d"
        " LEFT JOIN LATERAL (SELECT pv.patient_ids, pv.resource"
        "   FROM fhir.resource_version pv WHERE pv.resource_type = d.resource_type"
        "    AND pv.id = d.id AND NOT pv.deleted AND pv.version_id < d.version_id"
        "  ORDER BY pv.version_id DESC LIMIT 1) lv ON true"
        " WHERE d.resource_type = %s AND d.deleted AND %s%s",
        type, valid_at(&x, "d", true), shard_of(&x, "d"));
    sb_init(&b, p, 16);
    sb_add(
        &b,
        "COPY (SELECT jsonb_build_object('resourceType', 'Bundle', 'type', 'transaction',"
        "   'entry', jsonb_agg(jsonb_build_object('request', jsonb_build_object("
        "     'method', 'DELETE', 'url', ",
        type,
        " || '/' || s.id)) ORDER BY s.id))"
        " FROM (SELECT r.id, (row_number() OVER (ORDER BY r.id) - 1) / ",
        apr_itoa(p, DELETED_PER_BUNDLE), " AS b FROM (", q, ") r WHERE true",
        NULL);
    if (filter)
        sb_add(&b, " AND coalesce((", filter, "), false)", NULL);
    if (x.compartment)
        sb_add(&b, " AND ",
               member_of(&x, "r", strcmp(task->resource_type, "Patient") == 0),
               NULL);
    sb_add(&b, ") s GROUP BY s.b ORDER BY s.b) TO STDOUT (FORMAT binary)",
           NULL);
    *sql = sb_join(&b);
    return true;
}

bool bf_task_organized_sql(PGconn *conn, apr_pool_t *p, const bf_task_t *task,
                           const bf_task_job_t *job, const char **sql,
                           const char **err, char sqlstate[6])
{
    xq_t x;
    const char *filter, *pfilter, *rows;
    sb_t fcase, ecase;
    size_t i;

    *sql = NULL;
    if (!xq_init(&x, conn, p, task, job, err, sqlstate))
        return false;
    sb_init(&fcase, p, 64);
    sb_init(&ecase, p, 64);
    /* per-type _typeFilter and _elements over every R4 type */
    for (i = 0; i < bf_r4_type_count(); i++) {
        const char *t = bf_r4_type_at(i);

        if (!is_requested(&x, t) || strcmp(t, "Patient") == 0)
            continue;
        if (!filter_for(&x, t, &filter, err))
            return false;
        if (filter)
            sb_add(&fcase, " WHEN '", t, "' THEN (", filter, ")", NULL);
        if (x.elements)
            sb_add(&ecase, " WHEN '", t, "' THEN ", column_for(&x, t), NULL);
    }
    if (!filter_for(&x, "Patient", &pfilter, err))
        return false;
    /* the patients of this shard: every Patient at system level */
    rows = apr_pstrcat(
        p,
        "WITH pts AS (SELECT r.id FROM fhir.resource_version r"
        "  WHERE r.resource_type = 'Patient' AND NOT r.deleted AND ",
        valid_at(&x, "r", false), shard_of(&x, "r"),
        x.compartment ? apr_pstrcat(p, " AND ", member_of(&x, "r", true), NULL)
                      : "",
        "), rws AS (",
        is_requested(&x, "Patient")
            ? apr_pstrcat(
                  p,
                  "SELECT r.id AS pid, 0 AS ord, r.resource_type AS rt, r.id AS rid, ",
                  column_for(&x, "Patient"),
                  " AS line"
                  " FROM fhir.resource_version r JOIN pts ON pts.id = r.id"
                  " WHERE r.resource_type = 'Patient' AND NOT r.deleted AND ",
                  valid_at(&x, "r", true),
                  pfilter ? apr_pstrcat(p, " AND (", pfilter, ")", NULL) : "",
                  " UNION ALL ", NULL)
            : "",
        "SELECT u.pid, 1, r.resource_type, r.id, ",
        x.elements ? apr_pstrcat(p, "CASE r.resource_type", sb_join(&ecase),
                                 " ELSE resource END", NULL)
                   : "resource",
        " FROM fhir.resource_version r CROSS JOIN LATERAL unnest(r.patient_ids) u(pid)"
        " JOIN pts ON pts.id = u.pid"
        " WHERE r.resource_type <> 'Patient' AND NOT r.deleted AND ",
        valid_at(&x, "r", true), " AND ", requested(&x, "r"),
        !sb_empty(&fcase)
            ? apr_pstrcat(p, " AND coalesce(CASE r.resource_type",
                          sb_join(&fcase), " ELSE true END, false)", NULL)
            : "",
        ")", NULL);
    /* one header per block (R53) carrying the block's lines and bytes */
    *sql = apr_pstrcat(
        p, "COPY (", rows,
        ", hdr AS (SELECT w.pid, jsonb_build_object('resourceType', 'Parameters',"
        "   'parameter', jsonb_build_array(jsonb_build_object('name', 'header',"
        "     'valueReference', jsonb_build_object('reference', 'Patient/' || w.pid))))"
        "   AS line, count(*) AS n, sum(octet_length(w.line::text) + 1) AS bytes"
        "   FROM rws w GROUP BY w.pid)"
        " SELECT b.n, b.bytes, b.line FROM ("
        "  SELECT h.pid, -1 AS ord, '' AS rt, '' AS rid, h.n + 1 AS n,"
        "    h.bytes + octet_length(h.line::text) + 1 AS bytes, h.line FROM hdr h"
        "  UNION ALL SELECT w.pid, w.ord, w.rt, w.rid, NULL, NULL, w.line FROM rws w"
        " ) b ORDER BY b.pid, b.ord, b.rt, b.rid) TO STDOUT (FORMAT binary)",
        NULL);
    return true;
}
