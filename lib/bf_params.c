/* bf_params: $export kick-off parameters (see bf_params.h). */
#include "bf_params.h"
#include "bf_elements.h"
#include "bf_r4.h"
#include "bf_time.h"
#include "bf_typefilter.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <ctype.h>
#include <json-c/json.h>
#include <string.h>
#include <strings.h>

typedef enum {
    PK_FORMAT,  /* _outputFormat: one string, aliases normalised */
    PK_INSTANT, /* one FHIR instant */
    PK_TYPES,   /* comma list of R4 resource types, repeats merged (R31) */
    PK_LIST,    /* comma list of strings, repeats merged */
    PK_QUERY,   /* one query per value, repeats kept (_typeFilter) */
    PK_REF,     /* references (POST valueReference; GET comma list) */
    PK_RTYPE,   /* one R4 resource type */
    PK_BOOL     /* one boolean */
} param_kind_e;

/* The known kick-off parameters.  `supported` says whether the workers
 * implement the parameter; flip it when they do. */
static const struct {
    const char *name;
    param_kind_e kind;
    bool supported;
} known[] = {
    { "_outputFormat", PK_FORMAT, true },
    { "_since", PK_INSTANT, true },
    { "_type", PK_TYPES, true },
    { "_until", PK_INSTANT, true },
    { "_elements", PK_LIST, true },
    { "_typeFilter", PK_QUERY, true },
    { "patient", PK_REF, true },
    /* R25, R26: the two Provenance values of the IG's ValueSet; others
     * (and _custom values) are refused unless lenient */
    { "includeAssociatedData", PK_LIST, true },
    /* organizeOutputBy: only Patient (the workers' resource blocks) */
    { "organizeOutputBy", PK_RTYPE, true },
    /* the module serves partial manifests of the files published so far
     * (R46); the workers publish per part when the job asks */
    { "allowPartialManifests", PK_BOOL, true },
};
#define NKNOWN (sizeof known / sizeof known[0])

#define NDJSON "application/fhir+ndjson"

const bf_params_limits_t bf_params_default_limits = {
    BF_DEFAULT_MAX_TYPE_FILTERS, BF_DEFAULT_MAX_FILTER_VALUES,
    BF_DEFAULT_MAX_FILTER_BYTES, BF_DEFAULT_MAX_FILTER_TERMS,
    BF_DEFAULT_MAX_ELEMENTS,     BF_DEFAULT_MAX_PATIENTS,
    BF_DEFAULT_MAX_TYPES,
};

typedef struct {
    apr_pool_t *p;
    const char *level; /* system | patient | group; NULL: not checked */
    bool lenient;
    bool from_query;  /* GET: `patient` is a POST-only parameter */
    json_object *obj; /* the normalized parameters being built */
    bf_params_t *prm;
    const bf_params_limits_t *lim;
    int seen[NKNOWN];
    long items[NKNOWN];       /* list items given (repeats counted) */
    apr_hash_t *kept[NKNOWN]; /* list items kept: O(1) duplicate test */
    long filter_bytes;        /* _typeFilter bytes so far */
    long filter_terms;        /* bf_typefilter_terms so far */
    long ignored;             /* `ignored` messages, kept or not */
} ctx_t;

/* Values are echoed in messages; keep them short and printable. */
static const char *shown(apr_pool_t *p, const char *v)
{
    char *s = apr_pstrndup(p, v, 40);
    char *c;

    for (c = s; *c; c++)
        if (!isprint((unsigned char)*c))
            *c = '?';
    return strlen(s) < strlen(v) ? apr_pstrcat(p, s, "...", NULL) : s;
}

