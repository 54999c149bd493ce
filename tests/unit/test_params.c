/* Unit tests: $export kick-off parameters (lib/bf_params.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bf_test.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <json-c/json.h>
#include <string.h>
#include <time.h>

#include "bf_params.h"
#include "bf_time.h"

static apr_pool_t *pool;
/* the export level the helpers parse for */
static const char *level = "patient";

static bf_params_t *get_ok(const char *query, bool lenient)
{
    bf_params_t *prm = NULL;
    bool ok = bf_params_from_query(pool, query, level, lenient, &prm);

    if (!ok)
        print_error("unexpected failure for '%s': %s\n", query, prm->error);
    assert_true(ok);
    return prm;
}

static bf_params_t *get_bad(const char *query, bool lenient, const char *code)
{
    bf_params_t *prm = NULL;

    if (bf_params_from_query(pool, query, level, lenient, &prm))
        print_error("unexpectedly accepted: %s\n", query);
    assert_non_null(prm->error);
    assert_string_equal(prm->error_code, code);
    return prm;
}

static bf_params_t *post(const char *body, bool lenient, bool expect)
{
    bf_params_t *prm = NULL;
    bool ok =
        bf_params_from_body(pool, body, strlen(body), level, lenient, &prm);

    if (ok != expect)
        print_error("'%s': %s\n", body, ok ? "accepted" : prm->error);
    assert_int_equal(ok, expect);
    return prm;
}

static const char *type_at(const bf_params_t *prm, int i)
{
    return APR_ARRAY_IDX(prm->types, i, const char *);
}

static void test_empty_query(void **state)
{
    bf_params_t *prm = get_ok(NULL, false);

    assert_null(prm->types);
    assert_null(prm->since);
    assert_string_equal(prm->output_format, "application/fhir+ndjson");
    assert_string_equal(prm->json,
                        "{\"_outputFormat\":\"application/fhir+ndjson\"}");
    get_ok("", false);
    get_ok("&&", false);
}

static void test_output_format_aliases(void **state)
{
    const char *ok[] = { "application/fhir%2Bndjson", "application/fhir+ndjson",
                         "application%2Fndjson", "ndjson", NULL };
    char *q;
    int i;

    /* "application/fhir+ndjson" unencoded: '+' form-decodes to a space */
    for (i = 0; ok[i]; i++) {
        q = apr_pstrcat(pool, "_outputFormat=", ok[i], NULL);
        assert_string_equal(get_ok(q, false)->output_format,
                            "application/fhir+ndjson");
    }
    get_bad("_outputFormat=text/csv", false, "not-supported");
    get_bad("_outputFormat=text/csv", true, "not-supported");
    get_bad("_outputFormat=ndjson&_outputFormat=ndjson", false, "invalid");
}

static void test_types(void **state)
{
    bf_params_t *prm;

    prm = get_ok("_type=Patient,Observation&_type=Condition&_type=Patient",
                 false);
    assert_non_null(prm->types);
    assert_int_equal(prm->types->nelts, 3);
    assert_string_equal(type_at(prm, 0), "Patient");
    assert_string_equal(type_at(prm, 1), "Observation");
    assert_string_equal(type_at(prm, 2), "Condition");
    assert_string_equal(bf_params_types_literal(pool, prm),
                        "{\"Patient\",\"Observation\",\"Condition\"}");
    assert_non_null(strstr(prm->json, "\"_type\":[\"Patient\",\"Observation\","
                                      "\"Condition\"]"));
    /* spaces around commas, an encoded comma */
    prm = get_ok("_type=Patient%2C%20Encounter", false);
    assert_int_equal(prm->types->nelts, 2);
    assert_string_equal(type_at(prm, 1), "Encounter");

    prm = get_bad("_type=Patient,Bogus", false, "not-supported");
    assert_non_null(strstr(prm->error, "Bogus"));
    prm = get_ok("_type=Patient,Bogus", true);
    assert_int_equal(prm->types->nelts, 1);
    assert_int_equal(prm->ignored->nelts, 1);
    assert_non_null(
        strstr(APR_ARRAY_IDX(prm->ignored, 0, const char *), "Bogus"));
    get_bad("_type=patient", false, "not-supported");
}

