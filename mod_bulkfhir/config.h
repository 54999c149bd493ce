/* mod_bulkfhir configuration: plain structs and their create/merge functions
 * (config_merge.c, APR only, unit-tested without httpd).  The directive
 * table and start-up logging are in config.c. */
#ifndef BF_MOD_CONFIG_H
#define BF_MOD_CONFIG_H

#include <apr_pools.h>

#include "bf_params.h"

/* directive names */
#define BF_CMD_DATABASE "BulkFhirDatabase"
#define BF_CMD_EXPORT_ROOT "BulkFhirExportRoot"
#define BF_CMD_POOL_MAX "BulkFhirPoolMax"
#define BF_CMD_DB_TIMEOUT "BulkFhirDbTimeout"
#define BF_CMD_BASE_URL "BulkFhirBaseURL"
#define BF_CMD_AUTH "BulkFhirAuth"
#define BF_CMD_RETRY_AFTER "BulkFhirRetryAfter"
#define BF_CMD_FILE_LIFETIME "BulkFhirFileLifetime"
#define BF_CMD_MAX_BODY "BulkFhirMaxBody"
#define BF_CMD_TOKEN_LIFETIME "BulkFhirTokenLifetime"
#define BF_CMD_JWKS_TIMEOUT "BulkFhirJwksTimeout"
#define BF_CMD_JWKS_LOOPBACK "BulkFhirJwksAllowHttpLoopback"
#define BF_CMD_MAX_ACTIVE_JOBS "BulkFhirMaxActiveJobs"
#define BF_CMD_KICKOFF_RATE "BulkFhirKickoffRate"
#define BF_CMD_MIN_POLL_INTERVAL "BulkFhirMinPollInterval"
#define BF_CMD_AUTH_SCOPE_SOURCE "BulkFhirAuthScopeSource"
#define BF_CMD_STATUS_CACHE "BulkFhirStatusCache"
#define BF_CMD_STATUS_CACHE_TIMEOUT "BulkFhirStatusCacheTimeout"
/* the kick-off cost model (lib/bf_params.h: the same names and defaults) */
#define BF_CMD_MAX_TYPE_FILTERS "BulkFhirMaxTypeFilters"
#define BF_CMD_MAX_FILTER_VALUES "BulkFhirMaxFilterValues"
#define BF_CMD_MAX_FILTER_BYTES "BulkFhirMaxTypeFilterBytes"
#define BF_CMD_MAX_FILTER_TERMS "BulkFhirMaxFilterTerms"
#define BF_CMD_MAX_ELEMENTS "BulkFhirMaxElements"
#define BF_CMD_MAX_PATIENTS "BulkFhirMaxPatients"
#define BF_CMD_MAX_TYPES "BulkFhirMaxTypes"

/* "not set here": inherit from the enclosing scope, else the default */
#define BF_DEF_VAL (-1)

#define BF_DEFAULT_POOL_MAX 8
#define BF_DEFAULT_DB_TIMEOUT 5
#define BF_DEFAULT_RETRY_AFTER 2
#define BF_DEFAULT_FILE_LIFETIME 3600
#define BF_DEFAULT_MAX_BODY (1024 * 1024)
#define BF_DEFAULT_TOKEN_LIFETIME 300 /* A12: at most 300 */
#define BF_DEFAULT_JWKS_TIMEOUT 5
/* clients without bulkfhir.client.max_jobs */
#define BF_DEFAULT_MAX_ACTIVE_JOBS 5
#define BF_DEFAULT_KICKOFF_RATE 60 /* kick-offs per client per minute */
/* ms between status polls of a job (R43) */
#define BF_DEFAULT_MIN_POLL_INTERVAL 500
#define BF_DEFAULT_AUTH_SCOPE_SOURCE "env:OIDC_CLAIM_scope"
#define BF_DEFAULT_STATUS_CACHE "none"    /* httpd's caches are opt-in */
#define BF_DEFAULT_STATUS_CACHE_TIMEOUT 1 /* s a cached status may be old */
/* BF_DEFAULT_MAX_* of the kick-off cost model: lib/bf_params.h, their one
 * home (the parser's defaults are the directives' defaults) */

