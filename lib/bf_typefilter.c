/* bf_typefilter: _typeFilter parsing and SQL generation (see bf_typefilter.h).
 *
 * Each compiled search path ("a.b", "a@Patient", "a[k=v]") becomes a
 * jsonpath in lax mode, so arrays unwrap on their own.  Values never enter a
 * jsonpath as text: token and uri values travel in the jsonpath `vars`
 * object (built with json-c), string/date/reference values are compared in
 * SQL against escaped literals. */
#include "bf_typefilter.h"
#include "bf_r4.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <json-c/json.h>

#define TF_MAX_LEN 4096
#define TF_MAX_CLAUSES 32
#define TF_MAX_VALUES 64

/* Result parameters are never criteria (SPEC §1.4 _typeFilter). */
static const char *const result_params[] = {
    "_sort", "_count", "_include", "_revinclude", "_summary", "_total",
    "_elements", "_contained", "_containedType", "_format", "_pretty",
    NULL
};

const char *bf_sql_literal(apr_pool_t *p, const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n * 2 + 4);

    out[o++] = 'E';
    out[o++] = '\'';
    for (i = 0; i < n; i++) {
        if (s[i] == '\'' || s[i] == '\\')
            out[o++] = s[i];
        out[o++] = s[i];
    }
    out[o++] = '\'';
    out[o] = '\0';
    return out;
}

/* ---- parsing ---------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode in place; '+' stays '+' (dates carry offsets).  false on a
 * bad escape or an encoded NUL. */
static bool pct_decode(char *s)
{
    char *o = s;
    int h, l;

    for (; *s; s++) {
        if (*s == '%') {
            h = hexval((unsigned char)s[1]);
            l = h < 0 ? -1 : hexval((unsigned char)s[2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return false;
            *o++ = (char)(h * 16 + l);
            s += 2;
        }
        else
            *o++ = *s;
    }
    *o = '\0';
    return true;
}

/* Split a value list at unescaped commas; "\," is a literal comma. */
static bool split_values(apr_pool_t *p, const char *v, apr_array_header_t *out)
{
    char *buf = apr_palloc(p, strlen(v) + 1), *o = buf;

    for (;; v++) {
        if (*v == '\\' && (v[1] == ',' || v[1] == '\\' || v[1] == '$'
                           || v[1] == '|')) {
            *o++ = *++v;
            continue;
        }
        if (*v == ',' || *v == '\0') {
            *o = '\0';
            if (!*buf)
                return false;   /* empty value */
            if (out->nelts >= TF_MAX_VALUES)
                return false;
            APR_ARRAY_PUSH(out, const char *) = buf;
            if (!*v)
                return true;
            buf = o = apr_palloc(p, strlen(v) + 1);
            continue;
        }
        *o++ = *v;
    }
}

/* Date values: [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.f+]][Z|(+|-)hh:mm]]]] */
static bool valid_date(const char *s)
{
    static const char *const tail = "dddd-dd-ddTdd:dd";
    size_t i;

    for (i = 0; s[i] && tail[i]; i++) {
        if (tail[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != tail[i])
            return false;
    }
    if (i != 4 && i != 7 && i != 10 && i != 16)
        return false;
    if (i >= 7 && (atoi(s + 5) < 1 || atoi(s + 5) > 12))
        return false;
    if (i >= 10 && (atoi(s + 8) < 1 || atoi(s + 8) > 31))
        return false;
    if (i >= 16 && (atoi(s + 11) > 23 || atoi(s + 14) > 59))
        return false;
    if (!s[i])
        return i != 16;   /* hh:mm needs a zone in FHIR, but accept seconds below */
    if (i != 16)
        return false;
    s += 16;
    if (s[0] == ':' && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2])) {
        s += 3;
        if (*s == '.') {
            s++;
            if (!isdigit((unsigned char)*s))
                return false;
            while (isdigit((unsigned char)*s))
                s++;
        }
    }
    if (*s == '\0' || (s[0] == 'Z' && s[1] == '\0'))
        return true;
    if ((s[0] == '+' || s[0] == '-' || s[0] == ' ')
        && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2])
        && s[3] == ':' && isdigit((unsigned char)s[4])
        && isdigit((unsigned char)s[5]) && s[6] == '\0')
        return true;
    return false;
}

