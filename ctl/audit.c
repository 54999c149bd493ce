/* bulkfhirctl audit: verify the hash chains of bulkfhir.audit, export the
 * records as FHIR R4 AuditEvent NDJSON, prune old records.
 *
 *   audit verify [--since T]
 *   audit export [--since T] [--until T] --out DIR
 *   audit prune [--before T]     (default: now - audit_retention_days)
 *   audit list [--since T] [--client C] [--limit N]
 */
#include "ctl.h"
#include "bf_audit.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void audit_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bulkfhirctl audit verify [--since T]\n"
        "       bulkfhirctl audit export [--since T] [--until T] --out DIR\n"
        "       bulkfhirctl audit prune [--before T]\n"
        "       bulkfhirctl audit list [--since T] [--client C] [--limit N]\n"
        "  verify   recompute every record's hash chain; names the first\n"
        "           broken record (exit 1) or prints how many are intact\n"
        "  export   write DIR/AuditEvent.ndjson (FHIR R4 AuditEvent)\n"
        "  prune    remove the records older than T (default: the setting\n"
        "           audit_retention_days); the prune is itself recorded\n"
        "  list     the newest records, one a line\n"
        "  T is a PostgreSQL timestamp, e.g. 2026-01-31T00:00:00Z or\n"
        "  'now - 1 hour' written as an interval: -1h, -7d\n");
}

/* "-7d", "-1h", "-30m" -> an absolute instant; anything else as given. */
static const char *instant(apr_pool_t *p, const char *t)
{
    char *end;
    long n;

    if (!t || t[0] != '-')
        return t;
    n = strtol(t + 1, &end, 10);
    if (end == t + 1 || n < 0)
        return t;
    if (!strcmp(end, "d"))
        return apr_psprintf(p, "@now-%ldd", n);
    if (!strcmp(end, "h"))
        return apr_psprintf(p, "@now-%ldh", n);
    if (!strcmp(end, "m"))
        return apr_psprintf(p, "@now-%ldm", n);
    return t;
}

