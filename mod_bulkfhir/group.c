/* mod_bulkfhir Group read and search (SPEC R12, C2), so clients can find
 * the cohorts they export:
 *
 *   GET {base}/Group/{id}   the current Group (application/fhir+json),
 *                           404 OperationOutcome when there is none
 *   GET {base}/Group?...    Bundle searchset: name (string: starts-with,
 *                           case-insensitive), identifier ([system]|[value]
 *                           token), _count (1..1000, default 100); any
 *                           other parameter is 400 not-supported
 *
 * With BulkFhirAuth smart/header the token needs read (read) or search
 * (search) permission on Group (system/Group.read, .rs, .s, or a wildcard). */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_oo.h"
#include "bf_params.h"
#include "bf_scope.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <json-c/json.h>

#define DEFAULT_COUNT 100
#define MAX_COUNT 1000

static bool allowed(bf_req_t *rq, unsigned perm)
{
    if (bf_dir_auth(rq->dc) == BF_AUTH_NONE)
        return true;
    return rq->scope && bf_scope_allows(rq->r->pool, rq->scope, "Group", perm);
}

static int group_read(bf_req_t *rq, const char *id)
{
    const char *json;
    char sqlstate[6];

    if (!bf_job_group_read(rq->conn, rq->r->pool, id, &json, sqlstate))
        return bf_http_db_error(rq, sqlstate, "Group read");
    if (!json)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "Group/%s is not known", id);
    return bf_http_body(rq, HTTP_OK, BF_CT_FHIR_JSON, json);
}

/* One search parameter; false: a 400 was written into *rc. */
static bool search_param(bf_req_t *rq, const char *name, const char *value,
                         bf_group_query_t *q, int *count, int *rc)
{
    const char *bar;
    char *end;
    long n;

    if (!strcmp(name, "name") || !strcmp(name, "identifier")) {
        if ((!strcmp(name, "name") && q->name) ||
            (!strcmp(name, "identifier") &&
             (q->id_value || q->id_system || q->id_system_none))) {
            *rc = bf_http_oo(rq, HTTP_BAD_REQUEST, "not-supported",
                             "search parameter %s may be given once", name);
            return false;
        }
        if (!*value) {
            *rc = bf_http_oo(rq, HTTP_BAD_REQUEST, "invalid",
                             "search parameter %s needs a value", name);
            return false;
        }
    }
    if (!strcmp(name, "name")) {
        q->name = value;
    } else if (!strcmp(name, "identifier")) {
        bar = strchr(value, '|');
        if (!bar) {
            q->id_value = value;
        } else {
            if (bar == value)
                q->id_system_none = true;
            else
                q->id_system =
                    apr_pstrndup(rq->r->pool, value, (apr_size_t)(bar - value));
            q->id_value = bar[1] ? bar + 1 : NULL;
        }
    } else if (!strcmp(name, "_count")) {
        n = strtol(value, &end, 10);
        if (end == value || *end || n < 1 || n > MAX_COUNT) {
            *rc =
                bf_http_oo(rq, HTTP_BAD_REQUEST, "invalid",
                           "_count must be an integer from 1 to %d", MAX_COUNT);
            return false;
        }
        *count = (int)n;
    } else {
        *rc = bf_http_oo(rq, HTTP_BAD_REQUEST, "not-supported",
                         "Group search supports name, identifier and _count, "
                         "not '%s'",
                         name);
        return false;
    }
    return true;
}

static int group_search(bf_req_t *rq)
{
    request_rec *r = rq->r;
    bf_group_query_t q;
    const char *cursor = r->args, *body, *self;
    char *name, *value, sqlstate[6];
    int count = DEFAULT_COUNT, rc, i;
    apr_array_header_t *hits;
    long long total;
    json_object *bundle, *entries, *links, *l;

    memset(&q, 0, sizeof q);
    while (bf_query_next(r->pool, &cursor, &name, &value)) {
        if (!name || !value)
            return bf_http_oo(rq, HTTP_BAD_REQUEST, "invalid",
                              "malformed %%-escape in the query string");
        if (!search_param(rq, name, value, &q, &count, &rc))
            return rc;
    }
    if (!bf_job_group_search(rq->conn, r->pool, &q, count, &hits, &total,
                             sqlstate))
        return bf_http_db_error(rq, sqlstate, "Group search");

    bundle = json_object_new_object();
    json_object_object_add(bundle, "resourceType",
                           json_object_new_string("Bundle"));
    json_object_object_add(bundle, "type", json_object_new_string("searchset"));
    json_object_object_add(bundle, "total", json_object_new_int64(total));
    self =
        apr_pstrcat(r->pool, rq->base, "/Group", r->args && *r->args ? "?" : "",
                    r->args ? r->args : "", NULL);
    links = json_object_new_array();
    l = json_object_new_object();
    json_object_object_add(l, "relation", json_object_new_string("self"));
    json_object_object_add(l, "url", json_object_new_string(self));
    json_object_array_add(links, l);
    json_object_object_add(bundle, "link", links);
    entries = json_object_new_array();
    for (i = 0; i < hits->nelts; i++) {
        const bf_group_hit_t *h = &APR_ARRAY_IDX(hits, i, bf_group_hit_t);
        json_object *e = json_object_new_object(), *search, *res;

        res = json_tokener_parse(h->json);
        if (!res) {
            json_object_put(e);
            continue;
        }
        json_object_object_add(e, "fullUrl",
                               json_object_new_string(apr_pstrcat(
                                   r->pool, rq->base, "/Group/", h->id, NULL)));
        json_object_object_add(e, "resource", res);
        search = json_object_new_object();
        json_object_object_add(search, "mode", json_object_new_string("match"));
        json_object_object_add(e, "search", search);
        json_object_array_add(entries, e);
    }
    if (json_object_array_length(entries) > 0) /* FHIR: no empty arrays */
        json_object_object_add(bundle, "entry", entries);
    else
        json_object_put(entries);
    body = bf_json_to_pool(r->pool, bundle);
    json_object_put(bundle);
    return bf_http_body(rq, HTTP_OK, BF_CT_FHIR_JSON, body);
}

int bf_group_handle(bf_req_t *rq, const char *group_id)
{
    if (rq->r->method_number != M_GET)
        return bf_http_not_allowed(rq, "GET, HEAD");
    if (!allowed(rq, group_id ? BF_PERM_R : BF_PERM_S))
        return bf_http_oo(rq, HTTP_FORBIDDEN, "forbidden",
                          "the access token's scopes do not allow %s Group "
                          "resources",
                          group_id ? "reading" : "searching");
    if (!bf_db_acquire(rq))
        return bf_http_unavailable(rq,
                                   group_id ? "Group read" : "Group search");
    return group_id ? group_read(rq, group_id) : group_search(rq);
}
