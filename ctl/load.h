/* bulkfhirctl load: declarations shared by load*.c.
 *
 * Two passes over the input files.  Pass 1 (collect) validates every
 * resource, counts the occurrences of each Type/id and learns every id and
 * Bundle fullUrl that a "urn:uuid:" reference may name.  Between the passes
 * the store is asked for the versions that already exist and for urn:uuid
 * targets that are not in the input.  Pass 2 (write) streams each resource,
 * with references resolved, meta.versionId/lastUpdated set and its Patient
 * compartment computed, straight into fhir.resource_version with COPY; only
 * the Type/id map is held in memory. */
#ifndef CTL_LOAD_H
#define CTL_LOAD_H

#include "load_scan.h"

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <libpq-fe.h>
#include <stdbool.h>

/* One Type/id of this load. */
typedef struct load_key {
    const char *ref;    /* "Type/id" */
    size_t type_len;    /* ref[0..type_len) is the type */
    long count;         /* occurrences in this load */
    long store_max;     /* highest version in the store before the load */
    bool store_current; /* the store has a current version */
    bool written;       /* a version was committed by an earlier batch */
    long next_version;  /* version for the next occurrence */
    long batch_no;      /* batch that batch_count/batch_seen belong to */
    long batch_count, batch_seen;
} load_key;

/* One resource (or DELETE) read from the input. */
typedef struct load_item {
    const char *file;
    long line;        /* NDJSON line (1-based), or 0 */
    long entry;       /* Bundle entry index, or -1 */
    const char *text; /* the resource JSON; NULL for a DELETE */
    size_t len;
    const char *del_type; /* DELETE: Type and id from request.url */
    const char *del_id;
    const char *full_url; /* Bundle entry fullUrl, or NULL */
} load_item;

/* Called for each item; false stops the file walk (a fatal error). */
typedef bool load_item_fn(void *baton, const load_item *it);

/* Input file: path, and whether it was found by walking a directory (then
 * a .json file that is not FHIR is skipped with a notice). */
typedef struct load_file {
    const char *path;
    bool from_dir;
    long unresolved; /* urn:uuid references left as they were */
    const char *unresolved_example;
} load_file;

typedef struct load_ctx {
    apr_pool_t *pool;
    int verbose;
    bool skip_invalid;
    long batch;                /* resources per transaction; 0: all */
    apr_array_header_t *files; /* load_file */
    load_file *cur_file;

    apr_hash_t *keys;          /* "Type/id" -> load_key* */
    apr_hash_t *urns;          /* uuid -> load_key* (or AMBIGUOUS) */
    apr_hash_t *store_urns;    /* uuid -> "Type/id" from the store */
    apr_hash_t *wanted;        /* uuid -> "" referenced, not yet known */
    apr_array_header_t *order; /* load_key*, one per resource, in order */
    apr_hash_t *types;         /* type -> "" seen in pass 2 */

    scan_result scan;
    long invalid;            /* bad items seen in pass 1 */
    long resources, deleted; /* pass 2: rows written */
    long ordinal;            /* pass 2: index into order */
    double bytes;            /* input bytes handled in this pass */
    double t_start, t_progress;
    bool progress; /* stderr is a terminal */
    const char *pass_name;
    int pass; /* 1 collect, 2 write */

    PGconn *conn;
    bool in_batch;
    long batch_no;
    long batch_left;
    char ts[40]; /* this batch's last_updated, UTC */
    char *cbuf;  /* COPY buffer */
    size_t clen, ccap;
} load_ctx;

extern load_key load_ambiguous; /* urns value for an id of two types */

/* load_input.c: expand PATH arguments; walk one file's items. */
bool load_input_expand(load_ctx *c, int argc, char **argv);
bool load_input_walk(load_ctx *c, load_file *f, load_item_fn *fn, void *baton);

/* load.c helpers used by the other parts */
void load_report(load_ctx *c, const load_item *it, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
double load_now(void);
void load_progress(load_ctx *c, bool final);

/* load_db.c */
bool load_db_prepare(load_ctx *c); /* lock, versions, urn lookups */
bool load_db_batch_begin(load_ctx *c);
bool load_db_batch_end(load_ctx *c);
void load_db_abort(load_ctx *c);
bool load_db_put(load_ctx *c, const char *data, size_t n);
bool load_db_put_escaped(load_ctx *c, const char *data, size_t n);

#endif
