/* mod_bulkfhir kick-off: $export, Patient/$export, Group/{id}/$export.
 * GET with query parameters or POST with a FHIR Parameters body; records
 * the job with bulkfhir.kickoff() and answers 202 + Content-Location. */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_job_check.h"
#include "bf_limits.h"
#include "bf_oo.h"
#include "bf_params.h"
#include "bf_scope.h"

#include <apr_strings.h>
#include <http_protocol.h>

static bool json_content_type(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    size_t n;

    if (!ct)
        return false;
    n = strcspn(ct, "; \t");
    return (n == 21 && strncasecmp(ct, "application/fhir+json", n) == 0) ||
           (n == 16 && strncasecmp(ct, "application/json", n) == 0);
}

/* The kick-off URL recorded as the manifest's `request`. */
static const char *request_url(bf_req_t *rq)
{
    request_rec *r = rq->r;
    const char *url = apr_pstrcat(r->pool, rq->base, "/", rq->rel, NULL);

    if (r->method_number == M_GET && r->args && *r->args)
        url = apr_pstrcat(r->pool, url, "?", r->args, NULL);
    return url;
}

/* R25: includeAssociatedData with a _type that omits Provenance still
 * needs a Provenance task (the worker exports only the associated ones);
 * job.params._type stays as the client sent it.  Only when the token may
 * read Provenance. */
static void add_provenance_task(bf_req_t *rq, bf_params_t *prm)
{
    int i;

    if (!prm->associated || !prm->types)
        return;
    for (i = 0; i < prm->types->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(prm->types, i, const char *), "Provenance"))
            return;
    if (bf_dir_auth(rq->dc) != BF_AUTH_NONE &&
        !bf_scope_can_export(rq->r->pool, rq->scope, "Provenance")) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, rq->r,
                      "includeAssociatedData: client %s may not read "
                      "Provenance; none exported",
                      rq->client_id);
        return;
    }
    APR_ARRAY_PUSH(prm->types, const char *) = "Provenance";
}

/* The kick-off cost model of this <Location> (README "Bounded cost"). */
static void cost_limits(const bf_dir_conf_t *dc, bf_params_limits_t *lim)
{
    lim->type_filters = (long)bf_dir_cost(dc, BF_COST_TYPE_FILTERS);
    lim->filter_values = (long)bf_dir_cost(dc, BF_COST_FILTER_VALUES);
    lim->filter_bytes = (long)bf_dir_cost(dc, BF_COST_FILTER_BYTES);
    lim->filter_terms = (long)bf_dir_cost(dc, BF_COST_FILTER_TERMS);
    lim->elements = (long)bf_dir_cost(dc, BF_COST_ELEMENTS);
    lim->patients = (long)bf_dir_cost(dc, BF_COST_PATIENTS);
    lim->types = (long)bf_dir_cost(dc, BF_COST_TYPES);
}

/* Over a cost limit: 400 too-costly naming the limit, counted against the
 * client's BulkFhirKickoffRate (bulkfhir.refuse_kickoff); a client over
 * its rate already gets 429.  No job, no other SQL. */
static int too_costly(bf_req_t *rq, const bf_params_t *prm)
{
    request_rec *r = rq->r;
    const char *who = rq->client_id ? rq->client_id : "(anonymous)";
    bf_admit_t a;
    char sqlstate[6] = "";

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "kick-off refused as too costly: client %s: %s %ld", who,
                  prm->limit, prm->limit_value);
    if (!bf_db_acquire(rq))
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BF01070: client %s: a too-costly kick-off was not "
                      "counted against %s: the database is unavailable",
                      who, BF_CMD_KICKOFF_RATE);
    else if (!bf_limits_refused(
                 rq->conn, bf_auth_mode_name(bf_dir_auth(rq->dc)),
                 rq->client_id, bf_dir_kickoff_rate(rq->dc), &a, sqlstate))
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BF01071: client %s: a too-costly kick-off was not "
                      "counted against %s: SQLSTATE %s",
                      who, BF_CMD_KICKOFF_RATE, sqlstate);
    else if (a.verdict == BF_ADMIT_RATE) {
        apr_table_setn(r->headers_out, "Retry-After",
                       apr_itoa(r->pool, a.retry_after));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "kick-off refused: client %s is over %s %d/min "
                      "(too-costly kick-offs count)",
                      who, BF_CMD_KICKOFF_RATE, bf_dir_kickoff_rate(rq->dc));
        return bf_http_oo(rq, HTTP_TOO_MANY_REQUESTS, "throttled",
                          "too many kick-offs: at most %d per minute for "
                          "this client, refused ones included; retry in %d s",
                          bf_dir_kickoff_rate(rq->dc), a.retry_after);
    }
    return bf_http_oo(rq, HTTP_BAD_REQUEST, "too-costly", "%s", prm->error);
}

static int prefer_one(void *baton, const char *key, const char *value)
{
    (void)key;
    bf_params_prefer_add(baton, value);
    return 1;
}

