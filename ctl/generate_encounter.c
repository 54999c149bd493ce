/* generate: one Encounter and what it records: Conditions, Procedures,
 * MedicationRequests, Immunizations, a DocumentReference (observations are
 * in generate_obs.c). */
#include "generate_out.h"

#include <string.h>

#define DAY 86400LL
#define YEAR ((int64_t)(365.2425 * 86400))

static const struct {
    const char *cls, *cls_display;
    gen_code type;
} kinds[EK__COUNT] = {
    [EK_WELL_CHILD] = { "AMB",
                        "ambulatory",
                        { "410620009", "Well child visit (procedure)" } },
    [EK_GENERAL_EXAM] = { "AMB",
                          "ambulatory",
                          { "162673000",
                            "General examination of patient (procedure)" } },
    [EK_SYMPTOM] = { "AMB",
                     "ambulatory",
                     { "185345009", "Encounter for symptom" } },
    [EK_PROBLEM] = { "AMB",
                     "ambulatory",
                     { "185347001", "Encounter for problem (procedure)" } },
    [EK_URGENT] = { "AMB",
                    "ambulatory",
                    { "702927004", "Urgent care clinic (procedure)" } },
    [EK_EMERGENCY] = { "EMER",
                       "emergency",
                       { "50849002", "Emergency room admission (procedure)" } },
    [EK_INPATIENT] = { "IMP",
                       "inpatient encounter",
                       { "183452005",
                         "Emergency hospital admission (procedure)" } },
    [EK_FOLLOWUP] = { "AMB",
                      "ambulatory",
                      { "390906007", "Follow-up encounter (procedure)" } },
};

static const gen_code proc_medrec = { "430193006",
                                      "Medication Reconciliation (procedure)" };
static const gen_code proc_depression = { "171207006",
                                          "Depression screening (procedure)" };
static const gen_code proc_needs = {
    "710824005", "Assessment of health and social care needs (procedure)"
};
static const gen_code proc_mammo = { "71651007", "Mammography (procedure)" };
static const gen_code proc_colonoscopy = { "73761001",
                                           "Colonoscopy (procedure)" };
static const gen_code proc_spirometry = { "127783003",
                                          "Spirometry (procedure)" };
static const gen_code proc_ecg = { "29303009",
                                   "Electrocardiographic procedure" };

static const struct {
    gen_code code;
    double min_age, max_age;
    bool series; /* given at every visit in the window */
} schedule[] = {
    { { "08", "Hep B, adolescent or pediatric" }, 0, 0.6, true },
    { { "20", "DTaP" }, 0.1, 1.6, true },
    { { "10", "IPV" }, 0.1, 1.6, true },
    { { "49", "Hib (PRP-OMP)" }, 0.1, 1.3, true },
    { { "133", "Pneumococcal conjugate PCV 13" }, 0.1, 1.6, true },
    { { "119", "rotavirus, monovalent" }, 0.1, 0.6, true },
    { { "03", "MMR" }, 1, 2, false },
    { { "21", "varicella" }, 1, 2, false },
    { { "83", "Hep A, ped/adol, 2 dose" }, 1, 2.5, false },
    { { "115", "Tdap" }, 11, 13, false },
    { { "62", "HPV, quadrivalent" }, 11, 14, false },
    { { "114", "meningococcal MCV4P" }, 11, 13, false },
    { { "121", "zoster" }, 50, 200, false },
    { { "33", "pneumococcal polysaccharide vaccine, 23 valent" },
      65,
      200,
      false },
};
static const gen_code vac_flu = {
    "140", "Influenza, seasonal, injectable, preservative free"
};
static const gen_code vac_td = { "113", "Td (adult) preservative free" };

static size_t org_of(const gen_pat *pt, const gen_enc *e)
{
    return (size_t)e->prac % pt->c->pools.n_org;
}

/* remember a resource the current encounter recorded (Provenance target) */
static void note(gen_pat *pt, const char *type, const gen_id *id)
{
    if (pt->n_tgt >= GEN_MAX_TARGETS)
        return;
    pt->tgt[pt->n_tgt].type = type;
    pt->tgt[pt->n_tgt].id = *id;
    pt->n_tgt++;
}

static void out_period(gen_out *o, const gen_pat *pt, int64_t start,
                       int64_t end)
{
    gen_out_lit(o, "{\"start\":\"");
    gen_out_datetime(o, start, pt->tz);
    gen_out_lit(o, "\",\"end\":\"");
    gen_out_datetime(o, end, pt->tz);
    gen_out_lit(o, "\"}");
}

