/* generate: one Patient, its planned encounter history, allergies. */
#include "generate_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400LL
#define YEAR ((int64_t)(365.2425 * 86400))

/* ---- chronic and acute condition tables ------------------------------ */
static const gen_code med_hctz = { "310798",
                                   "Hydrochlorothiazide 25 MG Oral Tablet" };
static const gen_code med_lisinopril = { "314076",
                                         "lisinopril 10 MG Oral Tablet" };
static const gen_code med_metformin = {
    "860975",
    "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"
};
static const gen_code med_simva = { "314231", "Simvastatin 10 MG Oral Tablet" };
static const gen_code med_albuterol = {
    "2123111",
    "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"
};
static const gen_code med_flutic = {
    "895994",
    "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"
};
static const gen_code med_naproxen = { "849574",
                                       "Naproxen sodium 220 MG Oral Tablet" };
static const gen_code med_iron = { "310325",
                                   "ferrous sulfate 325 MG Oral Tablet" };
static const gen_code med_warfarin = { "855332",
                                       "Warfarin Sodium 5 MG Oral Tablet" };
static const gen_code med_digoxin = { "197604",
                                      "Digoxin 0.125 MG Oral Tablet" };
static const gen_code med_apap = { "313782",
                                   "Acetaminophen 325 MG Oral Tablet" };
static const gen_code med_amox = { "308182",
                                   "Amoxicillin 250 MG Oral Capsule" };
static const gen_code med_penv = {
    "834061", "Penicillin V Potassium 250 MG Oral Tablet"
};
static const gen_code med_ibu = { "310965", "Ibuprofen 200 MG Oral Tablet" };
static const gen_code proc_resp = {
    "23426006", "Measurement of respiratory function (procedure)"
};
static const gen_code proc_throat = { "117015009",
                                      "Throat culture (procedure)" };
static const gen_code proc_suture = { "288086009", "Suture open wound" };
static const gen_code proc_immob = { "274474001", "Bone immobilization" };
static const gen_code proc_xray = { "399208008",
                                    "Plain chest X-ray (procedure)" };

const gen_chronic_def gen_chronic_defs[] = {
    [CH_HYPERTENSION] = { { "59621000", "Hypertension" },
                          30,
                          0.28,
                          &med_hctz,
                          &med_lisinopril },
    [CH_PREDIABETES] = { { "15777000", "Prediabetes" }, 25, 0.15, NULL, NULL },
    [CH_DIABETES] = { { "44054006", "Diabetes mellitus type 2 (disorder)" },
                      35,
                      0.09,
                      &med_metformin,
                      NULL },
    [CH_HYPERLIPIDEMIA] = { { "55822004", "Hyperlipidemia" },
                            35,
                            0.18,
                            &med_simva,
                            NULL },
    [CH_ASTHMA] = { { "195967001", "Asthma" },
                    2,
                    0.07,
                    &med_albuterol,
                    &med_flutic },
    [CH_OBESITY] = { { "162864005", "Body mass index 30+ - obesity (finding)" },
                     18,
                     0.0,
                     NULL,
                     NULL },
    [CH_CHRONIC_SINUSITIS] = { { "40055000", "Chronic sinusitis (disorder)" },
                               10,
                               0.05,
                               NULL,
                               NULL },
    [CH_OSTEOARTHRITIS] = { { "239873007", "Osteoarthritis of knee" },
                            50,
                            0.12,
                            &med_naproxen,
                            NULL },
    [CH_ANEMIA] = { { "271737000", "Anemia (disorder)" },
                    12,
                    0.05,
                    &med_iron,
                    NULL },
    [CH_AFIB] = { { "49436004", "Atrial Fibrillation" },
                  60,
                  0.06,
                  &med_warfarin,
                  &med_digoxin },
};
const size_t gen_chronic_defs_n = GEN_NELEM(gen_chronic_defs);

/* 0..6 illnesses (clinic visits), 7 pneumonia (inpatient), 8.. injuries
 * (emergency) */