static const char *date_prefix(const char *v, const char **rest)
{
    static const char *const prefixes[] = { "eq", "ne", "gt", "lt", "ge",
                                            "le", "sa", "eb", NULL };
    int i;

    for (i = 0; prefixes[i]; i++) {
        if (strncmp(v, prefixes[i], 2) == 0) {
            *rest = v + 2;
            return prefixes[i];
        }
    }
    *rest = v;
    return "eq";
}

static bool check_values(apr_pool_t *p, const bf_tf_clause *c,
                         const char **err)
{
    int i;

    for (i = 0; i < c->values->nelts; i++) {
        const char *v = APR_ARRAY_IDX(c->values, i, const char *), *rest;

        if (c->modifier && strcmp(c->modifier, "missing") == 0) {
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
                *err = apr_psprintf(p, "%s:missing takes true or false",
                                    c->sp->code);
                return false;
            }
            continue;
        }
        if (c->sp->type == BF_SP_DATE) {
            if (strncmp(v, "ap", 2) == 0) {
                *err = "the date prefix ap is not supported";
                return false;
            }
            date_prefix(v, &rest);
            if (!valid_date(rest)) {
                *err = apr_psprintf(p, "%s: '%s' is not a FHIR date or dateTime",
                                    c->sp->code, v);
                return false;
            }
        }
    }
    return true;
}

static bool modifier_ok(const bf_tf_clause *c)
{
    const char *m = c->modifier;

    if (!m || strcmp(m, "missing") == 0)
        return true;
    switch (c->sp->type) {
    case BF_SP_TOKEN:
        return strcmp(m, "not") == 0;
    case BF_SP_STRING:
        return strcmp(m, "exact") == 0 || strcmp(m, "contains") == 0;
    case BF_SP_REFERENCE:
        return bf_r4_is_type(m);
    default:
        return false;
    }
}

bool bf_typefilter_parse(apr_pool_t *p, const char *text, bf_typefilter **out,
                         const char **err)
{
    bf_typefilter *tf;
    char *copy, *q, *pair, *last;
    int i;

    *out = NULL;
    if (!text || strlen(text) > TF_MAX_LEN) {
        *err = "the _typeFilter value is empty or too long";
        return false;
    }
    q = strchr(text, '?');
    if (!q || q == text || !q[1]) {
        *err = apr_psprintf(p, "_typeFilter '%s' is not of the form Type?param=value",
                            text);
        return false;
    }
    tf = apr_pcalloc(p, sizeof *tf);
    tf->text = text;
    tf->type = apr_pstrndup(p, text, (apr_size_t)(q - text));
    if (!bf_r4_is_type(tf->type)) {
        *err = apr_psprintf(p, "_typeFilter: '%s' is not a FHIR R4 resource type",
                            tf->type);
        return false;
    }
    tf->clauses = apr_array_make(p, 4, sizeof(bf_tf_clause));
    copy = apr_pstrdup(p, q + 1);
    for (pair = apr_strtok(copy, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '='), *name, *colon;
        bf_tf_clause c = { 0 };

        if (!eq || eq == pair || !eq[1]) {
            *err = apr_psprintf(p, "_typeFilter: '%s' is not param=value", pair);
            return false;
        }
        *eq = '\0';
        name = pair;
        if (!pct_decode(name) || !pct_decode(eq + 1)) {
            *err = "_typeFilter: bad percent-encoding";
            return false;
        }
        for (i = 0; result_params[i]; i++) {
            if (strcmp(name, result_params[i]) == 0) {
                *err = apr_psprintf(p, "_typeFilter: %s is a result parameter, "
                                    "not a search criterion", name);
                return false;
            }
        }
        if (strchr(name, '.') || strncmp(name, "_has", 4) == 0) {
            *err = apr_psprintf(p, "_typeFilter: chained and reverse-chained "
                                "parameters (%s) are not supported", name);
            return false;
        }
        colon = strchr(name, ':');
        if (colon) {
            *colon = '\0';
            c.modifier = colon + 1;
        }
        c.sp = bf_searchparam_find(tf->type, name);
        if (!c.sp) {
            *err = apr_psprintf(p, "_typeFilter: search parameter '%s' of %s "
                                "is not supported", name, tf->type);
            return false;
        }
        if (!modifier_ok(&c)) {
            *err = apr_psprintf(p, "_typeFilter: modifier :%s on %s is not "
                                "supported", c.modifier, name);
            return false;
        }
        c.values = apr_array_make(p, 2, sizeof(const char *));
        if (!split_values(p, eq + 1, c.values)) {
            *err = apr_psprintf(p, "_typeFilter: %s has an empty value or too "
                                "many values", name);
            return false;
        }
        if (!check_values(p, &c, err))
            return false;
        if (tf->clauses->nelts >= TF_MAX_CLAUSES) {
            *err = "_typeFilter: too many parameters";
            return false;
        }
        *(bf_tf_clause *)apr_array_push(tf->clauses) = c;
    }
    if (tf->clauses->nelts == 0) {
        *err = "_typeFilter: no search parameters";
        return false;
    }
    *out = tf;
    return true;
}

