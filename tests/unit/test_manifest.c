/* Unit tests: the complete-status manifest (lib/bf_manifest.c). */
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

#include "bf_manifest.h"

static apr_pool_t *pool;

#define BASE "https://fhir.example.org/r4"
#define JOB "3f2b4c1e-0000-4000-8000-000000000001"

static void add(apr_array_header_t *a, const char *kind, const char *type,
                int part, const char *name, long long count)
{
    bf_manifest_file_t *f = apr_array_push(a);

    f->kind = kind;
    f->type = type;
    f->part = part;
    f->name = name;
    f->count = count;
}

static json_object *build(bool token, apr_array_header_t *files)
{
    bf_manifest_t m = { "2024-01-02T03:04:05.123456Z",
                        BASE "/$export?_type=Patient",
                        token,
                        BASE,
                        JOB,
                        files };
    const char *s = bf_manifest_json(pool, &m);
    json_object *o = json_tokener_parse(s);

    assert_non_null(o);
    return o;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;

    assert_true(json_object_object_get_ex(o, key, &v));
    return v;
}

static void test_empty(void **state)
{
    json_object *o =
        build(false, apr_array_make(pool, 1, sizeof(bf_manifest_file_t)));

    assert_string_equal(json_object_get_string(get(o, "transactionTime")),
                        "2024-01-02T03:04:05.123456Z");
    assert_string_equal(json_object_get_string(get(o, "request")),
                        BASE "/$export?_type=Patient");
    assert_true(
        json_object_is_type(get(o, "requiresAccessToken"), json_type_boolean));
    assert_false(json_object_get_boolean(get(o, "requiresAccessToken")));
    assert_true(json_object_is_type(get(o, "output"), json_type_array));
    assert_int_equal(json_object_array_length(get(o, "output")), 0);
    assert_int_equal(json_object_array_length(get(o, "error")), 0);
    assert_false(json_object_object_get_ex(o, "deleted", NULL));
    json_object_put(o);

    /* NULL files is an empty export too */
    o = build(true, NULL);
    assert_true(json_object_get_boolean(get(o, "requiresAccessToken")));
    assert_int_equal(json_object_array_length(get(o, "output")), 0);
    json_object_put(o);
}

static void test_order_and_urls(void **state)
{
    apr_array_header_t *a = apr_array_make(pool, 8, sizeof(bf_manifest_file_t));
    json_object *o, *out, *item;

    add(a, "output", "Patient", 1, "Patient.2.1.1.ndjson", 5);
    add(a, "output", "Observation", 10, "Observation.1.1.10.ndjson", 3);
    add(a, "error", "OperationOutcome", 0, "OperationOutcome.1.1.0.ndjson", 1);
    add(a, "output", "Observation", 2, "Observation.1.1.2.ndjson", 1000);
    add(a, "output", "Patient", 0, "Patient.2.1.0.ndjson", 1000);
    add(a, "deleted", "Bundle", 0, "Bundle.3.1.0.ndjson", 2);
    o = build(false, a);

    out = get(o, "output");
    assert_int_equal(json_object_array_length(out), 4);
    item = json_object_array_get_idx(out, 0);
    assert_string_equal(json_object_get_string(get(item, "type")),
                        "Observation");
    assert_string_equal(json_object_get_string(get(item, "url")),
                        BASE "/bulkfiles/" JOB "/Observation.1.1.2.ndjson");
    assert_int_equal(json_object_get_int64(get(item, "count")), 1000);
    /* part 10 after part 2: numeric, not text, order */
    item = json_object_array_get_idx(out, 1);
    assert_string_equal(json_object_get_string(get(item, "url")),
                        BASE "/bulkfiles/" JOB "/Observation.1.1.10.ndjson");
    item = json_object_array_get_idx(out, 2);
    assert_string_equal(json_object_get_string(get(item, "type")), "Patient");
    assert_string_equal(json_object_get_string(get(item, "url")),
                        BASE "/bulkfiles/" JOB "/Patient.2.1.0.ndjson");
    item = json_object_array_get_idx(out, 3);
    assert_int_equal(json_object_get_int64(get(item, "count")), 5);

    assert_int_equal(json_object_array_length(get(o, "error")), 1);
    item = json_object_array_get_idx(get(o, "error"), 0);
    assert_string_equal(json_object_get_string(get(item, "type")),
                        "OperationOutcome");
    assert_int_equal(json_object_array_length(get(o, "deleted")), 1);
    item = json_object_array_get_idx(get(o, "deleted"), 0);
    assert_string_equal(json_object_get_string(get(item, "url")),
                        BASE "/bulkfiles/" JOB "/Bundle.3.1.0.ndjson");
    json_object_put(o);
}

