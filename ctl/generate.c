/* bulkfhirctl generate: deterministic synthetic FHIR R4 NDJSON.
 *
 *   bulkfhirctl generate --patients N [--seed S] --out DIR [--groups G]
 *
 * Writes DIR/<Type>.ndjson (via DIR/<Type>.ndjson.tmp + rename), one line
 * per resource, shaped like Synthea output.  The bytes depend only on N, S
 * and G: every random choice comes from xoshiro256** streams seeded from S
 * (one for the shared pools, one per patient, one for the groups), and the
 * clock of the record is fixed (GEN_NOW), never time(). */
#include "ctl.h"
#include "generate_out.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <apr_strings.h>

#define GEN_BUF_SIZE (1024 * 1024)
#define GEN_MAX_PATIENTS 10000000ULL
#define GEN_MAX_GROUPS 1000ULL

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bulkfhirctl generate --patients N --out DIR [--seed S] [--groups G]\n"
        "  --patients N  number of patients (1..%llu)\n"
        "  --seed S      PRNG seed (default 1); same N, S, G give identical files\n"
        "  --out DIR     output directory (created if missing); writes DIR/<Type>.ndjson\n"
        "  --groups G    number of Group resources (default 3, 0..%llu)\n",
        GEN_MAX_PATIENTS, GEN_MAX_GROUPS);
}

