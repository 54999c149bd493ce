/* Unit tests for lib/bf_typefilter.c: _typeFilter parsing and validation
 * (SPEC R28, R29).  The SQL it generates is checked against PostgreSQL by
 * the integration tests (tests/integration/test_040_typefilter.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bf_test.h"

#include <apr_general.h>
#include <apr_strings.h>

#include "bf_sql.h"
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
    ok("Observation?date=ge2020-01-01T00:00:00 02:00"); /* form-decoded '+' */
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
    bad("Observation?code:text=x"); /* unsupported modifier */
    bad("Observation?date=ap2020");
    bad("Observation?date=2020-13");
    bad("Observation?date=yesterday");
    bad("Observation?status:missing=maybe");
    bad("Observation?value-quantity=5"); /* quantity: not supported */
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

static int count(const char *s, const char *what)
{
    int n = 0;

    for (; (s = strstr(s, what)) != NULL; s++)
        n++;
    return n;
}

static const char *sql_of(const char *text)
{
    apr_array_header_t *arr = apr_array_make(pool, 1, sizeof(bf_typefilter *));
    const char *sql, *err;

    APR_ARRAY_PUSH(arr, bf_typefilter *) = ok(text);
    assert_true(bf_typefilter_sql(pool, arr, &sql, &err));
    return sql;
}

static const char *values(const char *prefix, int n, const char *fmt)
{
    apr_array_header_t *parts = apr_array_make(pool, n + 1, sizeof(char *));
    int i;

    APR_ARRAY_PUSH(parts, const char *) = prefix;
    for (i = 0; i < n; i++)
        APR_ARRAY_PUSH(parts, char *) =
            apr_psprintf(pool, fmt, i ? "," : "", i);
    return apr_array_pstrcat(pool, parts, 0);
}

/* README "Bounded cost": a clause is one subquery whatever its number of
 * values, and the SQL grows by a bounded number of bytes per value. */
static void test_sql_linear(void **state)
{
    static const struct {
        const char *prefix, *fmt, *call;
        int per_value; /* bytes the SQL may grow by per value */
    } shapes[] = {
        { "Observation?date=", "%sge20%02d", "EXISTS", 60 },
        { "Observation?code=", "%shttp://loinc.org|%d-1", "jsonb_path_exists",
          40 },
        { "Observation?code=", "%s%d-1", "jsonb_path_exists", 30 },
        { "Patient?name=", "%sna%d", "EXISTS", 30 },
        { "Observation?subject=", "%sPatient/p%d", "EXISTS", 60 },
        { "Observation?category:not=", "%sc%d", "jsonb_path_exists", 30 },
    };
    size_t i;

    for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const char *one = sql_of(values(shapes[i].prefix, 1, shapes[i].fmt));
        const char *many = sql_of(values(shapes[i].prefix, 64, shapes[i].fmt));

        assert_int_equal(count(one, shapes[i].call),
                         count(many, shapes[i].call));
        if (strlen(many) - strlen(one) > 63 * (size_t)shapes[i].per_value)
            fail_msg("%s: %zu bytes for 1 value, %zu for 64", shapes[i].prefix,
                     strlen(one), strlen(many));
    }
    /* distinct systems: one jsonpath per system */
    assert_int_equal(
        count(sql_of("Observation?code=a|1,b|2,a|3"), "jsonb_path_exists"), 2);
    /* Observation.date has 5 paths: one jsonpath[] constant */
    assert_int_equal(
        count(sql_of("Observation?date=2020,2021"), "::jsonpath[]"), 1);
}

static void test_terms(void **state)
{
    assert_int_equal(
        bf_typefilter_terms(ok("Observation?date=2020,2021&code=x")),
        2 * 5 + 1);
    assert_int_equal(bf_typefilter_terms(ok("Patient?gender=male")), 1);
}

static void test_utf8(void **state)
{
    bad("Patient?name=%FF");
    bad("Patient?name=%C0%AF");       /* overlong '/' */
    bad("Patient?name=%ED%A0%80");    /* a surrogate */
    bad("Patient?name=%F4%90%80%80"); /* above U+10FFFF */
    ok("Patient?name=%C3%A9");
    assert_false(bf_typefilter_utf8(pool, "Patient?name=%FF"));
    assert_false(bf_typefilter_utf8(pool, "Patient?name=\xff"));
    assert_true(bf_typefilter_utf8(pool, "Patient?name=%E2%82%AC"));
    assert_true(bf_utf8_valid("\xf0\x9f\x98\x80", 4));
    assert_false(bf_utf8_valid("\xf0\x9f\x98", 3));
    /* messages echo a short printable prefix */
    assert_true(strlen(bad(values("Nope?x=", 500, "%s%d"))) < 120);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_us_core_searches),
        cmocka_unit_test(test_and_or_structure),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_sql_shape),
        cmocka_unit_test(test_sql_linear),
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_utf8),
    };

    return bf_test_run(tests, &pool);
}