static void test_no_slash_escaping(void **state)
{
    bf_manifest_t m = {
        "2024-01-02T03:04:05Z", BASE "/Patient/$export", false, BASE, JOB, NULL
    };
    const char *s = bf_manifest_json(pool, &m);

    assert_non_null(strstr(s, "\"request\":\"" BASE "/Patient/$export\""));
    assert_string_equal(bf_manifest_file_url(pool, BASE, JOB, "A.1.1.0.ndjson"),
                        BASE "/bulkfiles/" JOB "/A.1.1.0.ndjson");
}

/* §1.9, R53, R54, R56, R46: organized output has no type but
 * outputOrganizedBy and continuesInFile; deleted items are Bundles, error
 * items OperationOutcomes; a partial manifest links the next page. */
static void test_organized_deleted_error_link(void **state)
{
    apr_array_header_t *files =
        apr_array_make(pool, 4, sizeof(bf_manifest_file_t));
    bf_manifest_t m;
    json_object *o, *out, *item, *v;
    bf_manifest_file_t *f;

    add(files, "output", NULL, 1, "Patient.5.1.1.ndjson", 10);
    f = &APR_ARRAY_IDX(files, 0, bf_manifest_file_t);
    f->continues_in = "Patient.5.1.2.ndjson";
    add(files, "output", NULL, 2, "Patient.5.1.2.ndjson", 3);
    add(files, "deleted", "Patient", 1, "Patient.5.1.1.deleted.ndjson", 2);
    add(files, "error", "Patient", 1, "Patient.5.1.1.error.ndjson", 1);
    memset(&m, 0, sizeof m);
    m.transaction_time = "2024-01-02T03:04:05Z";
    m.request = BASE "/Patient/$export";
    m.base_url = BASE;
    m.job_id = JOB;
    m.files = files;
    m.organized_by = "Patient";
    m.next_url = BASE "/bulkstatus/" JOB "?page=2";
    o = json_tokener_parse(bf_manifest_json(pool, &m));
    assert_non_null(o);
    assert_string_equal(json_object_get_string(get(o, "outputOrganizedBy")),
                        "Patient");
    out = get(o, "output");
    assert_int_equal(json_object_array_length(out), 2);
    item = json_object_array_get_idx(out, 0);
    assert_false(json_object_object_get_ex(item, "type", &v));
    assert_string_equal(json_object_get_string(get(item, "continuesInFile")),
                        BASE "/bulkfiles/" JOB "/Patient.5.1.2.ndjson");
    item = json_object_array_get_idx(out, 1);
    assert_false(json_object_object_get_ex(item, "continuesInFile", &v));
    item = json_object_array_get_idx(get(o, "deleted"), 0);
    assert_string_equal(json_object_get_string(get(item, "type")), "Bundle");
    item = json_object_array_get_idx(get(o, "error"), 0);
    assert_string_equal(json_object_get_string(get(item, "type")),
                        "OperationOutcome");
    item = json_object_array_get_idx(get(o, "link"), 0);
    assert_string_equal(json_object_get_string(get(item, "relation")), "next");
    assert_string_equal(json_object_get_string(get(item, "url")),
                        BASE "/bulkstatus/" JOB "?page=2");
    json_object_put(o);

    /* not organized: every item has its type, no outputOrganizedBy, no link */
    m.organized_by = NULL;
    m.next_url = NULL;
    o = json_tokener_parse(bf_manifest_json(pool, &m));
    assert_false(json_object_object_get_ex(o, "outputOrganizedBy", &v));
    assert_false(json_object_object_get_ex(o, "link", &v));
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_order_and_urls),
        cmocka_unit_test(test_no_slash_escaping),
        cmocka_unit_test(test_organized_deleted_error_link),
    };

    return bf_test_run(tests, &pool);
}