static bool fail(ctx_t *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(ctx_t *c, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    c->prm->error = apr_pvsprintf(c->p, fmt, ap);
    va_end(ap);
    c->prm->error_code = code;
    return false;
}

static void ignore(ctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Over a limit of the cost model: a fast too-costly refusal that names the
 * directive and its value (never lifted by handling=lenient). */
static bool too_costly(ctx_t *c, const char *limit, long value, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static bool too_costly(ctx_t *c, const char *limit, long value, const char *fmt,
                       ...)
{
    va_list ap;
    const char *what;

    va_start(ap, fmt);
    what = apr_pvsprintf(c->p, fmt, ap);
    va_end(ap);
    c->prm->error =
        apr_psprintf(c->p, "%s: over the limit %s %ld", what, limit, value);
    c->prm->error_code = "too-costly";
    c->prm->limit = limit;
    c->prm->limit_value = value;
    return false;
}

static void ignore(ctx_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->ignored++ >= BF_PARAMS_MAX_WARNINGS)
        return; /* counted; finish() says how many more */
    va_start(ap, fmt);
    APR_ARRAY_PUSH(c->prm->ignored, const char *) =
        apr_pvsprintf(c->p, fmt, ap);
    va_end(ap);
}

static int find_known(const char *name)
{
    size_t i;

    for (i = 0; i < NKNOWN; i++)
        if (strcmp(known[i].name, name) == 0)
            return (int)i;
    return -1;
}

static json_object *list_of(ctx_t *c, const char *name)
{
    json_object *a;

    if (!json_object_object_get_ex(c->obj, name, &a)) {
        a = json_object_new_array();
        json_object_object_add(c->obj, name, a);
    }
    return a;
}

/* The per-parameter limit on list items, or 0 (none). */
static long item_limit(const ctx_t *c, const char *name, const char **dir)
{
    if (!strcmp(name, "_elements")) {
        *dir = BF_LIMIT_ELEMENTS;
        return c->lim->elements;
    }
    if (!strcmp(name, "patient")) {
        *dir = BF_LIMIT_PATIENTS;
        return c->lim->patients;
    }
    if (!strcmp(name, "_type")) {
        *dir = BF_LIMIT_TYPES;
        return c->lim->types;
    }
    *dir = NULL;
    return 0;
}

static const char *normal_format(const char *v)
{
    static const char *const ok[] = { NDJSON, "application/fhir ndjson",
                                      "application/ndjson", "ndjson", NULL };
    int i;

    for (i = 0; ok[i]; i++)
        if (strcmp(v, ok[i]) == 0)
            return NDJSON;
    return NULL;
}

/* One item of a list parameter: _elements ([Type.]element) and patient
 * (Patient/id) are checked here; *why says what is wrong. */
static bool item_ok(ctx_t *c, int k, const char *item, const char **why)
{
    const char *name = known[k].name, *err = NULL;
    bf_element el;
    size_t i;

    if (!strcmp(name, "_elements")) {
        if (!bf_elements_parse_one(c->p, item, &el, &err)) {
            *why = "is not [Type.]element (root elements only) of an R4 "
                   "resource type";
            return false;
        }
    } else if (!strcmp(name, "patient")) {
        *why = "is not a reference Patient/[id]";
        if (strncmp(item, "Patient/", 8) != 0 || !item[8] ||
            strlen(item + 8) > 64)
            return false;
        for (i = 8; item[i]; i++)
            if (!isalnum((unsigned char)item[i]) && item[i] != '-' &&
                item[i] != '.')
                return false;
    }
    return true;
}

/* Add one value of known parameter k (already decoded). */
static bool add_value(ctx_t *c, int k, const char *v)
{
    const char *name = known[k].name, *bad, *dir;
    char *item, *last, *copy;
    json_object *a;
    long limit;

    if (!bf_utf8_valid(v, strlen(v)))
        return fail(c, "invalid", "parameter %s: '%s' is not valid UTF-8", name,
                    shown(c->p, v));

    switch (known[k].kind) {
    case PK_FORMAT:
    case PK_INSTANT:
    case PK_RTYPE:
    case PK_BOOL:
        if (c->seen[k])
            return fail(c, "invalid", "parameter %s given more than once",
                        name);
        break;
    default:
        break;
    }
    c->seen[k]++;

    switch (known[k].kind) {
    case PK_FORMAT:
        if (!normal_format(v))
            return fail(c, "not-supported",
                        "_outputFormat '%s' is not supported: use "
                        "application/fhir+ndjson, application/ndjson or "
                        "ndjson",
                        shown(c->p, v));
        json_object_object_add(c->obj, name, json_object_new_string(NDJSON));
        return true;
    case PK_INSTANT:
        if (!bf_time_parse_instant(v, NULL))
            return fail(c, "invalid",
                        "parameter %s: '%s' is not a FHIR instant "
                        "(e.g. 2024-01-31T12:00:00Z)",
                        name, shown(c->p, v));
        json_object_object_add(c->obj, name, json_object_new_string(v));
        return true;
    case PK_RTYPE:
        if (!bf_r4_is_type(v))
            return fail(c, "invalid",
                        "parameter %s: '%s' is not an R4 resource type", name,
                        shown(c->p, v));
        if (known[k].supported && strcmp(v, "Patient") != 0) {
            /* R30: blocks are built for the Patient compartment only */
            if (!c->lenient)
                return fail(c, "not-supported",
                            "parameter %s: only Patient is supported, not "
                            "'%s'",
                            name, shown(c->p, v));
            ignore(c, "parameter %s '%s' ignored: only Patient is supported",
                   name, shown(c->p, v));
            return true;
        }
        json_object_object_add(c->obj, name, json_object_new_string(v));
        return true;
    case PK_BOOL:
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
            return fail(c, "invalid",
                        "parameter %s: '%s' is not a boolean (true|false)",
                        name, shown(c->p, v));
        json_object_object_add(c->obj, name,
                               json_object_new_boolean(v[0] == 't'));
        return true;
    case PK_QUERY: {
        bf_typefilter *tf;
        const char *err = NULL;

        long terms, n = (long)strlen(v);
        int j;

        if (!*v)
            return fail(c, "invalid", "parameter %s: empty value", name);
        if (!bf_typefilter_utf8(c->p, v))
            return fail(c, "invalid",
                        "parameter %s: '%s' is not valid UTF-8 after "
                        "percent-decoding",
                        name, shown(c->p, v));
        if (c->seen[k] > c->lim->type_filters)
            return too_costly(c, BF_LIMIT_TYPE_FILTERS, c->lim->type_filters,
                              "%d %s values", c->seen[k], name);
        c->filter_bytes += n;
        if (c->filter_bytes > c->lim->filter_bytes)
            return too_costly(c, BF_LIMIT_FILTER_BYTES, c->lim->filter_bytes,
                              "%ld bytes of %s", c->filter_bytes, name);
        if (!bf_typefilter_parse(c->p, v, &tf, &err)) {
            if (!c->lenient)
                return fail(c, "not-supported", "%s '%s': %s", name,
                            shown(c->p, v), err ? err : "not supported");
            ignore(c, "%s '%s' ignored: %s", name, shown(c->p, v),
                   err ? err : "not supported");
            return true;
        }
        for (j = 0; j < tf->clauses->nelts; j++) {
            const bf_tf_clause *cl =
                &APR_ARRAY_IDX(tf->clauses, j, bf_tf_clause);

            if (cl->values->nelts > c->lim->filter_values)
                return too_costly(
                    c, BF_LIMIT_FILTER_VALUES, c->lim->filter_values,
                    "%s '%s': %d values of %s", name, shown(c->p, v),
                    cl->values->nelts, cl->sp->code);
        }
        terms = bf_typefilter_terms(tf);
        c->filter_terms += terms;
        if (c->filter_terms > c->lim->filter_terms)
            return too_costly(c, BF_LIMIT_FILTER_TERMS, c->lim->filter_terms,
                              "%s: %ld filter terms (clauses x values x "
                              "search paths; '%s' alone has %ld)",
                              name, c->filter_terms, shown(c->p, v), terms);
        json_object_array_add(list_of(c, name), json_object_new_string(v));
        return true;
    }
    case PK_TYPES:
    case PK_LIST:
    case PK_REF:
        a = list_of(c, name);
        copy = apr_pstrdup(c->p, v);
        limit = item_limit(c, name, &dir);
        if (!c->kept[k])
            c->kept[k] = apr_hash_make(c->p);
        for (item = apr_strtok(copy, ",", &last); item;
             item = apr_strtok(NULL, ",", &last)) {
            apr_collapse_spaces(item, item); /* returns the end, not item */
            if (!*item)
                continue;
            /* counted before any check: the loop stops at the limit */
            if (dir && ++c->items[k] > limit)
                return too_costly(c, dir, limit, "more than %ld %s values",
                                  limit, name);
            if (!strcmp(name, "includeAssociatedData") &&
                strcmp(item, "LatestProvenanceResources") != 0 &&
                strcmp(item, "RelevantProvenanceResources") != 0) {
                if (!c->lenient)
                    return fail(c, "not-supported",
                                "includeAssociatedData: '%s' is not supported "
                                "(LatestProvenanceResources and "
                                "RelevantProvenanceResources are; send Prefer: "
                                "handling=lenient to ignore it)",
                                shown(c->p, item));
                ignore(c,
                       "includeAssociatedData: '%s' is not supported and "
                       "was ignored",
                       shown(c->p, item));
                continue;
            }
            if (!item_ok(c, k, item, &bad)) {
                if (!c->lenient)
                    return fail(c, "invalid", "%s: '%s' %s", name,
                                shown(c->p, item), bad);
                ignore(c, "%s: '%s' ignored: %s", name, shown(c->p, item), bad);
                continue;
            }
            if (known[k].kind == PK_TYPES && !bf_r4_is_type(item)) {
                if (!c->lenient)
                    return fail(c, "not-supported",
                                "_type: '%s' is not an R4 resource type",
                                shown(c->p, item));
                ignore(c, "_type: unknown resource type '%s' ignored",
                       shown(c->p, item));
                continue;
            }
            if (!apr_hash_get(c->kept[k], item, APR_HASH_KEY_STRING)) {
                apr_hash_set(c->kept[k], item, APR_HASH_KEY_STRING, item);
                json_object_array_add(a, json_object_new_string(item));
            }
        }
        return true;
    }
    return true;
}

static bool add_param(ctx_t *c, const char *name, const char *value)
{
    int k;

    if (!bf_utf8_valid(name, strlen(name)))
        return fail(c, "invalid", "parameter name '%s' is not valid UTF-8",
                    shown(c->p, name));
    k = find_known(name);

    if (k < 0) {
        if (!c->lenient)
            return fail(c, "not-supported",
                        "unknown parameter '%s' (send Prefer: "
                        "handling=lenient to ignore it)",
                        shown(c->p, name));
        ignore(c, "unknown parameter '%s' ignored", shown(c->p, name));
        return true;
    }
    return add_value(c, k, value);
}

/* Unsupported known parameters: refuse, or (lenient) drop and report. */
static bool finish(ctx_t *c)
{
    json_object *v;
    size_t i, n;
    bf_params_t *prm = c->prm;

    if (c->level && !strcmp(c->level, "system") &&
        json_object_object_get_ex(c->obj, "patient", NULL)) {
        if (!c->lenient)
            return fail(c, "invalid",
                        "parameter patient applies to "
                        "Patient/$export and Group/[id]/$export "
                        "only");
        ignore(c, "parameter patient ignored at system level");
        json_object_object_del(c->obj, "patient");
    } else if (c->from_query &&
               json_object_object_get_ex(c->obj, "patient", NULL)) {
        /* v2/v3: "POST requests only"; lenient honours it anyway */
        if (!c->lenient)
            return fail(c, "not-supported",
                        "parameter patient is accepted in a POST Parameters "
                        "body only (send Prefer: handling=lenient to use it "
                        "in a query string)");
        ignore(c, "parameter patient in a query string is non-standard (POST "
                  "only); it was honoured");
    }
    for (i = 0; i < NKNOWN; i++) {
        if (!c->seen[i] || known[i].supported)
            continue;
        if (!c->lenient)
            return fail(c, "not-supported",
                        "parameter %s is not supported by this server (send "
                        "Prefer: handling=lenient to ignore it)",
                        known[i].name);
        ignore(c, "parameter %s is not supported and was ignored",
               known[i].name);
        json_object_object_del(c->obj, known[i].name);
    }
    if (json_object_object_get_ex(c->obj, "includeAssociatedData", &v)) {
        /* every value ignored (lenient): as if absent */
        if (json_object_array_length(v) == 0)
            json_object_object_del(c->obj, "includeAssociatedData");
        else
            prm->associated = true;
    }
    if (!json_object_object_get_ex(c->obj, "_outputFormat", NULL))
        json_object_object_add(c->obj, "_outputFormat",
                               json_object_new_string(NDJSON));
    prm->output_format = NDJSON;
    if (json_object_object_get_ex(c->obj, "_since", &v))
        prm->since = apr_pstrdup(c->p, json_object_get_string(v));
    if (json_object_object_get_ex(c->obj, "_until", &v))
        prm->until = apr_pstrdup(c->p, json_object_get_string(v));
    if (json_object_object_get_ex(c->obj, "organizeOutputBy", &v))
        prm->organize_by = apr_pstrdup(c->p, json_object_get_string(v));
    if (json_object_object_get_ex(c->obj, "_type", &v)) {
        n = json_object_array_length(v);
        prm->types = apr_array_make(c->p, (int)n + 1, sizeof(const char *));
        for (i = 0; i < n; i++)
            APR_ARRAY_PUSH(prm->types, const char *) = apr_pstrdup(
                c->p, json_object_get_string(json_object_array_get_idx(v, i)));
    }
    if (c->ignored > BF_PARAMS_MAX_WARNINGS)
        APR_ARRAY_PUSH(prm->ignored, const char *) =
            apr_psprintf(c->p, "%ld more parameters or values ignored",
                         c->ignored - BF_PARAMS_MAX_WARNINGS);
    if (prm->ignored->nelts > 0) { /* R60: the worker writes them out */
        json_object *w = json_object_new_array();
        int j;

        for (j = 0; j < prm->ignored->nelts; j++)
            json_object_array_add(w, json_object_new_string(APR_ARRAY_IDX(
                                         prm->ignored, j, const char *)));
        json_object_object_add(c->obj, "_warnings", w);
    }
    prm->json =
        apr_pstrdup(c->p, json_object_to_json_string_ext(
                              c->obj, JSON_C_TO_STRING_PLAIN |
                                          JSON_C_TO_STRING_NOSLASHESCAPE));
    return true;
}

static void ctx_init(ctx_t *c, apr_pool_t *p, const char *level, bool lenient,
                     const bf_params_limits_t *lim)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    c->lim = lim ? lim : &bf_params_default_limits;
    c->level = level;
    c->lenient = lenient;
    c->obj = json_object_new_object();
    c->prm = apr_pcalloc(p, sizeof *c->prm);
    c->prm->ignored = apr_array_make(p, 2, sizeof(const char *));
}

char *bf_params_form_decode(apr_pool_t *p, const char *s, size_t len)
{
    char *out = apr_palloc(p, len + 1), *o = out;
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return NULL;
            {
                char hex[3] = { s[i + 1], s[i + 2], 0 };
                int ch = (int)strtol(hex, NULL, 16);

                if (ch == 0)
                    return NULL;
                *o++ = (char)ch;
            }
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

bool bf_query_next(apr_pool_t *p, const char **cursor, char **name,
                   char **value)
{
    const char *seg = *cursor ? *cursor : "", *end, *eq;

    while (*seg == '&')
        seg++;
    if (!*seg) {
        *cursor = seg;
        return false;
    }
    end = seg + strcspn(seg, "&");
    eq = memchr(seg, '=', (size_t)(end - seg));
    if (!eq)
        eq = end;
    *name = bf_params_form_decode(p, seg, (size_t)(eq - seg));
    *value = bf_params_form_decode(p, eq < end ? eq + 1 : end,
                                   (size_t)(end - (eq < end ? eq + 1 : end)));
    *cursor = *end ? end + 1 : end;
    return true;
}

bool bf_params_from_query(apr_pool_t *p, const char *query, const char *level,
                          bool lenient, bf_params_t **out)
{
    return bf_params_from_query_lim(p, query, level, lenient, NULL, out);
}

bool bf_params_from_query_lim(apr_pool_t *p, const char *query,
                              const char *level, bool lenient,
                              const bf_params_limits_t *lim, bf_params_t **out)
{
    ctx_t c;
    const char *cursor = query;
    char *name, *value;
    bool ok = false;

    ctx_init(&c, p, level, lenient, lim);
    c.from_query = true;
    *out = c.prm;
    while (bf_query_next(p, &cursor, &name, &value)) {
        if (!name || !value) {
            fail(&c, "invalid", "malformed %%-escape in the query string");
            goto leave;
        }
        if (!*name) {
            fail(&c, "invalid", "query string has a parameter without name");
            goto leave;
        }
        if (!add_param(&c, name, value))
            goto leave;
    }
    ok = finish(&c);
leave:
    json_object_put(c.obj);
    return ok;
}

/* The string form of a Parameters.parameter value for known kind k. */
static bool entry_value(ctx_t *c, int k, json_object *e, const char **v)
{
    static const char *const vx[] = {
        "valueString", "valueInstant", "valueDateTime",
        "valueCode",   "valueBoolean", "valueReference",
        "valueCoding", "valueUri",     NULL
    };
    const char *name = known[k].name, *which = NULL;
    json_object *val = NULL, *sub;
    int i;

    for (i = 0; vx[i]; i++) {
        json_object *o;

        if (json_object_object_get_ex(e, vx[i], &o)) {
            if (which)
                return fail(c, "invalid",
                            "parameter %s has more than one "
                            "value[x]",
                            name);
            which = vx[i];
            val = o;
        }
    }
    if (!which)
        return fail(c, "invalid", "parameter %s has no value[x]", name);

    switch (known[k].kind) {
    case PK_BOOL:
        if (strcmp(which, "valueBoolean") != 0 ||
            !json_object_is_type(val, json_type_boolean))
            return fail(c, "invalid", "parameter %s needs valueBoolean", name);
        *v = json_object_get_boolean(val) ? "true" : "false";
        return true;
    case PK_REF:
        if (strcmp(which, "valueReference") != 0 ||
            !json_object_is_type(val, json_type_object) ||
            !json_object_object_get_ex(val, "reference", &sub) ||
            !json_object_is_type(sub, json_type_string))
            return fail(c, "invalid",
                        "parameter %s needs valueReference with a reference",
                        name);
        *v = json_object_get_string(sub);
        return true;
    case PK_INSTANT:
        if (strcmp(which, "valueInstant") != 0 &&
            strcmp(which, "valueDateTime") != 0 &&
            strcmp(which, "valueString") != 0)
            return fail(c, "invalid", "parameter %s needs valueInstant", name);
        break;
    case PK_LIST:
        if (strcmp(which, "valueCoding") == 0) {
            if (!json_object_is_type(val, json_type_object) ||
                !json_object_object_get_ex(val, "code", &sub) ||
                !json_object_is_type(sub, json_type_string))
                return fail(c, "invalid",
                            "parameter %s: valueCoding needs a "
                            "code",
                            name);
            *v = json_object_get_string(sub);
            return true;
        }
        /* fall through */
    default:
        if (strcmp(which, "valueString") != 0 &&
            strcmp(which, "valueCode") != 0 && strcmp(which, "valueUri") != 0)
            return fail(c, "invalid", "parameter %s needs valueString", name);
        break;
    }
    if (!json_object_is_type(val, json_type_string))
        return fail(c, "invalid", "parameter %s: %s must be a string", name,
                    which);
    *v = json_object_get_string(val);
    return true;
}

bool bf_params_from_body(apr_pool_t *p, const char *body, size_t len,
                         const char *level, bool lenient, bf_params_t **out)
{
    return bf_params_from_body_lim(p, body, len, level, lenient, NULL, out);
}

bool bf_params_from_body_lim(apr_pool_t *p, const char *body, size_t len,
                             const char *level, bool lenient,
                             const bf_params_limits_t *lim, bf_params_t **out)
{
    ctx_t c;
    json_tokener *tok;
    json_object *root = NULL, *rt, *list = NULL, *e, *n;
    size_t i, count, off;
    const char *v = NULL;
    bool ok = false;
    int k;

    ctx_init(&c, p, level, lenient, lim);
    *out = c.prm;
    tok = json_tokener_new();
    if (len > 0)
        root = json_tokener_parse_ex(tok, body, (int)len);
    off = len > 0 ? json_tokener_get_parse_end(tok) : 0;
    while (off < len && isspace((unsigned char)body[off]))
        off++;
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        off != len) {
        fail(&c, "invalid", "the body is not a JSON document");
        goto leave;
    }
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "resourceType", &rt) ||
        !json_object_is_type(rt, json_type_string) ||
        strcmp(json_object_get_string(rt), "Parameters") != 0) {
        fail(&c, "invalid", "the body must be a FHIR Parameters resource");
        goto leave;
    }
    if (json_object_object_get_ex(root, "parameter", &list) &&
        !json_object_is_type(list, json_type_array)) {
        fail(&c, "invalid", "Parameters.parameter must be an array");
        goto leave;
    }
    count = list ? json_object_array_length(list) : 0;
    for (i = 0; i < count; i++) {
        e = json_object_array_get_idx(list, i);
        if (!json_object_is_type(e, json_type_object) ||
            !json_object_object_get_ex(e, "name", &n) ||
            !json_object_is_type(n, json_type_string) ||
            !*json_object_get_string(n)) {
            fail(&c, "invalid", "Parameters.parameter[%d] needs a name",
                 (int)i);
            goto leave;
        }
        if (!bf_utf8_valid(json_object_get_string(n),
                           (size_t)json_object_get_string_len(n))) {
            fail(&c, "invalid",
                 "Parameters.parameter[%d].name is not valid "
                 "UTF-8",
                 (int)i);
            goto leave;
        }
        k = find_known(json_object_get_string(n));
        if (k < 0) {
            if (!add_param(&c, json_object_get_string(n), ""))
                goto leave;
            continue;
        }
        if (!entry_value(&c, k, e, &v) || !add_value(&c, k, v))
            goto leave;
    }
    ok = finish(&c);
