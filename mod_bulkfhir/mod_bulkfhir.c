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
#include "bf_id.h"
#include "bf_jwks.h"
#include "bf_log.h"

#include <apr_lib.h>
#include <ap_expr.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

/* The log bridge: lib/ code logs through httpd's error log. */
static void log_sink(void *baton, const char *file, int line,
                     bf_log_level_e level, const char *msg)
{
    ap_log_error_(file, line, APLOG_MODULE_INDEX, (int)level, 0,
                  (server_rec *)baton, "%s", msg);
}

/* The most verbose level httpd would log for this module on any (virtual)
 * server: lib/ code then formats nothing (and times no SQL statement) that
 * the error log would drop. */
static bf_log_level_e log_max_level(server_rec *s)
{
    int level = APLOG_ERR;

    for (; s; s = s->next)
        if (ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX) > level)
            level = ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX);
    return level >= BF_LOG_DEBUG ? BF_LOG_DEBUG : (bf_log_level_e)level;
}

static int bf_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    int rc = bf_statuscache_pre_config(pconf, plog);

    return rc != OK ? rc : bf_config_pre(pconf, plog, ptemp);
}

static int bf_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    int rc;

    bf_log_set(log_sink, s, log_max_level(s));
    rc = bf_statuscache_post_config(pconf, plog, s);
    return rc != OK ? rc : bf_config_post(pconf, plog, ptemp, s);
}

static void bf_child_init(apr_pool_t *pchild, server_rec *s)
{
    bf_log_set(log_sink, s, log_max_level(s));
    bf_statuscache_child_init(pchild, s);
    bf_dbpool_child_init(pchild, s);
    bf_jwks_global_init(); /* curl_global_init: once, before any thread */
}

typedef enum {
    RT_METADATA,
    RT_EXPORT,
    RT_PATIENT_EXPORT,
    RT_GROUP_EXPORT,
    RT_STATUS,
    RT_FILE,
    RT_TOKEN,
    RT_WELLKNOWN,
    RT_GROUP /* Group (search) and Group/{id} (read), R12 */
} route_e;

typedef struct {
    route_e kind;
    const char *a; /* group id, job id */
    const char *b; /* file name */
} route_t;

/* Recognise a path below the FHIR base (no leading slash). */
static bool parse_route(apr_pool_t *p, const char *rel, route_t *rt)
{
    const char *slash;

    memset(rt, 0, sizeof *rt);
    if (!strcmp(rel, "metadata")) {
        rt->kind = RT_METADATA;
    } else if (!strcmp(rel, "token")) {
        rt->kind = RT_TOKEN;
    } else if (!strcmp(rel, ".well-known/smart-configuration")) {
        rt->kind = RT_WELLKNOWN;
    } else if (!strcmp(rel, "$export")) {
        rt->kind = RT_EXPORT;
    } else if (!strcmp(rel, "Patient/$export")) {
        rt->kind = RT_PATIENT_EXPORT;
    } else if (!strcmp(rel, "Group") ||
               (!strncmp(rel, "Group/", 6) && !strchr(rel + 6, '/') &&
                bf_id_is_fhir_id(rel + 6, strlen(rel + 6)))) {
        rt->kind = RT_GROUP;
        rt->a = rel[5] ? rel + 6 : NULL;
    } else if (!strncmp(rel, "Group/", 6)) {
        slash = strchr(rel + 6, '/');
        if (!slash || strcmp(slash, "/$export") != 0 ||
            !bf_id_is_fhir_id(rel + 6, (size_t)(slash - rel - 6)))
            return false;
        rt->kind = RT_GROUP_EXPORT;
        rt->a = apr_pstrndup(p, rel + 6, (size_t)(slash - rel - 6));
    } else if (!strncmp(rel, "bulkstatus/", 11) && rel[11] &&
               !strchr(rel + 11, '/')) {
        rt->kind = RT_STATUS;
        rt->a = rel + 11;
    } else if (!strncmp(rel, "bulkfiles/", 10)) {
        slash = strchr(rel + 10, '/');
        if (!slash || !slash[1] || strchr(slash + 1, '/'))
            return false;
        rt->kind = RT_FILE;
        rt->a = apr_pstrndup(p, rel + 10, (size_t)(slash - rel - 10));
        rt->b = slash + 1;
    } else {
        return false;
    }
    return true;
}

