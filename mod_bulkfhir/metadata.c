/* mod_bulkfhir metadata: the R4 CapabilityStatement (SPEC §4 C1-C4,
 * R61-R64): instantiates bulk-data; the three export operations with their
 * canonical definitions; one rest.resource per exportable type (every R4
 * resource type: kick-off accepts any of them in _type and exports what the
 * store holds) with the search parameters usable in _typeFilter
 * (lib/bf_searchparam's table); Group with read and search-type (R12); and
 * rest.documentation describing what the server does (R64). */
#include "mod_bulkfhir.h"
#include "bf_oo.h"
#include "bf_r4.h"
#include "bf_searchparam.h"
#include "bf_time.h"
#include "metadata_spurl.h"

#include <stdlib.h>

#include <apr_strings.h>
#include <http_protocol.h>
#include <json-c/json.h>

#define BULK "http://hl7.org/fhir/uv/bulkdata/"
#define SP_BASE "http://hl7.org/fhir/SearchParameter/"

/* R64: the narrative a client needs (markdown). */
static const char documentation[] =
    "FHIR Bulk Data Access (STU2/STU3 behaviour) served by mod_bulkfhir.\n\n"
    "**Levels**: system `$export`, all patients `Patient/$export`, "
    "`Group/[id]/$export`; kick-off by GET (query parameters) or POST "
    "(a `Parameters` body); `Prefer: respond-async` is assumed when absent; "
    "`Prefer: handling=lenient` ignores unsupported parameters (each is "
    "reported in the manifest's `error` files); `Prefer: "
    "separate-export-status` is honoured.\n\n"
    "**Parameters**: `_outputFormat` (`application/fhir+ndjson`, "
    "`application/ndjson`, `ndjson`: all NDJSON), `_since`, `_until`, "
    "`_type`, `_elements`, `_typeFilter` (the search parameters listed per "
    "type below; several filters for one type are ORed), `patient` (POST "
    "body; in a GET query only with handling=lenient), "
    "`allowPartialManifests` (202 responses carry the files published so "
    "far, pages linked by `next`), `organizeOutputBy=Patient` (resource "
    "blocks per patient; other types are refused).  "
    "`includeAssociatedData`: `LatestProvenanceResources` (the latest "
    "Provenance of each exported resource) and "
    "`RelevantProvenanceResources` (all of them; wins when both are given); "
    "also when `_type` omits Provenance.  Other values (no custom ones) give "
    "400 unless lenient.  Without it Provenance follows the IG's defaults "
    "(R27).\n\n"
    "**Content**: the versions current at `transactionTime`; Patient and "
    "Group exports use the R4 Patient compartment; referenced resources "
    "outside it (Practitioner, Organization, Location, Medication) are not "
    "added.  No profile restriction (any R4 resource type in the store).\n\n"
    "**Group `_since`**: only resources changed after `_since` are "
    "returned, also for patients who joined the Group later (use the "
    "Group Membership Request Pattern to catch up new members).\n\n"
    "**Files**: one resource type per file (unless organized); a type's "
    "output is split into "
    "parts by the workers' size limit; files are served gzip-compressed "
    "when `Accept-Encoding` allows it and expire `BulkFhirFileLifetime` "
    "seconds after the job ends (`Expires`), then 410 Gone.\n\n"
    "**Status**: `Retry-After` and `X-Progress`; polling a running job more "
    "often than the configured interval gives 429 + `Retry-After`.";

/* The kick-off cost model of this <Location> (README "Bounded cost"),
 * appended to the documentation. */
static const char *cost_limits(bf_req_t *rq)
{
    apr_array_header_t *parts =
        apr_array_make(rq->r->pool, BF_COST_N + 2, sizeof(const char *));
    int i;

    APR_ARRAY_PUSH(parts, const char *) =
        "\n\n**Limits** (checked before any work; over one: 400 "
        "OperationOutcome `too-costly` naming it, counted against the "
        "kick-off rate): ";
    for (i = 0; i < BF_COST_N; i++)
        APR_ARRAY_PUSH(parts, const char *) =
            apr_psprintf(rq->r->pool, "%s`%s %" APR_INT64_T_FMT "`",
                         i ? ", " : "", bf_cost_defs[i].name,
                         (apr_int64_t)bf_dir_cost(rq->dc, (bf_cost_e)i));
    APR_ARRAY_PUSH(parts, const char *) =
        apr_psprintf(rq->r->pool,
                     ", `%s %" APR_INT64_T_FMT "` bytes; kick-offs per client "
                     "per minute `%s %d`.",
                     BF_CMD_MAX_BODY, (apr_int64_t)bf_dir_max_body(rq->dc),
                     BF_CMD_KICKOFF_RATE, bf_dir_kickoff_rate(rq->dc));
    return apr_array_pstrcat(rq->r->pool, parts, 0);
}

