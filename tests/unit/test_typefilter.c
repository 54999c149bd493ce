/* Unit tests for lib/bf_typefilter.c: _typeFilter parsing and validation
 * (SPEC R28, R29).  The SQL it generates is checked against PostgreSQL by
 * the integration tests (tests/integration/test_040_typefilter.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>

#include "bf_typefilter.h"

static apr_pool_t *pool;

static bf_typefilter *ok(const char *text)
{
    bf_typefilter *tf = NULL;
    const char *err = NULL;

    if (!bf_typefilter_parse(pool, text, &tf, &err))
        fail_msg("%s: %s", text, err);
    return tf;
}

static const char *bad(const char *text)
{
    bf_typefilter *tf = NULL;
    const char *err = NULL;

    assert_false(bf_typefilter_parse(pool, text, &tf, &err));
    assert_non_null(err);
    return err;
}

static void test_common_us_core_searches(void **state)
{
    bf_typefilter *tf = ok("Observation?category=laboratory");

    assert_string_equal(tf->type, "Observation");
    assert_int_equal(tf->clauses->nelts, 1);
    ok("MedicationRequest?status=active");
    ok("Condition?clinical-status=active");
    ok("Encounter?date=ge2020-01-01");
    ok("Observation?code=http://loinc.org|8302-2&date=lt2021-06-01T10:00:00Z");
    ok("Observation?code=http://loinc.org%7C8302-2");
    ok("Patient?name:contains=ab");
    ok("Patient?_id=1,2,3");
    ok("Observation?subject:Patient=123");
    ok("Condition?abatement-date:missing=true");
    ok("Observation?date=ge2020-01-01T00:00:00+02:00");
    ok("Observation?date=ge2020-01-01T00:00:00 02:00");   /* form-decoded '+' */
}

static void test_and_or_structure(void **state)
{
    bf_typefilter *tf = ok("Observation?code=a,b,c\\,d&status=final");
    const bf_tf_clause *c = &APR_ARRAY_IDX(tf->clauses, 0, bf_tf_clause);

    assert_int_equal(tf->clauses->nelts, 2);
    assert_int_equal(c->values->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(c->values, 2, const char *), "c,d");
}

static void test_refused(void **state)
{
    bad("");
    bad("Observation");
    bad("Observation?");
    bad("?code=1");
    bad("Nope?code=1");
    bad("Observation?code");
    bad("Observation?code=");
    bad("Observation?code=a,,b");
    bad("Observation?nope=1");
    assert_non_null(strstr(bad("Observation?_sort=date"), "result parameter"));
    bad("Observation?_include=Observation:subject");
    bad("Observation?subject.name=x");
    bad("Patient?_has:Observation:subject:code=1");
    bad("Observation?code:text=x");          /* unsupported modifier */
    bad("Observation?date=ap2020");
    bad("Observation?date=2020-13");
    bad("Observation?date=yesterday");
    bad("Observation?status:missing=maybe");
    bad("Observation?value-quantity=5");     /* quantity: not supported */
    bad("Observation?code=%zz");
    bad("Observation?code=%00");
}

static void test_sql_shape(void **state)
{
    apr_array_header_t *arr = apr_array_make(pool, 2, sizeof(bf_typefilter *));
    const char *sql, *err;

    APR_ARRAY_PUSH(arr, bf_typefilter *) = ok("Observation?code=x'y");
    APR_ARRAY_PUSH(arr, bf_typefilter *) = ok("Observation?status=final");
    assert_true(bf_typefilter_sql(pool, arr, &sql, &err));
    /* two filters are ORed (R29); quotes are escaped in literals */
    assert_non_null(strstr(sql, ") OR ("));
    assert_non_null(strstr(sql, "x''y"));
    assert_string_equal(bf_sql_literal(pool, "a'b\\c"), "E'a''b\\\\c'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_us_core_searches),
        cmocka_unit_test(test_and_or_structure),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_sql_shape),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
