/* load_scan: a validating, tree-free JSON scanner for one FHIR resource.
 * It checks the text is valid JSON that PostgreSQL's jsonb accepts (UTF-8,
 * no \u0000, paired surrogates) and records what the loader needs: the
 * top-level resourceType, id and meta object, and every "reference" string
 * with the dotted element path of the object holding it (arrays are
 * transparent: "participant.actor" for participant[2].actor.reference). */
#ifndef LOAD_SCAN_H
#define LOAD_SCAN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct scan_ref {
    size_t path_off, path_len; /* into scan_result.paths; path_len
                                  (size_t)-1: too deep, matches nothing */
    size_t val_off, val_len;   /* string contents (no quotes) in the text */
    bool escaped;              /* contents hold a backslash escape */
} scan_ref;

typedef struct scan_result {
    size_t obj_open; /* offset of the top-level '{' */
    bool have_type, have_id;
    bool type_escaped, id_escaped;
    size_t type_off, type_len; /* top-level "resourceType" string */
    size_t id_off, id_len;     /* top-level "id" string */
    bool meta_present, meta_is_object, meta_empty;
    size_t meta_close; /* offset of the '}' closing meta */
    scan_ref *refs;
    size_t nrefs, refs_cap;
    char *paths;
    size_t paths_len, paths_cap;
    char err[128]; /* why the text is rejected */
} scan_result;

/* Scan text[0..len).  Returns false with r->err set when it is not one
 * JSON object that jsonb accepts.  r's buffers are reused between calls. */
bool load_scan(scan_result *r, const char *text, size_t len);
void load_scan_free(scan_result *r);

/* Decode a JSON string's contents (escapes) into out (at most outsz-1
 * bytes, NUL-terminated); returns false if it does not fit. */
bool load_scan_unescape(const char *s, size_t n, char *out, size_t outsz);

#endif