/* the time this configuration was loaded: CapabilityStatement.date */
static apr_time_t loaded_at;

static json_object *operation(const char *definition)
{
    json_object *ops = json_object_new_array(), *op = json_object_new_object();

    json_object_object_add(op, "name", json_object_new_string("export"));
    json_object_object_add(op, "definition",
                           json_object_new_string(definition));
    json_object_array_add(ops, op);
    return ops;
}

static const char *sp_type(bf_sp_type_e t)
{
    switch (t) {
    case BF_SP_TOKEN:
        return "token";
    case BF_SP_STRING:
        return "string";
    case BF_SP_DATE:
        return "date";
    case BF_SP_REFERENCE:
        return "reference";
    case BF_SP_URI:
        return "uri";
    }
    return "string";
}

static int spurl_cmp(const void *key, const void *elem)
{
    const bf_spurl *k = key, *e = elem;
    int c = strcmp(k->base, e->base);

    return c ? c : strcmp(k->code, e->code);
}

/* The canonical of an R4 search parameter: the generated exceptions
 * (shared definitions, Resource- and DomainResource-level ones), else
 * <Base>-<code>. */
static const char *sp_definition(apr_pool_t *p, const char *base,
                                 const char *code)
{
    static const char *const up[] = { NULL, "DomainResource", "Resource" };
    bf_spurl key;
    const bf_spurl *hit;
    size_t i;

    for (i = 0; i < sizeof up / sizeof up[0]; i++) {
        key.base = up[i] ? up[i] : base;
        key.code = code;
        hit = bsearch(&key, bf_spurl_table, bf_spurl_count,
                      sizeof bf_spurl_table[0], spurl_cmp);
        if (hit)
            return apr_pstrcat(p, SP_BASE, hit->id, NULL);
    }
    return apr_pstrcat(p, SP_BASE, base, "-", code, NULL);
}

/* rest.resource.searchParam: the _typeFilter parameters of `type` (R62).
 * *next walks bf_searchparam_table, which is sorted by base. */
static json_object *search_params(apr_pool_t *p, const char *type,
                                  unsigned *next)
{
    json_object *arr = NULL, *sp;
    const bf_searchparam *e;

    while (*next < bf_searchparam_count &&
           strcmp(bf_searchparam_table[*next].base, type) < 0)
        (*next)++;
    for (; *next < bf_searchparam_count &&
           !strcmp((e = &bf_searchparam_table[*next])->base, type);
         (*next)++) {
        if (!arr)
            arr = json_object_new_array();
        sp = json_object_new_object();
        json_object_object_add(sp, "name", json_object_new_string(e->code));
        json_object_object_add(
            sp, "definition",
            json_object_new_string(sp_definition(p, e->base, e->code)));
        json_object_object_add(sp, "type",
                               json_object_new_string(sp_type(e->type)));
        json_object_array_add(arr, sp);
    }
    return arr;
}

static json_object *resource(apr_pool_t *p, const char *type, unsigned *next)
{
    json_object *res = json_object_new_object(), *in, *code, *sps;

    json_object_object_add(res, "type", json_object_new_string(type));
    if (!strcmp(type, "Group")) {
        /* R12: Group read/search lets clients find cohorts */
        in = json_object_new_array();
        code = json_object_new_object();
        json_object_object_add(code, "code", json_object_new_string("read"));
        json_object_array_add(in, code);
        code = json_object_new_object();
        json_object_object_add(code, "code",
                               json_object_new_string("search-type"));
        json_object_array_add(in, code);
        json_object_object_add(res, "interaction", in);
    }
    sps = search_params(p, type, next);
    if (sps)
        json_object_object_add(res, "searchParam", sps);
    if (!strcmp(type, "Patient"))
        json_object_object_add(res, "operation",
                               operation(BULK "OperationDefinition/"
                                              "patient-export"));
    else if (!strcmp(type, "Group"))
        json_object_object_add(res, "operation",
                               operation(BULK "OperationDefinition/"
                                              "group-export"));
    return res;
}