#define ACUTE_PNEUMONIA 7
#define ACUTE_INJURY_FIRST 8
const gen_acute_def gen_acute_defs[] = {
    { { "444814009", "Viral sinusitis (disorder)" }, 14, 0, &med_apap, NULL },
    { { "195662009", "Acute viral pharyngitis (disorder)" },
      10,
      0,
      &med_apap,
      NULL },
    { { "10509002", "Acute bronchitis (disorder)" },
      14,
      0,
      &med_apap,
      &proc_resp },
    { { "65363002", "Otitis media" }, 14, 12, &med_amox, NULL },
    { { "43878008", "Streptococcal sore throat (disorder)" },
      10,
      0,
      &med_penv,
      &proc_throat },
    { { "444814009", "Viral sinusitis (disorder)" }, 14, 0, NULL, NULL },
    { { "195662009", "Acute viral pharyngitis (disorder)" },
      10,
      0,
      NULL,
      NULL },
    { { "233604007", "Pneumonia (disorder)" }, 21, 0, &med_amox, &proc_xray },
    { { "44465007", "Sprain of ankle" }, 28, 0, &med_ibu, NULL },
    { { "70704007", "Sprain of wrist" }, 28, 0, &med_ibu, NULL },
    { { "284551006", "Laceration of foot" }, 21, 0, NULL, &proc_suture },
    { { "39848009", "Whiplash injury to neck" }, 21, 0, &med_naproxen, NULL },
    { { "403190006", "First degree burn" }, 14, 0, NULL, NULL },
    { { "62106007", "Concussion with no loss of consciousness" },
      28,
      0,
      NULL,
      NULL },
    { { "65966004", "Fracture of forearm" }, 56, 0, &med_ibu, &proc_immob },
};
const size_t gen_acute_defs_n = GEN_NELEM(gen_acute_defs);

double gen_age(const gen_pat *pt, int64_t t)
{
    return (double)(t - pt->birth) / (double)YEAR;
}

/* ---- Patient resource ------------------------------------------------- */
static const struct {
    const char *code, *display;
    double w;
} races[] = {
    { "2106-3", "White", 0.70 },
    { "2054-5", "Black or African American", 0.12 },
    { "2028-9", "Asian", 0.08 },
    { "1002-5", "American Indian or Alaska Native", 0.02 },
    { "2131-1", "Other Race", 0.08 },
};

