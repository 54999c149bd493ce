/* Unit tests for lib/bf_scope.c: SMART v1/v2 system scopes (SPEC §3.7, A10,
 * R5, R6). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "bf_test.h"

#include <apr_general.h>

#include "bf_scope.h"

static apr_pool_t *pool;

static void test_parse(void **state)
{
    bf_scope s;

    assert_true(bf_scope_parse_one(pool, "system/*.read", &s));
    assert_string_equal(s.type, "*");
    assert_int_equal(s.perms, BF_PERM_R | BF_PERM_S);
    assert_true(bf_scope_parse_one(pool, "system/Observation.rs", &s));
    assert_string_equal(s.type, "Observation");
    assert_true(bf_scope_parse_one(pool, "system/Patient.cruds", &s));
    assert_int_equal(s.perms, 31);
    assert_true(bf_scope_parse_one(pool, "system/Group.*", &s));
    assert_int_equal(s.perms, 31);
    /* out of order, repeated, unknown letters, unknown type, other contexts */
    assert_false(bf_scope_parse_one(pool, "system/*.sr", &s));
    assert_false(bf_scope_parse_one(pool, "system/*.rr", &s));
    assert_false(bf_scope_parse_one(pool, "system/*.dus", &s));
    assert_false(bf_scope_parse_one(pool, "system/*.x", &s));
    assert_false(bf_scope_parse_one(pool, "system/Nope.rs", &s));
    assert_false(bf_scope_parse_one(pool, "patient/*.rs", &s));
    assert_false(bf_scope_parse_one(pool, "user/*.read", &s));
    assert_false(bf_scope_parse_one(pool, "launch", &s));
    assert_false(bf_scope_parse_one(pool, "system/.rs", &s));
    assert_false(bf_scope_parse_one(
        pool, "system/Observation.rs?category=laboratory", &s));
}

static void test_grant_within_registration(void **state)
{
    /* A10: only what the client was registered for */
    assert_string_equal(bf_scope_grant(pool, "system/*.read", "system/*.rs"),
                        "system/*.read");
    assert_string_equal(
        bf_scope_grant(pool, "system/Patient.rs system/Observation.read",
                       "system/Patient.read"),
        "system/Patient.rs");
    assert_null(bf_scope_grant(pool, "system/*.rs", "system/Patient.rs"));
    assert_null(bf_scope_grant(pool, "system/Patient.cruds", "system/*.rs"));
    assert_null(bf_scope_grant(pool, "", "system/*.rs"));
    assert_null(bf_scope_grant(pool, "openid launch", "system/*.rs"));
    assert_string_equal(bf_scope_grant(pool,
                                       "system/Group.rs  system/Patient.rs",
                                       "system/*.*"),
                        "system/Group.rs system/Patient.rs");
}

static void test_can_export(void **state)
{
    assert_true(bf_scope_can_export(pool, "system/*.read", "Observation"));
    assert_true(bf_scope_can_export(pool, "system/Patient.rs system/Group.rs",
                                    "Group"));
    assert_false(bf_scope_can_export(pool, "system/Patient.rs", "Observation"));
    assert_false(
        bf_scope_can_export(pool, "system/*.r", "Observation")); /* no search */
    assert_false(bf_scope_can_export(pool, "system/*.write", "Patient"));
    assert_false(bf_scope_can_export(pool, "", "Patient"));
}

/* R5: without _type, an export holds the granted types and only those */
static void test_export_types(void **state)
{
    apr_array_header_t *t;
    bool all;

    t = bf_scope_export_types(pool, "system/*.read", &all);
    assert_true(all);
    assert_int_equal(t->nelts, 0);
    t = bf_scope_export_types(pool,
                              "system/Patient.read system/Observation.rs "
                              "system/Patient.rs system/Condition.r "
                              "system/Encounter.write",
                              &all);
    assert_false(all);
    assert_int_equal(t->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(t, 0, const char *), "Patient");
    assert_string_equal(APR_ARRAY_IDX(t, 1, const char *), "Observation");
    t = bf_scope_export_types(pool, "system/*.cud system/Group.s", &all);
    assert_false(all);
    assert_int_equal(t->nelts, 0);
    t = bf_scope_export_types(pool, NULL, &all);
    assert_false(all);
    assert_int_equal(t->nelts, 0);
}

/* R6: Group export needs read on Group */
static void test_allows_group_read(void **state)
{
    assert_true(bf_scope_allows(pool, "system/Group.rs", "Group", BF_PERM_R));
    assert_true(bf_scope_allows(pool, "system/Group.read", "Group", BF_PERM_R));
    assert_true(bf_scope_allows(pool, "system/*.read", "Group", BF_PERM_R));
    assert_true(bf_scope_allows(pool, "system/Group.r", "Group", BF_PERM_R));
    assert_false(bf_scope_allows(pool, "system/Group.s", "Group", BF_PERM_R));
    assert_false(
        bf_scope_allows(pool, "system/Patient.read", "Group", BF_PERM_R));
    assert_false(bf_scope_allows(pool, "", "Group", BF_PERM_R));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_grant_within_registration),
        cmocka_unit_test(test_can_export),
        cmocka_unit_test(test_export_types),
        cmocka_unit_test(test_allows_group_read),
    };

    return bf_test_run(tests, &pool);
}