static void test_since(void **state)
{
    bf_params_t *prm;
    apr_time_t t;

    prm = get_ok("_since=2020-01-02T03:04:05Z", false);
    assert_string_equal(prm->since, "2020-01-02T03:04:05Z");
    prm = get_ok("_since=2020-01-02T03:04:05.123%2B02:00", false);
    assert_string_equal(prm->since, "2020-01-02T03:04:05.123+02:00");
    get_bad("_since=2020-01-02", false, "invalid");
    get_bad("_since=2020-13-02T00:00:00Z", false, "invalid");
    get_bad("_since=2021-02-29T00:00:00Z", false, "invalid");
    get_bad("_since=2020-01-02T03:04:05", false, "invalid");
    get_bad("_since=yesterday", true, "invalid");
    get_bad("_since=2020-01-02T03:04:05Z&_since=2020-01-02T03:04:05Z", false,
            "invalid");

    assert_true(bf_time_parse_instant("1970-01-01T00:00:01Z", &t));
    assert_true(t == APR_USEC_PER_SEC);
    assert_true(bf_time_parse_instant("1970-01-01T01:00:00.5+01:00", &t));
    assert_true(t == APR_USEC_PER_SEC / 2);
    assert_string_equal(bf_time_instant(pool, APR_USEC_PER_SEC + 7),
                        "1970-01-01T00:00:01.000007Z");
}

static void test_escapes(void **state)
{
    get_bad("_type=Pat%2", false, "invalid");
    get_bad("_type=Pat%zzient", false, "invalid");
    get_bad("_type=Pat%00ient", false, "invalid");
    get_bad("=Patient", false, "invalid");
    assert_string_equal(bf_params_form_decode(pool, "a+b%2Bc%2f", 10),
                        "a b+c/");
}

static void test_unsupported_strict_lenient(void **state)
{
    bf_params_t *prm;

    /* R25, R26: the two Provenance values, comma lists and repeats */
    prm = get_ok("includeAssociatedData=LatestProvenanceResources,"
                 "RelevantProvenanceResources&includeAssociatedData="
                 "LatestProvenanceResources",
                 false);
    assert_true(prm->associated);
    assert_non_null(strstr(prm->json, "\"includeAssociatedData\":["
                                      "\"LatestProvenanceResources\","
                                      "\"RelevantProvenanceResources\"]"));
    prm = get_bad("includeAssociatedData=_custom", false, "not-supported");
    assert_non_null(strstr(prm->error, "_custom"));
    prm = get_ok("includeAssociatedData=_custom", true);
    assert_false(prm->associated);
    assert_null(strstr(prm->json, "\"includeAssociatedData\""));
    assert_int_equal(prm->ignored->nelts, 1);
    prm = get_ok("includeAssociatedData=_custom,RelevantProvenanceResources",
                 true);
    assert_true(prm->associated);
    assert_non_null(strstr(prm->json, "[\"RelevantProvenanceResources\"]"));
    /* R30: organizeOutputBy=Patient only */
    prm = get_ok("organizeOutputBy=Patient", false);
    assert_string_equal(prm->organize_by, "Patient");
    prm = get_bad("organizeOutputBy=Encounter", false, "not-supported");
    assert_non_null(strstr(prm->error, "organizeOutputBy"));
    prm = get_ok("organizeOutputBy=Encounter", true);
    assert_null(prm->organize_by);
    prm = get_bad("foo=bar", false, "not-supported");
    assert_non_null(strstr(prm->error, "foo"));

    /* still validated when lenient */
    get_bad("allowPartialManifests=maybe", true, "invalid");
    get_bad("organizeOutputBy=Nothing", true, "invalid");

    prm = get_ok("_type=Patient&organizeOutputBy=Encounter&foo=bar&"
                 "allowPartialManifests=false",
                 true);
    assert_int_equal(prm->ignored->nelts, 2);
    assert_null(strstr(prm->json, "\"organizeOutputBy\":"));
    /* R46: the module serves partial manifests */
    assert_non_null(strstr(prm->json, "\"allowPartialManifests\":false"));
    assert_non_null(strstr(prm->json, "\"_type\":[\"Patient\"]"));
    /* R60: the ignored parameters are kept for the worker's error file */
    assert_non_null(strstr(prm->json, "\"_warnings\":[\""));
    assert_non_null(strstr(prm->json, "\"unknown parameter 'foo' ignored\""));
    prm = get_ok("_type=Patient", true);
    assert_null(strstr(prm->json, "_warnings"));
}