int bf_kickoff_handle(bf_req_t *rq, const char *level, const char *group_id)
{
    request_rec *r = rq->r;
    bf_prefer_t pref;
    bool lenient;
    bf_params_t *prm;
    bf_params_limits_t lim;
    bf_job_kickoff_t k;
    const char *job_id, *body, *location;
    apr_size_t len;
    char sqlstate[6];
    bool exists, ok;
    json_object *oo;
    int rc, i;

    if (r->header_only) /* HEAD must not start an export */
        return bf_http_not_allowed(rq, "GET, POST");
    /* R13-R16: every Prefer header, comma lists, quoted values, any case;
     * a missing respond-async is accepted (R14); handling=strict wins */
    memset(&pref, 0, sizeof pref);
    apr_table_do(prefer_one, &pref, r->headers_in, "Prefer", NULL);
    lenient = pref.lenient && !pref.strict;
    cost_limits(rq->dc, &lim);
    if (r->method_number == M_GET) {
        ok = bf_params_from_query_lim(r->pool, r->args, level, lenient, &lim,
                                      &prm);
    } else if (r->method_number == M_POST) {
        if (r->args && *r->args)
            return bf_http_oo(rq, HTTP_BAD_REQUEST, "invalid",
                              "a POST kick-off takes its parameters in the "
                              "Parameters body, not in the query string");
        if (!json_content_type(r))
            return bf_http_oo(rq, HTTP_UNSUPPORTED_MEDIA_TYPE, "invalid",
                              "a POST kick-off needs Content-Type "
                              "application/fhir+json with a Parameters "
                              "resource");
        if (!bf_http_read_body(rq, (apr_off_t)bf_dir_max_body(rq->dc), &body,
                               &len, &rc))
            return rc;
        ok = bf_params_from_body_lim(r->pool, body, len, level, lenient, &lim,
                                     &prm);
    } else {
        return bf_http_not_allowed(rq, "GET, POST");
    }
    if (!ok && prm->limit)
        return too_costly(rq, prm);
    if (!ok)
        return bf_http_oo(rq, HTTP_BAD_REQUEST, prm->error_code, "%s",
                          prm->error);
    bf_audit_params(rq, prm->json);

    /* R5, R6: only granted types; Group needs Group read (auth.c) */
    if (!bf_auth_kickoff(rq, group_id, &prm->types, &rc))
        return rc;
    add_provenance_task(rq, prm);

    if (!bf_db_acquire(rq))
        return bf_http_unavailable(rq, "kick-off");
    if (group_id) {
        if (!bf_job_group_exists(rq->conn, group_id, &exists, sqlstate))
            return bf_http_db_error(rq, sqlstate, "kick-off");
        if (!exists)
            return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                              "Group/%s is not known", group_id);
    }

    /* SPEC §1.4 patient: unknown patients and non-members are an error */
    if (!lenient) {
        const char *bad, *why;

        if (!bf_job_check_patients(rq->conn, r->pool, prm->json, group_id, &bad,
                                   &why, sqlstate))
            return bf_http_db_error(rq, sqlstate, "kick-off");
        if (bad)
            return bf_http_oo(rq, HTTP_BAD_REQUEST, "invalid", "patient: %s %s",
                              bad, why);
    }

    memset(&k, 0, sizeof k);
    k.client_id = rq->client_id;
    k.level = level;
    k.group_id = group_id;
    k.params = prm->json;
    k.since = prm->since;
    k.until = prm->until;
    k.request_url = request_url(rq);
    k.requires_token = bf_dir_auth(rq->dc) != BF_AUTH_NONE;
    k.auth_mode = bf_auth_mode_name(bf_dir_auth(rq->dc)); /* 0071 */
    k.types = bf_params_types_literal(r->pool, prm);
    k.separate_status = pref.separate_status;
    k.organized = prm->organize_by != NULL;
    k.file_lifetime = bf_dir_file_lifetime(rq->dc);
    if (!bf_limits_kickoff(rq, &k, &job_id, &rc)) /* R9: limits.c */
        return rc;

    location = apr_pstrcat(r->pool, rq->base, "/bulkstatus/", job_id, NULL);
    apr_table_setn(r->headers_out, "Content-Location", location);
    if (pref.separate_status) /* R15 */
        apr_table_setn(r->headers_out, "Preference-Applied",
                       "respond-async, separate-export-status");
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "job %s: accepted (%s level%s%s, client %s)", job_id, level,
                  group_id ? ", Group/" : "", group_id ? group_id : "",
                  rq->client_id ? rq->client_id : "-");

    oo = bf_oo_new("information", "informational",
                   apr_psprintf(r->pool, "export job %s accepted; poll %s",
                                job_id, location));
    for (i = 0; i < prm->ignored->nelts; i++)
        bf_oo_add(oo, "warning", "not-supported",
                  APR_ARRAY_IDX(prm->ignored, i, const char *));
    body = bf_json_to_pool(r->pool, oo);
    json_object_put(oo);
    return bf_http_body(rq, HTTP_ACCEPTED, BF_CT_FHIR_JSON, body);
}
