/* mod_bulkfhir directives, scope checks and the start-up configuration log.
 * The structs and their merge live in config.h / config_merge.c. */
#include "mod_bulkfhir.h"

#include <apr_strings.h>
#include <errno.h>
#include <stdint.h>
#include <http_core.h>
#include <http_main.h>
#include <libpq-fe.h>

/* BulkFhirAuth smart seen anywhere in this configuration pass */
static int auth_smart_seen;

void *bf_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    return bf_srv_conf_create(p);
}

void *bf_merge_srv_conf(apr_pool_t *p, void *base, void *add)
{
    return bf_srv_conf_merge(p, base, add);
}

void *bf_create_dir_conf(apr_pool_t *p, char *path)
{
    return bf_dir_conf_create(p, path);
}

void *bf_merge_dir_conf(apr_pool_t *p, void *base, void *add)
{
    return bf_dir_conf_merge(p, base, add);
}

static bf_srv_conf_t *srv_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &bulkfhir_module);
}

/* An integer in [lo, hi], else a message naming the directive. */
static const char *int_arg(cmd_parms *cmd, const char *arg, long long lo,
                           long long hi, const char *unit, long long *out)
{
    char *end;
    apr_int64_t v;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi)
        return apr_psprintf(
            cmd->pool,
            "%s: expected an integer number of %s from "
            "%" APR_INT64_T_FMT " to %" APR_INT64_T_FMT ", got '%s'",
            cmd->cmd->name, unit, (apr_int64_t)lo, (apr_int64_t)hi, arg);
    *out = v;
    return NULL;
}

static const char *set_database(cmd_parms *cmd, void *dc, const char *arg)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(arg, &err);

    if (!opts) {
        char *msg =
            apr_psprintf(cmd->pool, "%s: not a valid libpq conninfo or URI: %s",
                         cmd->cmd->name, err ? err : "out of memory");
        size_t n = strlen(msg);

        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        PQfreemem(err);
        return msg;
    }
    PQconninfoFree(opts);
    srv_of(cmd)->conninfo = arg;
    return NULL;
}

static const char *set_export_root(cmd_parms *cmd, void *dc, const char *arg)
{
    size_t n = strlen(arg);
    char *root;

    if (arg[0] != '/')
        return apr_psprintf(cmd->pool,
                            "%s: expected an absolute directory path, got "
                            "'%s'",
                            cmd->cmd->name, arg);
    root = apr_pstrdup(cmd->pool, arg);
    while (n > 1 && root[n - 1] == '/')
        root[--n] = '\0';
    srv_of(cmd)->export_root = root;
    return NULL;
}

static const char *set_pool_max(cmd_parms *cmd, void *dc, const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 1, 1024, "connections", &v);

    if (!err)
        srv_of(cmd)->pool_max = (int)v;
    return err;
}

static const char *set_db_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 1, 3600, "seconds", &v);

    if (!err)
        srv_of(cmd)->db_timeout = (int)v;
    return err;
}

/* BulkFhirStatusCache provider[:args]|none (statuscache.c: the provider is
 * looked up now, so a missing socache module fails the configtest) */
static const char *set_status_cache(cmd_parms *cmd, void *dc, const char *arg)
{
    return bf_statuscache_set(cmd, arg);
}

static const char *set_status_cache_timeout(cmd_parms *cmd, void *dc,
                                            const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 1, 3600, "seconds", &v);

    if (!err)
        srv_of(cmd)->status_cache_timeout = (int)v;
    return err;
}

static const char *set_base_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    bf_dir_conf_t *dc = dconf;
    char *url;
    size_t n;

    if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
        return apr_psprintf(cmd->pool,
                            "%s: expected an absolute http:// or https:// "
                            "URL, got '%s'",
                            cmd->cmd->name, arg);
    if (strchr(arg, '?') || strchr(arg, '#'))
        return apr_psprintf(cmd->pool,
                            "%s: the base URL takes no query or fragment, "
                            "got '%s'",
                            cmd->cmd->name, arg);
    url = apr_pstrdup(cmd->pool, arg);
    n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    dc->base_url = url;
    return NULL;
}