static bool write_encounter(gen_pat *pt, const gen_enc *e)
{
    gen_out *o = &pt->c->out[GT_ENCOUNTER];
    const gen_pools *pl = &pt->c->pools;
    if (!gen_out_begin(o, "Encounter", e->id.s))
        return false;
    note(pt, "Encounter", &e->id);
    gen_out_lit(
        o, ",\"status\":\"finished\",\"class\":{\"system\":"
           "\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"");
    gen_out_raw(o, kinds[e->kind].cls);
    gen_out_lit(o, "\",\"display\":\"");
    gen_out_raw(o, kinds[e->kind].cls_display);
    gen_out_lit(o, "\"},\"type\":[");
    gen_out_cc(o, SYS_SNOMED, &kinds[e->kind].type);
    gen_out_lit(o, "],\"subject\":{\"reference\":\"Patient/");
    gen_out_raw(o, pt->id.s);
    gen_out_lit(o, "\",\"display\":");
    gen_out_str(o, pt->name);
    gen_out_lit(
        o,
        "},\"participant\":[{\"type\":[{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/v3-ParticipationType\",\"code\":\"PPRF\","
        "\"display\":\"primary performer\"}],\"text\":\"primary performer\"}],\"period\":");
    out_period(o, pt, e->start, e->end);
    gen_out_lit(o, ",\"individual\":{\"reference\":\"Practitioner/");
    gen_out_raw(o, pl->prac[e->prac].s);
    gen_out_lit(o, "\",\"display\":");
    gen_out_str(o, pl->prac_name[e->prac]);
    gen_out_lit(o, "}}],\"period\":");
    out_period(o, pt, e->start, e->end);
    const gen_code *reason = NULL;
    if (e->kind == EK_FOLLOWUP)
        reason = &gen_chronic_defs[pt->chronic[e->acute].kind].code;
    else if (e->acute >= 0)
        reason = &gen_acute_defs[e->acute].code;
    if (reason) {
        gen_out_lit(o, ",\"reasonCode\":[");
        gen_out_cc(o, SYS_SNOMED, reason);
        gen_out_lit(o, "]");
    }
    if (e->kind == EK_INPATIENT)
        gen_out_lit(
            o,
            ",\"hospitalization\":{\"admitSource\":{\"coding\":[{\"system\":"
            "\"http://terminology.hl7.org/CodeSystem/admit-source\",\"code\":\"emd\","
            "\"display\":\"From accident/emergency department\"}]},\"dischargeDisposition\":"
            "{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/discharge-disposition\","
            "\"code\":\"home\",\"display\":\"Home\"}]}}");
    gen_out_lit(o, ",\"location\":[{\"location\":{\"reference\":\"Location/");
    gen_out_raw(o, pl->loc[org_of(pt, e)].s);
    gen_out_lit(o, "\",\"display\":");
    gen_out_str(o, pl->org_name[org_of(pt, e)]);
    gen_out_lit(o, "}}],\"serviceProvider\":{\"reference\":\"Organization/");
    gen_out_raw(o, pl->org[org_of(pt, e)].s);
    gen_out_lit(o, "\",\"display\":");
    gen_out_str(o, pl->org_name[org_of(pt, e)]);
    gen_out_lit(o, "}");
    gen_out_end(o);
    return true;
}

static bool write_condition(gen_pat *pt, const gen_enc *e, const gen_id *id,
                            const gen_code *code, int64_t onset,
                            int64_t abatement)
{
    gen_out *o = &pt->c->out[GT_CONDITION];
    bool resolved = abatement > 0 && abatement < pt->c->now;
    if (!gen_out_begin(o, "Condition", id->s))
        return false;
    note(pt, "Condition", id);
    gen_out_lit(
        o,
        ",\"clinicalStatus\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"");
    gen_out_raw(o, resolved ? "resolved" : "active");
    gen_out_lit(
        o,
        "\"}]},\"verificationStatus\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/condition-ver-status\",\"code\":\"confirmed\"}]},"
        "\"category\":[{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/condition-category\","
        "\"code\":\"encounter-diagnosis\",\"display\":\"Encounter Diagnosis\"}]}],\"code\":");
    gen_out_cc(o, SYS_SNOMED, code);
    gen_out_lit(o, ",\"subject\":");
    gen_out_ref(o, "Patient", pt->id.s);
    gen_out_lit(o, ",\"encounter\":");
    gen_out_ref(o, "Encounter", e->id.s);
    gen_out_lit(o, ",\"onsetDateTime\":\"");
    gen_out_datetime(o, onset, pt->tz);
    if (resolved) {
        gen_out_lit(o, "\",\"abatementDateTime\":\"");
        gen_out_datetime(o, abatement, pt->tz);
    }
    gen_out_lit(o, "\",\"recordedDate\":\"");
    gen_out_datetime(o, e->start, pt->tz);
    gen_out_lit(o, "\",\"recorder\":");
    gen_out_ref(o, "Practitioner", pt->c->pools.prac[e->prac].s);
    gen_out_end(o);
    return true;
}

static bool write_procedure(gen_pat *pt, const gen_enc *e, const gen_code *code,
                            int minutes, const gen_id *reason)
{
    gen_out *o = &pt->c->out[GT_PROCEDURE];
    gen_id id;
    gen_rng_uuid(pt->r, &id);
    int64_t start = e->start + 5 * 60;
    int64_t end = start + minutes * 60;
    if (end > e->end)
        end = e->end;
    if (!gen_out_begin(o, "Procedure", id.s))
        return false;
    note(pt, "Procedure", &id);
    gen_out_lit(o, ",\"status\":\"completed\",\"code\":");
    gen_out_cc(o, SYS_SNOMED, code);
    gen_out_lit(o, ",\"subject\":");
    gen_out_ref(o, "Patient", pt->id.s);
    gen_out_lit(o, ",\"encounter\":");
    gen_out_ref(o, "Encounter", e->id.s);
    gen_out_lit(o, ",\"performedPeriod\":");
    out_period(o, pt, start, end);
    gen_out_lit(o, ",\"performer\":[{\"actor\":");
    gen_out_ref(o, "Practitioner", pt->c->pools.prac[e->prac].s);
    gen_out_lit(o, "}],\"location\":");
    gen_out_ref(o, "Location", pt->c->pools.loc[org_of(pt, e)].s);
    if (reason) {
        gen_out_lit(o, ",\"reasonReference\":[");
        gen_out_ref(o, "Condition", reason->s);
        gen_out_lit(o, "]");
    }
    gen_out_end(o);
    return true;
}

static bool write_medication(gen_pat *pt, const gen_enc *e, const gen_code *med,
                             const gen_id *reason, bool chronic)
{
    gen_out *o = &pt->c->out[GT_MEDICATION_REQUEST];
    gen_id id;
    gen_rng_uuid(pt->r, &id);
    const char *status;
    if (chronic)
        status = e->start > pt->c->now - YEAR ? "active" : "stopped";
    else
        status = e->start > pt->c->now - 30 * DAY ? "active"
                 : gen_rng_chance(pt->r, 0.8)     ? "completed"
                                                  : "stopped";
    if (!gen_out_begin(o, "MedicationRequest", id.s))
        return false;
    note(pt, "MedicationRequest", &id);
    gen_out_lit(o, ",\"status\":\"");
    gen_out_raw(o, status);
    gen_out_lit(
        o,
        "\",\"intent\":\"order\",\"category\":[{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/medicationrequest-category\","
        "\"code\":\"outpatient\",\"display\":\"Outpatient\"}]}],\"medicationCodeableConcept\":");
    gen_out_cc(o, SYS_RXNORM, med);
    gen_out_lit(o, ",\"subject\":");
    gen_out_ref(o, "Patient", pt->id.s);
    gen_out_lit(o, ",\"encounter\":");
    gen_out_ref(o, "Encounter", e->id.s);
    gen_out_lit(o, ",\"authoredOn\":\"");
    gen_out_datetime(
        o, e->start + 20 * 60 < e->end ? e->start + 20 * 60 : e->start, pt->tz);
    gen_out_lit(o, "\",\"requester\":");
    gen_out_ref(o, "Practitioner", pt->c->pools.prac[e->prac].s);
    if (reason) {
        gen_out_lit(o, ",\"reasonReference\":[");
        gen_out_ref(o, "Condition", reason->s);
        gen_out_lit(o, "]");
    }
    gen_out_lit(
        o,
        ",\"dosageInstruction\":[{\"sequence\":1,\"timing\":{\"repeat\":{\"frequency\":");
    gen_out_int(o, chronic ? 1 : gen_rng_range(pt->r, 2, 4));
    gen_out_lit(o, ",\"period\":1,\"periodUnit\":\"d\"}},\"asNeededBoolean\":");
    gen_out_raw(o, chronic ? "false" : "true");
    gen_out_lit(
        o,
        ",\"doseAndRate\":[{\"type\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/dose-rate-type\",\"code\":\"ordered\","
        "\"display\":\"Ordered\"}]},\"doseQuantity\":{\"value\":1}}]}]");
    gen_out_end(o);
    return true;
}

static bool write_immunization(gen_pat *pt, const gen_enc *e,
                               const gen_code *vac)
{
    gen_out *o = &pt->c->out[GT_IMMUNIZATION];
    gen_id id;
    gen_rng_uuid(pt->r, &id);
    if (!gen_out_begin(o, "Immunization", id.s))
        return false;
    note(pt, "Immunization", &id);
    gen_out_lit(o, ",\"status\":\"completed\",\"vaccineCode\":");
    gen_out_cc(o, SYS_CVX, vac);
    gen_out_lit(o, ",\"patient\":");
    gen_out_ref(o, "Patient", pt->id.s);
    gen_out_lit(o, ",\"encounter\":");
    gen_out_ref(o, "Encounter", e->id.s);
    gen_out_lit(o, ",\"occurrenceDateTime\":\"");
    gen_out_datetime(o, e->start + 15 * 60, pt->tz);
    gen_out_lit(o, "\",\"primarySource\":true,\"location\":");
    gen_out_ref(o, "Location", pt->c->pools.loc[org_of(pt, e)].s);
    gen_out_lit(o, ",\"performer\":[{\"actor\":");
    gen_out_ref(o, "Practitioner", pt->c->pools.prac[e->prac].s);
    gen_out_lit(o, "}]");
    gen_out_end(o);
    return true;
}

static bool immunizations(gen_pat *pt, const gen_enc *e)
{
    double age = gen_age(pt, e->start);
    if (age >= 0.5 && gen_rng_chance(pt->r, 0.8) &&
        !write_immunization(pt, e, &vac_flu))
        return false;
    for (size_t i = 0; i < GEN_NELEM(schedule); i++) {
        if (age < schedule[i].min_age || age >= schedule[i].max_age)
            continue;
        if (!schedule[i].series) {
            if (pt->imm_given & (1u << i))
                continue;
            pt->imm_given |= 1u << i;
        }
        if (!write_immunization(pt, e, &schedule[i].code))
            return false;
    }
    if (age >= 19 && e->start - pt->last_td > 10 * YEAR &&
        gen_rng_chance(pt->r, 0.5)) {
        pt->last_td = e->start;
        if (!write_immunization(pt, e, &vac_td))
            return false;
    }
    return true;
}

/* a short plain-text clinical note, base64 in the attachment */
static bool write_document(gen_pat *pt, const gen_enc *e, const gen_code *acute)
{
    static const gen_code hp = { "34117-2", "History and physical note" };
    static const gen_code progress = { "11506-3", "Progress note" };
    char text[4096];
    gen_out s = { .fd = -1, .buf = text, .cap = sizeof(text) };
    const gen_pools *pl = &pt->c->pools;
    bool wellness = e->kind == EK_WELL_CHILD || e->kind == EK_GENERAL_EXAM;

    gen_out_lit(&s, "Encounter note\n\nDate: ");
    gen_out_date(&s, e->start);
    gen_out_lit(&s, "\nPatient: ");
    gen_out_raw(&s, pt->name);
    gen_out_raw(&s, pt->gender == 'm' ? " (male, " : " (female, ");
    gen_out_int(&s, (int64_t)gen_age(pt, e->start));
    gen_out_lit(&s, " years)\nVisit: ");
    gen_out_raw(&s, kinds[e->kind].type.display);
    gen_out_lit(&s, "\nProvider: ");
    gen_out_raw(&s, pl->prac_name[e->prac]);
    gen_out_lit(&s, ", ");
    gen_out_raw(&s, pl->org_name[org_of(pt, e)]);
    gen_out_lit(&s, "\n\n# Assessment and plan\n");
    if (acute) {
        gen_out_lit(&s, "- \"");
        gen_out_raw(&s, acute->display);
        gen_out_lit(&s, "\": symptomatic care; return if not improving.\n");
    }
    for (int i = 0; i < pt->n_chronic; i++) {
        if (!pt->chronic[i].recorded)
            continue;
        gen_out_lit(&s, "- ");
        gen_out_raw(&s, gen_chronic_defs[pt->chronic[i].kind].code.display);
        gen_out_lit(&s, ": stable, continue current plan.\n");
    }
    if (wellness)
        gen_out_lit(&s,
                    "- Routine health maintenance; immunizations reviewed.\n");
    gen_out_lit(&s, "\n\tSigned electronically.\n");

    gen_out *o = &pt->c->out[GT_DOCUMENT_REFERENCE];
    gen_id id;
    gen_rng_uuid(pt->r, &id);
    if (!gen_out_begin(o, "DocumentReference", id.s))
        return false;
    note(pt, "DocumentReference", &id);
    gen_out_lit(o, ",\"status\":\"current\",\"type\":");
    gen_out_cc(o, SYS_LOINC, wellness ? &hp : &progress);
    gen_out_lit(
        o,
        ",\"category\":[{\"coding\":[{\"system\":"
        "\"http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category\","
        "\"code\":\"clinical-note\",\"display\":\"Clinical Note\"}]}],\"subject\":");
    gen_out_ref(o, "Patient", pt->id.s);
    gen_out_lit(o, ",\"date\":\"");
    gen_out_instant(o, e->end, 0, pt->tz);
    gen_out_lit(o, "\",\"author\":[");
    gen_out_ref(o, "Practitioner", pl->prac[e->prac].s);
    gen_out_lit(o, "],\"custodian\":");
    gen_out_ref(o, "Organization", pl->org[org_of(pt, e)].s);
    gen_out_lit(
        o,
        ",\"content\":[{\"attachment\":{\"contentType\":\"text/plain\",\"data\":\"");
    gen_out_b64(o, (const unsigned char *)text, s.len);
    gen_out_lit(
        o,
        "\",\"title\":\"Encounter note\"},\"format\":{\"system\":"
        "\"http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem\","
        "\"code\":\"urn:ihe:iti:xds:2017:mimeTypeSufficient\",\"display\":\"mimeType Sufficient\"}}],"
        "\"context\":{\"encounter\":[");
    gen_out_ref(o, "Encounter", e->id.s);
    gen_out_lit(o, "],\"period\":");
    out_period(o, pt, e->start, e->end);
    gen_out_lit(o, "}");
    gen_out_end(o);
    return true;
}

/* Provenance like Synthea's: who recorded the encounter's resources, and
 * when; `amended` is a later revision (activity UPDATE) of the same set. */
static bool write_provenance(gen_pat *pt, const gen_enc *e, int64_t recorded,
                             bool amended)
{
    gen_out *o = &pt->c->out[GT_PROVENANCE];
    const gen_pools *pl = &pt->c->pools;
    gen_id id;
    gen_rng_uuid(pt->prov_r, &id);
    if (!gen_out_begin(o, "Provenance", id.s))
        return false;
    gen_out_lit(o, ",\"target\":[");
    for (int i = 0; i < pt->n_tgt; i++) {
        if (i)
            gen_out_lit(o, ",");
        gen_out_ref(o, pt->tgt[i].type, pt->tgt[i].id.s);
    }
    gen_out_lit(o, "],\"recorded\":\"");
    gen_out_instant(o, recorded, 0, pt->tz);
    gen_out_lit(
        o,
        "\",\"activity\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/v3-DataOperation\",\"code\":\"");
    gen_out_raw(o, amended ? "UPDATE\",\"display\":\"revise"
                           : "CREATE\",\"display\":\"create");
    gen_out_lit(
        o,
        "\"}]},\"agent\":[{\"type\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/provenance-participant-type\","
        "\"code\":\"author\",\"display\":\"Author\"}],\"text\":\"Author\"},\"who\":");
    gen_out_ref(o, "Practitioner", pl->prac[e->prac].s);
    gen_out_lit(o, ",\"onBehalfOf\":");
    gen_out_ref(o, "Organization", pl->org[org_of(pt, e)].s);
    gen_out_lit(o, "}]");
    gen_out_end(o);
    return true;
}

/* one Provenance per encounter; about 1 in 5 amended later */
static bool provenance(gen_pat *pt, const gen_enc *e)
{
    if (!write_provenance(pt, e, e->end, false))
        return false;
    if (gen_rng_chance(pt->prov_r, 0.2)) {
        int64_t t = e->end + gen_rng_range(pt->prov_r, 3600, 30 * DAY);
        if (t > pt->c->now)
            t = pt->c->now;
        if (t > e->end && !write_provenance(pt, e, t, true))
            return false;
    }
    return true;
}

static bool encounter_records(gen_pat *pt, gen_enc *e);

bool gen_encounter(gen_pat *pt, gen_enc *e)
{
    pt->n_tgt = 0;
    return encounter_records(pt, e) && provenance(pt, e);
}

static bool encounter_records(gen_pat *pt, gen_enc *e)
{
    gen_rng *r = pt->r;
    double age = gen_age(pt, e->start);
    bool wellness = e->kind == EK_WELL_CHILD || e->kind == EK_GENERAL_EXAM;

    if (!write_encounter(pt, e))
        return false;

    /* chronic conditions are recorded at the first visit after onset */
    for (int i = 0; i < pt->n_chronic; i++) {
        gen_chronic *c = &pt->chronic[i];
        if (c->recorded || c->onset > e->start)
            continue;
        if (!write_condition(pt, e, &c->id, &gen_chronic_defs[c->kind].code,
                             c->onset, 0))
            return false;
        c->recorded = true;
    }
    const gen_acute_def *acute = e->kind != EK_FOLLOWUP && e->acute >= 0
                                     ? &gen_acute_defs[e->acute]
                                     : NULL;
    gen_id acute_id;
    if (acute) {
        gen_rng_uuid(r, &acute_id);
        int64_t onset = e->start - gen_rng_range(r, 1, 72) * 3600;
        if (onset < pt->birth)
            onset = e->start;
        if (!write_condition(pt, e, &acute_id, &acute->code, onset,
                             e->start + acute->abate_days * DAY))
            return false;
    }

    if (!gen_observations(pt, e))
        return false;

    /* procedures */
    if (acute && acute->proc &&
        !write_procedure(pt, e, acute->proc, 15, &acute_id))
        return false;
    if (wellness) {
        if (pt->n_active_meds > 0 &&
            !write_procedure(pt, e, &proc_medrec, 15, NULL))
            return false;
        if (age >= 12 && gen_rng_chance(r, 0.5) &&
            !write_procedure(pt, e, &proc_depression, 10, NULL))
            return false;
        if (age >= 18 && gen_rng_chance(r, 0.4) &&
            !write_procedure(pt, e, &proc_needs, 10, NULL))
            return false;
        if (pt->gender == 'f' && age >= 40 &&
            e->start - pt->last_mammography > 2 * YEAR) {
            pt->last_mammography = e->start;
            if (!write_procedure(pt, e, &proc_mammo, 20, NULL))
                return false;
        }
        if (age >= 50 && e->start - pt->last_colonoscopy > 10 * YEAR &&
            gen_rng_chance(r, 0.3)) {
            pt->last_colonoscopy = e->start;
            if (!write_procedure(pt, e, &proc_colonoscopy, 30, NULL))
                return false;
        }
    }
    if (e->kind == EK_FOLLOWUP) {
        const gen_chronic *c = &pt->chronic[e->acute];
        if (c->kind == CH_ASTHMA &&
            !write_procedure(pt, e, &proc_spirometry, 15, &c->id))
            return false;
        if (c->kind == CH_AFIB &&
            !write_procedure(pt, e, &proc_ecg, 10, &c->id))
            return false;
    }

    /* medications */
    if (acute && acute->med &&
        !write_medication(pt, e, acute->med, &acute_id, false))
        return false;
    if (wellness || e->kind == EK_FOLLOWUP) {
        for (int i = 0; i < pt->n_chronic; i++) {
            const gen_chronic *c = &pt->chronic[i];
            const gen_chronic_def *d = &gen_chronic_defs[c->kind];
            if (!c->recorded || !d->med)
                continue;
            if (!write_medication(pt, e, d->med, &c->id, true))
                return false;
            if (d->med2 && !write_medication(pt, e, d->med2, &c->id, true))
                return false;
            pt->n_active_meds++;
        }
    }

    if (wellness && !immunizations(pt, e))
        return false;

    if ((wellness || e->kind == EK_EMERGENCY || e->kind == EK_INPATIENT ||
         gen_rng_chance(r, 0.25)) &&
        !write_document(pt, e, acute ? &acute->code : NULL))
        return false;
    return true;
}
