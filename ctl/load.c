/* bulkfhirctl load: options, the two passes, the summary (see load.h). */
#include "load.h"
#include "ctl.h"
#include "bf_log.h"
#include "bf_pq.h"
#include "bf_r4.h"

#include <apr_strings.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* reported bad items before "... more" */
#define MAX_REPORTS 50

load_key load_ambiguous;

/* pass 2 row writer, load_row.c */
bool load_row_write(load_ctx *c, const load_item *it, load_key *k);
bool load_check_item(load_ctx *c, const load_item *it, char *type,
                     size_t typesz, const char **id, size_t *idlen);

double load_now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void load_report(load_ctx *c, const load_item *it, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (c->pass != 1)
        return; /* reported once, in pass 1 */
    c->invalid++;
    if (c->invalid > MAX_REPORTS) {
        if (c->invalid == MAX_REPORTS + 1)
            fprintf(stderr, "bulkfhirctl: more invalid resources; not "
                            "reporting them one by one\n");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->progress)
        fputs("\r\033[K", stderr);
    if (it->line > 0)
        fprintf(stderr, "%s:%ld: %s\n", it->file, it->line, msg);
    else if (it->entry >= 0)
        fprintf(stderr, "%s: entry[%ld]: %s\n", it->file, it->entry, msg);
    else
        fprintf(stderr, "%s: %s\n", it->file, msg);
}

void load_progress(load_ctx *c, bool final)
{
    double now = load_now(), dt = now - c->t_start;
    long n = c->pass == 1 ? c->order->nelts : c->resources + c->deleted;

    if (!c->progress || (!final && now - c->t_progress < 0.25))
        return;
    c->t_progress = now;
    fprintf(stderr, "\r\033[K%s: %ld resources, %.1f MB, %.0f resources/s",
            c->pass_name, n, c->bytes / 1e6, dt > 0 ? (double)n / dt : 0.0);
    if (final)
        fputs("\r\033[K", stderr);
}

static load_key *get_key(load_ctx *c, const char *type, const char *id,
                         size_t idlen)
{
    char ref[160];
    int n = snprintf(ref, sizeof ref, "%s/%.*s", type, (int)idlen, id);
    load_key *k = apr_hash_get(c->keys, ref, n);

    if (!k) {
        k = apr_pcalloc(c->pool, sizeof *k);
        k->ref = apr_pstrmemdup(c->pool, ref, (size_t)n);
        k->type_len = strlen(type);
        k->batch_no = -1;
        apr_hash_set(c->keys, k->ref, n, k);
    }
    return k;
}

static void put_urn(load_ctx *c, const char *uuid, size_t n, load_key *k)
{
    load_key *old = apr_hash_get(c->urns, uuid, (apr_ssize_t)n);

    if (!old)
        apr_hash_set(c->urns, apr_pstrmemdup(c->pool, uuid, n), (apr_ssize_t)n,
                     k);
    else if (old != k)
        apr_hash_set(c->urns, uuid, (apr_ssize_t)n, &load_ambiguous);
}

/* Pass 1: validate, count Type/ids, learn urn:uuid targets. */
static bool collect(void *baton, const load_item *it)
{
    load_ctx *c = baton;
    char type[80];
    const char *id;
    size_t idlen, i;
    load_key *k;

    load_progress(c, false);
    if (!it->text) {
        k = get_key(c, it->del_type, it->del_id, strlen(it->del_id));
        k->count++;
        APR_ARRAY_PUSH(c->order, load_key *) = k;
        return true;
    }
    if (!load_check_item(c, it, type, sizeof type, &id, &idlen))
        return true; /* reported; fails the load unless --skip-invalid */
    k = get_key(c, type, id, idlen);
    k->count++;
    APR_ARRAY_PUSH(c->order, load_key *) = k;
    put_urn(c, id, idlen, k);
    if (it->full_url && strncmp(it->full_url, "urn:uuid:", 9) == 0)
        put_urn(c, it->full_url + 9, strlen(it->full_url + 9), k);
    for (i = 0; i < c->scan.nrefs; i++) {
        const scan_ref *r = &c->scan.refs[i];
        const char *v = it->text + r->val_off;

        if (r->escaped || r->val_len <= 9 || memcmp(v, "urn:uuid:", 9) != 0)
            continue;
        if (!apr_hash_get(c->urns, v + 9, (apr_ssize_t)(r->val_len - 9)) &&
            !apr_hash_get(c->wanted, v + 9, (apr_ssize_t)(r->val_len - 9)))
            apr_hash_set(c->wanted,
                         apr_pstrmemdup(c->pool, v + 9, r->val_len - 9),
                         (apr_ssize_t)(r->val_len - 9), "");
    }
    return true;
}

static bool write_item(void *baton, const load_item *it)
{
    load_ctx *c = baton;
    char type[80];
    const char *id;
    size_t idlen;
    load_key *k;

    load_progress(c, false);
    if (!it->text) {
        k = get_key(c, it->del_type, it->del_id, strlen(it->del_id));
    } else {
        if (!load_check_item(c, it, type, sizeof type, &id, &idlen))
            return true; /* skipped (--skip-invalid), reported in pass 1 */
        k = get_key(c, type, id, idlen);
    }
    if (c->ordinal >= c->order->nelts ||
        APR_ARRAY_IDX(c->order, c->ordinal, load_key *) != k) {
        bf_log(BF_LOG_ERR,
               "BF03040: load: %s changed between the passes; "
               "nothing more is written",
               it->file);
        return false;
    }
    if (!c->in_batch && !load_db_batch_begin(c))
        return false;
    if (!load_row_write(c, it, k))
        return false;
    c->ordinal++;
    if (--c->batch_left == 0 && !load_db_batch_end(c))
        return false;
    return true;
}