static const char *set_auth(cmd_parms *cmd, void *dconf, const char *arg)
{
    bf_dir_conf_t *dc = dconf;

    if (strcasecmp(arg, "none") == 0) {
        dc->auth = BF_AUTH_NONE;
    } else if (strcasecmp(arg, "smart") == 0) {
        dc->auth = BF_AUTH_SMART;
        auth_smart_seen++;
    } else if (strcasecmp(arg, "header") == 0) {
        dc->auth = BF_AUTH_HEADER; /* another module authenticates */
        auth_smart_seen++;
    } else {
        return apr_psprintf(cmd->pool,
                            "%s: expected none, smart or header, got '%s'",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_retry_after(cmd_parms *cmd, void *dconf, const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 1, 86400, "seconds", &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->retry_after = (int)v;
    return err;
}

static const char *set_file_lifetime(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 60, 365LL * 86400, "seconds", &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->file_lifetime = v;
    return err;
}

static const char *set_max_body(cmd_parms *cmd, void *dconf, const char *arg)
{
    long long v;
    const char *err =
        int_arg(cmd, arg, 1024, 1024LL * 1024 * 1024, "bytes", &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->max_body = v;
    return err;
}

static const char *set_token_lifetime(cmd_parms *cmd, void *dconf,
                                      const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 1, 300, "seconds", &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->token_lifetime = (int)v;
    return err;
}

static const char *set_jwks_timeout(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 1, 60, "seconds", &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->jwks_timeout = (int)v;
    return err;
}

static const char *set_jwks_loopback(cmd_parms *cmd, void *dconf, int on)
{
    ((bf_dir_conf_t *)dconf)->jwks_loopback = on ? 1 : 0;
    return NULL;
}

static const char *set_max_active_jobs(cmd_parms *cmd, void *dconf,
                                       const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 1, 100000, "jobs", &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->max_active_jobs = (int)v;
    return err;
}

/* N or N/min */
static const char *set_kickoff_rate(cmd_parms *cmd, void *dconf,
                                    const char *arg)
{
    size_t n = strlen(arg);
    long long v;
    const char *err;

    if (n > 4 && strcasecmp(arg + n - 4, "/min") == 0)
        arg = apr_pstrndup(cmd->pool, arg, n - 4);
    err = int_arg(cmd, arg, 1, 100000, "kick-offs per minute", &v);
    if (!err)
        ((bf_dir_conf_t *)dconf)->kickoff_rate = (int)v;
    return err;
}

static const char *set_min_poll_interval(cmd_parms *cmd, void *dconf,
                                         const char *arg)
{
    long long v;
    const char *err = int_arg(cmd, arg, 0, 3600000, "milliseconds", &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->min_poll_interval = (int)v;
    return err;
}

static const char *set_auth_scope_source(cmd_parms *cmd, void *dconf,
                                         const char *arg)
{
    if ((strncasecmp(arg, "header:", 7) != 0 || !arg[7]) &&
        (strncasecmp(arg, "env:", 4) != 0 || !arg[4]))
        return apr_psprintf(cmd->pool,
                            "%s: expected header:NAME or env:NAME, got '%s'",
                            cmd->cmd->name, arg);
    ((bf_dir_conf_t *)dconf)->auth_scope_source = arg;
    return NULL;
}

/* The cost-model limits: one setter, cmd->info is the bf_cost_e. */
static const char *set_cost(cmd_parms *cmd, void *dconf, const char *arg)
{
    const bf_cost_def_t *d = &bf_cost_defs[(bf_cost_e)(intptr_t)cmd->info];
    long long v;
    const char *err = int_arg(cmd, arg, d->lo, d->hi, d->unit, &v);

    if (!err)
        ((bf_dir_conf_t *)dconf)->cost[(bf_cost_e)(intptr_t)cmd->info] = v;
    return err;
}

const command_rec bf_cmds[] = {
    AP_INIT_TAKE1(BF_CMD_DATABASE, set_database, NULL, RSRC_CONF,
                  "PostgreSQL conninfo or URI of the bulkfhir database"),
    AP_INIT_TAKE1(BF_CMD_EXPORT_ROOT, set_export_root, NULL, RSRC_CONF,
                  "Absolute directory the workers write export files to"),
    AP_INIT_TAKE1(BF_CMD_POOL_MAX, set_pool_max, NULL, RSRC_CONF,
                  "Maximum database connections per child process "
                  "(default 8)"),
    AP_INIT_TAKE1(BF_CMD_DB_TIMEOUT, set_db_timeout, NULL, RSRC_CONF,
                  "Database connect and statement timeout in seconds "
                  "(default 5)"),
    AP_INIT_TAKE1(BF_CMD_STATUS_CACHE, set_status_cache, NULL, RSRC_CONF,
                  "socache provider[:args] for job status shared by all "
                  "children, e.g. shmcb, or none (default none; main server "
                  "only)"),
    AP_INIT_TAKE1(BF_CMD_STATUS_CACHE_TIMEOUT, set_status_cache_timeout, NULL,
                  RSRC_CONF,
                  "Seconds a cached job status answers polls before "
                  "PostgreSQL is asked again (default 1)"),
    AP_INIT_TAKE1(BF_CMD_BASE_URL, set_base_url, NULL, RSRC_CONF | ACCESS_CONF,
                  "Absolute FHIR base URL used in Content-Location and "
                  "manifests, and for the token URL (required with "
                  "BulkFhirAuth smart; else built from the request)"),
    AP_INIT_TAKE1(BF_CMD_AUTH, set_auth, NULL, RSRC_CONF | ACCESS_CONF,
                  "Authorization: none, smart (SMART Backend Services "
                  "bearer tokens) or header (identity from another module: "
                  "r->user and a scope header/variable; default none)"),
    AP_INIT_TAKE1(BF_CMD_TOKEN_LIFETIME, set_token_lifetime, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Access token lifetime in seconds, 1-300 (default 300)"),
    AP_INIT_TAKE1(BF_CMD_JWKS_TIMEOUT, set_jwks_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Timeout in seconds for fetching a client's JWKS URL "
                  "(default 5)"),
    AP_INIT_FLAG(BF_CMD_JWKS_LOOPBACK, set_jwks_loopback, NULL,
                 RSRC_CONF | ACCESS_CONF,
                 "Allow http:// JWKS URLs on 127.0.0.1/localhost (tests "
                 "only; default Off)"),
    AP_INIT_TAKE1(BF_CMD_MAX_ACTIVE_JOBS, set_max_active_jobs, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Queued+running jobs allowed at once for a client without "
                  "a registered max_jobs, and for all anonymous jobs "
                  "together (default 5)"),
    AP_INIT_TAKE1(BF_CMD_KICKOFF_RATE, set_kickoff_rate, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Kick-offs per client per minute, N or N/min "
                  "(default 60)"),
    AP_INIT_TAKE1(BF_CMD_MIN_POLL_INTERVAL, set_min_poll_interval, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Milliseconds a client must wait between two status polls "
                  "of a running job, else 429 (default 500; 0 disables)"),
    AP_INIT_TAKE1(BF_CMD_AUTH_SCOPE_SOURCE, set_auth_scope_source, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "With BulkFhirAuth header: where the granted scopes are, "
                  "header:NAME or env:NAME (default env:OIDC_CLAIM_scope)"),
    AP_INIT_TAKE1(BF_CMD_RETRY_AFTER, set_retry_after, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Retry-After seconds for status polls and 503s "
                  "(default 2)"),
    AP_INIT_TAKE1(BF_CMD_FILE_LIFETIME, set_file_lifetime, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds export files stay available after completion "
                  "(Expires; default 3600)"),
    AP_INIT_TAKE1(BF_CMD_MAX_BODY, set_max_body, NULL, RSRC_CONF | ACCESS_CONF,
                  "Largest kick-off Parameters body in bytes "
                  "(default 1048576)"),
    AP_INIT_TAKE1(BF_CMD_MAX_TYPE_FILTERS, set_cost,
                  (void *)(intptr_t)BF_COST_TYPE_FILTERS,
                  RSRC_CONF | ACCESS_CONF,
                  "Most _typeFilter values in one kick-off, else 400 "
                  "too-costly (default 8)"),
    AP_INIT_TAKE1(BF_CMD_MAX_FILTER_VALUES, set_cost,
                  (void *)(intptr_t)BF_COST_FILTER_VALUES,
                  RSRC_CONF | ACCESS_CONF,
                  "Most values of one search parameter in a _typeFilter "
                  "(default 64)"),
    AP_INIT_TAKE1(BF_CMD_MAX_FILTER_BYTES, set_cost,
                  (void *)(intptr_t)BF_COST_FILTER_BYTES,
                  RSRC_CONF | ACCESS_CONF,
                  "Most bytes of all _typeFilter values of one kick-off "
                  "(default 16384)"),
    AP_INIT_TAKE1(BF_CMD_MAX_FILTER_TERMS, set_cost,
                  (void *)(intptr_t)BF_COST_FILTER_TERMS,
                  RSRC_CONF | ACCESS_CONF,
                  "Most filter terms (sum of clauses x values x search "
                  "paths) of one kick-off (default 1024)"),
    AP_INIT_TAKE1(BF_CMD_MAX_ELEMENTS, set_cost,
                  (void *)(intptr_t)BF_COST_ELEMENTS, RSRC_CONF | ACCESS_CONF,
                  "Most _elements names of one kick-off (default 500)"),
    AP_INIT_TAKE1(BF_CMD_MAX_PATIENTS, set_cost,
                  (void *)(intptr_t)BF_COST_PATIENTS, RSRC_CONF | ACCESS_CONF,
                  "Most patient references of one kick-off (default 1000)"),
    AP_INIT_TAKE1(BF_CMD_MAX_TYPES, set_cost, (void *)(intptr_t)BF_COST_TYPES,
                  RSRC_CONF | ACCESS_CONF,
                  "Most _type entries of one kick-off (default 200)"),
    AP_INIT_FLAG(BF_CMD_AUDIT, bf_audit_set_on, NULL, RSRC_CONF,
                 "Record tokens, kick-offs, downloads and refusals in "
                 "bulkfhir.audit (default On)"),
    AP_INIT_TAKE12(BF_CMD_AUDIT_BATCH, bf_audit_set_batch, NULL, RSRC_CONF,
                   "Download and manifest records a child buffers before "
                   "writing them, and their maximum age in seconds "
                   "(default 64 2)"),
    { NULL }
};

const char *bf_config_conninfo_safe(apr_pool_t *p, const char *conninfo)
{
    static const char *const shown[] = { "host",   "hostaddr", "port",
                                         "dbname", "user",     NULL };
    PQconninfoOption *opts, *o;
    const char *s = "";
    int i;

    if (!conninfo)
        return "(not set)";
    opts = PQconninfoParse(conninfo, NULL);
    if (!opts)
        return "(invalid)";
    for (o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        for (i = 0; shown[i]; i++)
            if (strcmp(o->keyword, shown[i]) == 0)
                s = apr_psprintf(p, "%s%s%s=%s", s, *s ? " " : "", o->keyword,
                                 o->val);
    }
    PQconninfoFree(opts);
    return *s ? s : "(libpq defaults)";
}

/* "BulkFhirMaxTypeFilters 8, ..." for the start-up log */
static const char *cost_limits(apr_pool_t *p, const bf_dir_conf_t *dc)
{
    apr_array_header_t *parts =
        apr_array_make(p, BF_COST_N, sizeof(const char *));
    int i;

    for (i = 0; i < BF_COST_N; i++)
        APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(
            p, "%s%s %" APR_INT64_T_FMT, i ? ", " : "", bf_cost_defs[i].name,
            (apr_int64_t)bf_dir_cost(dc, (bf_cost_e)i));
    return apr_array_pstrcat(p, parts, 0);
}

int bf_config_pre(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    auth_smart_seen = 0;
    return OK;
}

/* One scope (the server's defaults or a section holding BulkFhir*
 * directives, merged onto them): BulkFhirAuth smart there needs
 * BulkFhirBaseURL, the canonical base the assertion's aud (the token URL)
 * is built from.  Without it the aud came from the request's Host header,
 * so an assertion made for another authorization server with the same
 * client id, key and path was accepted here with a forged Host. */
static bool smart_has_base(server_rec *v, const bf_dir_conf_t *dc,
                           const char *where)
{
    if (bf_dir_auth(dc) != BF_AUTH_SMART || dc->base_url)
        return true;
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, v,
                 "BF01080: %s smart needs %s (the public FHIR base URL, e.g. "
                 "https://fhir.example.org/fhir): set it next to %s %s; "
                 "token assertions' aud is checked against it, never "
                 "against the request's Host header",
                 BF_CMD_AUTH, BF_CMD_BASE_URL, BF_CMD_AUTH, where);
    return false;
}

int bf_config_check(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s)
{
    server_rec *v;
    core_server_config *core;
    ap_conf_vector_t **secs;
    bf_dir_conf_t *dc, *sec;
    bool ok = true;
    int i;

    for (v = s; v; v = v->next) {
        dc = ap_get_module_config(v->lookup_defaults, &bulkfhir_module);
        if (!smart_has_base(
                v, dc,
                apr_psprintf(ptemp, "(server %s)",
                             v->server_hostname ? v->server_hostname : "*")))
            ok = false;
        core = ap_get_core_module_config(v->module_config);
        if (!core || !core->sec_url)
            continue;
        secs = (ap_conf_vector_t **)core->sec_url->elts;
        for (i = 0; i < core->sec_url->nelts; i++) {
            sec = ap_get_module_config(secs[i], &bulkfhir_module);
            if (!sec)
                continue;
            if (!smart_has_base(
                    v, bf_dir_conf_merge(ptemp, dc, sec),
                    apr_psprintf(ptemp, "(in <Location %s>)",
                                 sec->location ? sec->location : "?")))
                ok = false;
        }
    }
    return ok ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

int bf_config_post(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                   server_rec *s)
{
    server_rec *v;
    bf_srv_conf_t *sc;
    bf_dir_conf_t *dc;
    apr_finfo_t fi;

    /* the first, dry run of the configuration logs nothing */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    for (v = s; v; v = v->next) {
        sc = ap_get_module_config(v->module_config, &bulkfhir_module);
        dc = ap_get_module_config(v->lookup_defaults, &bulkfhir_module);
        if (!sc->conninfo && v != s)
            continue;
        ap_log_error(
            APLOG_MARK, APLOG_NOTICE, 0, v,
            "mod_bulkfhir: server %s:%u: database %s, export root "
            "%s, %s %d, %s %ds; server defaults: %s %s, %s %d, "
            "%s %" APR_INT64_T_FMT ", %s %" APR_INT64_T_FMT ", %s %s; "
            "%s %s, %s %ds",
            v->server_hostname ? v->server_hostname : "*", (unsigned)v->port,
            bf_config_conninfo_safe(ptemp, sc->conninfo),
            sc->export_root ? sc->export_root : "(not set)", BF_CMD_POOL_MAX,
            bf_srv_pool_max(sc), BF_CMD_DB_TIMEOUT, bf_srv_db_timeout(sc),
            BF_CMD_AUTH,
            bf_dir_auth(dc) == BF_AUTH_SMART    ? "smart"
            : bf_dir_auth(dc) == BF_AUTH_HEADER ? "header"
                                                : "none",
            BF_CMD_RETRY_AFTER, bf_dir_retry_after(dc), BF_CMD_FILE_LIFETIME,
            (apr_int64_t)bf_dir_file_lifetime(dc), BF_CMD_MAX_BODY,
            (apr_int64_t)bf_dir_max_body(dc), BF_CMD_BASE_URL,
            dc->base_url ? dc->base_url : "(from the request)",
            BF_CMD_STATUS_CACHE, bf_statuscache_describe(),
            BF_CMD_STATUS_CACHE_TIMEOUT, bf_srv_status_cache_timeout(sc));
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, v,
                     "mod_bulkfhir: server %s:%u: security defaults: %s %d, "
                     "%s %d, %s %s, %s %d, %s %d/min, %s %s, %s %dms",
                     v->server_hostname ? v->server_hostname : "*",
                     (unsigned)v->port, BF_CMD_TOKEN_LIFETIME,
                     bf_dir_token_lifetime(dc), BF_CMD_JWKS_TIMEOUT,
                     bf_dir_jwks_timeout(dc), BF_CMD_JWKS_LOOPBACK,
                     bf_dir_jwks_loopback(dc) ? "On" : "Off",
                     BF_CMD_MAX_ACTIVE_JOBS, bf_dir_max_active_jobs(dc),
                     BF_CMD_KICKOFF_RATE, bf_dir_kickoff_rate(dc),
                     BF_CMD_AUTH_SCOPE_SOURCE, bf_dir_auth_scope_source(dc),
                     BF_CMD_MIN_POLL_INTERVAL, bf_dir_min_poll_interval(dc));
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, v,
                     "mod_bulkfhir: server %s:%u: kick-off cost limits: %s",
                     v->server_hostname ? v->server_hostname : "*",
                     (unsigned)v->port, cost_limits(ptemp, dc));
        if (!sc->conninfo)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, v,
                         "BF01001: server %s: %s is not set; bulkfhir "
                         "requests will get 503",
                         v->server_hostname ? v->server_hostname : "*",
                         BF_CMD_DATABASE);
        if (!sc->export_root)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, v,
                         "BF01002: server %s: %s is not set; export files "
                         "cannot be served",
                         v->server_hostname ? v->server_hostname : "*",
                         BF_CMD_EXPORT_ROOT);
        else if (apr_stat(&fi, sc->export_root, APR_FINFO_TYPE, ptemp) !=
                     APR_SUCCESS ||
                 fi.filetype != APR_DIR)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, v,
                         "BF01003: server %s: %s %s is not a directory "
                         "(yet)",
                         v->server_hostname ? v->server_hostname : "*",
                         BF_CMD_EXPORT_ROOT, sc->export_root);
    }
    if (!auth_smart_seen)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BF01004: %s none everywhere: any client may start "
                     "exports and download files; set %s smart for SMART "
                     "Backend Services authorization",
                     BF_CMD_AUTH, BF_CMD_AUTH);
    return OK;
}
