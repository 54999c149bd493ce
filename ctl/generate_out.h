/* generate: internal declarations shared by ctl/generate_*.c.
 *
 * The generator writes JSON text straight into one large buffer per
 * resource type (no JSON trees): gen_out_* append, gen_out_end() ends a
 * line and flushes when the buffer is nearly full.  Randomness comes from
 * one xoshiro256** stream per unit (pools, each patient, groups), seeded
 * with splitmix64 from --seed, so output bytes depend on N and S only. */
#ifndef CTL_GENERATE_OUT_H
#define CTL_GENERATE_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- PRNG ------------------------------------------------------------- */
typedef struct gen_rng {
    uint64_t s[4];
} gen_rng;

void gen_rng_seed(gen_rng *r, uint64_t seed, uint64_t stream);
uint64_t gen_rng_next(gen_rng *r);
/* uniform integer in [lo, hi] (inclusive) */
int64_t gen_rng_range(gen_rng *r, int64_t lo, int64_t hi);
/* uniform double in [0, 1) */
double gen_rng_unit(gen_rng *r);
bool gen_rng_chance(gen_rng *r, double p);
/* approximately normal (sum of uniforms), clamped to [lo, hi] */
double gen_rng_normal(gen_rng *r, double mean, double sd, double lo, double hi);

/* a UUID v4 string (36 chars + NUL) */
typedef struct gen_id {
    char s[37];
} gen_id;
void gen_rng_uuid(gen_rng *r, gen_id *out);

/* ---- output ----------------------------------------------------------- */
enum gen_type {
    GT_ORGANIZATION,
    GT_LOCATION,
    GT_PRACTITIONER,
    GT_PRACTITIONER_ROLE,
    GT_PATIENT,
    GT_ENCOUNTER,
    GT_OBSERVATION,
    GT_CONDITION,
    GT_PROCEDURE,
    GT_MEDICATION_REQUEST,
    GT_IMMUNIZATION,
    GT_ALLERGY,
    GT_DIAGNOSTIC_REPORT,
    GT_DOCUMENT_REFERENCE,
    GT_GROUP,
    GT_PROVENANCE,
    GT__COUNT
};

typedef struct gen_out {
    int fd;
    char *buf;
    size_t len, cap;
    uint64_t count; /* resources written */
    uint64_t bytes; /* bytes written to fd */
    bool failed;    /* a write failed (errno saved in err) */
    int err;
} gen_out;

extern const char *const gen_type_names[GT__COUNT];

/* Make sure at least `need` bytes are free (flushes); false on write error. */
bool gen_out_reserve(gen_out *o, size_t need);
bool gen_out_flush(gen_out *o);

/* Appenders.  They assume room was reserved by gen_out_begin (64 KiB per
 * resource) except gen_out_esc/gen_out_raw which reserve themselves. */
void gen_out_lit_n(gen_out *o, const char *s, size_t n);
/* s must be a string literal ("" s enforces it) */
#define gen_out_lit(o, s) gen_out_lit_n((o), "" s, sizeof(s) - 1)
void gen_out_raw(gen_out *o, const char *s); /* no escaping */
void gen_out_esc(gen_out *o, const char *s); /* JSON-escaped, no quotes */
void gen_out_str(gen_out *o, const char *s); /* "escaped" */
void gen_out_int(gen_out *o, int64_t v);
/* decimal with `frac` fraction digits (0..4), rounded */
void gen_out_dec(gen_out *o, double v, int frac);
/* "Type/id" reference object: {"reference":"Type/id"} */
void gen_out_ref(gen_out *o, const char *type, const char *id);
/* base64 of n bytes, no quotes */
void gen_out_b64(gen_out *o, const unsigned char *data, size_t n);

/* Dates: `t` is seconds since 1970-01-01 in the patient's local time, `tz`
 * its UTC offset in minutes.  date = YYYY-MM-DD; datetime adds
 * Thh:mm:ss+hh:mm; instant adds milliseconds. */
void gen_out_date(gen_out *o, int64_t t);
void gen_out_datetime(gen_out *o, int64_t t, int tz);
void gen_out_instant(gen_out *o, int64_t t, int ms, int tz);
int64_t gen_days_from_civil(int y, unsigned m, unsigned d);
void gen_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d);

/* Start a resource: reserve room, write {"resourceType":"T","id":"ID" */
bool gen_out_begin(gen_out *o, const char *type, const char *id);
/* End a resource: "}\n", count it. */
void gen_out_end(gen_out *o);

/* ---- code tables (generate_codes.c) ---------------------------------- */
typedef struct gen_code {
    const char *code;
    const char *display;
} gen_code;

#define GEN_NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define SYS_LOINC "http://loinc.org"
#define SYS_SNOMED "http://snomed.info/sct"
#define SYS_RXNORM "http://www.nlm.nih.gov/research/umls/rxnorm"
#define SYS_CVX "http://hl7.org/fhir/sid/cvx"
#define SYS_UCUM "http://unitsofmeasure.org"

