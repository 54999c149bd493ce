/* load_row: check one resource and write its fhir.resource_version row in
 * COPY text format: urn:uuid references resolved, meta.versionId and
 * meta.lastUpdated set, patient_ids computed from the R4 Patient
 * compartment paths. */
/* memmem: _GNU_SOURCE comes with the APR flags */
#include "load.h"
#include "bf_id.h"
#include "bf_r4.h"

#include <apr_strings.h>
#include <stdio.h>
#include <string.h>

#define MAX_PATIENTS 64

bool load_check_item(load_ctx *c, const load_item *it, char *type,
                     size_t typesz, const char **id, size_t *idlen);
bool load_row_write(load_ctx *c, const load_item *it, load_key *k);

/* Scan and validate; on success type (NUL-terminated) and id are set. */
bool load_check_item(load_ctx *c, const load_item *it, char *type,
                     size_t typesz, const char **id, size_t *idlen)
{
    scan_result *r = &c->scan;

    if (!load_scan(r, it->text, it->len)) {
        load_report(c, it, "%s", r->err);
        return false;
    }
    if (!r->have_type) {
        load_report(c, it, "no resourceType");
        return false;
    }
    if (r->type_escaped || r->type_len >= typesz) {
        load_report(c, it, "unknown resourceType");
        return false;
    }
    memcpy(type, it->text + r->type_off, r->type_len);
    type[r->type_len] = '\0';
    if (!bf_r4_is_type(type)) {
        load_report(c, it, "unknown resourceType '%s' (not FHIR R4)", type);
        return false;
    }
    if (!r->have_id) {
        load_report(c, it, "%s without an id", type);
        return false;
    }
    *id = it->text + r->id_off;
    *idlen = r->id_len;
    if (r->id_escaped || !bf_id_is_fhir_id(*id, *idlen)) {
        load_report(c, it,
                    "%s id '%.*s' is not a FHIR id "
                    "([A-Za-z0-9-.]{1,64})",
                    type, (int)(*idlen > 80 ? 80 : *idlen), *id);
        return false;
    }
    if (r->meta_present && !r->meta_is_object) {
        load_report(c, it, "%s/%.*s: meta is not an object", type, (int)*idlen,
                    *id);
        return false;
    }
    return true;
}

/* The Type/id a urn:uuid:X names: this load first, then the store. */
static const char *resolve_urn(load_ctx *c, const char *uuid, size_t n)
{
    load_key *k = apr_hash_get(c->urns, uuid, (apr_ssize_t)n);
    const char *ref;

    if (k && k != &load_ambiguous)
        return k->ref;
    if (k)
        return NULL;
    ref = apr_hash_get(c->store_urns, uuid, (apr_ssize_t)n);
    return ref && *ref ? ref : NULL;
}

/* The patient id in a reference: Patient/<id>[/_history/n] or an absolute
 * URL ending in .../Patient/<id>[/_history/n]. */
static bool patient_of(const char *v, size_t n, const char **id, size_t *idn)
{
    const char *p = NULL, *e;

    if (n > 8 && memcmp(v, "Patient/", 8) == 0)
        p = v + 8;
    else {
        const char *s;

        if (!memmem(v, n, "://", 3))
            return false;
        for (s = v; (s = memmem(s, (size_t)(v + n - s), "/Patient/", 9));
             s += 9)
            p = s + 9;
        if (!p)
            return false;
    }
    e = memchr(p, '/', (size_t)(v + n - p));
    if (e && !(v + n - e >= 10 && memcmp(e, "/_history/", 10) == 0))
        return false;
    *id = p;
    *idn = e ? (size_t)(e - p) : (size_t)(v + n - p);
    return bf_id_is_fhir_id(*id, *idn);
}

typedef struct patients {
    const char *id[MAX_PATIENTS];
    size_t len[MAX_PATIENTS];
    int n;
    bool more; /* overflow: written from the extra pool instead */
} patients;

static void add_patient(patients *ps, const char *id, size_t n)
{
    int i;

    for (i = 0; i < ps->n; i++)
        if (ps->len[i] == n && memcmp(ps->id[i], id, n) == 0)
            return;
    if (ps->n < MAX_PATIENTS) {
        ps->id[ps->n] = id;
        ps->len[ps->n++] = n;
    } else
        ps->more = true;
}

static bool path_in(const char *const *paths, const char *path, size_t n)
{
    for (; paths && *paths; paths++)
        if (strlen(*paths) == n && memcmp(*paths, path, n) == 0)
            return true;
    return false;
}

static bool put_str(load_ctx *c, const char *s)
{
    return load_db_put(c, s, strlen(s));
}

