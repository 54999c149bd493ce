/* mod_bulkfhir: FHIR Bulk Data $export for Apache httpd.
 *
 *   <Location /fhir>
 *       SetHandler bulkfhir
 *   </Location>
 *
 * The handler routes on the path below the <Location> (the FHIR base):
 * $export, Patient/$export, Group/{id}/$export, bulkstatus/{job},
 * bulkfiles/{job}/{name}, metadata.  Everything else is a 404
 * OperationOutcome. */
#define BF_MODULE_MAIN
#include "mod_bulkfhir.h"
#include "bf_log.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>

/* The log bridge: lib/ code logs through httpd's error log. */
static void log_sink(void *baton, const char *file, int line,
                     bf_log_level_e level, const char *msg)
{
    ap_log_error_(file, line, APLOG_MODULE_INDEX, (int)level, 0,
                  (server_rec *)baton, "%s", msg);
}

static int bf_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    bf_log_set(log_sink, s, BF_LOG_DEBUG);
    return bf_config_post(pconf, plog, ptemp, s);
}

static void bf_child_init(apr_pool_t *pchild, server_rec *s)
{
    bf_log_set(log_sink, s, BF_LOG_DEBUG);
    bf_dbpool_child_init(pchild, s);
}

/* FHIR id: [A-Za-z0-9\-\.]{1,64} */
static bool valid_id(const char *s, size_t n)
{
    size_t i;

    if (n < 1 || n > 64)
        return false;
    for (i = 0; i < n; i++)
        if (!apr_isalnum(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

static int route(bf_req_t *rq)
{
    const char *rel = rq->rel, *slash;
    int rc;

    if (!strcmp(rel, "metadata"))
        return bf_metadata_handle(rq);

    if (!bf_auth_request(rq, &rc))
        return rc;
    if (!strcmp(rel, "$export"))
        return bf_kickoff_handle(rq, "system", NULL);
    if (!strcmp(rel, "Patient/$export"))
        return bf_kickoff_handle(rq, "patient", NULL);
    if (!strncmp(rel, "Group/", 6)) {
        slash = strchr(rel + 6, '/');
        if (slash && !strcmp(slash, "/$export")
            && valid_id(rel + 6, (size_t)(slash - rel - 6)))
            return bf_kickoff_handle(
                rq, "group",
                apr_pstrndup(rq->r->pool, rel + 6, (size_t)(slash - rel - 6)));
    }
    else if (!strncmp(rel, "bulkstatus/", 11) && !strchr(rel + 11, '/')) {
        return bf_status_handle(rq, rel + 11);
    }
    else if (!strncmp(rel, "bulkfiles/", 10)) {
        slash = strchr(rel + 10, '/');
        if (slash && !strchr(slash + 1, '/'))
            return bf_files_handle(
                rq,
                apr_pstrndup(rq->r->pool, rel + 10,
                             (size_t)(slash - rel - 10)),
                slash + 1);
    }
    return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                      "no such endpoint: %s", rq->r->uri);
}

static int bf_handler(request_rec *r)
{
    bf_req_t *rq;
    size_t n;

    if (!r->handler || strcmp(r->handler, BF_HANDLER) != 0)
        return DECLINED;

    rq = apr_pcalloc(r->pool, sizeof *rq);
    rq->r = r;
    rq->sc = ap_get_module_config(r->server->module_config, &bulkfhir_module);
    rq->dc = ap_get_module_config(r->per_dir_config, &bulkfhir_module);
    rq->base = bf_http_base_url(r, rq->dc);

    /* the path below the <Location>, without leading slashes */
    n = rq->dc->location ? strlen(rq->dc->location) : 0;
    if (n && (strncmp(r->uri, rq->dc->location, n) != 0
              || (r->uri[n] && r->uri[n] != '/')))
        n = 0;
    rq->rel = r->uri + n;
    while (*rq->rel == '/')
        rq->rel++;
    return route(rq);
}

static void bf_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(bf_config_pre, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(bf_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(bf_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(bf_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(bulkfhir) = {
    STANDARD20_MODULE_STUFF,
    bf_create_dir_conf,
    bf_merge_dir_conf,
    bf_create_srv_conf,
    bf_merge_srv_conf,
    bf_cmds,
    bf_register_hooks,
    AP_MODULE_FLAG_NONE
};
