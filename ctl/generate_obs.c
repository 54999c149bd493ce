/* generate: Observations (vital signs, survey, labs) and DiagnosticReports
 * of one encounter.  Every effectiveDateTime lies inside the encounter. */
#include "generate_out.h"

#define DAY 86400LL

typedef struct lab_def {
    gen_code code;
    const char *unit;
    double mean, sd, lo, hi;
    int frac;
} lab_def;

static const lab_def lipid_panel[] = {
    { { "2093-3", "Total Cholesterol" }, "mg/dL", 190, 30, 120, 300, 1 },
    { { "2571-8", "Triglycerides" }, "mg/dL", 130, 45, 40, 400, 1 },
    { { "18262-6", "Low Density Lipoprotein Cholesterol" },
      "mg/dL",
      110,
      28,
      40,
      220,
      1 },
    { { "2085-9", "High Density Lipoprotein Cholesterol" },
      "mg/dL",
      55,
      12,
      25,
      100,
      1 },
};
static const lab_def metabolic_panel[] = {
    { { "2339-0", "Glucose" }, "mg/dL", 92, 12, 65, 140, 1 },
    { { "6299-2", "Urea Nitrogen" }, "mg/dL", 14, 4, 5, 30, 1 },
    { { "38483-4", "Creatinine" }, "mg/dL", 0.95, 0.2, 0.5, 1.6, 2 },
    { { "49765-1", "Calcium" }, "mg/dL", 9.4, 0.4, 8.4, 10.5, 1 },
    { { "2947-0", "Sodium" }, "mmol/L", 140, 2, 134, 147, 1 },
    { { "6298-4", "Potassium" }, "mmol/L", 4.2, 0.35, 3.4, 5.3, 1 },
    { { "2069-3", "Chloride" }, "mmol/L", 103, 2.5, 97, 110, 1 },
    { { "20565-8", "Carbon Dioxide" }, "mmol/L", 25, 2.5, 20, 31, 1 },
};
static const lab_def blood_count[] = {
    { { "6690-2", "Leukocytes [#/volume] in Blood by Automated count" },
      "10*3/uL",
      7,
      1.8,
      3.5,
      12,
      1 },
    { { "789-8", "Erythrocytes [#/volume] in Blood by Automated count" },
      "10*6/uL",
      4.7,
      0.4,
      3.8,
      5.9,
      2 },
    { { "718-7", "Hemoglobin [Mass/volume] in Blood" },
      "g/dL",
      14,
      1.3,
      10.5,
      17.5,
      1 },
    { { "4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count" },
      "%",
      42,
      3.5,
      32,
      52,
      1 },
    { { "787-2", "MCV [Entitic volume] by Automated count" },
      "fL",
      90,
      5,
      78,
      102,
      1 },
    { { "785-6", "MCH [Entitic mass] by Automated count" },
      "pg",
      30,
      1.8,
      26,
      34,
      1 },
    { { "786-4", "MCHC [Mass/volume] by Automated count" },
      "g/dL",
      33.5,
      1,
      31,
      36,
      1 },
    { { "21000-5",
        "Erythrocyte distribution width [Entitic volume] by Automated count" },
      "fL",
      42,
      3,
      37,
      50,
      1 },
    { { "777-3", "Platelets [#/volume] in Blood by Automated count" },
      "10*3/uL",
      260,
      55,
      140,
      450,
      1 },
};
static const gen_code panel_lipid = { "57698-3", "Lipid Panel" };
static const gen_code panel_bmp = { "51990-0", "Basic Metabolic Panel" };
static const gen_code panel_cbc = {
    "58410-2",
    "Complete blood count (hemogram) panel - Blood by Automated count"
};
static const gen_code code_a1c = { "4548-4",
                                   "Hemoglobin A1c/Hemoglobin.total in Blood" };

