/* Unit tests: mod_bulkfhir configuration merge (mod_bulkfhir/config_merge.c,
 * linked without httpd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bf_test.h"
#include <string.h>

#include <apr_general.h>

/* by path: a bare "config.h" would find autoconf's in the build dir */
#include "../../mod_bulkfhir/config.h"

static apr_pool_t *pool;

static void test_defaults(void **state)
{
    bf_srv_conf_t *s = bf_srv_conf_create(pool);
    bf_dir_conf_t *d = bf_dir_conf_create(pool, NULL);

    assert_null(s->conninfo);
    assert_null(s->export_root);
    assert_int_equal(bf_srv_pool_max(s), 8);
    assert_int_equal(bf_srv_db_timeout(s), 5);
    assert_int_equal(bf_srv_status_cache_timeout(s), 1);
    assert_null(d->location);
    assert_null(d->base_url);
    assert_int_equal(bf_dir_auth(d), BF_AUTH_NONE);
    assert_int_equal(bf_dir_retry_after(d), 2);
    assert_true(bf_dir_file_lifetime(d) == 3600);
    assert_true(bf_dir_max_body(d) == 1024 * 1024);
    assert_int_equal(bf_dir_min_poll_interval(d), 500);
}

static void test_srv_merge(void **state)
{
    bf_srv_conf_t *base = bf_srv_conf_create(pool);
    bf_srv_conf_t *vhost = bf_srv_conf_create(pool);
    bf_srv_conf_t *m;

    base->conninfo = "dbname=a";
    base->export_root = "/srv/export";
    base->pool_max = 16;
    base->status_cache_timeout = 3;
    /* unset inherits */
    m = bf_srv_conf_merge(pool, base, vhost);
    assert_string_equal(m->conninfo, "dbname=a");
    assert_string_equal(m->export_root, "/srv/export");
    assert_int_equal(bf_srv_pool_max(m), 16);
    assert_int_equal(bf_srv_db_timeout(m), 5);
    assert_int_equal(bf_srv_status_cache_timeout(m), 3);
    /* set overrides */
    vhost->conninfo = "dbname=b";
    vhost->db_timeout = 9;
    vhost->status_cache_timeout = 7;
    m = bf_srv_conf_merge(pool, base, vhost);
    assert_string_equal(m->conninfo, "dbname=b");
    assert_int_equal(bf_srv_pool_max(m), 16);
    assert_int_equal(bf_srv_db_timeout(m), 9);
    assert_int_equal(bf_srv_status_cache_timeout(m), 7);
    assert_null(m->pool);
}

static void test_dir_merge(void **state)
{
    bf_dir_conf_t *srv = bf_dir_conf_create(pool, NULL);
    bf_dir_conf_t *loc = bf_dir_conf_create(pool, "/fhir/");
    bf_dir_conf_t *m, *m2, *inner;

    assert_string_equal(loc->location, "/fhir");
    srv->auth = BF_AUTH_SMART;
    srv->retry_after = 10;
    srv->base_url = "https://example.org/fhir";
    m = bf_dir_conf_merge(pool, srv, loc);
    assert_string_equal(m->location, "/fhir");
    assert_int_equal(bf_dir_auth(m), BF_AUTH_SMART);
    assert_int_equal(bf_dir_retry_after(m), 10);
    assert_string_equal(m->base_url, "https://example.org/fhir");
    assert_true(bf_dir_file_lifetime(m) == 3600);
    assert_int_equal(bf_dir_min_poll_interval(m), 500);
    /* 0 (off) is a value, not "unset" */
    loc->min_poll_interval = 0;
    assert_int_equal(
        bf_dir_min_poll_interval(bf_dir_conf_merge(pool, srv, loc)), 0);

    /* explicitly set to the default value still overrides */
    loc->auth = BF_AUTH_NONE;
    loc->retry_after = 2;
    loc->max_body = 4096;
    m = bf_dir_conf_merge(pool, srv, loc);
    assert_int_equal(bf_dir_auth(m), BF_AUTH_NONE);
    assert_int_equal(bf_dir_retry_after(m), 2);
    assert_true(bf_dir_max_body(m) == 4096);

    /* a nested section without settings changes nothing but the path */
    inner = bf_dir_conf_create(pool, NULL);
    m2 = bf_dir_conf_merge(pool, m, inner);
    assert_string_equal(m2->location, "/fhir");
    assert_true(bf_dir_max_body(m2) == 4096);

    /* <Location /> is the root: empty base path */
    assert_string_equal(bf_dir_conf_create(pool, "/")->location, "");
}

/* The cost-model limits: defaults from the table, a server value inherited,
 * a <Location> value wins (README "Bounded cost"). */
static void test_cost_limits(void **state)
{
    bf_dir_conf_t *srv = bf_dir_conf_create(pool, NULL);
    bf_dir_conf_t *loc = bf_dir_conf_create(pool, "/fhir");
    bf_dir_conf_t *m;
    int i;

    for (i = 0; i < BF_COST_N; i++) {
        assert_true(bf_dir_cost(srv, (bf_cost_e)i) == bf_cost_defs[i].def);
        assert_true(bf_cost_defs[i].lo <= bf_cost_defs[i].def &&
                    bf_cost_defs[i].def <= bf_cost_defs[i].hi);
        assert_non_null(strstr(bf_cost_defs[i].name, "BulkFhirMax"));
    }
    assert_true(bf_dir_cost(srv, BF_COST_FILTER_TERMS) == 1024);
    assert_string_equal(bf_cost_defs[BF_COST_ELEMENTS].name,
                        BF_CMD_MAX_ELEMENTS);
    srv->cost[BF_COST_ELEMENTS] = 50;
    loc->cost[BF_COST_FILTER_TERMS] = 4096;
    m = bf_dir_conf_merge(pool, srv, loc);
    assert_true(bf_dir_cost(m, BF_COST_ELEMENTS) == 50);
    assert_true(bf_dir_cost(m, BF_COST_FILTER_TERMS) == 4096);
    assert_true(bf_dir_cost(m, BF_COST_TYPES) == BF_DEFAULT_MAX_TYPES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_srv_merge),
        cmocka_unit_test(test_dir_merge),
        cmocka_unit_test(test_cost_limits),
    };

    return bf_test_run(tests, &pool);
}
