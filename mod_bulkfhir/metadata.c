/* mod_bulkfhir metadata: the R4 CapabilityStatement (SPEC §4 C1, C2). */
#include "mod_bulkfhir.h"
#include "bf_oo.h"
#include "bf_time.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <json-c/json.h>

#define BULK "http://hl7.org/fhir/uv/bulkdata/"

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

static json_object *resource(const char *type, const char *definition,
                             bool group)
{
    json_object *res = json_object_new_object(), *in, *code;

    json_object_object_add(res, "type", json_object_new_string(type));
    json_object_object_add(res, "operation", operation(definition));
    if (group) {
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

    if (r->method_number != M_GET)
        return bf_http_not_allowed(rq, "GET, HEAD");
    if (!loaded_at)
        loaded_at = apr_time_now();

    cs = json_object_new_object();
    json_object_object_add(cs, "resourceType",
                           json_object_new_string("CapabilityStatement"));
    json_object_object_add(cs, "status", json_object_new_string("active"));
    json_object_object_add(cs, "date", json_object_new_string(
                                           bf_time_instant(r->pool, loaded_at)));
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
    if (bf_dir_auth(rq->dc) == BF_AUTH_SMART) {
        json_object *sec = security();

        bf_wellknown_security(rq, sec); /* oauth-uris: the token URL */
        json_object_object_add(rest, "security", sec);
    }
    resources = json_object_new_array();
    json_object_array_add(resources,
                          resource("Patient",
                                   BULK "OperationDefinition/patient-export",
                                   false));
    json_object_array_add(resources,
                          resource("Group",
                                   BULK "OperationDefinition/group-export",
                                   true));
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