static bool parse_u64(const char *s, unsigned long long max,
                      unsigned long long *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- shared pools: Organization, Location, Practitioner, Role ---------- */
/* Address (as a one-element array when `array`) */
static void out_address(gen_out *o, gen_rng *r, bool array)
{
    const gen_city *city =
        &gen_cities[gen_rng_range(r, 0, (int64_t)gen_cities_n - 1)];
    if (array)
        gen_out_lit(o, "[");
    gen_out_lit(o, "{\"line\":[\"");
    gen_out_int(o, gen_rng_range(r, 1, 2999));
    gen_out_lit(o, " ");
    gen_out_esc(o,
                gen_streets[gen_rng_range(r, 0, (int64_t)gen_streets_n - 1)]);
    gen_out_lit(o, "\"],\"city\":");
    gen_out_str(o, city->name);
    gen_out_lit(o, ",\"state\":\"MA\",\"postalCode\":\"");
    gen_out_raw(o, city->zip);
    gen_out_lit(o, "\",\"country\":\"US\"}");
    if (array)
        gen_out_lit(o, "]");
}

static void out_npi(gen_out *o, gen_rng *r)
{
    gen_out_lit(
        o, "[{\"system\":\"http://hl7.org/fhir/sid/us-npi\",\"value\":\"9");
    gen_out_int(o, gen_rng_range(r, 100000000, 999999999));
    gen_out_lit(o, "\"}]");
}

static bool gen_pools_write(gen_ctx *c, apr_pool_t *p, uint64_t n_patients)
{
    static const char *const kinds[] = {
        "Medical Center", "Hospital",     "Family Practice",
        "Health Center",  "Primary Care", "Community Clinic",
    };
    gen_pools *pl = &c->pools;
    gen_rng r;
    gen_rng_seed(&r, c->seed, 1);

    pl->n_org = (size_t)(n_patients / 50 + 1);
    pl->n_prac = (size_t)(n_patients / 10 + 1);
    pl->org = apr_pcalloc(p, pl->n_org * sizeof(gen_id));
    pl->loc = apr_pcalloc(p, pl->n_org * sizeof(gen_id));
    pl->org_name = apr_pcalloc(p, pl->n_org * sizeof(*pl->org_name));
    pl->prac = apr_pcalloc(p, pl->n_prac * sizeof(gen_id));
    pl->prac_name = apr_pcalloc(p, pl->n_prac * sizeof(*pl->prac_name));

    gen_out *oo = &c->out[GT_ORGANIZATION], *ol = &c->out[GT_LOCATION];
    for (size_t i = 0; i < pl->n_org; i++) {
        gen_rng_uuid(&r, &pl->org[i]);
        gen_rng_uuid(&r, &pl->loc[i]);
        snprintf(
            pl->org_name[i], sizeof(pl->org_name[i]), "%s %s",
            gen_org_words[gen_rng_range(&r, 0, (int64_t)gen_org_words_n - 1)],
            kinds[gen_rng_range(&r, 0, (int64_t)GEN_NELEM(kinds) - 1)]);
        if (!gen_out_begin(oo, "Organization", pl->org[i].s))
            return false;
        gen_out_lit(oo, ",\"identifier\":");
        out_npi(oo, &r);
        gen_out_lit(
            oo, ",\"active\":true,\"type\":[{\"coding\":[{\"system\":"
                "\"http://terminology.hl7.org/CodeSystem/organization-type\","
                "\"code\":\"prov\",\"display\":\"Healthcare Provider\"}],"
                "\"text\":\"Healthcare Provider\"}],\"name\":");
        gen_out_str(oo, pl->org_name[i]);
        gen_out_lit(oo, ",\"telecom\":[{\"system\":\"phone\",\"value\":\"");
        gen_out_int(oo, gen_rng_range(&r, 4130000000, 9789999999));
        gen_out_lit(oo, "\"}],\"address\":");
        gen_rng state = r; /* the Location repeats the address */
        out_address(oo, &r, true);
        gen_out_end(oo);

        if (!gen_out_begin(ol, "Location", pl->loc[i].s))
            return false;
        gen_out_lit(ol, ",\"status\":\"active\",\"name\":");
        gen_out_str(ol, pl->org_name[i]);
        gen_out_lit(
            ol, ",\"mode\":\"instance\",\"type\":[{\"coding\":[{\"system\":"
                "\"http://terminology.hl7.org/CodeSystem/v3-RoleCode\","
                "\"code\":\"HOSP\",\"display\":\"Hospital\"}]}],\"address\":");
        out_address(ol, &state, false);
        gen_out_lit(ol, ",\"position\":{\"longitude\":");
        gen_out_dec(ol, -73.5 + gen_rng_unit(&r) * 3.5, 4);
        gen_out_lit(ol, ",\"latitude\":");
        gen_out_dec(ol, 41.3 + gen_rng_unit(&r) * 1.5, 4);
        gen_out_lit(ol, "},\"managingOrganization\":");
        gen_out_ref(ol, "Organization", pl->org[i].s);
        gen_out_end(ol);
    }

    gen_out *op = &c->out[GT_PRACTITIONER],
            *orl = &c->out[GT_PRACTITIONER_ROLE];
    for (size_t i = 0; i < pl->n_prac; i++) {
        bool male = gen_rng_chance(&r, 0.5);
        const char *given = male ? gen_given_male[gen_rng_range(
                                       &r, 0, (int64_t)gen_given_male_n - 1)]
                                 : gen_given_female[gen_rng_range(
                                       &r, 0, (int64_t)gen_given_female_n - 1)];
        const char *family =
            gen_family[gen_rng_range(&r, 0, (int64_t)gen_family_n - 1)];
        size_t org = i % pl->n_org;
        gen_id role;
        gen_rng_uuid(&r, &pl->prac[i]);
        gen_rng_uuid(&r, &role);
        snprintf(pl->prac_name[i], sizeof(pl->prac_name[i]), "Dr. %s %s", given,
                 family);

        if (!gen_out_begin(op, "Practitioner", pl->prac[i].s))
            return false;
        gen_out_lit(op, ",\"identifier\":");
        out_npi(op, &r);
        gen_out_lit(op, ",\"active\":true,\"name\":[{\"family\":");
        gen_out_str(op, family);
        gen_out_lit(op, ",\"given\":[");
        gen_out_str(op, given);
        gen_out_lit(
            op,
            "],\"prefix\":[\"Dr.\"]}],\"telecom\":[{\"system\":\"email\",\"value\":\"");
        gen_out_esc(op, given);
        gen_out_lit(op, ".");
        gen_out_int(op, (int64_t)i);
        gen_out_lit(op, "@example.com\",\"use\":\"work\"}],\"address\":");
        out_address(op, &r, true);
        gen_out_lit(op, ",\"gender\":");
        gen_out_raw(op, male ? "\"male\"" : "\"female\"");
        gen_out_end(op);

        if (!gen_out_begin(orl, "PractitionerRole", role.s))
            return false;
        gen_out_lit(orl, ",\"active\":true,\"practitioner\":");
        gen_out_ref(orl, "Practitioner", pl->prac[i].s);
        gen_out_lit(orl, ",\"organization\":");
        gen_out_ref(orl, "Organization", pl->org[org].s);
        gen_out_lit(
            orl,
            ",\"code\":[{\"coding\":[{\"system\":\"http://nucc.org/provider-taxonomy\","
            "\"code\":\"208D00000X\",\"display\":\"General Practice\"}]}],"
            "\"specialty\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\","
            "\"code\":\"394814009\",\"display\":\"General practice\"}]}],"
            "\"location\":[");
        gen_out_ref(orl, "Location", pl->loc[org].s);
        gen_out_lit(orl, "]");
        gen_out_end(orl);
    }
    return true;
}

/* ---- groups ----------------------------------------------------------- */
static bool gen_groups_write(gen_ctx *c, const gen_patient_info *info,
                             uint64_t n, uint64_t n_groups,
                             uint64_t *members_out)
{
    gen_out *o = &c->out[GT_GROUP];
    gen_rng r;
    gen_rng_seed(&r, c->seed, 2);
    *members_out = 0;
    for (uint64_t g = 0; g < n_groups; g++) {
        gen_id gid;
        char name[96];
        double sample = 0.2 + 0.1 * (double)(g % 3);
        gen_rng_uuid(&r, &gid);
        if (g == 0)
            snprintf(name, sizeof(name), "All patients");
        else if (g == 1)
            snprintf(name, sizeof(name), "Female patients");
        else if (g == 2)
            snprintf(name, sizeof(name), "Diabetes and prediabetes registry");
        else
            snprintf(name, sizeof(name), "Care program %" PRIu64, g - 2);

        /* count first: quantity precedes member */
        uint64_t qty = 0;
        gen_rng pick = r;
        for (uint64_t i = 0; i < n; i++) {
            bool in = g == 0 || (g == 1 && info[i].gender == 'f') ||
                      (g == 2 && info[i].diabetic) ||
                      (g >= 3 && gen_rng_chance(&pick, sample));
            qty += in;
        }
        if (!gen_out_begin(o, "Group", gid.s))
            return false;
        gen_out_lit(
            o,
            ",\"identifier\":[{\"system\":\"urn:bulkfhir:generate:group\",\"value\":\"G");
        gen_out_int(o, (int64_t)g);
        gen_out_lit(
            o,
            "\"}],\"active\":true,\"type\":\"person\",\"actual\":true,\"name\":");
        gen_out_str(o, name);
        gen_out_lit(o, ",\"managingEntity\":");
        gen_out_ref(o, "Organization", c->pools.org[g % c->pools.n_org].s);
        gen_out_lit(o, ",\"quantity\":");
        gen_out_int(o, (int64_t)qty);
        if (qty)
            gen_out_lit(o, ",\"member\":[");
        bool first = true;
        for (uint64_t i = 0; i < n; i++) {
            bool in = g == 0 || (g == 1 && info[i].gender == 'f') ||
                      (g == 2 && info[i].diabetic) ||
                      (g >= 3 && gen_rng_chance(&r, sample));
            if (!in)
                continue;
            if (!gen_out_reserve(o, 512))
                return false;
            if (!first)
                gen_out_lit(o, ",");
            first = false;
            gen_out_lit(o, "{\"entity\":");
            gen_out_ref(o, "Patient", info[i].id.s);
            if (g > 0) {
                /* membership periods and inactive flags, to exercise the rules
                 */
                double u = gen_rng_unit(&r);
                int64_t start = c->now - gen_rng_range(&r, 30, 3650) * 86400;
                if (u < 0.10) { /* membership ended */
                    int64_t end =
                        start +
                        gen_rng_range(&r, 1, (c->now - start) / 86400) * 86400;
                    gen_out_lit(o, ",\"period\":{\"start\":\"");
                    gen_out_date(o, start);
                    gen_out_lit(o, "\",\"end\":\"");
                    gen_out_date(o, end);
                    gen_out_lit(o, "\"}");
                } else if (u < 0.15) { /* flagged inactive */
                    gen_out_lit(o, ",\"inactive\":true");
                } else if (u < 0.50) { /* open-ended membership */
                    gen_out_lit(o, ",\"period\":{\"start\":\"");
                    gen_out_date(o, start);
                    gen_out_lit(o, "\"}");
                }
            }
            gen_out_lit(o, "}");
            (*members_out)++;
        }
        if (qty)
            gen_out_lit(o, "]");
        gen_out_end(o);
    }
    return true;
}

/* ---- files ------------------------------------------------------------ */
static char *tmp_path(apr_pool_t *p, const char *dir, int t)
{
    return apr_psprintf(p, "%s/%s.ndjson.tmp", dir, gen_type_names[t]);
}

static bool open_outputs(gen_ctx *c, apr_pool_t *p, const char *dir)
{
    for (int t = 0; t < GT__COUNT; t++) {
        gen_out *o = &c->out[t];
        char *path = tmp_path(p, dir, t);
        o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (o->fd < 0) {
            fprintf(stderr, "BF04001: generate: cannot create %s: %s\n", path,
                    strerror(errno));
            return false;
        }
        o->cap = GEN_BUF_SIZE;
        o->buf = apr_palloc(p, o->cap);
    }
    return true;
}

static bool close_outputs(gen_ctx *c, apr_pool_t *p, const char *dir, bool ok)
{
    for (int t = 0; t < GT__COUNT; t++) {
        gen_out *o = &c->out[t];
        char *path = tmp_path(p, dir, t);
        if (o->fd < 0)
            continue;
        if (ok && !gen_out_flush(o)) {
            fprintf(stderr, "BF04002: generate: writing %s: %s\n", path,
                    strerror(o->err));
            ok = false;
        }
        if (close(o->fd) != 0 && ok) {
            fprintf(stderr, "BF04003: generate: closing %s: %s\n", path,
                    strerror(errno));
            ok = false;
        }
        o->fd = -1;
    }
    for (int t = 0; t < GT__COUNT; t++) {
        char *path = tmp_path(p, dir, t);
        if (!ok) {
            unlink(path);
            continue;
        }
        char *final = apr_psprintf(p, "%s/%s.ndjson", dir, gen_type_names[t]);
        if (rename(path, final) != 0) {
            fprintf(stderr, "BF04004: generate: rename %s: %s\n", path,
                    strerror(errno));
            ok = false;
        }
    }
    return ok;
}

static const gen_out *first_failed(const gen_ctx *c)
{
    for (int t = 0; t < GT__COUNT; t++)
        if (c->out[t].failed)
            return &c->out[t];
    return NULL;
}

int ctl_generate_main(apr_pool_t *p, const ctl_globals *g, int argc,
                      char **argv)
{
    unsigned long long n = 0, seed = 1, groups = 3;
    const char *dir = NULL;
    bool have_n = false;
    int rc = 1;
    gen_patient_info *info = NULL;
    gen_ctx *c = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--patients")) {
            if (!parse_u64(v, GEN_MAX_PATIENTS, &n) || n == 0) {
                fprintf(stderr,
                        "generate: --patients needs an integer 1..%llu\n",
                        GEN_MAX_PATIENTS);
                return 2;
            }
            have_n = true;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_u64(v, UINT64_MAX, &seed)) {
                fprintf(stderr,
                        "generate: --seed needs a non-negative integer\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--groups")) {
            if (!parse_u64(v, GEN_MAX_GROUPS, &groups)) {
                fprintf(stderr, "generate: --groups needs an integer 0..%llu\n",
                        GEN_MAX_GROUPS);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--out")) {
            if (!v || !*v) {
                fprintf(stderr, "generate: --out needs a directory\n");
                return 2;
            }
            dir = v;
            i++;
        } else {
            fprintf(stderr, "generate: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!have_n || !dir) {
        fprintf(stderr, "generate: --patients and --out are required\n");
        usage(stderr);
        return 2;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "BF04005: generate: cannot create directory %s: %s\n",
                dir, strerror(errno));
        return 1;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "BF04006: generate: %s is not a directory\n", dir);
        return 1;
    }

    c = apr_pcalloc(p, sizeof(*c));
    for (int t = 0; t < GT__COUNT; t++)
        c->out[t].fd = -1;
    c->seed = seed;
    /* the record ends at a fixed instant, 2024-06-30T12:00 local */
    c->now = gen_days_from_civil(2024, 6, 30) * 86400 + 12 * 3600;

    info = calloc((size_t)n, sizeof(*info));
    if (!info) {
        fprintf(stderr, "BF04007: generate: out of memory for %llu patients\n",
                n);
        return 1;
    }
    bool ok = open_outputs(c, p, dir);
    if (ok)
        ok = gen_pools_write(c, p, n);
    for (uint64_t i = 0; ok && i < n; i++)
        ok = gen_patient(c, i, &info[i]);
    uint64_t members = 0;
    if (ok)
        ok = gen_groups_write(c, info, n, groups, &members);
    if (!ok) {
        const gen_out *f = first_failed(c);
        if (f)
            fprintf(stderr, "BF04008: generate: writing %s/%s.ndjson.tmp: %s\n",
                    dir, gen_type_names[f - c->out], strerror(f->err));
    }
    ok = close_outputs(c, p, dir, ok);
    if (!ok)
        goto leave;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t total = 0, bytes = 0;
    int types = 0;
    for (int t = 0; t < GT__COUNT; t++) {
        total += c->out[t].count;
        bytes += c->out[t].bytes;
        types += c->out[t].count > 0;
        if (g && g->verbose)
            fprintf(stderr,
                    "  %-20s %10" PRIu64 " resources %12" PRIu64 " bytes\n",
                    gen_type_names[t], c->out[t].count, c->out[t].bytes);
    }
    printf("generated %" PRIu64
           " resources (%d types) for %llu patients in %.2f s\n",
           total, types, n, secs);
    if (g && g->verbose)
        fprintf(stderr,
                "  %" PRIu64 " bytes, %.0f resources/s, %" PRIu64
                " group members\n",
                bytes, secs > 0 ? (double)total / secs : 0.0, members);
    rc = 0;
leave:
    free(info);
    return rc;
}
