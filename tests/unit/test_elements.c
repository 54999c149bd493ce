/* Unit tests for lib/bf_elements.c: the _elements parameter (SPEC §1.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bf_test.h"

#include <apr_general.h>
#include <apr_strings.h>

#include "bf_elements.h"

static apr_pool_t *pool;

static apr_array_header_t *vals(const char *csv)
{
    apr_array_header_t *a = apr_array_make(pool, 4, sizeof(const char *));
    char *copy = apr_pstrdup(pool, csv), *last, *tok;

    for (tok = apr_strtok(copy, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last))
        APR_ARRAY_PUSH(a, const char *) = tok;
    return a;
}

static void test_parse(void **state)
{
    apr_array_header_t *els;
    const char *err;

    assert_true(bf_elements_parse(
        pool, vals("Patient.name,id,Observation.value"), &els, &err));
    assert_int_equal(els->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(els, 0, bf_element).type, "Patient");
    assert_null(APR_ARRAY_IDX(els, 1, bf_element).type);
    assert_false(bf_elements_parse(pool, vals("Nope.name"), &els, &err));
    assert_false(
        bf_elements_parse(pool, vals("Patient.name.given"), &els, &err));
    assert_false(bf_elements_parse(pool, vals("Patient."), &els, &err));
    assert_false(bf_elements_parse(pool, vals("Name"), &els, &err));
    assert_false(bf_elements_parse(pool, vals("na'me"), &els, &err));
}

static void test_keep_lists(void **state)
{
    apr_array_header_t *els;
    const char *err, *keep;

    assert_true(bf_elements_parse(
        pool, vals("Patient.name,Observation.value,identifier"), &els, &err));
    keep = bf_elements_keep_sql(pool, els, "Observation");
    /* requested for Observation + bare + mandatory status/code; value is a
     * choice */
    assert_string_equal(
        keep,
        "E'{\"value[x]\",\"identifier\",\"status\",\"code[x]\"}'::text[]");
    keep = bf_elements_keep_sql(pool, els, "Patient");
    assert_string_equal(keep, "E'{\"name\",\"identifier\"}'::text[]");
    keep = bf_elements_keep_sql(pool, els, "Immunization");
    assert_non_null(strstr(keep, "\"occurrence[x]\""));
    assert_string_equal(bf_elements_mandatory("Encounter"), "status,class");
    assert_string_equal(bf_elements_mandatory("Unknown"), "");
}

/* 100k names parse and make their keep-list in linear time (the keep-list
 * is built once from an array). */
static void test_linear(void **state)
{
    apr_array_header_t *v = apr_array_make(pool, 100000, sizeof(char *)), *els;
    const char *err = NULL, *keep;
    struct timespec t0, t1;
    int i;

    for (i = 0; i < 100000; i++)
        APR_ARRAY_PUSH(v, char *) = apr_psprintf(pool, "Observation.e%d", i);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true(bf_elements_parse(pool, v, &els, &err));
    keep = bf_elements_keep_sql(pool, els, "Observation");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(strstr(keep, "\"e99999\""));
    assert_true((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 <
                0.5);
    /* a bad name is echoed as a short printable prefix */
    APR_ARRAY_PUSH(v, char *) = apr_pstrcat(
        pool, "Observation.", apr_psprintf(pool, "%0300d", 1), "\x01", NULL);
    assert_false(bf_elements_parse(pool, v, &els, &err));
    assert_true(strlen(err) < 120);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_keep_lists),
    };

    return bf_test_run(tests, &pool);
}
