/* Unit tests for lib/bf_audit.c: the hash chain (against a value
 * PostgreSQL's bulkfhir.audit_append computed), the text[] literal, the
 * AuditEvent mapping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bf_test.h"

#include <apr_general.h>
#include <json-c/json.h>

#include "bf_audit.h"

static apr_pool_t *pool;

static void test_hash_matches_postgresql(void **state)
{
    static const unsigned char zero[32] = { 0 };
    unsigned char h[32];
    char hex[65];
    int i;

    (void)state;
    /* SELECT bulkfhir.audit_append('t', ARRAY['{"action":"x",...}']):
     * the second record's prev_hash was this */
    bf_audit_hash(zero, "t", 1,
                  "{\"action\":\"x\",\"at\":1700000000.5,\"client\":\"c\"}", h);
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    assert_string_equal(
        hex,
        "6bb90d2767a54abfc626bd381a11986f4a6de1f1fb2257b5bd6ba84792d686ea");
    /* chain name and sequence are part of the hash */
    bf_audit_hash(zero, "u", 1,
                  "{\"action\":\"x\",\"at\":1700000000.5,\"client\":\"c\"}", h);
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    assert_string_not_equal(
        hex,
        "6bb90d2767a54abfc626bd381a11986f4a6de1f1fb2257b5bd6ba84792d686ea");
}

static void test_array_literal(void **state)
{
    const char *v[] = { "{\"a\":\"b\\\\c\"}", "x" };

    (void)state;
    assert_string_equal(bf_audit_array_literal(pool, v, 2),
                        "{\"{\\\"a\\\":\\\"b\\\\\\\\c\\\"}\",\"x\"}");
}

static json_object *event(const char *body)
{
    const char *s = bf_audit_event(pool, 42, "httpd:h:1:2", body);

    assert_non_null(s);
    return json_tokener_parse(s);
}

static const char *path(json_object *o, const char *a, int i, const char *b)
{
    json_object *v;

    if (!json_object_object_get_ex(o, a, &v))
        return NULL;
    if (i >= 0)
        v = json_object_array_get_idx(v, (size_t)i);
    if (b && !json_object_object_get_ex(v, b, &v))
        return NULL;
    return json_object_get_string(v);
}

static void test_event_download(void **state)
{
    json_object *e = event(
        "{\"action\":\"download\",\"at\":1700000000.25,\"status\":206,"
        "\"client\":\"alice\",\"remote\":\"10.0.0.1\",\"job\":"
        "\"3f2c0000-0000-4000-8000-000000000001\",\"file\":"
        "\"Patient.1.1.0.ndjson\",\"bytes\":100,\"range\":\"bytes=0-99\"}");
    json_object *ag, *ents;

    (void)state;
    assert_string_equal(path(e, "resourceType", -1, NULL), "AuditEvent");
    assert_string_equal(path(e, "id", -1, NULL), "bulkfhir-audit-42");
    assert_string_equal(path(e, "type", -1, "code"), "110106");
    assert_string_equal(path(e, "subtype", 0, "code"), "read");
    assert_string_equal(path(e, "action", -1, NULL), "R");
    assert_string_equal(path(e, "outcome", -1, NULL), "0");
    assert_string_equal(path(e, "recorded", -1, NULL),
                        "2023-11-14T22:13:20.250Z");
    json_object_object_get_ex(e, "agent", &ag);
    ag = json_object_array_get_idx(ag, 0);
    assert_string_equal(path(ag, "network", -1, "address"), "10.0.0.1");
    json_object_object_get_ex(e, "entity", &ents);
    assert_int_equal(json_object_array_length(ents), 2);
    assert_string_equal(
        path(json_object_array_get_idx(ents, 1), "name", -1, NULL),
        "Patient.1.1.0.ndjson");
    json_object_put(e);
}

static void test_event_refused_token_and_kickoff(void **state)
{
    json_object *e = event("{\"action\":\"token.refused\",\"at\":1,"
                           "\"status\":401,\"claimed_client\":\"x\","
                           "\"reason\":\"bad signature\"}");
    json_object *ents;

    (void)state;
    assert_string_equal(path(e, "subtype", 0, "code"), "110122");
    assert_string_equal(path(e, "outcome", -1, NULL), "4");
    json_object_put(e);
    e = event("{\"action\":\"kickoff.accepted\",\"at\":1,\"status\":202,"
              "\"client\":\"a\",\"job\":\"j\",\"group\":\"g1\","
              "\"patients\":[\"Patient/p1\",\"p2\"]}");
    assert_string_equal(path(e, "type", -1, "code"), "110106");
    assert_string_equal(path(e, "subtype", 0, "code"), "operation");
    json_object_object_get_ex(e, "entity", &ents);
    assert_int_equal(json_object_array_length(ents), 4);
    assert_string_equal(
        path(json_object_array_get_idx(ents, 1), "what", -1, "reference"),
        "Group/g1");
    assert_string_equal(
        path(json_object_array_get_idx(ents, 3), "what", -1, "reference"),
        "Patient/p2");
    json_object_put(e);
    assert_null(bf_audit_event(pool, 1, "c", "[1]"));
    assert_null(bf_audit_event(pool, 1, "c", "not json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_matches_postgresql),
        cmocka_unit_test(test_array_literal),
        cmocka_unit_test(test_event_download),
        cmocka_unit_test(test_event_refused_token_and_kickoff),
    };

    return bf_test_run(tests, &pool);
}