/* {"coding":[{"system":S,"code":C,"display":D}],"text":D} */
void gen_out_cc(gen_out *o, const char *system, const gen_code *c);

extern const char *const gen_given_male[];
extern const size_t gen_given_male_n;
extern const char *const gen_given_female[];
extern const size_t gen_given_female_n;
extern const char *const gen_family[];
extern const size_t gen_family_n;
extern const char *const gen_streets[];
extern const size_t gen_streets_n;
typedef struct gen_city {
    const char *name, *zip;
} gen_city;
extern const gen_city gen_cities[];
extern const size_t gen_cities_n;
extern const char *const gen_org_words[];
extern const size_t gen_org_words_n;

/* ---- shared state ---------------------------------------------------- */
typedef struct gen_pools {
    size_t n_org, n_prac;
    gen_id *org, *loc, *prac;
    char (*org_name)[64];
    char (*prac_name)[64];
} gen_pools;

/* What the Group pass needs to know about each patient. */
typedef struct gen_patient_info {
    gen_id id;
    int birth_year;
    char gender;   /* 'm' / 'f' */
    bool diabetic; /* prediabetes or diabetes */
} gen_patient_info;

typedef struct gen_ctx {
    gen_out out[GT__COUNT];
    gen_pools pools;
    uint64_t seed;
    int64_t now; /* the fixed "end of record" instant (local) */
} gen_ctx;

/* ---- one patient's record (generate_patient.c, generate_encounter.c) -- */
enum gen_enc_kind {
    EK_WELL_CHILD,
    EK_GENERAL_EXAM,
    EK_SYMPTOM,
    EK_PROBLEM,
    EK_URGENT,
    EK_EMERGENCY,
    EK_INPATIENT,
    EK_FOLLOWUP,
    EK__COUNT
};

#define GEN_MAX_CHRONIC 10
#define GEN_MAX_ENC 256
#define GEN_MAX_TARGETS 64

typedef struct gen_chronic {
    int kind; /* index into the chronic table */
    int64_t onset;
    bool recorded; /* Condition written */
    gen_id id;     /* the Condition's id */
} gen_chronic;

typedef struct gen_enc {
    int64_t start, end;
    int kind;  /* enum gen_enc_kind */
    int acute; /* acute table index or -1 */
    int prac;  /* practitioner pool index (its org = prac % n_org) */
    gen_id id;
} gen_enc;

typedef struct gen_pat {
    gen_ctx *c;
    gen_rng *r;
    gen_id id;
    char given[48], family[48], name[112];
    char gender;         /* 'm' / 'f' */
    int tz;              /* UTC offset, minutes */
    int64_t birth;       /* local seconds */
    int prac;            /* primary care practitioner */
    double adult_height; /* cm */
    double bmi;          /* adult baseline */
    int smoker;          /* smoking status index */
    gen_chronic chronic[GEN_MAX_CHRONIC];
    int n_chronic;
    uint32_t imm_given; /* bit per childhood schedule entry */
    int64_t last_colonoscopy, last_mammography, last_lipid, last_td;
    int n_active_meds; /* chronic medications prescribed so far */
    gen_rng *prov_r;   /* Provenance stream (keeps the others unchanged) */
    /* what the current encounter recorded: the targets of its Provenance */
    struct {
        const char *type;
        gen_id id;
    } tgt[GEN_MAX_TARGETS];
    int n_tgt;
} gen_pat;

/* age in years at t */
double gen_age(const gen_pat *pt, int64_t t);
/* write the encounter and everything recorded in it */
bool gen_encounter(gen_pat *pt, gen_enc *e);
/* generate_obs.c: the encounter's vital signs, labs and lab reports */
bool gen_observations(gen_pat *pt, const gen_enc *e);
bool gen_has_chronic(const gen_pat *pt, int kind);
/* the chronic-condition table, for generate_encounter.c */
typedef struct gen_chronic_def {
    gen_code code;
    int min_age;
    double prob;
    const gen_code *med; /* NULL when none */
    const gen_code *med2;
} gen_chronic_def;
extern const gen_chronic_def gen_chronic_defs[];
extern const size_t gen_chronic_defs_n;
enum {
    CH_HYPERTENSION,
    CH_PREDIABETES,
    CH_DIABETES,
    CH_HYPERLIPIDEMIA,
    CH_ASTHMA,
    CH_OBESITY,
    CH_CHRONIC_SINUSITIS,
    CH_OSTEOARTHRITIS,
    CH_ANEMIA,
    CH_AFIB
};
/* acute conditions diagnosed at sick visits */
typedef struct gen_acute_def {
    gen_code code;
    int abate_days;
    int max_age; /* 0 = any */
    const gen_code *med;
    const gen_code *proc;
} gen_acute_def;
extern const gen_acute_def gen_acute_defs[];
extern const size_t gen_acute_defs_n;

/* generate_patient.c: Patient and its whole record; fills *info. */
bool gen_patient(gen_ctx *c, uint64_t index, gen_patient_info *info);

#endif
