/* generate: PRNG, buffered JSON writer, date and number formatting. */
#include "generate_out.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* room reserved for one resource; every resource is far smaller (the
 * largest, DocumentReference, is a few KiB; Groups reserve per member) */
#define GEN_RESOURCE_ROOM (64 * 1024)

const char *const gen_type_names[GT__COUNT] = {
    "Organization",      "Location",          "Practitioner",
    "PractitionerRole",  "Patient",           "Encounter",
    "Observation",       "Condition",         "Procedure",
    "MedicationRequest", "Immunization",      "AllergyIntolerance",
    "DiagnosticReport",  "DocumentReference", "Group",
    "Provenance",
};

/* ---- PRNG: splitmix64 seeds xoshiro256** ------------------------------ */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void gen_rng_seed(gen_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x =
        seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    splitmix64(&x);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t gen_rng_next(gen_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

int64_t gen_rng_range(gen_rng *r, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    /* multiply-high: unbiased enough for synthetic data */
    unsigned __int128 m = (unsigned __int128)gen_rng_next(r) * span;
    return lo + (int64_t)(m >> 64);
}

double gen_rng_unit(gen_rng *r)
{
    return (double)(gen_rng_next(r) >> 11) * 0x1.0p-53;
}

bool gen_rng_chance(gen_rng *r, double p)
{
    return gen_rng_unit(r) < p;
}

double gen_rng_normal(gen_rng *r, double mean, double sd, double lo, double hi)
{
    /* Irwin-Hall with 4 terms: mean 2, variance 1/3 */
    double s =
        gen_rng_unit(r) + gen_rng_unit(r) + gen_rng_unit(r) + gen_rng_unit(r);
    double v = mean + (s - 2.0) * 1.7320508 * sd;
    return v < lo ? lo : (v > hi ? hi : v);
}

void gen_rng_uuid(gen_rng *r, gen_id *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = gen_rng_next(r), b = gen_rng_next(r);
    unsigned char by[16];
    for (int i = 0; i < 8; i++) {
        by[i] = (unsigned char)(a >> (8 * i));
        by[8 + i] = (unsigned char)(b >> (8 * i));
    }
    by[6] = (unsigned char)((by[6] & 0x0f) | 0x40); /* version 4 */
    by[8] = (unsigned char)((by[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char *p = out->s;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[by[i] >> 4];
        *p++ = hex[by[i] & 15];
    }
    *p = '\0';
}

/* ---- writer ----------------------------------------------------------- */
bool gen_out_flush(gen_out *o)
{
    size_t off = 0;
    if (o->failed)
        return false;
    while (off < o->len) {
        ssize_t w = write(o->fd, o->buf + off, o->len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            o->failed = true;
            o->err = errno;
            return false;
        }
        off += (size_t)w;
    }
    o->bytes += o->len;
    o->len = 0;
    return true;
}

bool gen_out_reserve(gen_out *o, size_t need)
{
    if (o->cap - o->len >= need)
        return true;
    if (!gen_out_flush(o))
        return false;
    return o->cap >= need;
}

void gen_out_lit_n(gen_out *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

void gen_out_raw(gen_out *o, const char *s)
{
    size_t n = strlen(s);
    if (o->cap - o->len < n && !gen_out_reserve(o, n))
        return;
    gen_out_lit_n(o, s, n);
}

void gen_out_esc(gen_out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    /* worst case every byte becomes \u00XX */
    if (o->cap - o->len < 6 * n && !gen_out_reserve(o, 6 * n))
        return;
    char *p = o->buf + o->len;
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        unsigned char ch = *u;
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            *p++ = (char)ch; /* UTF-8 passes through */
            continue;
        }
        *p++ = '\\';
        switch (ch) {
        case '"':
            *p++ = '"';
            break;
        case '\\':
            *p++ = '\\';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    o->len = (size_t)(p - o->buf);
}

void gen_out_str(gen_out *o, const char *s)
{
    gen_out_lit(o, "\"");
    gen_out_esc(o, s);
    gen_out_lit(o, "\"");
}

void gen_out_int(gen_out *o, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        o->buf[o->len++] = '-';
    while (n)
        o->buf[o->len++] = tmp[--n];
}

void gen_out_dec(gen_out *o, double v, int frac)
{
    static const int64_t pow10[] = { 1, 10, 100, 1000, 10000 };
    if (frac < 0)
        frac = 0;
    if (frac > 4)
        frac = 4;
    double x = v * (double)pow10[frac];
    int64_t scaled = x >= 0 ? (int64_t)(x + 0.5) : -(int64_t)(-x + 0.5);
    if (scaled < 0) {
        o->buf[o->len++] = '-';
        scaled = -scaled;
    }
    gen_out_int(o, scaled / pow10[frac]);
    if (frac) {
        int64_t f = scaled % pow10[frac];
        o->buf[o->len++] = '.';
        for (int i = frac - 1; i >= 0; i--) {
            o->buf[o->len + (size_t)i] = (char)('0' + f % 10);
            f /= 10;
        }
        o->len += (size_t)frac;
    }
}

void gen_out_ref(gen_out *o, const char *type, const char *id)
{
    gen_out_lit(o, "{\"reference\":\"");
    gen_out_raw(o, type);
    gen_out_lit(o, "/");
    gen_out_raw(o, id);
    gen_out_lit(o, "\"}");
}

void gen_out_b64(gen_out *o, const unsigned char *d, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t need = (n + 2) / 3 * 4;
    if (o->cap - o->len < need && !gen_out_reserve(o, need))
        return;
    char *p = o->buf + o->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = tab[(v >> 6) & 63];
        *p++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    o->len = (size_t)(p - o->buf);
}

/* ---- dates (proleptic Gregorian, days since 1970-01-01) ---------------- */
int64_t gen_days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void gen_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static inline void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void gen_out_date(gen_out *o, int64_t t)
{
    int y;
    unsigned m, d;
    gen_civil_from_days(floordiv(t, 86400), &y, &m, &d);
    char *p = o->buf + o->len;
    put2(p, (unsigned)(y / 100));
    put2(p + 2, (unsigned)(y % 100));
    p[4] = '-';
    put2(p + 5, m);
    p[7] = '-';
    put2(p + 8, d);
    o->len += 10;
}

static void out_time_tz(gen_out *o, int64_t t, int ms, int tz)
{
    int64_t sec = t - floordiv(t, 86400) * 86400;
    char *p = o->buf + o->len;
    p[0] = 'T';
    put2(p + 1, (unsigned)(sec / 3600));
    p[3] = ':';
    put2(p + 4, (unsigned)(sec / 60 % 60));
    p[6] = ':';
    put2(p + 7, (unsigned)(sec % 60));
    p += 9;
    if (ms >= 0) {
        *p++ = '.';
        *p++ = (char)('0' + ms / 100);
        put2(p, (unsigned)(ms % 100));
        p += 2;
    }
    int a = tz < 0 ? -tz : tz;
    *p++ = tz < 0 ? '-' : '+';
    put2(p, (unsigned)(a / 60));
    p[2] = ':';
    put2(p + 3, (unsigned)(a % 60));
    p += 5;
    o->len = (size_t)(p - o->buf);
}

void gen_out_datetime(gen_out *o, int64_t t, int tz)
{
    gen_out_date(o, t);
    out_time_tz(o, t, -1, tz);
}

void gen_out_instant(gen_out *o, int64_t t, int ms, int tz)
{
    gen_out_date(o, t);
    out_time_tz(o, t, ms, tz);
}

/* ---- resources -------------------------------------------------------- */
bool gen_out_begin(gen_out *o, const char *type, const char *id)
{
    if (!gen_out_reserve(o, GEN_RESOURCE_ROOM))
        return false;
    gen_out_lit(o, "{\"resourceType\":\"");
    gen_out_raw(o, type);
    gen_out_lit(o, "\",\"id\":\"");
    gen_out_raw(o, id);
    gen_out_lit(o, "\"");
    return true;
}

void gen_out_end(gen_out *o)
{
    gen_out_lit(o, "}\n");
    o->count++;
}

void gen_out_cc(gen_out *o, const char *system, const gen_code *c)
{
    gen_out_lit(o, "{\"coding\":[{\"system\":\"");
    gen_out_raw(o, system);
    gen_out_lit(o, "\",\"code\":\"");
    gen_out_raw(o, c->code);
    gen_out_lit(o, "\",\"display\":");
    gen_out_str(o, c->display);
    gen_out_lit(o, "}],\"text\":");
    gen_out_str(o, c->display);
    gen_out_lit(o, "}");
}
