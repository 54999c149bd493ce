/* load_input: find the input files and walk the resources in each.
 *   *.ndjson, *.ndjson.gz  one resource per line (zlib reads both)
 *   *.json, *.json.gz      a Bundle (transaction, batch, collection, ...):
 *                          its entries; any other resource: itself
 * Directories are walked recursively in name order. */
#include "load.h"
#include "bf_id.h"
#include "bf_log.h"
#include "bf_r4.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define READ_CHUNK (1u << 20)

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

static bool is_ndjson(const char *path)
{
    return has_suffix(path, ".ndjson") || has_suffix(path, ".ndjson.gz");
}

static bool is_json(const char *path)
{
    return has_suffix(path, ".json") || has_suffix(path, ".json.gz");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool add_dir(load_ctx *c, const char *dir)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_array_header_t *names = apr_array_make(c->pool, 32, sizeof(char *));
    int i;

    rv = apr_dir_open(&d, dir, c->pool);
    if (rv != APR_SUCCESS) {
        char buf[256];

        bf_log(BF_LOG_ERR, "BF03030: load: cannot open directory %s: %s", dir,
               apr_strerror(rv, buf, sizeof buf));
        return false;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) ==
           APR_SUCCESS) {
        if (fi.name[0] == '.')
            continue;
        if (fi.filetype == APR_DIR ||
            (fi.filetype == APR_REG &&
             (is_ndjson(fi.name) || is_json(fi.name))))
            APR_ARRAY_PUSH(names, char *) =
                apr_pstrcat(c->pool, dir, "/", fi.name, NULL);
    }
    apr_dir_close(d);
    qsort(names->elts, names->nelts, sizeof(char *), cmp_str);
    for (i = 0; i < names->nelts; i++) {
        const char *path = APR_ARRAY_IDX(names, i, char *);

        if (apr_stat(&fi, path, APR_FINFO_TYPE, c->pool) != APR_SUCCESS)
            continue;
        if (fi.filetype == APR_DIR) {
            if (!add_dir(c, path))
                return false;
        } else {
            load_file *f = apr_array_push(c->files);

            memset(f, 0, sizeof *f);
            f->path = path;
            f->from_dir = true;
        }
    }
    return true;
}

bool load_input_expand(load_ctx *c, int argc, char **argv)
{
    int i;

    for (i = 0; i < argc; i++) {
        apr_finfo_t fi;
        apr_status_t rv;
        const char *path = argv[i];
        size_t n = strlen(path);

        while (n > 1 && path[n - 1] == '/')
            n--;
        path = apr_pstrmemdup(c->pool, path, n);
        rv = apr_stat(&fi, path, APR_FINFO_TYPE, c->pool);
        if (rv != APR_SUCCESS) {
            char buf[256];

            bf_log(BF_LOG_ERR, "BF03031: load: %s: %s", path,
                   apr_strerror(rv, buf, sizeof buf));
            return false;
        }
        if (fi.filetype == APR_DIR) {
            if (!add_dir(c, path))
                return false;
        } else if (is_ndjson(path) || is_json(path)) {
            load_file *f = apr_array_push(c->files);

            memset(f, 0, sizeof *f);
            f->path = path;
        } else {
            bf_log(BF_LOG_ERR,
                   "BF03032: load: %s: not a .ndjson, .ndjson.gz "
                   "or .json file",
                   path);
            return false;
        }
    }
    return true;
}

static bool gz_failed(gzFile gz, const char *path)
{
    int errnum;
    const char *msg = gzerror(gz, &errnum);

    bf_log(BF_LOG_ERR, "BF03033: load: %s: read failed: %s", path,
           errnum == Z_ERRNO ? strerror(errno) : msg);
    return false;
}

