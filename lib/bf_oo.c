/* bf_oo: FHIR OperationOutcome bodies (see bf_oo.h). */
#include "bf_oo.h"

#include <apr_strings.h>

void bf_oo_add(json_object *oo, const char *severity, const char *code,
               const char *text)
{
    json_object *issues, *issue, *details;

    if (!json_object_object_get_ex(oo, "issue", &issues)) {
        issues = json_object_new_array();
        json_object_object_add(oo, "issue", issues);
    }
    issue = json_object_new_object();
    json_object_object_add(issue, "severity", json_object_new_string(severity));
    json_object_object_add(issue, "code", json_object_new_string(code));
    if (text) {
        details = json_object_new_object();
        json_object_object_add(details, "text", json_object_new_string(text));
        json_object_object_add(issue, "details", details);
        json_object_object_add(issue, "diagnostics",
                               json_object_new_string(text));
    }
    json_object_array_add(issues, issue);
}

json_object *bf_oo_new(const char *severity, const char *code, const char *text)
{
    json_object *oo = json_object_new_object();

    json_object_object_add(oo, "resourceType",
                           json_object_new_string("OperationOutcome"));
    bf_oo_add(oo, severity, code, text);
    return oo;
}

const char *bf_json_to_pool(apr_pool_t *p, json_object *obj)
{
    return apr_pstrdup(
        p, json_object_to_json_string_ext(
               obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *bf_oo_json(apr_pool_t *p, const char *severity, const char *code,
                       const char *fmt, ...)
{
    va_list ap;
    char *text;
    json_object *oo;
    const char *s;

    va_start(ap, fmt);
    text = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    oo = bf_oo_new(severity, code, text);
    s = bf_json_to_pool(p, oo);
    json_object_put(oo);
    return s;
}