static const gen_code v_height = { "8302-2", "Body Height" };
static const gen_code v_weight = { "29463-7", "Body Weight" };
static const gen_code v_bmi = { "39156-5", "Body Mass Index" };
static const gen_code v_bmi_pct = {
    "59576-9", "Body mass index (BMI) [Percentile] Per age and gender"
};
static const gen_code v_wfl = { "77606-2",
                                "Weight-for-length Per age and sex" };
static const gen_code v_head = { "9843-4",
                                 "Head Occipital-frontal circumference" };
static const gen_code v_bp = { "85354-9", "Blood Pressure" };
static const gen_code v_dia = { "8462-4", "Diastolic Blood Pressure" };
static const gen_code v_sys = { "8480-6", "Systolic Blood Pressure" };
static const gen_code v_hr = { "8867-4", "Heart rate" };
static const gen_code v_rr = { "9279-1", "Respiratory rate" };
static const gen_code v_temp = { "8310-5", "Body temperature" };
static const gen_code v_spo2 = { "2708-6",
                                 "Oxygen saturation in Arterial blood" };
static const gen_code v_pain = {
    "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
};
static const gen_code s_smoking = { "72166-2", "Tobacco smoking status NHIS" };
static const gen_code smoking[] = {
    { "266919005", "Never smoker" },
    { "8517006", "Ex-smoker (finding)" },
    { "449868002", "Smokes tobacco daily (finding)" },
};

bool gen_has_chronic(const gen_pat *pt, int kind)
{
    for (int i = 0; i < pt->n_chronic; i++)
        if (pt->chronic[i].kind == kind && pt->chronic[i].recorded)
            return true;
    return false;
}