bool load_row_write(load_ctx *c, const load_item *it, load_key *k)
{
    char num[32], meta[160], type[80];
    const char *const *paths = NULL;
    scan_result *r = &c->scan;
    patients ps;
    size_t pos, i, ins;
    long version = k->next_version++;
    bool superseded, meta_done = false;
    int j;

    memcpy(type, k->ref, k->type_len); /* R4 type names are short */
    type[k->type_len] = '\0';
    if (!apr_hash_get(c->types, type, APR_HASH_KEY_STRING))
        apr_hash_set(c->types, apr_pstrdup(c->pool, type), APR_HASH_KEY_STRING,
                     "");
    k->batch_seen++;
    superseded = k->batch_seen < k->batch_count;
    k->written = true;

    /* resource_type, id, version_id, last_updated, superseded_at, deleted */
    snprintf(num, sizeof num, "%ld", version);
    if (!load_db_put(c, k->ref, k->type_len) || !put_str(c, "\t") ||
        !put_str(c, k->ref + k->type_len + 1) || !put_str(c, "\t") ||
        !put_str(c, num) || !put_str(c, "\t") || !put_str(c, c->ts) ||
        !put_str(c, "\t") || !put_str(c, superseded ? c->ts : "\\N") ||
        !put_str(c, it->text ? "\tf\t" : "\tt\t"))
        return false;

    if (!it->text) {
        /* a DELETE: a version with deleted = true and no resource (also for
         * an id the store never had: FHIR delete is idempotent) */
        c->deleted++;
        return put_str(c, "{}\t\\N\n");
    }
    c->resources++;

    /* patient_ids */
    ps.n = 0;
    ps.more = false;
    if (strcmp(type, "Patient") == 0)
        add_patient(&ps, k->ref + k->type_len + 1,
                    strlen(k->ref) - k->type_len - 1);
    paths = bf_r4_compartment_paths(type);
    for (i = 0; paths && i < r->nrefs; i++) {
        const scan_ref *ref = &r->refs[i];
        const char *v = it->text + ref->val_off, *pid;
        size_t vn = ref->val_len, pn;
        char *dec;

        if (ref->path_len == (size_t)-1 ||
            !path_in(paths, r->paths + ref->path_off, ref->path_len))
            continue;
        if (ref->escaped) {
            dec = apr_palloc(c->pool, vn + 1);
            if (!load_scan_unescape(v, vn, dec, vn + 1))
                continue;
            v = dec;
            vn = strlen(dec);
        }
        if (vn > 9 && memcmp(v, "urn:uuid:", 9) == 0) {
            const char *to = resolve_urn(c, v + 9, vn - 9);

            if (!to)
                continue;
            v = to;
            vn = strlen(to);
        }
        if (patient_of(v, vn, &pid, &pn))
            add_patient(&ps, pid, pn);
    }
    if (ps.more)
        fprintf(stderr,
                "%s: %s: more than %d patients in its compartment; "
                "only the first %d are recorded\n",
                it->file, k->ref, MAX_PATIENTS, MAX_PATIENTS);
    if (!put_str(c, "{"))
        return false;
    for (j = 0; j < ps.n; j++)
        if ((j && !put_str(c, ",")) || !put_str(c, "\"") ||
            !load_db_put(c, ps.id[j], ps.len[j]) || !put_str(c, "\""))
            return false;
    if (!put_str(c, "}\t"))
        return false;

    /* the resource, with edits: urn:uuid references and meta */
    if (r->meta_present) {
        ins = r->meta_close;
        snprintf(meta, sizeof meta,
                 "%s\"versionId\":\"%ld\",\"lastUpdated\":\"%s\"",
                 r->meta_empty ? "" : ",", version, c->ts);
    } else {
        ins = r->obj_open + 1;
        snprintf(meta, sizeof meta,
                 "\"meta\":{\"versionId\":\"%ld\",\"lastUpdated\":\"%s\"},",
                 version, c->ts);
    }
    pos = 0;
    for (i = 0; i <= r->nrefs; i++) {
        const scan_ref *ref = i < r->nrefs ? &r->refs[i] : NULL;
        const char *to = NULL;

        if (ref) {
            const char *v = it->text + ref->val_off;

            if (ref->escaped || ref->val_len <= 9 ||
                memcmp(v, "urn:uuid:", 9) != 0)
                continue;
            to = resolve_urn(c, v + 9, ref->val_len - 9);
            if (!to) {
                if (!c->cur_file->unresolved++)
                    c->cur_file->unresolved_example =
                        apr_pstrmemdup(c->pool, v, ref->val_len);
                continue;
            }
        }
        if (!meta_done && (!ref || ins <= ref->val_off)) {
            if (!load_db_put_escaped(c, it->text + pos, ins - pos) ||
                !put_str(c, meta))
                return false;
            pos = ins;
            meta_done = true;
        }
        if (!ref)
            break;
        if (!load_db_put_escaped(c, it->text + pos, ref->val_off - pos) ||
            !put_str(c, to))
            return false;
        pos = ref->val_off + ref->val_len;
    }
    return load_db_put_escaped(c, it->text + pos, it->len - pos) &&
           put_str(c, "\n");
}