/* The cost-model limits, one table: bf_cost_defs[i] gives the directive,
 * its default and its range; bf_dir_conf_t.cost[i] the configured value. */
typedef enum {
    BF_COST_TYPE_FILTERS = 0,
    BF_COST_FILTER_VALUES,
    BF_COST_FILTER_BYTES,
    BF_COST_FILTER_TERMS,
    BF_COST_ELEMENTS,
    BF_COST_PATIENTS,
    BF_COST_TYPES,
    BF_COST_N
} bf_cost_e;

typedef struct bf_cost_def_t {
    const char *name; /* the directive */
    long long def, lo, hi;
    const char *unit;
} bf_cost_def_t;

extern const bf_cost_def_t bf_cost_defs[BF_COST_N];

typedef enum {
    BF_AUTH_NONE = 0,
    BF_AUTH_SMART = 1,
    BF_AUTH_HEADER = 2 /* identity from another module: r->user + scopes */
} bf_auth_mode_e;

struct bf_dbpool_t; /* dbpool.c: one per server, built in child_init */

typedef struct bf_srv_conf_t {
    const char *conninfo;     /* NULL: not set */
    const char *export_root;  /* NULL: not set */
    int pool_max;             /* BF_DEF_VAL: not set */
    int db_timeout;           /* seconds */
    int status_cache_timeout; /* seconds a cached job status is used */
    struct bf_dbpool_t *pool; /* per child process, not configuration */
} bf_srv_conf_t;

typedef struct bf_dir_conf_t {
    const char *location;    /* <Location> path (cmd->path); NULL outside one */
    const char *base_url;    /* NULL: build from the request */
    int auth;                /* bf_auth_mode_e or BF_DEF_VAL */
    int retry_after;         /* seconds */
    long long file_lifetime; /* seconds */
    long long max_body;      /* bytes */
    int token_lifetime;      /* seconds, 1..300 */
    int jwks_timeout;        /* seconds */
    int jwks_loopback;       /* 0/1: http JWKS URLs on loopback allowed */
    int max_active_jobs;     /* queued+running jobs per unregistered client */
    int kickoff_rate;        /* kick-offs per client per minute */
    int min_poll_interval;   /* ms between polls of a running job; 0: off */
    const char
        *auth_scope_source;    /* "header:NAME" or "env:NAME"; NULL: unset */
    long long cost[BF_COST_N]; /* kick-off cost limits (bf_cost_e) */
} bf_dir_conf_t;

bf_srv_conf_t *bf_srv_conf_create(apr_pool_t *p);
bf_srv_conf_t *bf_srv_conf_merge(apr_pool_t *p, const bf_srv_conf_t *base,
                                 const bf_srv_conf_t *add);
bf_dir_conf_t *bf_dir_conf_create(apr_pool_t *p, const char *location);
bf_dir_conf_t *bf_dir_conf_merge(apr_pool_t *p, const bf_dir_conf_t *base,
                                 const bf_dir_conf_t *add);

/* The value in effect: the configured one, or the default when unset. */
int bf_srv_pool_max(const bf_srv_conf_t *c);
int bf_srv_db_timeout(const bf_srv_conf_t *c);
int bf_srv_status_cache_timeout(const bf_srv_conf_t *c);
bf_auth_mode_e bf_dir_auth(const bf_dir_conf_t *c);
int bf_dir_retry_after(const bf_dir_conf_t *c);
long long bf_dir_file_lifetime(const bf_dir_conf_t *c);
long long bf_dir_max_body(const bf_dir_conf_t *c);
int bf_dir_token_lifetime(const bf_dir_conf_t *c);
int bf_dir_jwks_timeout(const bf_dir_conf_t *c);
int bf_dir_jwks_loopback(const bf_dir_conf_t *c);
int bf_dir_max_active_jobs(const bf_dir_conf_t *c);
int bf_dir_kickoff_rate(const bf_dir_conf_t *c);
int bf_dir_min_poll_interval(const bf_dir_conf_t *c);
const char *bf_dir_auth_scope_source(const bf_dir_conf_t *c);
long long bf_dir_cost(const bf_dir_conf_t *c, bf_cost_e which);

#endif