/* ---- SQL -------------------------------------------------------------- */

/* jsonpath string literal: "..." with " and \ escaped. */
static const char *jp_string(apr_pool_t *p, const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n * 2 + 3);

    out[o++] = '"';
    for (i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* One compiled path -> jsonpath selecting its elements; *ref_type gets the
 * "@Type" restriction or NULL. */
static const char *path_to_jsonpath(apr_pool_t *p, const char *path,
                                    const char **ref_type)
{
    char *copy = apr_pstrdup(p, path), *at, *seg, *last;
    const char *jp = "lax $";

    *ref_type = NULL;
    at = strchr(copy, '@');
    if (at) {
        *at = '\0';
        *ref_type = at + 1;
    }
    for (seg = apr_strtok(copy, ".", &last); seg;
         seg = apr_strtok(NULL, ".", &last)) {
        char *br = strchr(seg, '[');

        if (br) {
            char *eqs = strchr(br, '='), *end = strrchr(br, ']');

            *br = '\0';
            if (eqs && end) {
                *eqs = '\0';
                *end = '\0';
                jp = apr_psprintf(p, "%s.%s ? (@.%s == %s)", jp, jp_string(p, seg),
                                  jp_string(p, br + 1), jp_string(p, eqs + 1));
                continue;
            }
        }
        jp = apr_psprintf(p, "%s.%s", jp, jp_string(p, seg));
    }
    return jp;
}

/* Apply fn to every path of sp and OR the results. */
typedef const char *(*path_sql_fn)(apr_pool_t *p, const char *jp,
                                   const char *ref_type, const char *value,
                                   const char *modifier);

static const char *each_path(apr_pool_t *p, const bf_searchparam *sp,
                             path_sql_fn fn, const char *value,
                             const char *modifier)
{
    char *paths = apr_pstrdup(p, sp->paths), *one, *last;
    const char *sql = NULL, *ref_type, *jp;

    for (one = apr_strtok(paths, "|", &last); one;
         one = apr_strtok(NULL, "|", &last)) {
        jp = path_to_jsonpath(p, one, &ref_type);
        const char *s = fn(p, jp, ref_type, value, modifier);

        sql = sql ? apr_pstrcat(p, sql, " OR ", s, NULL) : s;
    }
    return apr_pstrcat(p, "(", sql ? sql : "false", ")", NULL);
}

static const char *exists_sql(apr_pool_t *p, const char *jp,
                              const char *ref_type, const char *value,
                              const char *modifier)
{
    return apr_psprintf(p, "jsonb_path_exists(resource, %s)",
                        bf_sql_literal(p, jp));
}

static const char *token_sql(apr_pool_t *p, const char *jp,
                             const char *ref_type, const char *value,
                             const char *modifier)
{
    const char *bar = strchr(value, '|');
    json_object *vars = json_object_new_object();
    const char *pred, *sys_cond, *code_cond, *vars_s;

    if (bar) {
        char *sys = apr_pstrndup(p, value, (apr_size_t)(bar - value));

        json_object_object_add(vars, "s", json_object_new_string(sys));
        json_object_object_add(vars, "c", json_object_new_string(bar + 1));
        sys_cond = *sys ? "@.system == $s" : "!exists(@.system)";
        code_cond = bar[1] ? "@.code == $c" : NULL;
    }
    else {
        json_object_object_add(vars, "c", json_object_new_string(value));
        sys_cond = NULL;
        code_cond = "@.code == $c";
    }
    json_object_object_add(vars, "b", json_object_new_boolean(
                                          strcmp(value, "true") == 0));
    if (!sys_cond) {
        /* code alone: a primitive code/string/boolean, a Coding, a
         * CodeableConcept, an Identifier or a ContactPoint value */
        pred = "@ == $c || ((@ == true || @ == false) && @ == $b)"
               " || exists(@.coding ? (@.code == $c)) || @.code == $c"
               " || @.value == $c";
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            pred = "@ == $c || exists(@.coding ? (@.code == $c))"
                   " || @.code == $c || @.value == $c";
    }
    else if (code_cond) {
        pred = apr_psprintf(p,
                            "exists(@.coding ? (%s && %s)) || (%s && %s)"
                            " || (@.value == $c && %s)",
                            code_cond, sys_cond, code_cond, sys_cond, sys_cond);
    }
    else {
        pred = apr_psprintf(p, "exists(@.coding ? (%s)) || (exists(@.code) && %s)"
                            " || (exists(@.value) && %s)",
                            sys_cond, sys_cond, sys_cond);
    }
    vars_s = apr_pstrdup(p, json_object_to_json_string_ext(
                                vars, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(vars);
    return apr_psprintf(p, "jsonb_path_exists(resource, %s, %s::jsonb)",
                        bf_sql_literal(p, apr_psprintf(p, "%s ? (%s)", jp, pred)),
                        bf_sql_literal(p, vars_s));
}

static const char *uri_sql(apr_pool_t *p, const char *jp, const char *ref_type,
                           const char *value, const char *modifier)
{
    json_object *vars = json_object_new_object();
    const char *vars_s;

    json_object_object_add(vars, "v", json_object_new_string(value));
    vars_s = apr_pstrdup(p, json_object_to_json_string_ext(
                                vars, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(vars);
    return apr_psprintf(p, "jsonb_path_exists(resource, %s, %s::jsonb)",
                        bf_sql_literal(p, apr_psprintf(p, "%s ? (@ == $v)", jp)),
                        bf_sql_literal(p, vars_s));
}

static const char *string_sql(apr_pool_t *p, const char *jp,
                              const char *ref_type, const char *value,
                              const char *modifier)
{
    const char *cmp;
    const char *lit = bf_sql_literal(p, value);

    if (modifier && strcmp(modifier, "exact") == 0)
        cmp = apr_psprintf(p, "(x #>> '{}') = %s", lit);
    else if (modifier && strcmp(modifier, "contains") == 0)
        cmp = apr_psprintf(p, "strpos(lower(x #>> '{}'), lower(%s)) > 0", lit);
    else
        cmp = apr_psprintf(p, "starts_with(lower(x #>> '{}'), lower(%s))", lit);
    return apr_psprintf(
        p, "EXISTS (SELECT 1 FROM jsonb_path_query(resource, %s) AS v(x) WHERE %s)",
        bf_sql_literal(p, apr_pstrcat(p, jp, ".** ? (@.type() == \"string\")",
                                      NULL)),
        cmp);
}

static const char *like_escape(apr_pool_t *p, const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n * 2 + 1);

    for (i = 0; i < n; i++) {
        if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
            out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

static const char *reference_sql(apr_pool_t *p, const char *jp,
                                 const char *ref_type, const char *value,
                                 const char *modifier)
{
    const char *slash = strrchr(value, '/');
    const char *want_type = modifier, *id, *cond;

    /* Type/id, absolute .../Type/id, or a bare id */
    if (slash) {
        const char *tstart = slash;

        while (tstart > value && tstart[-1] != '/')
            tstart--;
        want_type = apr_pstrndup(p, tstart, (apr_size_t)(slash - tstart));
        id = slash + 1;
    }
    else
        id = value;
    if (ref_type && want_type && strcmp(ref_type, want_type) != 0)
        return "false";
    if (!want_type)
        want_type = ref_type;
    if (want_type)
        cond = apr_psprintf(p, "(x #>> '{}') = %s OR (x #>> '{}') LIKE %s",
                            bf_sql_literal(p, apr_pstrcat(p, want_type, "/", id, NULL)),
                            bf_sql_literal(p, apr_pstrcat(p, "%/",
                                                          like_escape(p, want_type),
                                                          "/", like_escape(p, id),
                                                          NULL)));
    else
        cond = apr_psprintf(p, "(x #>> '{}') LIKE %s",
                            bf_sql_literal(p, apr_pstrcat(p, "%/", like_escape(p, id),
                                                          NULL)));
    return apr_psprintf(
        p, "EXISTS (SELECT 1 FROM jsonb_path_query(resource, %s) AS v(x) WHERE %s)",
        bf_sql_literal(p, apr_pstrcat(p, jp, ".reference", NULL)), cond);
}

static const char *date_sql(apr_pool_t *p, const char *jp,
                            const char *ref_type, const char *value,
                            const char *modifier)
{
    const char *rest, *prefix = date_prefix(value, &rest), *cmp;
    char *v = apr_pstrdup(p, rest), *sp = strchr(v, ' ');

    if (sp)
        *sp = '+';   /* a '+' that form-decoding turned into a space */
    /* t: the target's range, q: the search value's range (FHIR date
     * search semantics, half-open ranges) */
    if (strcmp(prefix, "eq") == 0)
        cmp = "t <@ q";
    else if (strcmp(prefix, "ne") == 0)
        cmp = "NOT (t <@ q)";
    else if (strcmp(prefix, "gt") == 0)
        cmp = "(upper_inf(t) OR upper(t) > upper(q))";
    else if (strcmp(prefix, "lt") == 0)
        cmp = "(lower_inf(t) OR lower(t) < lower(q))";
    else if (strcmp(prefix, "ge") == 0)
        cmp = "(upper_inf(t) OR upper(t) > upper(q) OR t <@ q)";
    else if (strcmp(prefix, "le") == 0)
        cmp = "(lower_inf(t) OR lower(t) < lower(q) OR t <@ q)";
    else if (strcmp(prefix, "sa") == 0)
        cmp = "(NOT lower_inf(t) AND lower(t) >= upper(q))";
    else
        cmp = "(NOT upper_inf(t) AND upper(t) <= lower(q))";
    return apr_psprintf(
        p,
        "EXISTS (SELECT 1 FROM jsonb_path_query(resource, %s) AS v(x),"
        " bulkfhir.fhir_value_range(x) AS t, bulkfhir.fhir_date_range(%s) AS q"
        " WHERE t IS NOT NULL AND %s)",
        bf_sql_literal(p, jp), bf_sql_literal(p, v), cmp);
}

static const char *clause_sql(apr_pool_t *p, const bf_tf_clause *c)
{
    const char *sql = NULL, *one;
    path_sql_fn fn;
    int i;

    if (c->modifier && strcmp(c->modifier, "missing") == 0) {
        one = each_path(p, c->sp, exists_sql, NULL, NULL);
        return strcmp(APR_ARRAY_IDX(c->values, 0, const char *), "true") == 0
                   ? apr_pstrcat(p, "NOT ", one, NULL)
                   : one;
    }
    switch (c->sp->type) {
    case BF_SP_TOKEN: fn = token_sql; break;
    case BF_SP_STRING: fn = string_sql; break;
    case BF_SP_DATE: fn = date_sql; break;
    case BF_SP_REFERENCE: fn = reference_sql; break;
    default: fn = uri_sql; break;
    }
    for (i = 0; i < c->values->nelts; i++) {
        one = each_path(p, c->sp, fn, APR_ARRAY_IDX(c->values, i, const char *),
                        c->modifier);
        sql = sql ? apr_pstrcat(p, sql, " OR ", one, NULL) : one;
    }
    sql = apr_pstrcat(p, "(", sql, ")", NULL);
    if (c->modifier && strcmp(c->modifier, "not") == 0)
        sql = apr_pstrcat(p, "NOT ", sql, NULL);
    return sql;
}

bool bf_typefilter_sql(apr_pool_t *p, const apr_array_header_t *filters,
                       const char **sql, const char **err)
{
    const char *any = NULL;
    int i, j;

    *sql = NULL;
    if (!filters || filters->nelts == 0) {
        *sql = "true";
        return true;
    }
    for (i = 0; i < filters->nelts; i++) {
        const bf_typefilter *tf = APR_ARRAY_IDX(filters, i, bf_typefilter *);
        const char *all = NULL;

        for (j = 0; j < tf->clauses->nelts; j++) {
            const char *c = clause_sql(p, &APR_ARRAY_IDX(tf->clauses, j,
                                                         bf_tf_clause));

            all = all ? apr_pstrcat(p, all, " AND ", c, NULL) : c;
        }
        any = any ? apr_pstrcat(p, any, " OR (", all, ")", NULL)
                  : apr_pstrcat(p, "(", all, ")", NULL);
    }
    *sql = apr_pstrcat(p, "(", any, ")", NULL);
    (void)err;
    return true;
}