/* The path below `base` when base is a path prefix of uri, else NULL. */
static const char *below(const char *uri, const char *base)
{
    size_t n;

    if (!base)
        return NULL;
    n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    if (strncmp(uri, base, n) != 0 || (uri[n] && uri[n] != '/'))
        return NULL;
    uri += n;
    while (*uri == '/')
        uri++;
    return uri;
}

/* Find the FHIR base path.  httpd creates this module's per-dir config for
 * a <Location> only when a BulkFhir* directive is in it, so the candidates
 * are: that <Location>, the section holding SetHandler (core's per-dir
 * path), the server root.  The first under which the path is an endpoint
 * wins; else the first that is a prefix (for the 404). */
static void find_base(bf_req_t *rq, route_t *rt, bool *routable)
{
    request_rec *r = rq->r;
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    const char *cand[3], *rel, *first = NULL, *first_rel = NULL;
    size_t n;
    int i;

    cand[0] = rq->dc->location;
    cand[1] = core && core->d && core->d[0] == '/' ? core->d : NULL;
    cand[2] = "";
    *routable = false;
    for (i = 0; i < 3; i++) {
        rel = below(r->uri, cand[i]);
        if (!rel)
            continue;
        if (!first) {
            first = cand[i];
            first_rel = rel;
        }
        if (parse_route(r->pool, rel, rt)) {
            first = cand[i];
            first_rel = rel;
            *routable = true;
            break;
        }
    }
    n = strlen(first);
    while (n > 0 && first[n - 1] == '/')
        n--;
    rq->location = apr_pstrndup(r->pool, first, n);
    rq->rel = first_rel;
}

static int dispatch(bf_req_t *rq, const route_t *rt)
{
    int rc;

    if (rt->kind == RT_METADATA)
        return bf_metadata_handle(rq);
    if (rt->kind == RT_TOKEN) /* no bearer token: it is where they come from */
        return bf_token_handle(rq);
    if (rt->kind == RT_WELLKNOWN)
        return bf_wellknown_handle(rq);
    if (!bf_auth_request(rq, &rc))
        return rc;
    switch (rt->kind) {
    case RT_EXPORT:
        return bf_kickoff_handle(rq, "system", NULL);
    case RT_PATIENT_EXPORT:
        return bf_kickoff_handle(rq, "patient", NULL);
    case RT_GROUP_EXPORT:
        return bf_kickoff_handle(rq, "group", rt->a);
    case RT_STATUS:
        return bf_status_handle(rq, rt->a);
    case RT_FILE:
        return bf_files_handle(rq, rt->a, rt->b);
    case RT_GROUP:
        return bf_group_handle(rq, rt->a);
    case RT_METADATA:
    case RT_TOKEN:
    case RT_WELLKNOWN:
        break;
    }
    return bf_metadata_handle(rq);
}

/* LogLevel bulkfhir:debug: one line per request with its parameters, the
 * outcome (job id in Content-Location), the client and the time taken.
 * The query string holds kick-off parameters only, never credentials. */
static int dispatch_traced(bf_req_t *rq, const route_t *rt)
{
    request_rec *r = rq->r;
    apr_time_t t0 = apr_time_now();
    const char *loc;
    int rc = dispatch(rq, rt);

    if (APLOGrdebug(r)) {
        loc = apr_table_get(r->headers_out, "Content-Location");
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "bulkfhir: %s %s%s%s -> %d in %.1f ms, client %s%s%s",
                      r->method, r->uri, r->args ? "?" : "",
                      r->args ? r->args : "", rc == OK ? r->status : rc,
                      (double)(apr_time_now() - t0) / 1000.0,
                      rq->client_id ? rq->client_id : "-",
                      loc ? ", Content-Location " : "", loc ? loc : "");
    }
    return rc;
}