static void test_implemented_extras(void **state)
{
    bf_params_t *prm;

    prm = get_ok("_until=2020-01-01T00:00:00Z&_elements=id,Patient.name&"
                 "_elements=meta&_typeFilter=Observation%3Fstatus%3Dfinal&"
                 "_typeFilter=Condition%3Fcode%3Dhttp%3A%2F%2Fsnomed.info%2Fsct"
                 "%7C1,2&patient=Patient/1,Patient/2",
                 true);
    assert_string_equal(prm->until, "2020-01-01T00:00:00Z");
    assert_non_null(strstr(prm->json, "\"_elements\":[\"id\",\"Patient.name\","
                                      "\"meta\"]"));
    /* one query per value: the comma inside a query stays */
    assert_non_null(strstr(prm->json, "\"Condition?code=http://snomed.info/"
                                      "sct|1,2\""));
    assert_non_null(strstr(prm->json, "\"patient\":[\"Patient/1\","
                                      "\"Patient/2\"]"));
    /* bad values */
    get_bad("_typeFilter=Observation%3F_sort%3Ddate", false, "not-supported");
    prm = get_ok("_typeFilter=Observation%3F_sort%3Ddate", true);
    assert_int_equal(prm->ignored->nelts, 1);
    assert_null(strstr(prm->json, "\"_typeFilter\":"));
    get_bad("_elements=Nope.id", false, "invalid");
    /* patient in a GET query: POST only unless lenient */
    prm = get_bad("patient=Patient/1", false, "not-supported");
    assert_non_null(strstr(prm->error, "POST"));
    prm = get_ok("patient=Patient/1", true);
    assert_int_equal(prm->ignored->nelts, 1);
    assert_non_null(strstr(prm->json, "\"patient\":[\"Patient/1\"]"));
    get_bad("patient=123", false, "invalid");
    get_bad("patient=Patient/a_b", false, "invalid");
    /* patient is for Patient and Group level only */
    level = "system";
    get_bad("patient=Patient/1", false, "invalid");
    prm = get_ok("patient=Patient/1", true);
    assert_null(strstr(prm->json, "\"patient\":"));
    level = "group";
    get_ok("patient=Patient/1", true);
    level = "patient";
}

static bf_prefer_t prefer(const char *a, const char *b)
{
    bf_prefer_t p;

    memset(&p, 0, sizeof p);
    bf_params_prefer_add(&p, a);
    if (b)
        bf_params_prefer_add(&p, b);
    return p;
}

/* R13-R16: Prefer lists, repeats, quotes, white space, case */
static void test_prefer(void **state)
{
    bf_prefer_t p;

    p = prefer("respond-async, handling=lenient", NULL);
    assert_true(p.respond_async && p.lenient && !p.separate_status);
    p = prefer("respond-async", "handling=lenient");
    assert_true(p.respond_async && p.lenient);
    p = prefer(" Respond-Async ;wait=10 ,HANDLING = \"Lenient\" ", NULL);
    assert_true(p.respond_async && p.lenient);
    p = prefer("respond-async,separate-export-status", NULL);
    assert_true(p.respond_async && p.separate_status && !p.lenient);
    p = prefer("handling=strict", "respond-async; foo=\"a,handling=lenient\"");
    assert_true(p.strict && p.respond_async && !p.lenient);
    p = prefer("handling=lenientx, return=minimal", NULL);
    assert_false(p.lenient || p.respond_async);
    p = prefer("", NULL);
    assert_false(p.respond_async);
}

