/* bf_typefilter: _typeFilter parsing and SQL generation (see bf_typefilter.h).
 *
 * Each compiled search path ("a.b", "a@Patient", "a[k=v]") becomes a
 * jsonpath in lax mode, so arrays unwrap on their own.  Values never enter a
 * jsonpath as text: token and uri values travel in the jsonpath `vars`
 * object (built with json-c), string/date/reference values are compared in
 * SQL against escaped literals. */
#include "bf_typefilter.h"
#include "bf_r4.h"
#include "bf_sql.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <json-c/json.h>

#define TF_MAX_LEN BF_TF_MAX_LEN
#define TF_MAX_CLAUSES BF_TF_MAX_CLAUSES

/* Result parameters are never criteria (SPEC §1.4 _typeFilter). */
static const char *const result_params[] = {
    "_sort",          "_count",  "_include",  "_revinclude",
    "_summary",       "_total",  "_elements", "_contained",
    "_containedType", "_format", "_pretty",   NULL
};

bool bf_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s, *end = u + n;
    unsigned cp;
    int k, i;

    while (u < end) {
        if (*u < 0x80) {
            u++;
            continue;
        }
        if (*u >= 0xC2 && *u <= 0xDF)
            k = 1, cp = *u & 0x1F;
        else if (*u >= 0xE0 && *u <= 0xEF)
            k = 2, cp = *u & 0x0F;
        else if (*u >= 0xF0 && *u <= 0xF4)
            k = 3, cp = *u & 0x07;
        else
            return false;
        if (end - u <= k)
            return false;
        for (i = 1; i <= k; i++) {
            if ((u[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (u[i] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        u += k + 1;
    }
    return true;
}

/* ---- parsing ---------------------------------------------------------- */

/* Values are echoed in messages: a short printable prefix only. */
static const char *shown(apr_pool_t *p, const char *v)
{
    char *s = apr_pstrndup(p, v, 40), *c;

    for (c = s; *c; c++)
        if (!isprint((unsigned char)*c))
            *c = '?';
    return strlen(s) < strlen(v) ? apr_pstrcat(p, s, "...", NULL) : s;
}

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
        } else
            *o++ = *s;
    }
    *o = '\0';
    return true;
}

bool bf_typefilter_utf8(apr_pool_t *p, const char *text)
{
    char *copy = apr_pstrdup(p, text), *o = copy, *s;
    int h, l;

    for (s = copy; *s; s++) {
        h = *s == '%' ? hexval((unsigned char)s[1]) : -1;
        l = h < 0 ? -1 : hexval((unsigned char)s[2]);
        if (h >= 0 && l >= 0) {
            *o++ = (char)(h * 16 + l);
            s += 2;
        } else
            *o++ = *s;
    }
    return bf_utf8_valid(copy, (size_t)(o - copy));
}

/* Split a value list at unescaped commas; "\," is a literal comma.  One
 * buffer holds every value (linear in the list's length). */
static bool split_values(apr_pool_t *p, const char *v, apr_array_header_t *out)
{
    char *o = apr_palloc(p, strlen(v) + 1), *buf = o;

    for (;; v++) {
        if (*v == '\\' &&
            (v[1] == ',' || v[1] == '\\' || v[1] == '$' || v[1] == '|')) {
            *o++ = *++v;
            continue;
        }
        if (*v == ',' || *v == '\0') {
            *o++ = '\0';
            if (!*buf)
                return false; /* empty value */
            APR_ARRAY_PUSH(out, const char *) = buf;
            if (!*v)
                return true;
            buf = o;
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
        return i !=
               16; /* hh:mm needs a zone in FHIR, but accept seconds below */
    if (i != 16)
        return false;
    s += 16;
    if (s[0] == ':' && isdigit((unsigned char)s[1]) &&
        isdigit((unsigned char)s[2])) {
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
    if ((s[0] == '+' || s[0] == '-' || s[0] == ' ') &&
        isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
        s[3] == ':' && isdigit((unsigned char)s[4]) &&
        isdigit((unsigned char)s[5]) && s[6] == '\0')
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

static bool check_values(apr_pool_t *p, const bf_tf_clause *c, const char **err)
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
                *err =
                    apr_psprintf(p, "%s: '%s' is not a FHIR date or dateTime",
                                 c->sp->code, shown(p, v));
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
        *err = apr_psprintf(
            p, "_typeFilter '%s' is not of the form Type?param=value",
            shown(p, text));
        return false;
    }
    tf = apr_pcalloc(p, sizeof *tf);
    tf->text = text;
    tf->type = apr_pstrndup(p, text, (apr_size_t)(q - text));
    if (!bf_r4_is_type(tf->type)) {
        *err =
            apr_psprintf(p, "_typeFilter: '%s' is not a FHIR R4 resource type",
                         shown(p, tf->type));
        return false;
    }
    tf->clauses = apr_array_make(p, 4, sizeof(bf_tf_clause));
    copy = apr_pstrdup(p, q + 1);
    for (pair = apr_strtok(copy, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '='), *name, *colon;
        bf_tf_clause c = { 0 };

        if (!eq || eq == pair || !eq[1]) {
            *err = apr_psprintf(p, "_typeFilter: '%s' is not param=value",
                                shown(p, pair));
            return false;
        }
        *eq = '\0';
        name = pair;
        if (!pct_decode(name) || !pct_decode(eq + 1)) {
            *err = "_typeFilter: bad percent-encoding";
            return false;
        }
        if (!bf_utf8_valid(name, strlen(name)) ||
            !bf_utf8_valid(eq + 1, strlen(eq + 1))) {
            *err = "_typeFilter: a parameter is not valid UTF-8 after "
                   "percent-decoding";
            return false;
        }
        for (i = 0; result_params[i]; i++) {
            if (strcmp(name, result_params[i]) == 0) {
                *err = apr_psprintf(p,
                                    "_typeFilter: %s is a result parameter, "
                                    "not a search criterion",
                                    name);
                return false;
            }
        }
        if (strchr(name, '.') || strncmp(name, "_has", 4) == 0) {
            *err = apr_psprintf(p,
                                "_typeFilter: chained and reverse-chained "
                                "parameters (%s) are not supported",
                                shown(p, name));
            return false;
        }
        colon = strchr(name, ':');
        if (colon) {
            *colon = '\0';
            c.modifier = colon + 1;
        }
        c.sp = bf_searchparam_find(tf->type, name);
        if (!c.sp) {
            *err = apr_psprintf(p,
                                "_typeFilter: search parameter '%s' of %s "
                                "is not supported",
                                shown(p, name), tf->type);
            return false;
        }
        if (!modifier_ok(&c)) {
            *err = apr_psprintf(p,
                                "_typeFilter: modifier :%s on %s is not "
                                "supported",
                                shown(p, c.modifier), name);
            return false;
        }
        c.values = apr_array_make(p, 2, sizeof(const char *));
        if (!split_values(p, eq + 1, c.values)) {
            *err = apr_psprintf(p, "_typeFilter: %s has an empty value", name);
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
                jp = apr_psprintf(p, "%s.%s ? (@.%s == %s)", jp,
                                  jp_string(p, seg), jp_string(p, br + 1),
                                  jp_string(p, eqs + 1));
                continue;
            }
        }
        jp = apr_psprintf(p, "%s.%s", jp, jp_string(p, seg));
    }
    return jp;
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

/* The SQL is appended to one array of pieces and joined once at the end
 * (linear in its size).  A clause costs O(paths + values) bytes: the paths
 * of its search parameter travel as one jsonpath[] constant, its values as
 * one array constant (or one jsonpath vars object), so PostgreSQL folds
 * both at plan time and compares each found element with every value in
 * one subquery. */
typedef struct {
    apr_pool_t *p;
    apr_array_header_t *parts; /* const char * */
} sqlbuf;

static void sb_add(sqlbuf *sb, const char *s)
{
    APR_ARRAY_PUSH(sb->parts, const char *) = s;
}

/* One path of a search parameter: its jsonpath and its "@Type" or NULL. */
typedef struct {
    const char *jp;
    const char *ref_type;
} tf_path;

static apr_array_header_t *paths_of(apr_pool_t *p, const bf_searchparam *sp)
{
    char *paths = apr_pstrdup(p, sp->paths), *one, *last;
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(tf_path));

    for (one = apr_strtok(paths, "|", &last); one;
         one = apr_strtok(NULL, "|", &last)) {
        tf_path *tp = apr_array_push(out);

        tp->jp = path_to_jsonpath(p, one, &tp->ref_type);
    }
    return out;
}

int bf_typefilter_paths(const bf_searchparam *sp)
{
    const char *s;
    int n = 1;

    for (s = sp->paths; *s; s++)
        if (*s == '|')
            n++;
    return n;
}

long bf_typefilter_terms(const bf_typefilter *tf)
{
    long terms = 0;
    int i;

    for (i = 0; i < tf->clauses->nelts; i++) {
        const bf_tf_clause *c = &APR_ARRAY_IDX(tf->clauses, i, bf_tf_clause);

        terms += (long)bf_typefilter_paths(c->sp) * c->values->nelts;
    }
    return terms;
}

/* ARRAY[E'jp1<tail>', ...]::jsonpath[] for the paths (all, or those whose
 * ref_type is `only` when want_rt). */
static void sb_paths(sqlbuf *sb, const apr_array_header_t *paths,
                     const char *tail)
{
    int i;

    sb_add(sb, "ARRAY[");
    for (i = 0; i < paths->nelts; i++) {
        const tf_path *tp = &APR_ARRAY_IDX(paths, i, tf_path);

        if (i)
            sb_add(sb, ",");
        sb_add(sb, bf_sql_literal(sb->p,
                                  tail ? apr_pstrcat(sb->p, tp->jp, tail, NULL)
                                       : tp->jp));
    }
    sb_add(sb, "]::jsonpath[]");
}

/* ARRAY[E'v1', ...]::text[] (NULL items as NULL) */
static void sb_texts(sqlbuf *sb, const apr_array_header_t *vals)
{
    int i;

    sb_add(sb, "ARRAY[");
    for (i = 0; i < vals->nelts; i++) {
        const char *v = APR_ARRAY_IDX(vals, i, const char *);

        if (i)
            sb_add(sb, ",");
        sb_add(sb, v ? bf_sql_literal(sb->p, v) : "NULL");
    }
    sb_add(sb, "]::text[]");
}

static const char *json_text(apr_pool_t *p, json_object *o)
{
    const char *s = apr_pstrdup(
        p, json_object_to_json_string_ext(
               o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

    json_object_put(o);
    return s;
}

/* true when any path of the list selects an element matching `pred` (NULL:
 * any element) with `vars` */
static void sb_path_exists(sqlbuf *sb, const apr_array_header_t *paths,
                           const char *pred, const char *vars)
{
    const char *tail = pred ? apr_pstrcat(sb->p, " ? (", pred, ")", NULL) : "";

    if (paths->nelts == 1) {
        sb_add(sb, "jsonb_path_exists(resource, ");
        sb_add(sb, bf_sql_literal(
                       sb->p,
                       apr_pstrcat(sb->p, APR_ARRAY_IDX(paths, 0, tf_path).jp,
                                   tail, NULL)));
    } else {
        sb_add(sb, "EXISTS (SELECT 1 FROM unnest(");
        sb_paths(sb, paths, tail);
        sb_add(sb, ") AS j(p) WHERE jsonb_path_exists(resource, j.p");
    }
    if (vars) {
        sb_add(sb, ", ");
        sb_add(sb, bf_sql_literal(sb->p, vars));
        sb_add(sb, "::jsonb");
    }
    sb_add(sb, paths->nelts == 1 ? ")" : "))");
}

static void missing_sql(sqlbuf *sb, const bf_tf_clause *c,
                        const apr_array_header_t *paths)
{
    if (!strcmp(APR_ARRAY_IDX(c->values, 0, const char *), "true"))
        sb_add(sb, "NOT ");
    sb_add(sb, "(");
    sb_path_exists(sb, paths, NULL, NULL);
    sb_add(sb, ")");
}

/* A group of token values sharing one jsonpath predicate. */
typedef struct {
    int form;           /* TOK_* */
    const char *system; /* TOK_SYS_CODE: the system */
    json_object *c;     /* codes (array) */
    json_object *s;     /* TOK_SYS: systems (array) */
    json_object *b;     /* TOK_CODE: booleans among the codes (array) */
} tok_group;

enum { TOK_CODE, TOK_SYS_CODE, TOK_NOSYS_CODE, TOK_SYS, TOK_NOSYS };

static void token_sql(sqlbuf *sb, const bf_tf_clause *c,
                      const apr_array_header_t *paths)
{
    apr_pool_t *p = sb->p;
    apr_array_header_t *groups = apr_array_make(p, 4, sizeof(tok_group));
    apr_hash_t *by_sys = apr_hash_make(p);
    tok_group *simple[5] = { NULL };
    int i;

    for (i = 0; i < c->values->nelts; i++) {
        const char *v = APR_ARRAY_IDX(c->values, i, const char *);
        const char *bar = strchr(v, '|'), *sys = NULL, *code = v;
        tok_group *g;
        int form;

        if (bar) {
            sys = apr_pstrndup(p, v, (apr_size_t)(bar - v));
            code = bar + 1;
            form = *sys ? (*code ? TOK_SYS_CODE : TOK_SYS)
                        : (*code ? TOK_NOSYS_CODE : TOK_NOSYS);
        } else
            form = TOK_CODE;
        g = form == TOK_SYS_CODE
                ? apr_hash_get(by_sys, sys, APR_HASH_KEY_STRING)
                : simple[form];
        if (!g) {
            g = apr_array_push(groups);
            memset(g, 0, sizeof *g);
            g->form = form;
            g->system = sys;
            g->c = json_object_new_array();
            g->s = json_object_new_array();
            g->b = json_object_new_array();
            if (form == TOK_SYS_CODE)
                apr_hash_set(by_sys, sys, APR_HASH_KEY_STRING, g);
            else
                simple[form] = g;
        }
        if (*code)
            json_object_array_add(g->c, json_object_new_string(code));
        if (form == TOK_SYS)
            json_object_array_add(g->s, json_object_new_string(sys));
        if (form == TOK_CODE && (!strcmp(v, "true") || !strcmp(v, "false")))
            json_object_array_add(g->b, json_object_new_boolean(v[0] == 't'));
    }
    for (i = 0; i < groups->nelts; i++) {
        tok_group *g = &APR_ARRAY_IDX(groups, i, tok_group);
        json_object *vars = json_object_new_object();
        const char *pred;

        switch (g->form) {
        case TOK_CODE:
            /* code alone: a primitive code/string/boolean, a Coding, a
             * CodeableConcept, an Identifier or a ContactPoint value */
            pred = json_object_array_length(g->b) > 0
                       ? "@ == $c || ((@ == true || @ == false) && @ == $b)"
                         " || exists(@.coding ? (@.code == $c))"
                         " || @.code == $c || @.value == $c"
                       : "@ == $c || exists(@.coding ? (@.code == $c))"
                         " || @.code == $c || @.value == $c";
            json_object_object_add(vars, "c", json_object_get(g->c));
            json_object_object_add(vars, "b", json_object_get(g->b));
            break;
        case TOK_SYS_CODE:
        case TOK_NOSYS_CODE: {
            const char *sc = g->form == TOK_SYS_CODE ? "@.system == $s"
                                                     : "!exists(@.system)";

            pred = apr_psprintf(p,
                                "exists(@.coding ? (@.code == $c && %s))"
                                " || (@.code == $c && %s)"
                                " || (@.value == $c && %s)",
                                sc, sc, sc);
            json_object_object_add(vars, "c", json_object_get(g->c));
            if (g->form == TOK_SYS_CODE)
                json_object_object_add(vars, "s",
                                       json_object_new_string(g->system));
            break;
        }
        default: {
            const char *sc =
                g->form == TOK_SYS ? "@.system == $s" : "!exists(@.system)";

            pred = apr_psprintf(p,
                                "exists(@.coding ? (%s))"
                                " || (exists(@.code) && %s)"
                                " || (exists(@.value) && %s)",
                                sc, sc, sc);
            if (g->form == TOK_SYS)
                json_object_object_add(vars, "s", json_object_get(g->s));
            break;
        }
        }
        json_object_put(g->c);
        json_object_put(g->s);
        json_object_put(g->b);
        if (i)
            sb_add(sb, " OR ");
        sb_path_exists(sb, paths, pred, json_text(p, vars));
    }
}

static void uri_sql(sqlbuf *sb, const bf_tf_clause *c,
                    const apr_array_header_t *paths)
{
    json_object *vars = json_object_new_object(), *v = json_object_new_array();
    int i;

    for (i = 0; i < c->values->nelts; i++)
        json_object_array_add(v, json_object_new_string(APR_ARRAY_IDX(
                                     c->values, i, const char *)));
    json_object_object_add(vars, "v", v);
    sb_path_exists(sb, paths, "@ == $v", json_text(sb->p, vars));
}

static void string_sql(sqlbuf *sb, const bf_tf_clause *c,
                       const apr_array_header_t *paths)
{
    const char *m = c->modifier;

    sb_add(sb, "EXISTS (SELECT 1 FROM unnest(");
    sb_paths(sb, paths, ".** ? (@.type() == \"string\")");
    sb_add(sb, ") AS j(p), jsonb_path_query(resource, j.p) AS v(x), unnest(");
    sb_texts(sb, c->values);
    if (m && !strcmp(m, "exact"))
        sb_add(sb, ") AS q(s) WHERE (x #>> '{}') = q.s)");
    else if (m && !strcmp(m, "contains"))
        sb_add(sb, ") AS q(s) WHERE strpos(lower(x #>> '{}'), lower(q.s)) "
                   "> 0)");
    else
        sb_add(sb, ") AS q(s) WHERE starts_with(lower(x #>> '{}'), "
                   "lower(q.s)))");
}

/* Type/id, absolute .../Type/id or a bare id, against the paths whose
 * "@Type" restriction is rt (NULL: none): the (exact, LIKE) pairs. */
static bool reference_pairs(apr_pool_t *p, const bf_tf_clause *c,
                            const char *rt, apr_array_header_t *exact,
                            apr_array_header_t *like)
{
    int i;

    for (i = 0; i < c->values->nelts; i++) {
        const char *value = APR_ARRAY_IDX(c->values, i, const char *);
        const char *slash = strrchr(value, '/');
        const char *want_type = c->modifier, *id;

        if (slash) {
            const char *tstart = slash;

            while (tstart > value && tstart[-1] != '/')
                tstart--;
            want_type = apr_pstrndup(p, tstart, (apr_size_t)(slash - tstart));
            id = slash + 1;
        } else
            id = value;
        if (rt && want_type && strcmp(rt, want_type) != 0)
            continue;
        if (!want_type)
            want_type = rt;
        if (want_type) {
            APR_ARRAY_PUSH(exact, const char *) =
                apr_pstrcat(p, want_type, "/", id, NULL);
            APR_ARRAY_PUSH(like, const char *) =
                apr_pstrcat(p, "%/", like_escape(p, want_type), "/",
                            like_escape(p, id), NULL);
        } else {
            APR_ARRAY_PUSH(exact, const char *) = NULL;
            APR_ARRAY_PUSH(like, const char *) =
                apr_pstrcat(p, "%/", like_escape(p, id), NULL);
        }
    }
    return exact->nelts > 0;
}

static void reference_sql(sqlbuf *sb, const bf_tf_clause *c,
                          const apr_array_header_t *paths)
{
    apr_pool_t *p = sb->p;
    bool *done = apr_pcalloc(p, sizeof(bool) * (size_t)paths->nelts + 1);
    bool any = false;
    int i, j;

    /* one subquery per distinct "@Type" restriction of the paths */
    for (i = 0; i < paths->nelts; i++) {
        const char *rt = APR_ARRAY_IDX(paths, i, tf_path).ref_type;
        apr_array_header_t *mine = apr_array_make(p, 2, sizeof(tf_path));
        apr_array_header_t *exact = apr_array_make(p, 4, sizeof(char *));
        apr_array_header_t *like = apr_array_make(p, 4, sizeof(char *));

        if (done[i])
            continue;
        for (j = i; j < paths->nelts; j++) {
            const char *rj = APR_ARRAY_IDX(paths, j, tf_path).ref_type;

            if (!done[j] && (rt ? rj && !strcmp(rt, rj) : !rj)) {
                done[j] = true;
                *(tf_path *)apr_array_push(mine) =
                    APR_ARRAY_IDX(paths, j, tf_path);
            }
        }
        if (!reference_pairs(p, c, rt, exact, like))
            continue;
        if (any)
            sb_add(sb, " OR ");
        any = true;
        sb_add(sb, "EXISTS (SELECT 1 FROM unnest(");
        sb_paths(sb, mine, ".reference");
        sb_add(sb, ") AS j(p), jsonb_path_query(resource, j.p) AS v(x), "
                   "unnest(");
        sb_texts(sb, exact);
        sb_add(sb, ", ");
        sb_texts(sb, like);
        sb_add(sb, ") AS q(e, l) WHERE (x #>> '{}') = q.e OR (x #>> '{}') "
                   "LIKE q.l)");
    }
    if (!any)
        sb_add(sb, "false");
}

static void date_sql(sqlbuf *sb, const bf_tf_clause *c,
                     const apr_array_header_t *paths)
{
    /* t: the target's range, q.r: the search value's range (FHIR date
     * search semantics, half-open ranges) */
    static const char *const cmp[][2] = {
        { "eq", "t <@ q.r" },
        { "ne", "NOT (t <@ q.r)" },
        { "gt", "(upper_inf(t) OR upper(t) > upper(q.r))" },
        { "lt", "(lower_inf(t) OR lower(t) < lower(q.r))" },
        { "ge", "(upper_inf(t) OR upper(t) > upper(q.r) OR t <@ q.r)" },
        { "le", "(lower_inf(t) OR lower(t) < lower(q.r) OR t <@ q.r)" },
        { "sa", "(NOT lower_inf(t) AND lower(t) >= upper(q.r))" },
        { "eb", "(NOT upper_inf(t) AND upper(t) <= lower(q.r))" },
    };
    apr_pool_t *p = sb->p;
    apr_array_header_t *pfx =
        apr_array_make(p, c->values->nelts, sizeof(char *));
    bool used[8] = { false };
    int i, k;

    sb_add(sb, "EXISTS (SELECT 1 FROM unnest(");
    sb_paths(sb, paths, NULL);
    sb_add(sb, ") AS j(p), jsonb_path_query(resource, j.p) AS v(x),"
               " bulkfhir.fhir_value_range(x) AS t, unnest(ARRAY[");
    /* constant arguments of an immutable function: folded at plan time */
    for (i = 0; i < c->values->nelts; i++) {
        const char *rest, *prefix;
        char *v, *sp;

        prefix = date_prefix(APR_ARRAY_IDX(c->values, i, const char *), &rest);
        v = apr_pstrdup(p, rest);
        if ((sp = strchr(v, ' ')) != NULL)
            *sp = '+'; /* a '+' that form-decoding turned into a space */
        if (i)
            sb_add(sb, ",");
        sb_add(sb, "bulkfhir.fhir_date_range(");
        sb_add(sb, bf_sql_literal(p, v));
        sb_add(sb, ")");
        APR_ARRAY_PUSH(pfx, const char *) = prefix;
        for (k = 0; k < 8; k++)
            if (!strcmp(prefix, cmp[k][0]))
                used[k] = true;
    }
    sb_add(sb, "]::tstzrange[], ");
    sb_texts(sb, pfx);
    sb_add(sb, ") AS q(r, pfx) WHERE t IS NOT NULL AND CASE q.pfx");
    for (k = 0; k < 8; k++) {
        if (!used[k])
            continue;
        sb_add(sb, apr_psprintf(p, " WHEN '%s' THEN %s", cmp[k][0], cmp[k][1]));
    }
    sb_add(sb, " END)");
}

static void clause_sql(sqlbuf *sb, const bf_tf_clause *c)
{
    apr_array_header_t *paths = paths_of(sb->p, c->sp);
    bool not = c->modifier && !strcmp(c->modifier, "not");

    if (c->modifier && !strcmp(c->modifier, "missing")) {
        missing_sql(sb, c, paths);
        return;
    }
    sb_add(sb, not ? "NOT (" : "(");
    switch (c->sp->type) {
    case BF_SP_TOKEN:
        token_sql(sb, c, paths);
        break;
    case BF_SP_STRING:
        string_sql(sb, c, paths);
        break;
    case BF_SP_DATE:
        date_sql(sb, c, paths);
        break;
    case BF_SP_REFERENCE:
        reference_sql(sb, c, paths);
        break;
    default:
        uri_sql(sb, c, paths);
        break;
    }
    sb_add(sb, ")");
}

bool bf_typefilter_sql(apr_pool_t *p, const apr_array_header_t *filters,
                       const char **sql, const char **err)
{
    sqlbuf sb;
    int i, j;

    *sql = NULL;
    (void)err;
    if (!filters || filters->nelts == 0) {
        *sql = "true";
        return true;
    }
    sb.p = p;
    sb.parts = apr_array_make(p, 64, sizeof(const char *));
    sb_add(&sb, "(");
    for (i = 0; i < filters->nelts; i++) {
        const bf_typefilter *tf = APR_ARRAY_IDX(filters, i, bf_typefilter *);

        sb_add(&sb, i ? " OR (" : "(");
        for (j = 0; j < tf->clauses->nelts; j++) {
            if (j)
                sb_add(&sb, " AND ");
            clause_sql(&sb, &APR_ARRAY_IDX(tf->clauses, j, bf_tf_clause));
        }
        sb_add(&sb, ")");
    }
    sb_add(&sb, ")");
    *sql = apr_array_pstrcat(p, sb.parts, 0);
    return true;
}
