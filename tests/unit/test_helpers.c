/* Unit tests for the shared helpers: bf_id, bf_job_state, bf_query_next,
 * bf_sql_literal_utf8 and bf_log_task. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bf_test.h"

#include "bf_id.h"
#include "bf_job_state.h"
#include "bf_params.h"
#include "bf_sql.h"
#include "bf_task_log.h"

static apr_pool_t *pool;

static void test_uuid(void **state)
{
    (void)state;
    assert_true(bf_id_is_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
    assert_true(bf_id_is_uuid("3F2504E0-4F89-11D3-9A0C-0305E82C3301"));
    assert_false(bf_id_is_uuid(NULL));
    assert_false(bf_id_is_uuid(""));
    assert_false(bf_id_is_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c330"));
    assert_false(bf_id_is_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c33011"));
    assert_false(bf_id_is_uuid("3f2504e0x4f89-11d3-9a0c-0305e82c3301"));
    assert_false(bf_id_is_uuid("3f2504g0-4f89-11d3-9a0c-0305e82c3301"));
}

static void test_fhir_id(void **state)
{
    char id[66];

    (void)state;
    assert_true(bf_id_is_fhir_id("Patient-1.a", 11));
    assert_true(bf_id_is_fhir_id("abc/def", 3)); /* only n bytes count */
    assert_false(bf_id_is_fhir_id("abc/def", 7));
    assert_false(bf_id_is_fhir_id("", 0));
    assert_false(bf_id_is_fhir_id(NULL, 3));
    assert_false(bf_id_is_fhir_id("a_b", 3));
    assert_false(bf_id_is_fhir_id("\xc3\xa9", 2));
    memset(id, 'a', sizeof id);
    assert_true(bf_id_is_fhir_id(id, 64));
    assert_false(bf_id_is_fhir_id(id, 65));
}

static void test_job_state(void **state)
{
    (void)state;
    assert_int_equal(bf_job_state_parse("queued"), BF_JOB_STATE_QUEUED);
    assert_int_equal(bf_job_state_parse("running"), BF_JOB_STATE_RUNNING);
    assert_int_equal(bf_job_state_parse("completed"), BF_JOB_STATE_COMPLETED);
    assert_int_equal(bf_job_state_parse("failed"), BF_JOB_STATE_FAILED);
    assert_int_equal(bf_job_state_parse("cancelled"), BF_JOB_STATE_CANCELLED);
    assert_int_equal(bf_job_state_parse(""), BF_JOB_STATE_UNKNOWN);
    assert_int_equal(bf_job_state_parse(NULL), BF_JOB_STATE_UNKNOWN);
    assert_int_equal(bf_job_state_parse("Queued"), BF_JOB_STATE_UNKNOWN);
    assert_true(bf_job_state_is_live("queued"));
    assert_true(bf_job_state_is_live("running"));
    assert_false(bf_job_state_is_live("completed"));
    assert_false(bf_job_state_is_live("failed"));
    assert_false(bf_job_state_is_live("cancelled"));
    assert_false(bf_job_state_is_live("")); /* deleted */
}

static void test_query_next(void **state)
{
    const char *cursor = "&&a=1+2&b&=x&c=%zz&d=%41=&";
    char *name, *value;

    (void)state;
    assert_true(bf_query_next(pool, &cursor, &name, &value));
    assert_string_equal(name, "a");
    assert_string_equal(value, "1 2");
    assert_true(bf_query_next(pool, &cursor, &name, &value));
    assert_string_equal(name, "b");
    assert_string_equal(value, "");
    assert_true(bf_query_next(pool, &cursor, &name, &value));
    assert_string_equal(name, "");
    assert_string_equal(value, "x");
    assert_true(bf_query_next(pool, &cursor, &name, &value));
    assert_string_equal(name, "c");
    assert_null(value);
    assert_true(bf_query_next(pool, &cursor, &name, &value));
    assert_string_equal(name, "d");
    assert_string_equal(value, "A=");
    assert_false(bf_query_next(pool, &cursor, &name, &value));
    assert_false(bf_query_next(pool, &cursor, &name, &value));
    cursor = NULL;
    assert_false(bf_query_next(pool, &cursor, &name, &value));
}

static void test_sql_literal(void **state)
{
    (void)state;
    assert_string_equal(bf_sql_literal_utf8(pool, "a'b\\c\xc3\xa9"),
                        "E'a''b\\\\c\xc3\xa9'");
    assert_null(bf_sql_literal_utf8(pool, "a\xc3"));
}

static char logged[512];

static void capture(void *baton, const char *file, int line,
                    bf_log_level_e level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    snprintf(logged, sizeof logged, "%s", msg);
}

static void test_log_task(void **state)
{
    bf_task_t t;

    (void)state;
    memset(&t, 0, sizeof t);
    t.id = 42;
    t.job_id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    t.resource_type = "Observation";
    bf_log_set(capture, NULL, BF_LOG_INFO);
    bf_log_task(BF_LOG_WARN, &t, "BF02045: attempt %d of %d failed: %s", 1, 3,
                "boom");
    assert_string_equal(logged, "BF02045: job "
                                "3f2504e0-4f89-11d3-9a0c-0305e82c3301: task "
                                "42 (Observation): attempt 1 of 3 failed: "
                                "boom");
    bf_log_task(BF_LOG_INFO, &t, "published %d file(s)", 2);
    assert_string_equal(logged, "job 3f2504e0-4f89-11d3-9a0c-0305e82c3301: "
                                "task 42 (Observation): published 2 file(s)");
    /* a message that merely starts like a tag is not one */
    bf_log_task(BF_LOG_INFO, &t, "%s", "BF01234: x");
    assert_string_equal(logged, "job 3f2504e0-4f89-11d3-9a0c-0305e82c3301: "
                                "task 42 (Observation): BF01234: x");
    logged[0] = '\0';
    bf_log_task(BF_LOG_DEBUG, &t, "not logged"); /* above the level */
    assert_string_equal(logged, "");
    bf_log_set(NULL, NULL, BF_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),        cmocka_unit_test(test_fhir_id),
        cmocka_unit_test(test_job_state),   cmocka_unit_test(test_query_next),
        cmocka_unit_test(test_sql_literal), cmocka_unit_test(test_log_task),
    };

    return bf_test_run(tests, &pool);
}