static void load_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bulkfhirctl load [--batch N] [--skip-invalid] PATH...\n"
        "  PATH             .ndjson, .ndjson.gz or .json (Bundle) files, or\n"
        "                   directories holding them (walked recursively)\n"
        "  --batch N        commit every N resources (default: one transaction\n"
        "                   for the whole load)\n"
        "  --skip-invalid   report invalid resources and load the rest (default:\n"
        "                   report them and load nothing)\n");
}

int ctl_load_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        { "batch", required_argument, NULL, 'b' },
        { "skip-invalid", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    load_ctx ctx, *c = &ctx;
    apr_hash_index_t *hi;
    double t0;
    int opt, i, rc = 1;

    memset(c, 0, sizeof *c);
    c->pool = p;
    c->verbose = g->verbose;
    while ((opt = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'b': {
            char *end;

            c->batch = strtol(optarg, &end, 10);
            if (*end || end == optarg || c->batch < 1) {
                fprintf(stderr, "bulkfhirctl load: --batch needs a positive "
                                "number\n");
                return 2;
            }
            break;
        }
        case 's':
            c->skip_invalid = true;
            break;
        case 'h':
            load_usage(stdout);
            return 0;
        default:
            load_usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "bulkfhirctl load: no PATH given\n");
        load_usage(stderr);
        return 2;
    }
    t0 = load_now();
    c->files = apr_array_make(p, 16, sizeof(load_file));
    c->keys = apr_hash_make(p);
    c->urns = apr_hash_make(p);
    c->store_urns = apr_hash_make(p);
    c->wanted = apr_hash_make(p);
    c->types = apr_hash_make(p);
    c->order = apr_array_make(p, 4096, sizeof(load_key *));
    c->progress = isatty(2);
    if (!load_input_expand(c, argc - optind, argv + optind))
        return 1;
    if (c->files->nelts == 0) {
        fprintf(stderr, "bulkfhirctl load: no .ndjson, .ndjson.gz or .json "
                        "files found\n");
        return 1;
    }

    /* connect first: no point reading gigabytes for a wrong conninfo */
    c->conn = bf_pq_connect(g->conninfo, "bulkfhirctl load", 10);
    if (!c->conn)
        return 1;

    /* pass 1: collect */
    c->pass = 1;
    c->pass_name = "checking";
    c->t_start = load_now();
    for (i = 0; i < c->files->nelts; i++) {
        load_file *f = &APR_ARRAY_IDX(c->files, i, load_file);

        if (c->verbose)
            bf_log(BF_LOG_INFO, "load: checking %s", f->path);
        if (!load_input_walk(c, f, collect, c))
            goto leave;
    }
    load_progress(c, true);
    if (c->invalid && !c->skip_invalid) {
        fprintf(stderr,
                "bulkfhirctl load: %ld invalid resource(s); nothing "
                "loaded (--skip-invalid loads the rest)\n",
                c->invalid);
        goto leave;
    }
    /* urn:uuid targets not in this load: ask the store */
    for (hi = apr_hash_first(p, c->wanted); hi; hi = apr_hash_next(hi)) {
        const void *key;
        apr_ssize_t klen;

        apr_hash_this(hi, &key, &klen, NULL);
        if (apr_hash_get(c->urns, key, klen))
            apr_hash_set(c->wanted, key, klen, NULL);
    }
    if (c->verbose)
        bf_log(BF_LOG_INFO, "load: checked %d resources in %.2f s",
               c->order->nelts, load_now() - c->t_start);
    if (!load_db_prepare(c))
        goto leave;

    /* pass 2: write */
    c->pass = 2;
    c->pass_name = "loading";
    c->bytes = 0;
    c->t_start = c->t_progress = load_now();
    for (i = 0; i < c->files->nelts; i++) {
        load_file *f = &APR_ARRAY_IDX(c->files, i, load_file);

        if (!load_input_walk(c, f, write_item, c))
            goto leave;
        if (f->unresolved)
            bf_log(BF_LOG_WARN,
                   "BF03041: load: %s: %ld urn:uuid "
                   "reference(s) name no resource in this load or the store "
                   "(e.g. %s); stored as they are",
                   f->path, f->unresolved, f->unresolved_example);
    }
    if (c->verbose)
        bf_log(BF_LOG_INFO, "load: streamed in %.2f s",
               load_now() - c->t_start);
    if (c->in_batch && !load_db_batch_end(c))
        goto leave;
    load_progress(c, true);
    if (c->invalid)
        fprintf(stderr, "bulkfhirctl load: skipped %ld invalid resource(s)\n",
                c->invalid);
    printf("loaded %ld resources (%u types, %ld deleted) in %.2f s\n",
           c->resources, apr_hash_count(c->types), c->deleted, load_now() - t0);
    rc = 0;

leave:
    if (rc != 0) {
        load_progress(c, true);
        load_db_abort(c);
        if (c->batch && c->batch_no > 0)
            fprintf(stderr,
                    "bulkfhirctl load: failed; %ld batch(es) of %ld "
                    "resources were committed before\n",
                    c->batch_no, c->batch);
        else if (c->pass == 2)
            fprintf(stderr, "bulkfhirctl load: failed; nothing was "
                            "committed\n");
    }
    load_scan_free(&c->scan);
    free(c->cbuf);
    PQfinish(c->conn);
    return rc;
}
