/* mod_bulkfhir SMART discovery: GET {base}/.well-known/smart-configuration
 * (SPEC §3.1, A1) and the oauth-uris extension of the CapabilityStatement's
 * rest.security.  Only with BulkFhirAuth smart: the module is then the
 * authorization server. */
#include "mod_bulkfhir.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <json-c/json.h>

#define OAUTH_URIS                                                             \
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

static json_object *strings(const char *const *v)
{
    json_object *a = json_object_new_array();

    for (; *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

int bf_wellknown_handle(bf_req_t *rq)
{
    static const char *const grants[] = { "client_credentials", NULL };
    static const char *const methods[] = { "private_key_jwt", NULL };
    static const char *const algs[] = { "RS384", "ES384", NULL };
    static const char *const scopes[] = { "system/*.read", "system/*.rs",
                                          NULL };
    static const char *const caps[] = { "client-confidential-asymmetric",
                                        "permission-v1", "permission-v2",
                                        NULL };
    request_rec *r = rq->r;
    json_object *o;
    const char *body;

    if (bf_dir_auth(rq->dc) != BF_AUTH_SMART)
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found",
                          "no SMART configuration here (%s is not smart)",
                          BF_CMD_AUTH);
    if (r->method_number != M_GET)
        return bf_http_not_allowed(rq, "GET, HEAD");

    /* A1: JSON whatever Accept says; every URL absolute */
    o = json_object_new_object();
    json_object_object_add(o, "token_endpoint",
                           json_object_new_string(bf_token_url(rq)));
    json_object_object_add(o, "grant_types_supported", strings(grants));
    json_object_object_add(o, "token_endpoint_auth_methods_supported",
                           strings(methods));
    json_object_object_add(
        o, "token_endpoint_auth_signing_alg_values_supported", strings(algs));
    json_object_object_add(o, "scopes_supported", strings(scopes));
    json_object_object_add(o, "capabilities", strings(caps));
    body = apr_pstrdup(r->pool, json_object_to_json_string_ext(
                                    o, JSON_C_TO_STRING_PLAIN |
                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return bf_http_body(rq, HTTP_OK, "application/json", body);
}

void bf_wellknown_security(const bf_req_t *rq, json_object *security)
{
    json_object *ext, *outer, *inner, *one;

    if (bf_dir_auth(rq->dc) != BF_AUTH_SMART)
        return;
    one = json_object_new_object();
    json_object_object_add(one, "url", json_object_new_string("token"));
    json_object_object_add(one, "valueUri",
                           json_object_new_string(bf_token_url(rq)));
    inner = json_object_new_array();
    json_object_array_add(inner, one);
    outer = json_object_new_object();
    json_object_object_add(outer, "url", json_object_new_string(OAUTH_URIS));
    json_object_object_add(outer, "extension", inner);
    ext = json_object_new_array();
    json_object_array_add(ext, outer);
    json_object_object_add(security, "extension", ext);
}