static int bf_handler(request_rec *r)
{
    bf_req_t *rq;
    route_t rt;
    bool routable;

    if (!r->handler || strcmp(r->handler, BF_HANDLER) != 0)
        return DECLINED;

    rq = apr_pcalloc(r->pool, sizeof *rq);
    rq->r = r;
    rq->sc = ap_get_module_config(r->server->module_config, &bulkfhir_module);
    rq->dc = ap_get_module_config(r->per_dir_config, &bulkfhir_module);
    find_base(rq, &rt, &routable);
    rq->base = bf_http_base_url(r, rq->dc, rq->location);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "bulkfhir: base %s, path %s%s", rq->base, rq->rel,
                  routable ? "" : " (no endpoint)");
    if (!routable)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "no such endpoint: %s", r->uri);
    bf_audit_begin(rq); /* issue #13: recorded after the response */
    return dispatch_traced(rq, &rt);
}

/* The handler SetHandler gives r in the <Location> sections merged into
 * r->per_dir_config (core's fixups copy it to r->handler later). */
static const char *location_handler(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    const char *err = NULL, *h;

    if (!d)
        return NULL;
    if (d->expr_handler) {
        h = ap_expr_str_exec(r, d->expr_handler, &err);
        return err ? NULL : h;
    }
    return d->handler;
}

/* r's URI is below a <Location> whose SetHandler names this module (the
 * FHIR base or the status page).  In translate_name and map_to_storage
 * r->handler is not set yet, and before map_to_storage the core resets
 * r->per_dir_config to the server default, so the <Location> sections are
 * walked here (the core walks them again afterwards, from its cache) and
 * r->per_dir_config is left as it was. */
static bool module_location(request_rec *r)
{
    ap_conf_vector_t *saved = r->per_dir_config;
    const char *h;

    if (r->proxyreq || !r->uri || r->uri[0] != '/')
        return false;
    h = ap_location_walk(r) == OK ? location_handler(r) : NULL;
    r->per_dir_config = saved;
    return h && (!strcmp(h, BF_HANDLER) || !strcmp(h, "bulkfhir-status"));
}

/* translate_name: this module's URLs are not files.  The core would merge
 * the path onto DocumentRoot (AH00127 and a 403 HTML page for a path
 * longer than PATH_MAX, e.g. a 5,000-character status id); like mod_proxy,
 * name the request "bulkfhir:<uri>" instead, so the handler answers with
 * its own 404 OperationOutcome. */
static int bf_translate_name(request_rec *r)
{
    if (!module_location(r))
        return DECLINED;
    r->filename = apr_pstrcat(r->pool, "bulkfhir:", r->uri, NULL);
    return OK;
}

/* map_to_storage: for this module's URLs
 *  - TRACE is refused with a 405 OperationOutcome (it would echo request
 *    headers such as Authorization), before http_module's TRACE handler;
 *  - OK skips the core's directory and file walk (there is no file). */
static int bf_map_to_storage(request_rec *r)
{
    bf_req_t rq;

    if (!module_location(r))
        return DECLINED;
    if (r->method_number == M_TRACE) {
        memset(&rq, 0, sizeof rq);
        rq.r = r;
        rq.sc =
            ap_get_module_config(r->server->module_config, &bulkfhir_module);
        rq.dc = ap_get_module_config(r->per_dir_config, &bulkfhir_module);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "TRACE refused on %s",
                      r->uri);
        bf_http_not_allowed(&rq, "GET, POST, DELETE");
        return DONE;
    }
    return OK;
}

static void bf_register_hooks(apr_pool_t *p)
{
    /* before http_module's TRACE (MIDDLE) and core's walk (REALLY_LAST) */
    ap_hook_translate_name(bf_translate_name, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_map_to_storage(bf_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_pre_config(bf_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(bf_config_check, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(bf_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(bf_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(bf_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(bf_status_page_handler, NULL, NULL, APR_HOOK_MIDDLE);
    bf_audit_register_hooks(p);
}

AP_DECLARE_MODULE(bulkfhir) = { STANDARD20_MODULE_STUFF, bf_create_dir_conf,
                                bf_merge_dir_conf,       bf_create_srv_conf,
                                bf_merge_srv_conf,       bf_cmds,
                                bf_register_hooks,       AP_MODULE_FLAG_NONE };
