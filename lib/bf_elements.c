/* bf_elements: _elements parsing and the keep-list for SQL subsetting. */
#include "bf_elements.h"
#include "bf_r4.h"
#include "bf_typefilter.h"   /* bf_sql_literal */

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
    "value", "effective", "onset", "abatement", "occurrence", "performed",
    "deceased", "multipleBirth", "born", "age", "timing", "serviced",
    "medication", "item", "product", "reported", "asNeeded", "scheduled",
    "collected", "allowed", "used", "defaultValue", "code", "subject",
    "location", NULL
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

bool bf_elements_parse(apr_pool_t *p, const apr_array_header_t *values,
                       apr_array_header_t **out, const char **err)
{
    apr_array_header_t *els = apr_array_make(p, 8, sizeof(bf_element));
    int i;

    for (i = 0; i < values->nelts; i++) {
        const char *v = APR_ARRAY_IDX(values, i, const char *);
        const char *dot = strchr(v, '.');
        bf_element e = { NULL, v };

        if (dot) {
            e.type = apr_pstrndup(p, v, (apr_size_t)(dot - v));
            e.name = dot + 1;
            if (!bf_r4_is_type(e.type)) {
                *err = apr_psprintf(p, "_elements: '%s' is not a FHIR R4 "
                                    "resource type", e.type);
                return false;
            }
        }
        if (!valid_name(e.name)) {
            *err = apr_psprintf(p, "_elements: '%s' is not [Type.]element "
                                "(root elements only)", v);
            return false;
        }
        *(bf_element *)apr_array_push(els) = e;
    }
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

/* Append one element (quoted for an SQL array literal) to list. */
static const char *add(apr_pool_t *p, const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *item = name;

    if (n > 3 && strcmp(name + n - 3, "[x]") == 0)
        item = name;   /* already marked */
    else if (is_choice(name))
        item = apr_pstrcat(p, name, "[x]", NULL);
    item = apr_pstrcat(p, "\"", item, "\"", NULL);
    return list ? apr_pstrcat(p, list, ",", item, NULL) : item;
}

const char *bf_elements_keep_sql(apr_pool_t *p, const apr_array_header_t *els,
                                 const char *type)
{
    const char *list = NULL;
    char *must = apr_pstrdup(p, bf_elements_mandatory(type)), *tok, *last;
    int i;

    for (i = 0; els && i < els->nelts; i++) {
        const bf_element *e = &APR_ARRAY_IDX(els, i, bf_element);

        if (!e->type || strcmp(e->type, type) == 0)
            list = add(p, list, e->name);
    }
    for (tok = apr_strtok(must, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last))
        list = add(p, list, tok);
    /* names are [A-Za-z0-9] plus "[x]": safe inside the array literal */
    return apr_pstrcat(p, bf_sql_literal(p, apr_pstrcat(p, "{", list ? list : "",
                                                        "}", NULL)),
                       "::text[]", NULL);
}