static void write_patient(gen_pat *pt, uint64_t index, gen_rng *r)
{
    gen_out *o = &pt->c->out[GT_PATIENT];
    double age = gen_age(pt, pt->c->now);
    double u = gen_rng_unit(r), acc = 0;
    size_t race = 0;
    for (race = 0; race < GEN_NELEM(races) - 1; race++) {
        acc += races[race].w;
        if (u < acc)
            break;
    }
    bool hispanic = gen_rng_chance(r, 0.13);

    gen_out_lit(
        o,
        ",\"meta\":{\"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"]}");
    gen_out_lit(
        o,
        ",\"extension\":[{\"url\":\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race\","
        "\"extension\":[{\"url\":\"ombCategory\",\"valueCoding\":{\"system\":"
        "\"urn:oid:2.16.840.1.113883.6.238\",\"code\":\"");
    gen_out_raw(o, races[race].code);
    gen_out_lit(o, "\",\"display\":\"");
    gen_out_raw(o, races[race].display);
    gen_out_lit(o, "\"}},{\"url\":\"text\",\"valueString\":\"");
    gen_out_raw(o, races[race].display);
    gen_out_lit(
        o,
        "\"}]},{\"url\":\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity\","
        "\"extension\":[{\"url\":\"ombCategory\",\"valueCoding\":{\"system\":"
        "\"urn:oid:2.16.840.1.113883.6.238\",\"code\":\"");
    gen_out_raw(o, hispanic ? "2135-2\",\"display\":\"Hispanic or Latino"
                            : "2186-5\",\"display\":\"Not Hispanic or Latino");
    gen_out_lit(o, "\"}},{\"url\":\"text\",\"valueString\":\"");
    gen_out_raw(o, hispanic ? "Hispanic or Latino" : "Not Hispanic or Latino");
    gen_out_lit(
        o,
        "\"}]},{\"url\":\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex\","
        "\"valueCode\":\"");
    gen_out_raw(o, pt->gender == 'm' ? "M" : "F");
    gen_out_lit(o, "\"}]");

    gen_out_lit(
        o,
        ",\"identifier\":[{\"type\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"MR\","
        "\"display\":\"Medical Record Number\"}],\"text\":\"Medical Record Number\"},"
        "\"system\":\"http://hospital.example.org/mrn\",\"value\":\"MRN");
    gen_out_int(o, 1000000 + (int64_t)index);
    gen_out_lit(
        o,
        "\"},{\"type\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"SS\","
        "\"display\":\"Social Security Number\"}],\"text\":\"Social Security Number\"},"
        "\"system\":\"http://hl7.org/fhir/sid/us-ssn\",\"value\":\"999-");
    gen_out_int(o, gen_rng_range(r, 10, 99));
    gen_out_lit(o, "-");
    gen_out_int(o, gen_rng_range(r, 1000, 9999));
    gen_out_lit(o, "\"}]");

    gen_out_lit(o, ",\"name\":[{\"use\":\"official\",\"family\":");
    gen_out_str(o, pt->family);
    gen_out_lit(o, ",\"given\":[");
    gen_out_str(o, pt->given);
    gen_out_lit(o, "]");
    if (age >= 18)
        gen_out_raw(o, pt->gender == 'm' ? ",\"prefix\":[\"Mr.\"]"
                                         : ",\"prefix\":[\"Ms.\"]");
    gen_out_lit(o, "}],\"telecom\":[{\"system\":\"phone\",\"value\":\"555-");
    gen_out_int(o, gen_rng_range(r, 100, 999));
    gen_out_lit(o, "-");
    gen_out_int(o, gen_rng_range(r, 1000, 9999));
    gen_out_lit(o, "\",\"use\":\"home\"}],\"gender\":");
    gen_out_raw(o, pt->gender == 'm' ? "\"male\"" : "\"female\"");
    gen_out_lit(o, ",\"birthDate\":\"");
    gen_out_date(o, pt->birth);
    const gen_city *city =
        &gen_cities[gen_rng_range(r, 0, (int64_t)gen_cities_n - 1)];
    gen_out_lit(o, "\",\"address\":[{\"use\":\"home\",\"line\":[\"");
    gen_out_int(o, gen_rng_range(r, 1, 999));
    gen_out_lit(o, " ");
    gen_out_esc(o,
                gen_streets[gen_rng_range(r, 0, (int64_t)gen_streets_n - 1)]);
    if (gen_rng_chance(r, 0.2)) {
        gen_out_lit(o, "\",\"Apt ");
        gen_out_int(o, gen_rng_range(r, 1, 40));
    }
    gen_out_lit(o, "\"],\"city\":");
    gen_out_str(o, city->name);
    gen_out_lit(o, ",\"state\":\"MA\",\"postalCode\":\"");
    gen_out_raw(o, city->zip);
    gen_out_lit(o, "\",\"country\":\"US\"}]");
    if (age >= 18) {
        static const char *const ms[][2] = {
            { "M", "Married" },
            { "S", "Never Married" },
            { "D", "Divorced" },
            { "W", "Widowed" },
        };
        int k = age > 70 && gen_rng_chance(r, 0.3)
                    ? 3
                    : (int)gen_rng_range(r, 0, 2);
        gen_out_lit(
            o,
            ",\"maritalStatus\":{\"coding\":[{\"system\":"
            "\"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus\",\"code\":\"");
        gen_out_raw(o, ms[k][0]);
        gen_out_lit(o, "\",\"display\":\"");
        gen_out_raw(o, ms[k][1]);
        gen_out_lit(o, "\"}],\"text\":\"");
        gen_out_raw(o, ms[k][1]);
        gen_out_lit(o, "\"}");
    }
    gen_out_lit(
        o,
        ",\"multipleBirthBoolean\":false,\"communication\":[{\"language\":{\"coding\":"
        "[{\"system\":\"urn:ietf:bcp:47\",\"code\":");
    gen_out_raw(o, hispanic && gen_rng_chance(r, 0.5)
                       ? "\"es\",\"display\":\"Spanish\""
                       : "\"en-US\",\"display\":\"English (United States)\"");
    gen_out_lit(o, "}]}}],\"generalPractitioner\":[");
    gen_out_ref(o, "Practitioner", pt->c->pools.prac[pt->prac].s);
    gen_out_lit(o, "],\"managingOrganization\":");
    gen_out_ref(o, "Organization",
                pt->c->pools.org[(size_t)pt->prac % pt->c->pools.n_org].s);
    gen_out_end(o);
}

/* ---- allergies ---------------------------------------------------------- */
static const struct {
    gen_code code;
    const char *category;
} allergies[] = {
    { { "91935009", "Allergy to peanuts" }, "food" },
    { { "91934008", "Allergy to nut" }, "food" },
    { { "300913006", "Shellfish allergy" }, "food" },
    { { "425525006", "Allergy to dairy product" }, "food" },
    { { "419474003", "Allergy to mould" }, "environment" },
    { { "232347008", "Dander (animal) allergy" }, "environment" },
    { { "418689008", "Allergy to grass pollen" }, "environment" },
    { { "232350006", "House dust mite allergy" }, "environment" },
    { { "419263009", "Allergy to tree pollen" }, "environment" },
    { { "424213003", "Allergy to bee venom" }, "environment" },
    { { "91936005", "Allergy to penicillin" }, "medication" },
};

