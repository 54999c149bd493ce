/* load_scan: validating JSON scanner for the loader (see load_scan.h).
 * Recursive descent over the bytes; no tree is built, so scanning costs
 * about as much as reading the text. */
#include "load_scan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 256
#define MAX_PATH 512
#define NO_PATH ((size_t)-1)

typedef struct scanner {
    const unsigned char *s;
    size_t n, i;
    scan_result *r;
    char path[MAX_PATH];
} scanner;

static bool fail(scanner *sc, const char *what)
{
    if (sc->i >= sc->n)
        snprintf(sc->r->err, sizeof sc->r->err,
                 "invalid JSON: %s at end of "
                 "input",
                 what);
    else
        snprintf(sc->r->err, sizeof sc->r->err, "invalid JSON: %s at byte %zu",
                 what, sc->i + 1);
    return false;
}

static void skip_ws(scanner *sc)
{
    while (sc->i < sc->n) {
        unsigned char c = sc->s[sc->i];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        sc->i++;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* \uXXXX at sc->i (pointing at 'u'); returns the code unit or -1. */
static long read_u4(scanner *sc)
{
    long v = 0;
    int k;

    if (sc->i + 5 > sc->n)
        return -1;
    for (k = 1; k <= 4; k++) {
        int h = hexval(sc->s[sc->i + k]);

        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    sc->i += 5;
    return v;
}

/* Length of the valid UTF-8 sequence at p (0 when invalid). */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];

    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80,
                      hi = c == 0xED ? 0x9F : 0xBF;

        return avail >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80
                   ? 3
                   : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80,
                      hi = c == 0xF4 ? 0x8F : 0xBF;

        return avail >= 4 && p[1] >= lo && p[1] <= hi &&
                       (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

/* A string at sc->i ('"'); sets *off and *len to the contents. */
static bool scan_string(scanner *sc, size_t *off, size_t *len, bool *escaped)
{
    const unsigned char *s = sc->s;
    size_t n = sc->n;

    sc->i++;
    *off = sc->i;
    *escaped = false;
    for (;;) {
        unsigned char c;

        /* fast path: plain ASCII */
        while (sc->i < n && (c = s[sc->i]) >= 0x20 && c < 0x80 && c != '"' &&
               c != '\\')
            sc->i++;
        if (sc->i >= n)
            return fail(sc, "unterminated string");
        c = s[sc->i];
        if (c == '"') {
            *len = sc->i - *off;
            sc->i++;
            return true;
        }
        if (c < 0x20)
            return fail(sc, "control character in string");
        if (c >= 0x80) {
            size_t k = utf8_len(s + sc->i, n - sc->i);

            if (!k)
                return fail(sc, "invalid UTF-8");
            sc->i += k;
            continue;
        }
        /* backslash */
        *escaped = true;
        sc->i++;
        if (sc->i >= n)
            return fail(sc, "unterminated string");
        c = s[sc->i];
        if (c == 'u') {
            long u = read_u4(sc);

            if (u < 0)
                return fail(sc, "bad \\u escape");
            if (u == 0)
                return fail(sc, "\\u0000 (PostgreSQL jsonb cannot store it)");
            if (u >= 0xDC00 && u <= 0xDFFF)
                return fail(sc, "unpaired low surrogate");
            if (u >= 0xD800 && u <= 0xDBFF) {
                long lo;

                if (sc->i + 1 >= n || s[sc->i] != '\\' || s[sc->i + 1] != 'u')
                    return fail(sc, "unpaired high surrogate");
                sc->i++;
                lo = read_u4(sc);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(sc, "unpaired high surrogate");
            }
            continue;
        }
        if (!strchr("\"\\/bfnrt", c) || c == '\0')
            return fail(sc, "bad escape in string");
        sc->i++;
    }
}

static bool scan_number(scanner *sc)
{
    const unsigned char *s = sc->s;
    size_t n = sc->n, i = sc->i;

    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else {
        sc->i = i;
        return fail(sc, "bad number");
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') {
            sc->i = i;
            return fail(sc, "bad number");
        }
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || s[i] < '0' || s[i] > '9') {
            sc->i = i;
            return fail(sc, "bad number");
        }
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    sc->i = i;
    return true;
}

static bool grow(void **buf, size_t *cap, size_t need, size_t elsize)
{
    size_t ncap;
    void *nb;

    if (need <= *cap)
        return true;
    ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    nb = realloc(*buf, ncap * elsize);
    if (!nb)
        return false;
    *buf = nb;
    *cap = ncap;
    return true;
}

/* A "reference" string whose holder object is at path[0..plen). */
static bool add_ref(scanner *sc, size_t plen, size_t off, size_t len,
                    bool escaped)
{
    scan_result *r = sc->r;
    scan_ref *ref;

    if (!grow((void **)&r->refs, &r->refs_cap, r->nrefs + 1, sizeof *r->refs))
        return fail(sc, "out of memory");
    ref = &r->refs[r->nrefs++];
    ref->val_off = off;
    ref->val_len = len;
    ref->escaped = escaped;
    ref->path_off = r->paths_len;
    ref->path_len = plen;
    if (plen != NO_PATH) {
        if (!grow((void **)&r->paths, &r->paths_cap, r->paths_len + plen + 1,
                  1))
            return fail(sc, "out of memory");
        memcpy(r->paths + r->paths_len, sc->path, plen);
        r->paths_len += plen;
    }
    return true;
}

static bool scan_value(scanner *sc, size_t plen, int depth, bool is_ref);

/* An object at sc->i ('{') whose element path is path[0..plen). */
static bool scan_object(scanner *sc, size_t plen, int depth)
{
    bool top = depth == 1;
    bool first = true;

    if (depth > MAX_DEPTH)
        return fail(sc, "nested too deeply");
    if (top)
        sc->r->obj_open = sc->i;
    sc->i++;
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == '}') {
        sc->i++;
        return true;
    }
    for (;;) {
        size_t koff, klen, clen;
        bool kesc, is_ref;
        const char *key;

        if (!first) {
            skip_ws(sc);
            if (sc->i >= sc->n)
                return fail(sc, "unterminated object");
            if (sc->s[sc->i] == '}') {
                sc->i++;
                return true;
            }
            if (sc->s[sc->i] != ',')
                return fail(sc, "expected ',' or '}'");
            sc->i++;
            skip_ws(sc);
        }
        first = false;
        if (sc->i >= sc->n || sc->s[sc->i] != '"')
            return fail(sc, "expected a member name");
        if (!scan_string(sc, &koff, &klen, &kesc))
            return false;
        skip_ws(sc);
        if (sc->i >= sc->n || sc->s[sc->i] != ':')
            return fail(sc, "expected ':'");
        sc->i++;
        skip_ws(sc);
        if (sc->i >= sc->n)
            return fail(sc, "expected a value");
        key = (const char *)sc->s + koff;

        /* the child's element path: path "." key */
        if (plen == NO_PATH || plen + 1 + klen > MAX_PATH)
            clen = NO_PATH;
        else {
            clen = plen;
            if (clen)
                sc->path[clen++] = '.';
            memcpy(sc->path + clen, key, klen);
            clen += klen;
        }
        is_ref = klen == 9 && memcmp(key, "reference", 9) == 0;

        if (top) {
            scan_result *r = sc->r;
            unsigned char c = sc->s[sc->i];

            if (klen == 12 && memcmp(key, "resourceType", 12) == 0) {
                if (c != '"')
                    return fail(sc, "resourceType is not a string");
                r->have_type = true;
                if (!scan_string(sc, &r->type_off, &r->type_len,
                                 &r->type_escaped))
                    return false;
                continue;
            }
            if (klen == 2 && memcmp(key, "id", 2) == 0 && c == '"') {
                r->have_id = true;
                if (!scan_string(sc, &r->id_off, &r->id_len, &r->id_escaped))
                    return false;
                continue;
            }
            if (klen == 4 && memcmp(key, "meta", 4) == 0) {
                r->meta_present = true;
                r->meta_is_object = c == '{';
                if (c == '{') {
                    size_t open = sc->i;

                    if (!scan_object(sc, clen, depth + 1))
                        return false;
                    r->meta_close = sc->i - 1;
                    r->meta_empty = true;
                    for (open++; open < r->meta_close; open++)
                        if (sc->s[open] != ' ' && sc->s[open] != '\t' &&
                            sc->s[open] != '\n' && sc->s[open] != '\r')
                            r->meta_empty = false;
                    continue;
                }
            }
        }
        if (!scan_value(sc, clen, depth + 1, is_ref))
            return false;
        /* restore nothing: siblings rewrite the path from plen */
    }
}

/* Any value at sc->i; path[0..plen) names it (its key included).  is_ref:
 * the member name is "reference". */
static bool scan_value(scanner *sc, size_t plen, int depth, bool is_ref)
{
    unsigned char c = sc->s[sc->i];

    switch (c) {
    case '{':
        return scan_object(sc, plen, depth);
    case '[': {
        bool first = true;

        if (depth > MAX_DEPTH)
            return fail(sc, "nested too deeply");
        sc->i++;
        for (;;) {
            skip_ws(sc);
            if (sc->i >= sc->n)
                return fail(sc, "unterminated array");
            if (sc->s[sc->i] == ']') {
                if (!first && sc->s[sc->i - 1] == ',')
                    return fail(sc, "trailing ',' in array");
                sc->i++;
                return true;
            }
            if (!first) {
                if (sc->s[sc->i] != ',')
                    return fail(sc, "expected ',' or ']'");
                sc->i++;
                skip_ws(sc);
                if (sc->i >= sc->n)
                    return fail(sc, "unterminated array");
                if (sc->s[sc->i] == ']')
                    return fail(sc, "trailing ',' in array");
            }
            first = false;
            if (!scan_value(sc, plen, depth + 1, is_ref))
                return false;
        }
    }
    case '"': {
        size_t off, len;
        bool esc;

        if (!scan_string(sc, &off, &len, &esc))
            return false;
        if (is_ref) {
            /* the holder's path: drop ".reference" (or "reference") */
            size_t hl = plen == NO_PATH ? NO_PATH : plen >= 10 ? plen - 10 : 0;

            return add_ref(sc, hl, off, len, esc);
        }
        return true;
    }
    case 't':
        if (sc->n - sc->i >= 4 && memcmp(sc->s + sc->i, "true", 4) == 0) {
            sc->i += 4;
            return true;
        }
        return fail(sc, "unexpected character");
    case 'f':
        if (sc->n - sc->i >= 5 && memcmp(sc->s + sc->i, "false", 5) == 0) {
            sc->i += 5;
            return true;
        }
        return fail(sc, "unexpected character");
    case 'n':
        if (sc->n - sc->i >= 4 && memcmp(sc->s + sc->i, "null", 4) == 0) {
            sc->i += 4;
            return true;
        }
        return fail(sc, "unexpected character");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return scan_number(sc);
        return fail(sc, "unexpected character");
    }
}

bool load_scan(scan_result *r, const char *text, size_t len)
{
    scanner sc;

    r->have_type = r->have_id = false;
    r->type_escaped = r->id_escaped = false;
    r->meta_present = r->meta_is_object = r->meta_empty = false;
    r->nrefs = 0;
    r->paths_len = 0;
    r->err[0] = '\0';
    sc.s = (const unsigned char *)text;
    sc.n = len;
    sc.i = 0;
    sc.r = r;
    skip_ws(&sc);
    if (sc.i >= sc.n)
        return fail(&sc, "empty");
    if (sc.s[sc.i] != '{')
        return fail(&sc, "not a JSON object");
    if (!scan_object(&sc, 0, 1))
        return false;
    skip_ws(&sc);
    if (sc.i != sc.n)
        return fail(&sc, "text after the object");
    return true;
}

void load_scan_free(scan_result *r)
{
    free(r->refs);
    free(r->paths);
    r->refs = NULL;
    r->paths = NULL;
    r->refs_cap = r->paths_cap = 0;
}

bool load_scan_unescape(const char *s, size_t n, char *out, size_t outsz)
{
    size_t i = 0, o = 0;

    while (i < n) {
        char c = s[i++];

        if (c == '\\' && i < n) {
            c = s[i++];
            switch (c) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                /* ASCII only; anything else cannot be part of an id */
                long v = 0;
                int k;

                for (k = 0; k < 4 && i < n; k++, i++)
                    v = v * 16 + (hexval((unsigned char)s[i]) & 0xF);
                c = v > 0 && v < 0x80 ? (char)v : '?';
                break;
            }
            default:
                break; /* " \ / */
            }
        }
        if (o + 1 >= outsz)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}