leave:
    json_object_put(c.obj);
    if (root)
        json_object_put(root);
    json_tokener_free(tok);
    return ok;
}

const char *bf_params_types_literal(apr_pool_t *p, const bf_params_t *prm)
{
    const char *s = "{";
    int i;

    if (!prm->types)
        return NULL;
    /* the names are validated R4 type names: letters only, safe to quote */
    for (i = 0; i < prm->types->nelts; i++)
        s = apr_pstrcat(p, s, i ? "," : "", "\"",
                        APR_ARRAY_IDX(prm->types, i, const char *), "\"", NULL);
    return apr_pstrcat(p, s, "}", NULL);
}

/* ---- Prefer (RFC 7240) ----------------------------------------------------
 */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Copy a token or quoted-string value starting at *s into buf; advance *s
 * past it. */
static void pref_word(const char **s, char *buf, size_t size)
{
    const char *p = *s;
    size_t n = 0;

    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1])
                p++;
            if (n + 1 < size)
                buf[n++] = *p;
        }
        if (*p == '"')
            p++;
    } else {
        for (; *p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t'; p++)
            if (n + 1 < size)
                buf[n++] = *p;
    }
    buf[n] = '\0';
    *s = p;
}

void bf_params_prefer_add(bf_prefer_t *pref, const char *value)
{
    const char *s = value ? value : "";
    char name[64], val[64];
    size_t n;

    while (*s) {
        s = skip_ws(s);
        n = 0;
        while (*s && *s != ',' && *s != ';' && *s != '=' && *s != ' ' &&
               *s != '\t') {
            if (n + 1 < sizeof name)
                name[n++] = *s;
            s++;
        }
        name[n] = '\0';
        val[0] = '\0';
        s = skip_ws(s);
        if (*s == '=') {
            s = skip_ws(s + 1);
            pref_word(&s, val, sizeof val);
        }
        if (!strcasecmp(name, "respond-async"))
            pref->respond_async = true;
        else if (!strcasecmp(name, "separate-export-status"))
            pref->separate_status = true;
        else if (!strcasecmp(name, "handling") && !strcasecmp(val, "lenient"))
            pref->lenient = true;
        else if (!strcasecmp(name, "handling") && !strcasecmp(val, "strict"))
            pref->strict = true;
        /* skip preference parameters (after ';', quoted values included)
         * up to the next ',' */
        while (*s && *s != ',') {
            if (*s == '"') {
                char skip[2];

                pref_word(&s, skip, sizeof skip);
                continue;
            }
            s++;
        }
        if (*s == ',')
            s++;
    }
}