static bool write_allergies(gen_pat *pt, const gen_enc *first)
{
    gen_out *o = &pt->c->out[GT_ALLERGY];
    gen_rng *r = pt->r;
    if (!gen_rng_chance(r, 0.2))
        return true;
    int n = (int)gen_rng_range(r, 1, 3);
    size_t pick =
        (size_t)gen_rng_range(r, 0, (int64_t)GEN_NELEM(allergies) - 1);
    for (int i = 0; i < n; i++, pick = (pick + 3) % GEN_NELEM(allergies)) {
        gen_id id;
        gen_rng_uuid(r, &id);
        if (!gen_out_begin(o, "AllergyIntolerance", id.s))
            return false;
        gen_out_lit(
            o,
            ",\"clinicalStatus\":{\"coding\":[{\"system\":"
            "\"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical\","
            "\"code\":\"active\"}]},\"verificationStatus\":{\"coding\":[{\"system\":"
            "\"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification\","
            "\"code\":\"confirmed\"}]},\"type\":\"allergy\",\"category\":[\"");
        gen_out_raw(o, allergies[pick].category);
        gen_out_lit(o, "\"],\"criticality\":\"");
        gen_out_raw(o, gen_rng_chance(r, 0.2) ? "high" : "low");
        gen_out_lit(o, "\",\"code\":");
        gen_out_cc(o, SYS_SNOMED, &allergies[pick].code);
        gen_out_lit(o, ",\"patient\":");
        gen_out_ref(o, "Patient", pt->id.s);
        gen_out_lit(o, ",\"encounter\":");
        gen_out_ref(o, "Encounter", first->id.s);
        gen_out_lit(o, ",\"recordedDate\":\"");
        gen_out_datetime(o, first->start, pt->tz);
        gen_out_lit(o, "\",\"recorder\":");
        gen_out_ref(o, "Practitioner", pt->c->pools.prac[first->prac].s);
        if (gen_rng_chance(r, 0.5)) {
            gen_out_lit(
                o,
                ",\"reaction\":[{\"manifestation\":[{\"coding\":[{\"system\":"
                "\"http://snomed.info/sct\",");
            gen_out_raw(
                o,
                gen_rng_chance(r, 0.5)
                    ? "\"code\":\"247472004\",\"display\":\"Wheal (finding)\"}],\"text\":\"Wheal (finding)\""
                    : "\"code\":\"271807003\",\"display\":\"Eruption of skin (disorder)\"}],\"text\":\"Eruption of skin (disorder)\"");
            gen_out_lit(o, "}],\"severity\":\"");
            gen_out_raw(o, gen_rng_chance(r, 0.7) ? "mild" : "moderate");
            gen_out_lit(o, "\"}]");
        }
        gen_out_end(o);
    }
    return true;
}

/* ---- planning the encounter history ------------------------------------ */
static int cmp_enc(const void *a, const void *b)
{
    const gen_enc *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    return x->acute - y->acute;
}

static void add_enc(gen_enc *e, int *n, int64_t day_start, int kind, int acute,
                    gen_rng *r)
{
    if (*n >= GEN_MAX_ENC)
        return;
    gen_enc *x = &e[(*n)++];
    int64_t day = day_start - day_start % DAY;
    bool emer = kind == EK_EMERGENCY || kind == EK_INPATIENT;
    int64_t tod = emer ? gen_rng_range(r, 0, 23 * 3600)
                       : gen_rng_range(r, 8 * 3600, 16 * 3600);
    tod -= tod % 60;
    int64_t dur;
    switch (kind) {
    case EK_WELL_CHILD:
    case EK_GENERAL_EXAM:
        dur = gen_rng_range(r, 30, 45) * 60;
        break;
    case EK_URGENT:
        dur = gen_rng_range(r, 30, 90) * 60;
        break;
    case EK_EMERGENCY:
        dur = gen_rng_range(r, 60, 300) * 60;
        break;
    case EK_INPATIENT:
        dur = gen_rng_range(r, 2, 6) * DAY + gen_rng_range(r, 0, 600) * 60;
        break;
    default:
        dur = gen_rng_range(r, 15, 30) * 60;
        break;
    }
    x->start = day + tod;
    x->end = x->start + dur;
    x->kind = kind;
    x->acute = acute;
}

