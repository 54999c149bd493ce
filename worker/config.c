/* bulkfhir-worker: configuration.  One table of keys (name, type, default,
 * help); the file is `key = value` lines with # comments; command-line flags
 * are applied after the file.  SIGHUP re-reads the file. */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>

typedef enum {
    CF_STR,
    CF_SECONDS,
    CF_COUNT,
    CF_BYTES,
    CF_LEVEL,
    CF_MIB
} cf_type;

typedef struct cf_key {
    const char *name;
    cf_type type;
    size_t offset;
    const char *def;
    const char *help;
} cf_key;

#define CF(name, type, def, help)                                              \
    {                                                                          \
#name, type, offsetof(worker_config_t, name), def, help                \
    }

static const cf_key keys[] = {
    CF(database, CF_STR, "", "libpq conninfo or URI (empty: PG* environment)"),
    CF(export_root, CF_STR, "/var/lib/bulkfhir/export",
       "directory holding one sub-directory per job"),
    CF(lease_seconds, CF_SECONDS, "30", "task lease length"),
    CF(heartbeat_seconds, CF_SECONDS, "5", "lease heartbeat interval"),
    CF(poll_seconds, CF_SECONDS, "5", "queue poll interval without NOTIFY"),
    CF(max_part_resources, CF_COUNT, "100000", "resources per NDJSON part"),
    CF(max_part_bytes, CF_BYTES, "256MiB", "bytes per NDJSON part"),
    CF(memory_limit, CF_MIB, "512",
       "MiB of resident memory a task may grow the worker to (0: no cap)"),
    CF(log_level, CF_LEVEL, "info", "error | warn | notice | info | debug"),
};

bool worker_parse_log_level(const char *s, bf_log_level_e *out)
{
    static const struct {
        const char *n;
        bf_log_level_e l;
    } t[] = {
        { "error", BF_LOG_ERR },     { "err", BF_LOG_ERR },
        { "warn", BF_LOG_WARN },     { "warning", BF_LOG_WARN },
        { "notice", BF_LOG_NOTICE }, { "info", BF_LOG_INFO },
        { "debug", BF_LOG_DEBUG },
    };
    size_t i;

    for (i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcasecmp(s, t[i].n) == 0) {
            *out = t[i].l;
            return true;
        }
    return false;
}

static bool parse_int64(const char *s, int64_t *out, bool bytes)
{
    char *end;
    long long v;
    int64_t mult = 1;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return false;
    while (*end == ' ')
        end++;
    if (bytes && *end) {
        if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") ||
            !strcasecmp(end, "kib"))
            mult = 1024;
        else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") ||
                 !strcasecmp(end, "mib"))
            mult = 1024 * 1024;
        else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") ||
                 !strcasecmp(end, "gib"))
            mult = 1024LL * 1024 * 1024;
        else
            return false;
    } else if (*end) {
        return false;
    }
    if (v > INT64_MAX / mult)
        return false;
    *out = (int64_t)v * mult;
    return true;
}

bool worker_config_set(apr_pool_t *p, worker_config_t *c, const char *key,
                       const char *value, const char **err)
{
    size_t i;
    int64_t n;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cf_key *k = &keys[i];
        char *field = (char *)c + k->offset;

        if (strcmp(k->name, key) != 0)
            continue;
        switch (k->type) {
        case CF_STR:
            *(const char **)field = apr_pstrdup(p, value);
            return true;
        case CF_SECONDS:
            if (!parse_int64(value, &n, false) || n < 1 || n > 86400) {
                *err = apr_psprintf(
                    p, "%s: expected seconds (1..86400), got '%s'", key, value);
                return false;
            }
            *(int *)field = (int)n;
            return true;
        case CF_COUNT:
        case CF_BYTES:
            if (!parse_int64(value, &n, k->type == CF_BYTES) || n < 1) {
                *err = apr_psprintf(
                    p, "%s: expected a positive %s, got '%s'", key,
                    k->type == CF_BYTES ? "size (e.g. 256MiB)" : "number",
                    value);
                return false;
            }
            *(int64_t *)field = n;
            return true;
        case CF_MIB:
            if (!parse_int64(value, &n, false) || n > 1048576) {
                *err = apr_psprintf(
                    p, "%s: expected MiB (0..1048576), got '%s'", key, value);
                return false;
            }
            *(int64_t *)field = n;
            return true;
        case CF_LEVEL:
            if (!worker_parse_log_level(value, (bf_log_level_e *)field)) {
                *err = apr_psprintf(p, "%s: unknown level '%s'", key, value);
                return false;
            }
            return true;
        }
    }
    *err = apr_psprintf(p, "unknown key '%s'", key);
    return false;
}