/* begin an Observation up to and including "issued" */
static bool obs_head(gen_pat *pt, const gen_enc *e, gen_id *id, const char *cat,
                     const gen_code *code, int64_t t)
{
    gen_out *o = &pt->c->out[GT_OBSERVATION];
    gen_rng_uuid(pt->r, id);
    if (!gen_out_begin(o, "Observation", id->s))
        return false;
    gen_out_lit(
        o,
        ",\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"");
    gen_out_raw(o, cat);
    gen_out_lit(o, "\",\"display\":\"");
    gen_out_raw(o, cat[0] == 'v'   ? "Vital Signs"
                   : cat[0] == 'l' ? "Laboratory"
                                   : "Survey");
    gen_out_lit(o, "\"}]}],\"code\":");
    gen_out_cc(o, SYS_LOINC, code);
    gen_out_lit(o, ",\"subject\":");
    gen_out_ref(o, "Patient", pt->id.s);
    gen_out_lit(o, ",\"encounter\":");
    gen_out_ref(o, "Encounter", e->id.s);
    gen_out_lit(o, ",\"effectiveDateTime\":\"");
    gen_out_datetime(o, t, pt->tz);
    gen_out_lit(o, "\",\"issued\":\"");
    gen_out_instant(o, t, (int)gen_rng_range(pt->r, 0, 999), pt->tz);
    gen_out_lit(o, "\"");
    return true;
}

static void out_qty(gen_out *o, double v, int frac, const char *unit)
{
    gen_out_lit(o, "{\"value\":");
    gen_out_dec(o, v, frac);
    gen_out_lit(o, ",\"unit\":\"");
    gen_out_raw(o, unit);
    gen_out_lit(o, "\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"");
    gen_out_raw(o, unit);
    gen_out_lit(o, "\"}");
}

static bool obs_qty(gen_pat *pt, const gen_enc *e, const char *cat,
                    const gen_code *code, int64_t t, double v, int frac,
                    const char *unit, gen_id *id_out)
{
    gen_id id;
    gen_out *o = &pt->c->out[GT_OBSERVATION];
    if (!obs_head(pt, e, &id, cat, code, t))
        return false;
    gen_out_lit(o, ",\"valueQuantity\":");
    out_qty(o, v, frac, unit);
    gen_out_end(o);
    if (id_out)
        *id_out = id;
    return true;
}

/* fraction of adult height by age in years (piecewise linear, 0..18) */
static double height_at(const gen_pat *pt, double age)
{
    static const double frac[] = { 0.29, 0.43, 0.50, 0.55, 0.59, 0.63, 0.67,
                                   0.70, 0.73, 0.76, 0.79, 0.82, 0.85, 0.89,
                                   0.93, 0.96, 0.98, 0.99, 1.0 };
    if (age >= 18)
        return pt->adult_height;
    if (age < 0)
        age = 0;
    int i = (int)age;
    return pt->adult_height * (frac[i] + (frac[i + 1] - frac[i]) * (age - i));
}

static bool vitals(gen_pat *pt, const gen_enc *e, int64_t t, bool full,
                   bool sick)
{
    gen_rng *r = pt->r;
    gen_out *o = &pt->c->out[GT_OBSERVATION];
    double age = gen_age(pt, t);
    bool htn = gen_has_chronic(pt, CH_HYPERTENSION);
    const char *vs = "vital-signs";
    if (full) {
        double h = height_at(pt, age);
        double bmi = age >= 18 ? pt->bmi + gen_rng_normal(r, 0, 0.6, -2, 2)
                               : gen_rng_normal(r, 16.5, 1.2, 13, 22);
        double w = bmi * (h / 100) * (h / 100);
        if (!obs_qty(pt, e, vs, &v_height, t, h, 1, "cm", NULL) ||
            !obs_qty(pt, e, vs, &v_weight, t, w, 1, "kg", NULL))
            return false;
        if (age < 2) {
            if (!obs_qty(pt, e, vs, &v_wfl, t, gen_rng_range(r, 5, 95), 0, "%",
                         NULL))
                return false;
        } else if (!obs_qty(pt, e, vs, &v_bmi, t, bmi, 1, "kg/m2", NULL)) {
            return false;
        }
        if (age >= 2 && age < 18 &&
            !obs_qty(pt, e, vs, &v_bmi_pct, t, gen_rng_range(r, 5, 95), 0, "%",
                     NULL))
            return false;
        if (age < 3 &&
            !obs_qty(pt, e, vs, &v_head, t,
                     35 + 13 * (age < 2.5 ? age / 2.5 : 1.0), 1, "cm", NULL))
            return false;
    }
    if (age >= 3) {
        gen_id id;
        double sys = age < 18
                         ? gen_rng_normal(r, 105, 8, 85, 130)
                         : gen_rng_normal(r, 112 + age * 0.25 + (htn ? 18 : 0),
                                          10, 90, 190);
        double dia = age < 18
                         ? gen_rng_normal(r, 66, 6, 50, 85)
                         : gen_rng_normal(r, 76 + (htn ? 10 : 0), 7, 55, 115);
        if (!obs_head(pt, e, &id, vs, &v_bp, t))
            return false;
        gen_out_lit(o, ",\"component\":[{\"code\":");
        gen_out_cc(o, SYS_LOINC, &v_dia);
        gen_out_lit(o, ",\"valueQuantity\":");
        out_qty(o, dia, 0, "mm[Hg]");
        gen_out_lit(o, "},{\"code\":");
        gen_out_cc(o, SYS_LOINC, &v_sys);
        gen_out_lit(o, ",\"valueQuantity\":");
        out_qty(o, sys, 0, "mm[Hg]");
        gen_out_lit(o, "}]");
        gen_out_end(o);
    }
    double hr = age < 1 ? gen_rng_normal(r, 130, 12, 100, 170)
                : age < 12
                    ? gen_rng_normal(r, 95, 12, 65, 130)
                    : gen_rng_normal(r, 74 + (sick ? 12 : 0), 10, 48, 130);
    double rr = age < 1    ? gen_rng_normal(r, 38, 5, 25, 55)
                : age < 12 ? gen_rng_normal(r, 22, 3, 16, 32)
                           : gen_rng_normal(r, 15 + (sick ? 3 : 0), 2, 10, 28);
    if (!obs_qty(pt, e, vs, &v_hr, t, hr, 0, "/min", NULL) ||
        !obs_qty(pt, e, vs, &v_rr, t, rr, 0, "/min", NULL))
        return false;
    if ((sick || gen_rng_chance(r, 0.4)) &&
        !obs_qty(pt, e, vs, &v_temp, t,
                 sick ? gen_rng_normal(r, 37.8, 0.6, 36.4, 40.0)
                      : gen_rng_normal(r, 36.8, 0.25, 36.1, 37.4),
                 1, "Cel", NULL))
        return false;
    if (sick && e->kind != EK_SYMPTOM && e->kind != EK_PROBLEM &&
        !obs_qty(pt, e, vs, &v_spo2, t, gen_rng_normal(r, 96.5, 1.5, 88, 100),
                 0, "%", NULL))
        return false;
    if (age >= 3 && (full || sick) &&
        !obs_qty(pt, e, vs, &v_pain, t,
                 (double)gen_rng_range(r, 0, sick ? 8 : 3), 0, "{score}", NULL))
        return false;
    if (full && age >= 12) {
        gen_id id;
        if (!obs_head(pt, e, &id, "survey", &s_smoking, t))
            return false;
        gen_out_lit(o, ",\"valueCodeableConcept\":");
        gen_out_cc(o, SYS_SNOMED, &smoking[age < 18 ? 0 : pt->smoker]);
        gen_out_end(o);
    }
    return true;
}

static bool lab_panel(gen_pat *pt, const gen_enc *e, int64_t t,
                      const gen_code *panel, const lab_def *labs, size_t n)
{
    gen_id ids[16];
    gen_rng *r = pt->r;
    bool diabetic = gen_has_chronic(pt, CH_DIABETES),
         hyperlip = gen_has_chronic(pt, CH_HYPERLIPIDEMIA);
    for (size_t i = 0; i < n; i++) {
        const lab_def *d = &labs[i];
        double mean = d->mean;
        if (diabetic && labs == metabolic_panel && i == 0)
            mean = 150;
        if (hyperlip && labs == lipid_panel && (i == 0 || i == 2))
            mean *= 1.25;
        double v = gen_rng_normal(r, mean, d->sd, d->lo,
                                  diabetic && i == 0 ? 260 : d->hi);
        if (!obs_qty(pt, e, "laboratory", &d->code, t, v, d->frac, d->unit,
                     &ids[i]))
            return false;
    }
    gen_out *o = &pt->c->out[GT_DIAGNOSTIC_REPORT];
    gen_id id;
    gen_rng_uuid(r, &id);
    if (!gen_out_begin(o, "DiagnosticReport", id.s))
        return false;
    gen_out_lit(
        o, ",\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":"
           "\"http://terminology.hl7.org/CodeSystem/v2-0074\",\"code\":\"LAB\","
           "\"display\":\"Laboratory\"}]}],\"code\":");
    gen_out_cc(o, SYS_LOINC, panel);
    gen_out_lit(o, ",\"subject\":");
    gen_out_ref(o, "Patient", pt->id.s);
    gen_out_lit(o, ",\"encounter\":");
    gen_out_ref(o, "Encounter", e->id.s);
    gen_out_lit(o, ",\"effectiveDateTime\":\"");
    gen_out_datetime(o, t, pt->tz);
    gen_out_lit(o, "\",\"issued\":\"");
    gen_out_instant(o, t + 60, (int)gen_rng_range(r, 0, 999), pt->tz);
    gen_out_lit(o, "\",\"performer\":[");
    gen_out_ref(o, "Organization",
                pt->c->pools.org[(size_t)e->prac % pt->c->pools.n_org].s);
    gen_out_lit(o, "],\"result\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            gen_out_lit(o, ",");
        gen_out_lit(o, "{\"reference\":\"Observation/");
        gen_out_raw(o, ids[i].s);
        gen_out_lit(o, "\",\"display\":");
        gen_out_str(o, labs[i].code.display);
        gen_out_lit(o, "}");
    }
    gen_out_lit(o, "]");
    gen_out_end(o);
    return true;
}

static bool a1c(gen_pat *pt, const gen_enc *e, int64_t t)
{
    double v = gen_has_chronic(pt, CH_DIABETES)
                   ? gen_rng_normal(pt->r, 7.6, 0.8, 6.5, 11)
               : gen_has_chronic(pt, CH_PREDIABETES)
                   ? gen_rng_normal(pt->r, 6.0, 0.2, 5.7, 6.4)
                   : gen_rng_normal(pt->r, 5.3, 0.2, 4.6, 5.6);
    return obs_qty(pt, e, "laboratory", &code_a1c, t, v, 1, "%", NULL);
}

bool gen_observations(gen_pat *pt, const gen_enc *e)
{
    gen_rng *r = pt->r;
    int64_t t = e->start + 5 * 60; /* vitals five minutes in */
    double age = gen_age(pt, t);
    int64_t lab_t = e->start + 10 * 60;
    bool ok = true;

    switch (e->kind) {
    case EK_WELL_CHILD:
    case EK_GENERAL_EXAM:
        ok = vitals(pt, e, t, true, false);
        if (ok && age >= 18) {
            bool lipid = gen_has_chronic(pt, CH_HYPERLIPIDEMIA) ||
                         e->start - pt->last_lipid > 3 * 365 * DAY;
            if (lipid) {
                pt->last_lipid = e->start;
                ok = lab_panel(pt, e, lab_t, &panel_lipid, lipid_panel,
                               GEN_NELEM(lipid_panel));
            }
            if (ok &&
                (gen_rng_chance(r, 0.35) || gen_has_chronic(pt, CH_DIABETES)))
                ok = lab_panel(pt, e, lab_t, &panel_bmp, metabolic_panel,
                               GEN_NELEM(metabolic_panel));
            if (ok &&
                (gen_rng_chance(r, 0.2) || gen_has_chronic(pt, CH_ANEMIA)))
                ok = lab_panel(pt, e, lab_t, &panel_cbc, blood_count,
                               GEN_NELEM(blood_count));
            if (ok && (gen_has_chronic(pt, CH_DIABETES) ||
                       gen_has_chronic(pt, CH_PREDIABETES) ||
                       gen_rng_chance(r, 0.15)))
                ok = a1c(pt, e, lab_t);
        }
        break;
    case EK_FOLLOWUP:
        ok = vitals(pt, e, t, false, false) &&
             obs_qty(pt, e, "vital-signs", &v_weight, t,
                     pt->bmi * pt->adult_height * pt->adult_height / 10000.0 +
                         gen_rng_normal(r, 0, 1.5, -4, 4),
                     1, "kg", NULL);
        if (ok && gen_has_chronic(pt, CH_DIABETES))
            ok = a1c(pt, e, lab_t) &&
                 lab_panel(pt, e, lab_t, &panel_bmp, metabolic_panel,
                           GEN_NELEM(metabolic_panel));
        break;
    case EK_INPATIENT: {
        int days = (int)((e->end - e->start) / DAY);
        for (int d = 0; ok && d < days; d++)
            ok = vitals(pt, e, e->start + d * DAY + 2 * 3600, d == 0, true);
        if (ok)
            ok = lab_panel(pt, e, lab_t, &panel_cbc, blood_count,
                           GEN_NELEM(blood_count)) &&
                 lab_panel(pt, e, lab_t, &panel_bmp, metabolic_panel,
                           GEN_NELEM(metabolic_panel));
        break;
    }
    default: /* symptom, problem, urgent care, emergency */
        ok = vitals(pt, e, t, false, true);
        if (ok && e->kind == EK_EMERGENCY && age >= 18 &&
            gen_rng_chance(r, 0.4))
            ok = lab_panel(pt, e, lab_t, &panel_cbc, blood_count,
                           GEN_NELEM(blood_count));
        break;
    }
    return ok;
}