static int plan(gen_pat *pt, gen_enc *e)
{
    gen_rng *r = pt->r;
    const int64_t now = pt->c->now;
    int n = 0;
    int64_t rec_start = now - 12 * YEAR;
    if (rec_start < pt->birth + 3 * DAY)
        rec_start = pt->birth + 3 * DAY;
    if (rec_start >= now - DAY)
        return 0;
    bool has_chronic_med = false;
    for (int i = 0; i < pt->n_chronic; i++)
        has_chronic_med |= gen_chronic_defs[pt->chronic[i].kind].med != NULL;

    /* wellness visits */
    for (int64_t t = rec_start + gen_rng_range(r, 0, 60) * DAY;
         t < now - DAY;) {
        double age = gen_age(pt, t);
        add_enc(e, &n, t, age < 18 ? EK_WELL_CHILD : EK_GENERAL_EXAM, -1, r);
        if (age < 1)
            t += gen_rng_range(r, 55, 95) * DAY;
        else if (age < 3)
            t += gen_rng_range(r, 150, 210) * DAY;
        else if (age < 18 || age >= 50 || has_chronic_med)
            t += gen_rng_range(r, 330, 400) * DAY;
        else
            t += gen_rng_range(r, 600, 860) * DAY;
    }
    /* sick visits, gaps uniform in (0.1, 1.9) / rate: no libm, so the
     * bytes do not depend on the platform's log() */
    for (int64_t t = rec_start;;) {
        double age = gen_age(pt, t);
        double rate = age < 5 ? 2.0 : (age > 65 ? 1.3 : 0.9); /* per year */
        t += (int64_t)((0.1 + 1.8 * gen_rng_unit(r)) / rate * (double)YEAR);
        if (t >= now - DAY)
            break;
        age = gen_age(pt, t);
        double u = gen_rng_unit(r);
        int kind = u < 0.40   ? EK_SYMPTOM
                   : u < 0.65 ? EK_PROBLEM
                   : u < 0.82 ? EK_URGENT
                   : u < 0.96 ? EK_EMERGENCY
                              : EK_INPATIENT;
        int acute = -1;
        if (kind == EK_EMERGENCY) {
            acute = (int)gen_rng_range(r, ACUTE_INJURY_FIRST,
                                       (int64_t)gen_acute_defs_n - 1);
        } else if (kind == EK_INPATIENT) {
            acute = gen_rng_chance(r, 0.6) ? ACUTE_PNEUMONIA : -1;
        } else if (gen_rng_chance(r, 0.8)) {
            acute = (int)gen_rng_range(r, 0, ACUTE_PNEUMONIA - 1);
            if (gen_acute_defs[acute].max_age &&
                age > gen_acute_defs[acute].max_age)
                acute = 0;
        }
        add_enc(e, &n, t, kind, acute, r);
    }
    /* chronic-care follow-ups, rotating through the treated conditions */
    int64_t first_onset = now;
    for (int i = 0; i < pt->n_chronic; i++)
        if (gen_chronic_defs[pt->chronic[i].kind].med &&
            pt->chronic[i].onset < first_onset)
            first_onset = pt->chronic[i].onset;
    int k = 0;
    for (int64_t t =
             (first_onset > rec_start ? first_onset : rec_start) + 30 * DAY;
         t < now - DAY; t += gen_rng_range(r, 120, 240) * DAY) {
        for (int j = 0; j < pt->n_chronic; j++) {
            int c = (k + j) % pt->n_chronic;
            if (gen_chronic_defs[pt->chronic[c].kind].med &&
                pt->chronic[c].onset <= t) {
                add_enc(e, &n, t, EK_FOLLOWUP, c, r);
                k = c + 1;
                break;
            }
        }
    }

    qsort(e, (size_t)n, sizeof(*e), cmp_enc);
    /* no overlaps; nothing after the end of the record */
    int m = 0;
    for (int i = 0; i < n; i++) {
        gen_enc x = e[i];
        if (m > 0 && x.start <= e[m - 1].end) {
            int64_t d = e[m - 1].end + 3600 - x.start;
            x.start += d;
            x.end += d;
        }
        if (x.end >= now)
            continue;
        e[m++] = x;
    }
    for (int i = 0; i < m; i++) {
        gen_rng_uuid(r, &e[i].id);
        bool hospital = e[i].kind == EK_EMERGENCY || e[i].kind == EK_INPATIENT;
        e[i].prac =
            !hospital && gen_rng_chance(r, 0.85)
                ? pt->prac
                : (int)gen_rng_range(r, 0, (int64_t)pt->c->pools.n_prac - 1);
    }
    return m;
}