/* Resolve an instant on the server (relative forms, validation). */
static bool resolve(PGconn *conn, apr_pool_t *p, const char *t,
                    const char **out)
{
    const char *v[1];
    PGresult *res;
    char unit;
    long n;

    *out = NULL;
    if (!t)
        return true;
    t = instant(p, t);
    if (sscanf(t, "@now-%ld%c", &n, &unit) == 2) {
        v[0] = apr_psprintf(p, "%ld %s", n,
                            unit == 'd'   ? "days"
                            : unit == 'h' ? "hours"
                                          : "minutes");
        if (!bf_pq_exec(conn, "audit: time",
                        "SELECT to_char((now() - $1::interval) AT TIME ZONE "
                        "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                        1, v, &res, NULL))
            return false;
    } else {
        v[0] = t;
        if (!bf_pq_exec(conn, "audit: time",
                        "SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                        1, v, &res, NULL)) {
            fprintf(stderr, "bulkfhirctl audit: '%s' is not a time\n", t);
            return false;
        }
    }
    *out = apr_pstrdup(p, PQgetvalue(res, 0, 0));
    PQclear(res);
    return true;
}

static int audit_verify(apr_pool_t *p, PGconn *conn, const char *since)
{
    bf_audit_verify_t v;

    if (!bf_audit_verify(conn, p, since, &v))
        return 1;
    if (v.broken == 0) {
        printf("audit verify: %lld record(s) in %lld chain(s) intact%s%s\n",
               v.records, v.chains, since ? " since " : "", since ? since : "");
        return 0;
    }
    if (v.first_id)
        printf("audit verify: BROKEN: record id %lld (chain %s, seq %lld, "
               "at %s): %s\n",
               v.first_id, v.first_chain, v.first_seq, v.first_at, v.first_why);
    else
        printf("audit verify: BROKEN: chain %s after seq %lld: %s\n",
               v.first_chain, v.first_seq - 1, v.first_why);
    printf("audit verify: %lld of %lld chain(s) broken, %lld record(s) "
           "checked\n",
           v.broken, v.chains, v.records);
    bf_log(BF_LOG_ERR,
           "BF03061: audit verify: %lld chain(s) broken, first "
           "record id %lld (chain %s)",
           v.broken, v.first_id, v.first_chain);
    return 1;
}

static int audit_export(apr_pool_t *p, PGconn *conn, const char *since,
                        const char *until, const char *dir)
{
    const char *v[] = { since, until };
    const char *path, *tmp, *ev;
    PGresult *res;
    FILE *f;
    long long n = 0;
    int i, rows;
    bool ok = false;

    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        bf_log(BF_LOG_ERR, "BF03062: audit export: cannot create %s: %s", dir,
               strerror(errno));
        return 1;
    }
    path = apr_pstrcat(p, dir, "/AuditEvent.ndjson", NULL);
    tmp = apr_pstrcat(p, path, ".tmp", NULL);
    f = fopen(tmp, "w");
    if (!f) {
        bf_log(BF_LOG_ERR, "BF03063: audit export: cannot write %s: %s", tmp,
               strerror(errno));
        return 1;
    }
    if (!bf_pq_exec(conn, "audit export",
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                    NULL, NULL) ||
        !bf_pq_exec(conn, "audit export",
                    "DECLARE bf_audit_x NO SCROLL CURSOR FOR "
                    "SELECT id, chain, body FROM bulkfhir.audit "
                    "WHERE ($1::timestamptz IS NULL OR at >= $1) "
                    "AND ($2::timestamptz IS NULL OR at < $2) "
                    "ORDER BY at, id",
                    2, v, NULL, NULL))
        goto leave;
    do {
        if (!bf_pq_exec(conn, "audit export", "FETCH 2000 FROM bf_audit_x", 0,
                        NULL, &res, NULL))
            goto leave;
        rows = PQntuples(res);
        for (i = 0; i < rows; i++) {
            ev = bf_audit_event(p, atoll(PQgetvalue(res, i, 0)),
                                PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
            if (!ev)
                continue;
            if (fputs(ev, f) == EOF || fputc('\n', f) == EOF) {
                PQclear(res);
                bf_log(BF_LOG_ERR, "BF03064: audit export: writing %s: %s", tmp,
                       strerror(errno));
                goto leave;
            }
            n++;
        }
        PQclear(res);
    } while (rows > 0);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        bf_log(BF_LOG_ERR, "BF03064: audit export: writing %s: %s", tmp,
               strerror(errno));
        goto leave;
    }
    ok = true;
leave:
    bf_pq_rollback(conn, "audit export");
    if (fclose(f) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0) {
        bf_log(BF_LOG_ERR, "BF03065: audit export: rename to %s: %s", path,
               strerror(errno));
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        return 1;
    }
    printf("audit export: %lld AuditEvent(s) written to %s\n", n, path);
    return 0;
}

static int audit_prune(apr_pool_t *p, PGconn *conn, const char *before)
{
    const char *v[3];
    PGresult *res;
    char host[256];

    if (!before) {
        if (!bf_pq_exec(conn, "audit prune",
                        "SELECT CASE WHEN d > 0 THEN to_char((now() - "
                        "make_interval(days => d)) AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') END FROM "
                        "(SELECT bulkfhir.setting_int('audit_retention_days',"
                        " 0)::int AS d) s",
                        0, NULL, &res, NULL))
            return 1;
        before = PQgetisnull(res, 0, 0) ? NULL
                                        : apr_pstrdup(p, PQgetvalue(res, 0, 0));
        PQclear(res);
        if (!before) {
            printf("audit prune: audit_retention_days is 0 (keep all) and "
                   "no --before given: nothing removed\n");
            return 0;
        }
    }
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    v[0] = before;
    v[1] = apr_psprintf(p, "ctl:%s:%ld", host, (long)getpid());
    v[2] = getenv("USER") ? getenv("USER") : "-";
    if (!bf_pq_exec(conn, "audit prune",
                    "SELECT bulkfhir.audit_prune($1::timestamptz, $2, $3)", 3,
                    v, &res, NULL))
        return 1;
    printf("audit prune: %s record(s) before %s removed\n",
           PQgetvalue(res, 0, 0), before);
    PQclear(res);
    return 0;
}

static int audit_list(apr_pool_t *p, PGconn *conn, const char *since,
                      const char *client, const char *limit)
{
    static const char *const head[] = { "ID",     "AT (UTC)", "ACTION",
                                        "CLIENT", "STATUS",   "JOB" };
    const char *v[] = { since, client, limit };
    PGresult *res;

    (void)p;
    if (!bf_pq_exec(conn, "audit list",
                    "SELECT id::text, to_char(at AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD HH24:MI:SS'), action, "
                    "coalesce(client_id, '-'), coalesce(status::text, '-'), "
                    "coalesce(job_id, '-') FROM bulkfhir.audit "
                    "WHERE ($1::timestamptz IS NULL OR at >= $1) "
                    "AND ($2::text IS NULL OR client_id = $2) "
                    "ORDER BY at DESC, id DESC LIMIT $3::int",
                    3, v, &res, NULL))
        return 1;
    ctl_print_table(res, head, 6, "no audit records");
    PQclear(res);
    return 0;
}

int ctl_audit_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        { "since", required_argument, NULL, 's' },
        { "until", required_argument, NULL, 'u' },
        { "before", required_argument, NULL, 'b' },
        { "out", required_argument, NULL, 'o' },
        { "client", required_argument, NULL, 'c' },
        { "limit", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *since = NULL, *until = NULL, *before = NULL, *out = NULL;
    const char *client = NULL, *limit = "50", *sub;
    PGconn *conn;
    int c, rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        audit_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "s:u:b:o:c:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            since = optarg;
            break;
        case 'u':
            until = optarg;
            break;
        case 'b':
            before = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'c':
            client = optarg;
            break;
        case 'n':
            limit = optarg;
            break;
        case 'h':
            audit_usage(stdout);
            return 0;
        default:
            audit_usage(stderr);
            return 2;
        }
    }
    if (optind < argc || (strcmp(sub, "verify") && strcmp(sub, "export") &&
                          strcmp(sub, "prune") && strcmp(sub, "list"))) {
        audit_usage(stderr);
        return 2;
    }
    if (!strcmp(sub, "export") && !out) {
        fprintf(stderr, "bulkfhirctl audit export: --out DIR is required\n");
        return 2;
    }
    conn = bf_pq_connect(g->conninfo, "bulkfhirctl audit", 10);
    if (!conn)
        return 1;
    rc = 1;
    if (!resolve(conn, p, since, &since) || !resolve(conn, p, until, &until) ||
        !resolve(conn, p, before, &before))
        goto leave;
    if (!strcmp(sub, "verify"))
        rc = audit_verify(p, conn, since);
    else if (!strcmp(sub, "export"))
        rc = audit_export(p, conn, since, until, out);
    else if (!strcmp(sub, "prune"))
        rc = audit_prune(p, conn, before);
    else
        rc = audit_list(p, conn, since, client, limit);
leave:
    PQfinish(conn);
    return rc;
}
