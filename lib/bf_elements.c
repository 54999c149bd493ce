/* bf_elements: _elements parsing and the keep-list for SQL subsetting. */
#include "bf_elements.h"
#include "bf_r4.h"
#include "bf_sql.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

/* Mandatory root elements (min >= 1) of the R4 resources most exports carry,
 * from the R4 (4.0.1) resource definitions.  Types not listed keep only
 * resourceType, id, meta and what was asked for. */
static const struct {
    const char *type, *elements;
} mandatory[] = {
    { "Account", "status" },
    { "AdverseEvent", "actuality,subject" },
    { "AllergyIntolerance", "patient" },
    { "Appointment", "status,participant" },
    { "Basic", "code" },
    { "Binary", "contentType" },
    { "BodyStructure", "patient" },
    { "Bundle", "type" },
    { "CarePlan", "status,intent,subject" },
    { "ChargeItem", "status,code,subject" },
    { "Claim", "status,type,use,patient,created,provider,priority,insurance" },
    { "ClaimResponse", "status,type,use,patient,created,insurer,outcome" },
    { "ClinicalImpression", "status,subject" },
    { "Communication", "status" },
    { "CommunicationRequest", "status" },
    { "Composition", "status,type,date,author,title" },
    { "Condition", "subject" },
    { "Consent", "status,scope,category" },
    { "Coverage", "status,beneficiary,payor" },
    { "DetectedIssue", "status" },
    { "DeviceRequest", "intent,code[x],subject" },
    { "DiagnosticReport", "status,code" },
    { "DocumentReference", "status,content" },
    { "Encounter", "status,class" },
    { "EpisodeOfCare", "status,patient" },
    { "ExplanationOfBenefit",
      "status,type,use,patient,created,insurer,provider,outcome,insurance" },
    { "FamilyMemberHistory", "status,patient,relationship" },
    { "Flag", "status,code,subject" },
    { "Goal", "lifecycleStatus,description,subject" },
    { "Group", "type,actual" },
    { "ImagingStudy", "status,subject" },
    { "Immunization", "status,vaccineCode,patient,occurrence[x]" },
    { "List", "status,mode" },
    { "Media", "status,content" },
    { "MedicationAdministration", "status,medication[x],subject,effective[x]" },
    { "MedicationDispense", "status,medication[x]" },
    { "MedicationRequest", "status,intent,medication[x],subject" },
    { "MedicationStatement", "status,medication[x],subject" },
    { "NutritionOrder", "status,intent,patient,dateTime" },
    { "Observation", "status,code" },
    { "Procedure", "status,subject" },
    { "Provenance", "target,recorded,agent" },
    { "Questionnaire", "status" },
    { "QuestionnaireResponse", "status" },
    { "RelatedPerson", "patient" },
    { "ResearchSubject", "status,study,individual" },
    { "RiskAssessment", "status,subject" },
    { "Schedule", "actor" },
    { "ServiceRequest", "status,intent,subject" },
    { "Slot", "schedule,status,start,end" },
    { "Task", "status,intent" },
    { NULL, NULL }
};

/* Root elements that are choices ([x]) in some R4 resource. */
static const char *const choices[] = {
    "value",     "effective",    "onset",         "abatement", "occurrence",
    "performed", "deceased",     "multipleBirth", "born",      "age",
    "timing",    "serviced",     "medication",    "item",      "product",
    "reported",  "asNeeded",     "scheduled",     "collected", "allowed",
    "used",      "defaultValue", "code",          "subject",   "location",
    NULL
};

const char *bf_elements_mandatory(const char *type)
{
    int i;

    for (i = 0; mandatory[i].type; i++)
        if (strcmp(mandatory[i].type, type) == 0)
            return mandatory[i].elements;
    return "";
}

static bool valid_name(const char *s)
{
    if (!islower((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s))
            return false;
    return true;
}

bool bf_elements_parse_one(apr_pool_t *p, const char *v, bf_element *out,
                           const char **err)
{
    const char *dot = strchr(v, '.');
    bf_element e = { NULL, v };
    char *shown;
    size_t i;

    if (dot) {
        e.type = apr_pstrndup(p, v, (apr_size_t)(dot - v));
        e.name = dot + 1;
    }
    if ((e.type && !bf_r4_is_type(e.type)) || !valid_name(e.name)) {
        /* echo a short printable prefix only */
        shown = apr_pstrndup(p, v, 40);
        for (i = 0; shown[i]; i++)
            if (!isprint((unsigned char)shown[i]))
                shown[i] = '?';
        if (e.type && !bf_r4_is_type(e.type))
            *err = apr_psprintf(p,
                                "_elements: '%s%s' does not start with a "
                                "FHIR R4 resource type",
                                shown, strlen(v) > 40 ? "..." : "");
        else
            *err = apr_psprintf(p,
                                "_elements: '%s%s' is not [Type.]element "
                                "(root elements only)",
                                shown, strlen(v) > 40 ? "..." : "");
        return false;
    }
    *out = e;
    return true;
}

bool bf_elements_parse(apr_pool_t *p, const apr_array_header_t *values,
                       apr_array_header_t **out, const char **err)
{
    apr_array_header_t *els =
        apr_array_make(p, values->nelts + 1, sizeof(bf_element));
    int i;

    for (i = 0; i < values->nelts; i++)
        if (!bf_elements_parse_one(p, APR_ARRAY_IDX(values, i, const char *),
                                   apr_array_push(els), err))
            return false;
    *out = els;
    return true;
}

static bool is_choice(const char *name)
{
    int i;

    for (i = 0; choices[i]; i++)
        if (strcmp(choices[i], name) == 0)
            return true;
    return false;
}

/* Append one element, quoted for an SQL array literal, to the pieces. */
static void add(apr_pool_t *p, apr_array_header_t *parts, const char *name)
{
    size_t n = strlen(name);

    if (parts->nelts > 1)
        APR_ARRAY_PUSH(parts, const char *) = ",";
    APR_ARRAY_PUSH(parts, const char *) = "\"";
    APR_ARRAY_PUSH(parts, const char *) = name;
    if (!(n > 3 && strcmp(name + n - 3, "[x]") == 0) && is_choice(name))
        APR_ARRAY_PUSH(parts, const char *) = "[x]";
    APR_ARRAY_PUSH(parts, const char *) = "\"";
}

const char *bf_elements_keep_sql(apr_pool_t *p, const apr_array_header_t *els,
                                 const char *type)
{
    apr_array_header_t *parts = apr_array_make(
        p, 4 * (els ? els->nelts : 0) + 32, sizeof(const char *));
    char *must = apr_pstrdup(p, bf_elements_mandatory(type)), *tok, *last;
    int i;

    /* built once from an array of pieces: linear in the number of names */
    APR_ARRAY_PUSH(parts, const char *) = "{";
    for (i = 0; els && i < els->nelts; i++) {
        const bf_element *e = &APR_ARRAY_IDX(els, i, bf_element);

        if (!e->type || strcmp(e->type, type) == 0)
            add(p, parts, e->name);
    }
    for (tok = apr_strtok(must, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last))
        add(p, parts, tok);
    APR_ARRAY_PUSH(parts, const char *) = "}";
    /* names are [A-Za-z0-9] plus "[x]": safe inside the array literal */
    return apr_pstrcat(p, bf_sql_literal(p, apr_array_pstrcat(p, parts, 0)),
                       "::text[]", NULL);
}