static void pick_chronic(gen_pat *pt)
{
    gen_rng *r = pt->r;
    double age = gen_age(pt, pt->c->now);
    pt->n_chronic = 0;
    for (size_t k = 0; k < gen_chronic_defs_n; k++) {
        const gen_chronic_def *d = &gen_chronic_defs[k];
        if (age < d->min_age)
            continue;
        double p = d->prob;
        if (k == CH_OBESITY)
            p = pt->bmi >= 30 ? 1.0 : 0.0;
        else if (k == CH_DIABETES && pt->bmi >= 30)
            p *= 2;
        if (!gen_rng_chance(r, p))
            continue;
        if (k == CH_DIABETES && pt->n_chronic > 0 &&
            pt->chronic[pt->n_chronic - 1].kind == CH_PREDIABETES)
            continue; /* one of the two */
        gen_chronic *c = &pt->chronic[pt->n_chronic++];
        c->kind = (int)k;
        double onset_age = d->min_age + gen_rng_unit(r) * (age - d->min_age);
        c->onset = pt->birth + (int64_t)(onset_age * (double)YEAR);
        c->onset -= c->onset % 60;
        c->recorded = false;
        gen_rng_uuid(r, &c->id);
    }
}

bool gen_patient(gen_ctx *c, uint64_t index, gen_patient_info *info)
{
    static gen_enc enc[GEN_MAX_ENC]; /* single-threaded generator */
    gen_rng r, pr;
    gen_pat pt;
    memset(&pt, 0, sizeof(pt));
    gen_rng_seed(&r, c->seed, 1000 + index);
    gen_rng_seed(&pr, c->seed, (1ULL << 40) + index);
    pt.c = c;
    pt.r = &r;
    pt.prov_r = &pr;
    gen_rng_uuid(&r, &pt.id);
    pt.gender = gen_rng_chance(&r, 0.5) ? 'm' : 'f';
    static const int tzs[] = { -300, -300, -300, -360, -360, -420, -480 };
    pt.tz = tzs[gen_rng_range(&r, 0, (int64_t)GEN_NELEM(tzs) - 1)];
    double age =
        gen_rng_chance(&r, 0.08) ? gen_rng_unit(&r) * 5 : gen_rng_unit(&r) * 92;
    pt.birth = c->now - (int64_t)(age * (double)YEAR);
    pt.birth -= pt.birth % DAY;
    snprintf(pt.given, sizeof(pt.given), "%s",
             pt.gender == 'm' ? gen_given_male[gen_rng_range(
                                    &r, 0, (int64_t)gen_given_male_n - 1)]
                              : gen_given_female[gen_rng_range(
                                    &r, 0, (int64_t)gen_given_female_n - 1)]);
    snprintf(pt.family, sizeof(pt.family), "%s",
             gen_family[gen_rng_range(&r, 0, (int64_t)gen_family_n - 1)]);
    snprintf(pt.name, sizeof(pt.name), "%s %s", pt.given, pt.family);
    pt.prac = (int)gen_rng_range(&r, 0, (int64_t)c->pools.n_prac - 1);
    pt.adult_height = pt.gender == 'm' ? gen_rng_normal(&r, 176, 7, 155, 200)
                                       : gen_rng_normal(&r, 162, 6.5, 142, 185);
    pt.bmi = gen_rng_normal(&r, 27, 5, 17, 45);
    double u = gen_rng_unit(&r);
    pt.smoker = u < 0.6 ? 0 : u < 0.85 ? 1 : 2;
    pick_chronic(&pt);

    if (!gen_out_begin(&c->out[GT_PATIENT], "Patient", pt.id.s))
        return false;
    write_patient(&pt, index, &r);

    int n = plan(&pt, enc);
    for (int i = 0; i < n; i++) {
        if (!gen_encounter(&pt, &enc[i]))
            return false;
        if (i == 0 && !write_allergies(&pt, &enc[0]))
            return false;
    }

    info->id = pt.id;
    info->gender = pt.gender;
    int y;
    unsigned m, d;
    gen_civil_from_days(pt.birth / DAY, &y, &m, &d);
    info->birth_year = y;
    info->diabetic = false;
    for (int i = 0; i < pt.n_chronic; i++)
        if (pt.chronic[i].kind == CH_PREDIABETES ||
            pt.chronic[i].kind == CH_DIABETES)
            info->diabetic = true;
    return true;
}
