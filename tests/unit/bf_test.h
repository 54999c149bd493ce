/* bf_test: the main() every unit test shares: APR up, an optional pool for
 * the tests, one cmocka group, everything torn down again.
 *
 *   int main(void)
 *   {
 *       const struct CMUnitTest tests[] = {cmocka_unit_test(test_x)};
 *       return bf_test_run(tests, &pool);   (NULL: no pool)
 *   }
 */
#ifndef BF_TEST_H
#define BF_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

static inline int bf_test_run_(const char *name, const struct CMUnitTest *tests,
                               size_t n, apr_pool_t **pool)
{
    int rc;

    apr_initialize();
    if (pool)
        apr_pool_create(pool, NULL);
    rc = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
    if (pool)
        apr_pool_destroy(*pool);
    apr_terminate();
    return rc;
}

#define bf_test_run(tests, pool)                                               \
    bf_test_run_(#tests, (tests), sizeof(tests) / sizeof((tests)[0]), (pool))

#endif