static void test_post_ok(void **state)
{
    bf_params_t *prm;

    prm =
        post("{\"resourceType\":\"Parameters\",\"parameter\":["
             "{\"name\":\"_type\",\"valueString\":\"MedicationRequest\"},"
             "{\"name\":\"_type\",\"valueString\":\"Patient,Observation\"},"
             "{\"name\":\"_since\",\"valueInstant\":\"2020-01-01T00:00:00Z\"},"
             "{\"name\":\"_outputFormat\",\"valueString\":\"application/"
             "ndjson\"}]}",
             false, true);
    assert_int_equal(prm->types->nelts, 3);
    assert_string_equal(type_at(prm, 2), "Observation");
    assert_string_equal(prm->since, "2020-01-01T00:00:00Z");
    assert_string_equal(prm->output_format, "application/fhir+ndjson");

    prm = post("{\"resourceType\":\"Parameters\"}", false, true);
    assert_null(prm->types);

    /* patient (valueReference), typeFilter: parsed, then lenient-ignored */
    prm = post(
        "{\"resourceType\":\"Parameters\",\"parameter\":["
        "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
        "\"Patient/123\"}},"
        "{\"name\":\"_typeFilter\",\"valueString\":\"Observation?status=final,amended\"},"
        "{\"name\":\"includeAssociatedData\",\"valueCoding\":{\"code\":"
        "\"LatestProvenanceResources\"}},"
        "{\"name\":\"allowPartialManifests\",\"valueBoolean\":true}]}",
        true, true);
    /* typeFilter, patient, allowPartialManifests and includeAssociatedData
     * (valueCoding, v4) kept */
    assert_int_equal(prm->ignored->nelts, 0);
    assert_true(prm->associated);
    assert_non_null(strstr(prm->json, "[\"LatestProvenanceResources\"]"));
    assert_non_null(strstr(prm->json, "\"allowPartialManifests\":true"));
    assert_non_null(strstr(prm->json, "Observation?status=final,amended"));
    prm = post("{\"resourceType\":\"Parameters\",\"parameter\":["
               "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
               "\"Patient/123\"}},"
               "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
               "\"Patient/456\"}}]}",
               false, true);
    assert_non_null(strstr(prm->json, "\"patient\":[\"Patient/123\","
                                      "\"Patient/456\"]"));
}

static void test_post_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "{\"resourceType\":\"Parameters\"} trailing",
        "[]",
        "{\"resourceType\":\"Bundle\"}",
        "{\"parameter\":[]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":{}}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[1]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"valueString\":"
        "\"x\"}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\"}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\","
        "\"valueString\":\"Patient\",\"valueCode\":\"Patient\"}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\","
        "\"valueString\":7}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_since\","
        "\"valueInstant\":\"2020\"}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_since\","
        "\"valueBoolean\":true}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":"
        "\"allowPartialManifests\",\"valueString\":\"true\"}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"patient\","
        "\"valueReference\":{}}]}",
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":"
        "\"_outputFormat\",\"valueString\":\"ndjson\"},{\"name\":"
        "\"_outputFormat\",\"valueString\":\"ndjson\"}]}",
        NULL
    };
    int i;

    for (i = 0; bad[i]; i++) {
        bf_params_t *prm = post(bad[i], true, false);

        assert_string_equal(prm->error_code, "invalid");
    }
    post("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"x\","
         "\"valueString\":\"y\"}]}",
         false, false);
    post("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"x\","
         "\"valueString\":\"y\"}]}",
         true, true);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "name=v0,v1,...": n comma-separated values made by fmt(i) */
static char *list_query(const char *name, long n, const char *fmt)
{
    apr_array_header_t *parts =
        apr_array_make(pool, (int)n * 2 + 2, sizeof(char *));
    long i;

    APR_ARRAY_PUSH(parts, char *) = apr_pstrcat(pool, name, "=", NULL);
    for (i = 0; i < n; i++) {
        if (i)
            APR_ARRAY_PUSH(parts, char *) = ",";
        APR_ARRAY_PUSH(parts, char *) = apr_psprintf(pool, fmt, i);
    }
    return apr_array_pstrcat(pool, parts, 0);
}