static bool walk_ndjson(load_ctx *c, load_file *f, load_item_fn *fn,
                        void *baton)
{
    gzFile gz = gzopen(f->path, "rb");
    size_t cap = 4 * READ_CHUNK, start = 0, end = 0;
    char *buf;
    bool eof = false, ok = true;
    load_item it;

    if (!gz) {
        bf_log(BF_LOG_ERR, "BF03034: load: cannot open %s: %s", f->path,
               strerror(errno));
        return false;
    }
    gzbuffer(gz, 256 * 1024);
    buf = malloc(cap);
    if (!buf) {
        gzclose(gz);
        bf_log(BF_LOG_ERR, "BF03035: load: out of memory");
        return false;
    }
    memset(&it, 0, sizeof it);
    it.file = f->path;
    it.entry = -1;
    while (ok) {
        char *nl = memchr(buf + start, '\n', end - start);
        size_t len;

        if (!nl && !eof) {
            int got;

            if (start > 0) {
                memmove(buf, buf + start, end - start);
                end -= start;
                start = 0;
            }
            if (cap - end < READ_CHUNK) {
                char *nb = realloc(buf, cap * 2);

                if (!nb) {
                    bf_log(BF_LOG_ERR, "BF03092: load: out of memory");
                    ok = false;
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            got = gzread(gz, buf + end, (unsigned)(cap - end));
            if (got < 0) {
                ok = gz_failed(gz, f->path);
                break;
            }
            if (got == 0)
                eof = true;
            end += (size_t)got;
            continue;
        }
        if (!nl && start == end)
            break;
        len = nl ? (size_t)(nl - (buf + start)) : end - start;
        it.line++;
        c->bytes += (double)len + 1;
        it.text = buf + start;
        it.len = len;
        start += len + (nl ? 1 : 0);
        while (it.len > 0 &&
               (it.text[it.len - 1] == '\r' || it.text[it.len - 1] == ' ' ||
                it.text[it.len - 1] == '\t'))
            it.len--;
        if (it.len == 0)
            continue; /* blank line */
        ok = fn(baton, &it);
    }
    free(buf);
    gzclose(gz);
    return ok;
}

/* Read a whole (possibly gzipped) file into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    size_t cap = READ_CHUNK, n = 0;
    char *buf;

    if (!gz) {
        bf_log(BF_LOG_ERR, "BF03091: load: cannot open %s: %s", path,
               strerror(errno));
        return NULL;
    }
    buf = malloc(cap + 1);
    for (;;) {
        int got;

        if (!buf) {
            bf_log(BF_LOG_ERR, "BF03093: load: out of memory");
            break;
        }
        if (cap - n < READ_CHUNK) {
            char *nb = realloc(buf, cap * 2 + 1);

            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap *= 2;
        }
        got = gzread(gz, buf + n, (unsigned)(cap - n));
        if (got < 0) {
            gz_failed(gz, path);
            free(buf);
            buf = NULL;
            break;
        }
        if (got == 0) {
            buf[n] = '\0';
            *len = n;
            break;
        }
        n += (size_t)got;
    }
    gzclose(gz);
    return buf;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static bool bundle_entries_are_resources(const char *type)
{
    static const char *const kinds[] = { "transaction", "batch",   "collection",
                                         "searchset",   "history", NULL };
    int i;

    for (i = 0; type && kinds[i]; i++)
        if (strcmp(type, kinds[i]) == 0)
            return true;
    return false;
}

/* DELETE entry: request.url "Type/id" (possibly absolute). */
static bool delete_target(apr_pool_t *p, const char *url, const char **type,
                          const char **id)
{
    const char *slash, *prev;
    size_t n = strlen(url);

    if (strchr(url, '?') || n == 0)
        return false; /* conditional delete: not supported */
    while (n > 0 && url[n - 1] == '/')
        n--;
    url = apr_pstrmemdup(p, url, n);
    slash = strrchr(url, '/');
    if (!slash)
        return false;
    prev = slash;
    while (prev > url && prev[-1] != '/')
        prev--;
    *type = apr_pstrmemdup(p, prev, (size_t)(slash - prev));
    *id = slash + 1;
    return bf_r4_is_type(*type) && bf_id_is_fhir_id(*id, strlen(*id));
}

static bool walk_json(load_ctx *c, load_file *f, load_item_fn *fn, void *baton)
{
    size_t len = 0;
    char *text = slurp(f->path, &len);
    json_tokener *tok;
    json_object *root = NULL, *entries;
    const char *rtype;
    bool ok = true;
    load_item it;
    apr_pool_t *ep;

    if (!text)
        return false;
    c->bytes += (double)len;
    memset(&it, 0, sizeof it);
    it.file = f->path;
    it.entry = -1;
    tok = json_tokener_new_ex(256);
    if (tok)
        root = json_tokener_parse_ex(tok, text, (int)len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) +
                strspn(text + json_tokener_get_parse_end(tok), " \t\r\n") <
            len) {
        if (f->from_dir && !root) {
            if (c->pass == 1)
                bf_log(BF_LOG_NOTICE, "load: skipping %s: not JSON", f->path);
            goto leave;
        }
        load_report(c, &it, "invalid JSON: %s",
                    tok ? json_tokener_error_desc(json_tokener_get_error(tok))
                        : "out of memory");
        ok = c->skip_invalid;
        goto leave;
    }
    rtype = json_object_is_type(root, json_type_object)
                ? get_str(root, "resourceType")
                : NULL;
    if (!rtype) {
        if (f->from_dir) {
            if (c->pass == 1)
                bf_log(BF_LOG_NOTICE,
                       "load: skipping %s: not a FHIR "
                       "resource",
                       f->path);
            goto leave;
        }
        load_report(c, &it, "not a FHIR resource (no resourceType)");
        ok = c->skip_invalid;
        goto leave;
    }
    if (strcmp(rtype, "Bundle") != 0 ||
        !bundle_entries_are_resources(get_str(root, "type"))) {
        it.text = text;
        it.len = len;
        ok = fn(baton, &it);
        goto leave;
    }
    if (!json_object_object_get_ex(root, "entry", &entries))
        goto leave; /* an empty Bundle */
    if (!json_object_is_type(entries, json_type_array)) {
        load_report(c, &it, "Bundle.entry is not an array");
        ok = c->skip_invalid;
        goto leave;
    }
    apr_pool_create(&ep, c->pool);
    for (size_t i = 0; ok && i < json_object_array_length(entries); i++) {
        json_object *e = json_object_array_get_idx(entries, i), *res = NULL,
                    *req = NULL;
        const char *method;

        apr_pool_clear(ep);
        memset(&it, 0, sizeof it);
        it.file = f->path;
        it.entry = (long)i;
        if (!json_object_is_type(e, json_type_object)) {
            load_report(c, &it, "entry is not an object");
            ok = c->skip_invalid;
            continue;
        }
        json_object_object_get_ex(e, "request", &req);
        method = get_str(req, "method");
        it.full_url = get_str(e, "fullUrl");
        if (method && strcmp(method, "DELETE") == 0) {
            const char *url = get_str(req, "url");

            if (!url || !delete_target(ep, url, &it.del_type, &it.del_id)) {
                load_report(c, &it,
                            "DELETE needs request.url Type/id of an R4 "
                            "type (conditional delete is not supported)");
                ok = c->skip_invalid;
                continue;
            }
            ok = fn(baton, &it);
            continue;
        }
        if (!json_object_object_get_ex(e, "resource", &res) ||
            !json_object_is_type(res, json_type_object)) {
            if (method && strcmp(method, "GET") == 0)
                continue; /* a read in a batch: nothing to load */
            load_report(c, &it, "entry has no resource");
            ok = c->skip_invalid;
            continue;
        }
        /* POST of a resource without id: its urn:uuid fullUrl names it */
        if (!get_str(res, "id") && it.full_url &&
            strncmp(it.full_url, "urn:uuid:", 9) == 0)
            json_object_object_add(res, "id",
                                   json_object_new_string(it.full_url + 9));
        it.text = json_object_to_json_string_ext(
            res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        it.len = strlen(it.text);
        ok = fn(baton, &it);
    }
    apr_pool_destroy(ep);
leave:
    if (root)
        json_object_put(root);
    if (tok)
        json_tokener_free(tok);
    free(text);
    return ok;
}

bool load_input_walk(load_ctx *c, load_file *f, load_item_fn *fn, void *baton)
{
    c->cur_file = f;
    if (is_ndjson(f->path))
        return walk_ndjson(c, f, fn, baton);
    return walk_json(c, f, fn, baton);
}
