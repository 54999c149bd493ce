/* mod_bulkfhir configuration create/merge (see config.h).  APR only: the
 * unit test links this file without httpd. */
#include "config.h"

#include <apr_strings.h>
#include <string.h>

/* a value set in the inner scope wins; unset values inherit */
#define BF_MERGE(base, add, name)                                              \
    (((add)->name == BF_DEF_VAL) ? (base)->name : (add)->name)
#define BF_MERGE_PTR(base, add, name) ((add)->name ? (add)->name : (base)->name)
#define BF_OR_DEFAULT(v, def) (((v) == BF_DEF_VAL) ? (def) : (v))

const bf_cost_def_t bf_cost_defs[BF_COST_N] = {
    { BF_CMD_MAX_TYPE_FILTERS, BF_DEFAULT_MAX_TYPE_FILTERS, 1, 1000,
      "filters" },
    { BF_CMD_MAX_FILTER_VALUES, BF_DEFAULT_MAX_FILTER_VALUES, 1, 10000,
      "values" },
    { BF_CMD_MAX_FILTER_BYTES, BF_DEFAULT_MAX_FILTER_BYTES, 256, 1048576,
      "bytes" },
    { BF_CMD_MAX_FILTER_TERMS, BF_DEFAULT_MAX_FILTER_TERMS, 1, 1000000,
      "terms" },
    { BF_CMD_MAX_ELEMENTS, BF_DEFAULT_MAX_ELEMENTS, 1, 100000, "elements" },
    { BF_CMD_MAX_PATIENTS, BF_DEFAULT_MAX_PATIENTS, 1, 1000000, "references" },
    { BF_CMD_MAX_TYPES, BF_DEFAULT_MAX_TYPES, 1, 10000, "entries" },
};

bf_srv_conf_t *bf_srv_conf_create(apr_pool_t *p)
{
    bf_srv_conf_t *c = apr_pcalloc(p, sizeof *c);

    c->pool_max = BF_DEF_VAL;
    c->db_timeout = BF_DEF_VAL;
    c->status_cache_timeout = BF_DEF_VAL;
    return c;
}

bf_srv_conf_t *bf_srv_conf_merge(apr_pool_t *p, const bf_srv_conf_t *base,
                                 const bf_srv_conf_t *add)
{
    bf_srv_conf_t *c = apr_pcalloc(p, sizeof *c);

    c->conninfo = BF_MERGE_PTR(base, add, conninfo);
    c->export_root = BF_MERGE_PTR(base, add, export_root);
    c->pool_max = BF_MERGE(base, add, pool_max);
    c->db_timeout = BF_MERGE(base, add, db_timeout);
    c->status_cache_timeout = BF_MERGE(base, add, status_cache_timeout);
    c->pool = NULL; /* built per server in child_init */
    return c;
}

bf_dir_conf_t *bf_dir_conf_create(apr_pool_t *p, const char *location)
{
    bf_dir_conf_t *c = apr_pcalloc(p, sizeof *c);
    size_t n;
    int i;

    if (location) {
        /* the FHIR base path: no trailing slash ("/" becomes "") */
        c->location = apr_pstrdup(p, location);
        n = strlen(c->location);
        while (n > 0 && c->location[n - 1] == '/')
            ((char *)c->location)[--n] = '\0';
    }
    c->auth = BF_DEF_VAL;
    c->retry_after = BF_DEF_VAL;
    c->file_lifetime = BF_DEF_VAL;
    c->max_body = BF_DEF_VAL;
    c->token_lifetime = BF_DEF_VAL;
    c->jwks_timeout = BF_DEF_VAL;
    c->jwks_loopback = BF_DEF_VAL;
    c->max_active_jobs = BF_DEF_VAL;
    c->kickoff_rate = BF_DEF_VAL;
    c->min_poll_interval = BF_DEF_VAL;
    for (i = 0; i < BF_COST_N; i++)
        c->cost[i] = BF_DEF_VAL;
    return c;
}

bf_dir_conf_t *bf_dir_conf_merge(apr_pool_t *p, const bf_dir_conf_t *base,
                                 const bf_dir_conf_t *add)
{
    bf_dir_conf_t *c = apr_pcalloc(p, sizeof *c);
    int i;

    c->location = BF_MERGE_PTR(base, add, location);
    c->base_url = BF_MERGE_PTR(base, add, base_url);
    c->auth = BF_MERGE(base, add, auth);
    c->retry_after = BF_MERGE(base, add, retry_after);
    c->file_lifetime = BF_MERGE(base, add, file_lifetime);
    c->max_body = BF_MERGE(base, add, max_body);
    c->token_lifetime = BF_MERGE(base, add, token_lifetime);
    c->jwks_timeout = BF_MERGE(base, add, jwks_timeout);
    c->jwks_loopback = BF_MERGE(base, add, jwks_loopback);
    c->max_active_jobs = BF_MERGE(base, add, max_active_jobs);
    c->kickoff_rate = BF_MERGE(base, add, kickoff_rate);
    c->min_poll_interval = BF_MERGE(base, add, min_poll_interval);
    c->auth_scope_source = BF_MERGE_PTR(base, add, auth_scope_source);
    for (i = 0; i < BF_COST_N; i++)
        c->cost[i] = BF_MERGE(base, add, cost[i]);
    return c;
}

int bf_srv_pool_max(const bf_srv_conf_t *c)
{
    return BF_OR_DEFAULT(c->pool_max, BF_DEFAULT_POOL_MAX);
}

int bf_srv_db_timeout(const bf_srv_conf_t *c)
{
    return BF_OR_DEFAULT(c->db_timeout, BF_DEFAULT_DB_TIMEOUT);
}

int bf_srv_status_cache_timeout(const bf_srv_conf_t *c)
{
    return BF_OR_DEFAULT(c->status_cache_timeout,
                         BF_DEFAULT_STATUS_CACHE_TIMEOUT);
}

bf_auth_mode_e bf_dir_auth(const bf_dir_conf_t *c)
{
    return (bf_auth_mode_e)BF_OR_DEFAULT(c->auth, BF_AUTH_NONE);
}

int bf_dir_retry_after(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->retry_after, BF_DEFAULT_RETRY_AFTER);
}

long long bf_dir_file_lifetime(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->file_lifetime, BF_DEFAULT_FILE_LIFETIME);
}

long long bf_dir_max_body(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->max_body, BF_DEFAULT_MAX_BODY);
}

int bf_dir_token_lifetime(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->token_lifetime, BF_DEFAULT_TOKEN_LIFETIME);
}

int bf_dir_jwks_timeout(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->jwks_timeout, BF_DEFAULT_JWKS_TIMEOUT);
}

int bf_dir_jwks_loopback(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->jwks_loopback, 0);
}

int bf_dir_max_active_jobs(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->max_active_jobs, BF_DEFAULT_MAX_ACTIVE_JOBS);
}

int bf_dir_kickoff_rate(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->kickoff_rate, BF_DEFAULT_KICKOFF_RATE);
}

int bf_dir_min_poll_interval(const bf_dir_conf_t *c)
{
    return BF_OR_DEFAULT(c->min_poll_interval, BF_DEFAULT_MIN_POLL_INTERVAL);
}

const char *bf_dir_auth_scope_source(const bf_dir_conf_t *c)
{
    return c->auth_scope_source ? c->auth_scope_source
                                : BF_DEFAULT_AUTH_SCOPE_SOURCE;
}

long long bf_dir_cost(const bf_dir_conf_t *c, bf_cost_e which)
{
    return BF_OR_DEFAULT(c->cost[which], bf_cost_defs[which].def);
}