static void assert_too_costly(bf_params_t *prm, const char *limit)
{
    assert_string_equal(prm->error_code, "too-costly");
    assert_non_null(prm->limit);
    assert_string_equal(prm->limit, limit);
    assert_non_null(strstr(prm->error, limit));
}

/* README "Bounded cost": each limit refuses with too-costly naming it;
 * lenient does not lift a limit; at the limit is accepted. */
static void test_cost_limits(void **state)
{
    bf_params_limits_t lim = bf_params_default_limits;
    bf_params_t *prm = NULL;
    char *q;
    int i;

    /* _elements: 500 accepted, 501 refused (also lenient) */
    assert_true(bf_params_from_query_lim(
        pool, list_query("_elements", 500, "e%ld"), level, false, &lim, &prm));
    assert_false(bf_params_from_query_lim(
        pool, list_query("_elements", 501, "e%ld"), level, true, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_ELEMENTS);
    /* repeats count: 2 x 300 of the same names */
    q = apr_pstrcat(pool, list_query("_elements", 300, "e%ld"), "&",
                    list_query("_elements", 300, "e%ld"), NULL);
    assert_false(bf_params_from_query_lim(pool, q, level, false, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_ELEMENTS);
    /* _type */
    lim.types = 3;
    assert_false(bf_params_from_query_lim(pool,
                                          "_type=Patient,Patient,Patient,"
                                          "Patient",
                                          level, false, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_TYPES);
    /* filters per kick-off */
    lim = bf_params_default_limits;
    lim.type_filters = 2;
    assert_false(bf_params_from_query_lim(
        pool,
        "_typeFilter=Patient%3Fgender%3Dmale&_typeFilter=Patient%3Fgender%3D"
        "female&_typeFilter=Patient%3Fgender%3Dother",
        level, false, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_TYPE_FILTERS);
    /* values of one search parameter */
    lim = bf_params_default_limits;
    q = apr_pstrcat(pool, "_typeFilter=Observation%3Fcode%3D",
                    list_query("", 65, "c%ld") + 1, NULL);
    assert_false(bf_params_from_query_lim(pool, q, level, true, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_FILTER_VALUES);
    assert_non_null(strstr(prm->error, "65 values of code"));
    /* terms: 3 clauses x 64 dates x 5 paths of Observation.date = 960
     * accepted, a fourth clause (1280) refused */
    q = "_typeFilter=Observation%3F";
    for (i = 0; i < 3; i++) {
        char *vals = list_query("", 64, "ge20%02ld") + 1;

        q = apr_pstrcat(pool, q, i ? "%26" : "", "date%3D", vals, NULL);
    }
    assert_true(bf_params_from_query_lim(pool, q, level, false, &lim, &prm));
    q = apr_pstrcat(pool, q, "%26date%3D", list_query("", 64, "ge20%02ld") + 1,
                    NULL);
    assert_false(bf_params_from_query_lim(pool, q, level, false, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_FILTER_TERMS);
    /* total _typeFilter bytes */
    lim = bf_params_default_limits;
    lim.filter_bytes = 39; /* the two are 19 + 21 bytes */
    assert_false(bf_params_from_query_lim(
        pool,
        "_typeFilter=Patient%3Fgender%3Dmale&_typeFilter=Patient%3Fgender%3D"
        "female",
        level, false, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_FILTER_BYTES);
    /* patient references in a body */
    lim = bf_params_default_limits;
    lim.patients = 2;
    assert_false(bf_params_from_body_lim(
        pool,
        "{\"resourceType\":\"Parameters\",\"parameter\":["
        "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
        "\"Patient/a\"}},"
        "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
        "\"Patient/b\"}},"
        "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
        "\"Patient/a\"}}]}",
        strlen("{\"resourceType\":\"Parameters\",\"parameter\":["
               "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
               "\"Patient/a\"}},"
               "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
               "\"Patient/b\"}},"
               "{\"name\":\"patient\",\"valueReference\":{\"reference\":"
               "\"Patient/a\"}}]}"),
        level, false, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_PATIENTS);
}

/* Linear parsing: 100k distinct _elements parse (and are refused by the
 * limit, or deduplicated when allowed) in well under a second. */
static void test_linear(void **state)
{
    bf_params_limits_t lim = bf_params_default_limits;
    bf_params_t *prm = NULL;
    char *q = list_query("_elements", 100000, "e%ld");
    double t0;

    t0 = now_s();
    assert_false(bf_params_from_query_lim(pool, q, level, false, &lim, &prm));
    assert_too_costly(prm, BF_LIMIT_ELEMENTS);
    assert_true(now_s() - t0 < 0.5);

    lim.elements = 200000;
    t0 = now_s();
    assert_true(bf_params_from_query_lim(pool, q, level, false, &lim, &prm));
    assert_true(now_s() - t0 < 1.0);
    /* repeated names are kept once */
    q = apr_pstrcat(pool, q, "&", q, NULL);
    t0 = now_s();
    assert_true(bf_params_from_query_lim(pool, q, level, false, &lim, &prm));
    assert_true(now_s() - t0 < 1.0);
    {
        json_object *o = json_tokener_parse(prm->json), *a;

        assert_true(json_object_object_get_ex(o, "_elements", &a));
        assert_int_equal(json_object_array_length(a), 100000);
        json_object_put(o);
    }
}

/* Invalid UTF-8 in decoded parameters is refused as invalid, lenient too;
 * messages echo a short printable prefix. */
static void test_utf8(void **state)
{
    bf_params_t *prm;

    get_bad("_typeFilter=Patient%3Fname%3D%FF", false, "invalid");
    get_bad("_typeFilter=Patient%3Fname%3D%FF", true, "invalid");
    prm = get_bad("_typeFilter=Patient%3Fname%3D%25FF", true, "invalid");
    assert_non_null(strstr(prm->error, "UTF-8"));
    get_bad("_typeFilter=Patient%3Fname%3D%25C0%25AF", false, "invalid");
    get_bad("_since=2020-01-01T00:00:00Z%C3", false, "invalid");
    get_bad("_elements=%ED%A0%80", true, "invalid"); /* a surrogate */
    get_bad("x%FF=1", true, "invalid");
    get_ok("_typeFilter=Patient%3Fname%3D%25C3%25A9", false); /* é */
    prm = post("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":"
               "\"_type\",\"valueString\":\"Pat\xffient\"}]}",
               true, false);
    assert_string_equal(prm->error_code, "invalid");
    /* a long bad value is echoed as a short printable prefix */
    prm = get_bad(
        apr_pstrcat(pool, "_since=", list_query("", 200, "x%ld") + 1, NULL),
        false, "invalid");
    assert_true(strlen(prm->error) < 200);
}

/* Lenient: warnings are capped, the rest counted in one more. */
static void test_warnings_capped(void **state)
{
    apr_array_header_t *parts = apr_array_make(pool, 400, sizeof(char *));
    bf_params_t *prm;
    int i;

    for (i = 0; i < 200; i++)
        APR_ARRAY_PUSH(parts, char *) =
            apr_psprintf(pool, "%sx%d=1", i ? "&" : "", i);
    prm = get_ok(apr_array_pstrcat(pool, parts, 0), true);
    assert_int_equal(prm->ignored->nelts, BF_PARAMS_MAX_WARNINGS + 1);
    assert_non_null(
        strstr(APR_ARRAY_IDX(prm->ignored, BF_PARAMS_MAX_WARNINGS, char *),
               "150 more"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_query),
        cmocka_unit_test(test_output_format_aliases),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_since),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_unsupported_strict_lenient),
        cmocka_unit_test(test_implemented_extras),
        cmocka_unit_test(test_prefer),
        cmocka_unit_test(test_post_ok),
        cmocka_unit_test(test_post_bad),
        cmocka_unit_test(test_cost_limits),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_warnings_capped),
    };

    return bf_test_run(tests, &pool);
}