void worker_config_defaults(worker_config_t *c)
{
    size_t i;
    const char *err;

    memset(c, 0, sizeof *c);
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        /* static defaults: cannot fail, strings are literals */
        switch (keys[i].type) {
        case CF_STR:
            *(const char **)((char *)c + keys[i].offset) = keys[i].def;
            break;
        default:
            worker_config_set(NULL, c, keys[i].name, keys[i].def, &err);
            break;
        }
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static bool read_file(apr_pool_t *p, worker_config_t *c, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int lineno = 0;
    bool ok = true;

    if (!f) {
        bf_log(BF_LOG_ERR, "BF02001: config %s: %s", path, strerror(errno));
        return false;
    }
    while (fgets(line, sizeof line, f)) {
        char *s, *eq, *key, *val;
        const char *err;

        lineno++;
        s = trim(line);
        if (!*s || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            bf_log(BF_LOG_ERR, "BF02002: config %s:%d: expected key = value",
                   path, lineno);
            ok = false;
            continue;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        /* optional quotes around a value */
        if (strlen(val) >= 2 && val[0] == '"' && val[strlen(val) - 1] == '"') {
            val[strlen(val) - 1] = '\0';
            val++;
        }
        if (!worker_config_set(p, c, key, val, &err)) {
            bf_log(BF_LOG_ERR, "BF02003: config %s:%d: %s", path, lineno, err);
            ok = false;
        }
    }
    if (ferror(f)) {
        bf_log(BF_LOG_ERR, "BF02004: config %s: read error", path);
        ok = false;
    }
    fclose(f);
    return ok;
}

bool worker_config_load(apr_pool_t *p, worker_config_t *c, const char *path,
                        const worker_overrides_t *ov)
{
    int i;

    worker_config_defaults(c);
    if (path && !read_file(p, c, path))
        return false;
    for (i = 0; ov && ov->keys && i < ov->keys->nelts; i++) {
        const char *err;

        if (!worker_config_set(p, c, APR_ARRAY_IDX(ov->keys, i, const char *),
                               APR_ARRAY_IDX(ov->values, i, const char *),
                               &err)) {
            bf_log(BF_LOG_ERR, "BF02005: command line: %s", err);
            return false;
        }
    }
    if (c->heartbeat_seconds * 2 > c->lease_seconds)
        bf_log(BF_LOG_WARN,
               "BF02006: config: heartbeat_seconds %d is more than"
               " half of lease_seconds %d; leases may lapse",
               c->heartbeat_seconds, c->lease_seconds);
    return true;
}

/* The conninfo without its password. */
static const char *safe_conninfo(apr_pool_t *p, const char *conninfo)
{
    PQconninfoOption *opts, *o;
    char *perr = NULL;
    const char *s = "";

    if (!conninfo || !*conninfo)
        return "(PG* environment)";
    opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        PQfreemem(perr);
        return "(unparsable)";
    }
    for (o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        s = apr_pstrcat(
            p, s, *s ? " " : "", o->keyword, "=",
            strcmp(o->keyword, "password") == 0 ? "********" : o->val, NULL);
    }
    PQconninfoFree(opts);
    return s;
}

void worker_config_log(apr_pool_t *p, const worker_config_t *c,
                       const char *path, const char *worker_id)
{
    bf_log(BF_LOG_NOTICE,
           "worker %s: config %s: database '%s', export_root %s,"
           " lease_seconds %d, heartbeat_seconds %d, poll_seconds %d,"
           " max_part_resources %" PRId64 ", max_part_bytes %" PRId64
           ", memory_limit %" PRId64 " MiB, log_level %s",
           worker_id, path ? path : "(none)", safe_conninfo(p, c->database),
           c->export_root, c->lease_seconds, c->heartbeat_seconds,
           c->poll_seconds, c->max_part_resources, c->max_part_bytes,
           c->memory_limit, bf_log_level_name(c->log_level));
}