static json_object *security(void)
{
    json_object *sec = json_object_new_object(), *svc, *cc, *codings, *c;

    svc = json_object_new_array();
    cc = json_object_new_object();
    codings = json_object_new_array();
    c = json_object_new_object();
    json_object_object_add(
        c, "system",
        json_object_new_string(
            "http://terminology.hl7.org/CodeSystem/restful-security-service"));
    json_object_object_add(c, "code", json_object_new_string("SMART-on-FHIR"));
    json_object_array_add(codings, c);
    json_object_object_add(cc, "coding", codings);
    json_object_array_add(svc, cc);
    json_object_object_add(sec, "service", svc);
    json_object_object_add(
        sec, "description",
        json_object_new_string("SMART Backend Services: OAuth 2.0 client "
                               "credentials with a signed JWT assertion"));
    return sec;
}

int bf_metadata_handle(bf_req_t *rq)
{
    request_rec *r = rq->r;
    json_object *cs, *arr, *rest, *resources, *sw, *impl;
    const char *body;
    unsigned next = 0;
    size_t i;

    if (r->method_number != M_GET)
        return bf_http_not_allowed(rq, "GET, HEAD");
    if (!loaded_at)
        loaded_at = apr_time_now();

    cs = json_object_new_object();
    json_object_object_add(cs, "resourceType",
                           json_object_new_string("CapabilityStatement"));
    json_object_object_add(cs, "status", json_object_new_string("active"));
    json_object_object_add(
        cs, "date",
        json_object_new_string(bf_time_instant(r->pool, loaded_at)));
    json_object_object_add(cs, "kind", json_object_new_string("instance"));
    arr = json_object_new_array();
    json_object_array_add(
        arr, json_object_new_string(BULK "CapabilityStatement/bulk-data"));
    json_object_object_add(cs, "instantiates", arr);
    sw = json_object_new_object();
    json_object_object_add(sw, "name", json_object_new_string("mod_bulkfhir"));
    json_object_object_add(sw, "version", json_object_new_string(BF_VERSION));
    json_object_object_add(cs, "software", sw);
    impl = json_object_new_object();
    json_object_object_add(impl, "description",
                           json_object_new_string("FHIR Bulk Data export"));
    json_object_object_add(impl, "url", json_object_new_string(rq->base));
    json_object_object_add(cs, "implementation", impl);
    json_object_object_add(cs, "fhirVersion", json_object_new_string("4.0.1"));
    arr = json_object_new_array();
    json_object_array_add(arr, json_object_new_string("json"));
    json_object_object_add(cs, "format", arr);

    rest = json_object_new_object();
    json_object_object_add(rest, "mode", json_object_new_string("server"));
    /* ---- rest.security: the security helper's call site (wellknown.c
     * adds the oauth-uris extension; change what is added there) ---- */
    if (bf_dir_auth(rq->dc) == BF_AUTH_SMART) {
        json_object *sec = security();

        bf_wellknown_security(rq, sec); /* oauth-uris: the token URL */
        json_object_object_add(rest, "security", sec);
    }
    json_object_object_add(rest, "documentation",
                           json_object_new_string(apr_pstrcat(
                               r->pool, documentation, cost_limits(rq), NULL)));
    /* C3, R62: every exportable type, in bf_r4's sorted order */
    resources = json_object_new_array();
    for (i = 0; i < bf_r4_type_count(); i++)
        json_object_array_add(resources,
                              resource(r->pool, bf_r4_type_at(i), &next));
    json_object_object_add(rest, "resource", resources);
    json_object_object_add(rest, "operation",
                           operation(BULK "OperationDefinition/export"));
    arr = json_object_new_array();
    json_object_array_add(arr, rest);
    json_object_object_add(cs, "rest", arr);

    body = bf_json_to_pool(r->pool, cs);
    json_object_put(cs);
    return bf_http_body(rq, HTTP_OK, BF_CT_FHIR_JSON, body);
}
