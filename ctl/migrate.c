/* bulkfhirctl migrate: apply sql/NNNN_name.sql files not yet recorded in
 * bulkfhir.schema_migration, in version order, each in its own transaction
 * together with its bookkeeping row.  A session advisory lock makes two
 * concurrent runs safe: the second waits, then finds nothing to do.
 * `migrate --check` changes nothing: it lists the pending files and exits
 * 3 when there are any (monitoring, package upgrades). */
#include "ctl.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BF_PKGDATADIR
#define BF_PKGDATADIR "/usr/local/share/mod_bulkfhir"
#endif

/* pg_advisory_lock key of migrate ("bfmigr" in ASCII) */
#define MIGRATE_LOCK "107839718434674"

static const char SQL_LOCK[] = "SELECT pg_advisory_lock(" MIGRATE_LOCK ")";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")";
static const char SQL_SCHEMA[] = "CREATE SCHEMA IF NOT EXISTS bulkfhir";
static const char SQL_BOOTSTRAP[] =
    "CREATE TABLE IF NOT EXISTS bulkfhir.schema_migration ("
    "  version    integer PRIMARY KEY,"
    "  name       text NOT NULL,"
    "  applied_at timestamptz NOT NULL DEFAULT now())";
static const char SQL_APPLIED[] =
    "SELECT version FROM bulkfhir.schema_migration";
/* --check: the bookkeeping table may not exist yet (nothing applied) */
static const char SQL_HAS_TABLE[] =
    "SELECT to_regclass('bulkfhir.schema_migration') IS NOT NULL";
static const char SQL_RECORD[] =
    "INSERT INTO bulkfhir.schema_migration (version, name, applied_at)"
    " VALUES ($1::integer, $2, now())";

typedef struct migration {
    int version;
    const char *name; /* file name, e.g. 0001_store.sql */
    const char *path;
} migration;

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* NNNN_name.sql: four or more digits, '_', then [A-Za-z0-9_-]+ */
static bool parse_name(const char *name, int *version)
{
    const char *p = name;
    size_t n = strlen(name);

    while (isdigit((unsigned char)*p))
        p++;
    if (p - name < 4 || p - name > 9 || *p != '_' || n < 6 ||
        strcmp(name + n - 4, ".sql") != 0)
        return false;
    for (p++; p < name + n - 4; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    *version = atoi(name);
    return true;
}

static int cmp_migration(const void *a, const void *b)
{
    const migration *x = a, *y = b;

    return (x->version > y->version) - (x->version < y->version);
}

static bool list_migrations(apr_pool_t *p, const char *dir,
                            apr_array_header_t **out)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_array_header_t *arr = apr_array_make(p, 16, sizeof(migration));
    int i;

    rv = apr_dir_open(&d, dir, p);
    if (rv != APR_SUCCESS) {
        char buf[256];

        bf_log(BF_LOG_ERR,
               "BF03001: migrate: cannot open sql directory %s: "
               "%s",
               dir, apr_strerror(rv, buf, sizeof buf));
        return false;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) ==
           APR_SUCCESS) {
        migration *m;
        int v;

        if (fi.filetype != APR_REG || !parse_name(fi.name, &v))
            continue;
        m = apr_array_push(arr);
        m->version = v;
        m->name = apr_pstrdup(p, fi.name);
        m->path = apr_pstrcat(p, dir, "/", fi.name, NULL);
    }
    apr_dir_close(d);
    qsort(arr->elts, arr->nelts, sizeof(migration), cmp_migration);
    for (i = 1; i < arr->nelts; i++) {
        migration *m = (migration *)arr->elts;

        if (m[i].version == m[i - 1].version) {
            bf_log(BF_LOG_ERR,
                   "BF03002: migrate: %s and %s have the same "
                   "version %d",
                   m[i - 1].name, m[i].name, m[i].version);
            return false;
        }
    }
    *out = arr;
    return true;
}

/* Run the file's statements, then record it, in one transaction. */
static bool apply_one(apr_pool_t *p, PGconn *conn, const migration *m)
{
    char *sql = NULL;
    apr_size_t len;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    PGresult *res;
    char vbuf[16];
    const char *params[2];
    const char *what = apr_psprintf(p, "migrate %s", m->name);

    rv = apr_file_open(&f, m->path, APR_FOPEN_READ, 0, p);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS) {
        len = (apr_size_t)fi.size;
        sql = apr_palloc(p, len + 1);
        rv = apr_file_read_full(f, sql, len, NULL);
        sql[len] = '\0';
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        char buf[256];

        bf_log(BF_LOG_ERR, "BF03003: %s: cannot read %s: %s", what, m->path,
               apr_strerror(rv, buf, sizeof buf));
        return false;
    }
    if (!bf_pq_begin(conn, what))
        return false;
    /* the simple-query protocol runs the whole file, statement by
     * statement, inside the open transaction */
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorMessage(res);

        bf_log(BF_LOG_ERR, "BF03004: %s: SQLSTATE %s: %s", what,
               state ? state : "-----",
               msg && *msg ? msg : PQerrorMessage(conn));
        PQclear(res);
        bf_pq_rollback(conn, what);
        return false;
    }
    PQclear(res);
    snprintf(vbuf, sizeof vbuf, "%d", m->version);
    params[0] = vbuf;
    params[1] = m->name;
    if (!bf_pq_exec(conn, what, SQL_RECORD, 2, params, NULL, NULL) ||
        !bf_pq_commit(conn, what)) {
        bf_pq_rollback(conn, what);
        return false;
    }
    return true;
}

static void migrate_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bulkfhirctl migrate [--check] [--sql-dir DIR]\n"
        "  --check         change nothing: list the migrations not applied yet\n"
        "                  and exit 3 when there are any (0: up to date)\n"
        "  --sql-dir DIR   migrations directory (default: $BULKFHIR_SQL_DIR,\n"
        "                  else %s/sql)\n",
        BF_PKGDATADIR);
}

static bool is_applied(PGresult *res, int version)
{
    int r;

    for (r = 0; res && r < PQntuples(res); r++)
        if (atoi(PQgetvalue(res, r, 0)) == version)
            return true;
    return false;
}

/* --check: read-only; 0 up to date, 3 pending, 1 failure. */
static int check_pending(PGconn *conn, const apr_array_header_t *migs)
{
    PGresult *res = NULL, *has = NULL;
    int i, pending = 0, last = 0;

    if (!bf_pq_exec(conn, "migrate --check: table", SQL_HAS_TABLE, 0, NULL,
                    &has, NULL))
        return 1;
    if (strcmp(PQgetvalue(has, 0, 0), "t") == 0 &&
        !bf_pq_exec(conn, "migrate --check: applied", SQL_APPLIED, 0, NULL,
                    &res, NULL)) {
        PQclear(has);
        return 1;
    }
    PQclear(has);
    for (i = 0; i < migs->nelts; i++) {
        const migration *m = &((const migration *)migs->elts)[i];

        last = m->version;
        if (is_applied(res, m->version))
            continue;
        printf("pending: %s\n", m->name);
        pending++;
    }
    if (res)
        PQclear(res);
    if (pending == 0) {
        printf("schema is up to date (%d migrations, latest %04d)\n",
               migs->nelts, last);
        return 0;
    }
    printf("%d of %d migrations pending: run bulkfhirctl migrate\n", pending,
           migs->nelts);
    return 3;
}

int ctl_migrate_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv)
{
    static const struct option opts[] = { { "sql-dir", required_argument, NULL,
                                            's' },
                                          { "check", no_argument, NULL, 'c' },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    const char *dir = getenv("BULKFHIR_SQL_DIR");
    apr_array_header_t *migs;
    PGconn *conn = NULL;
    PGresult *res = NULL;
    int c, i, applied = 0, rc = 1;
    bool locked = false, check = false;

    while ((c = getopt_long(argc, argv, "s:ch", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            dir = optarg;
            break;
        case 'c':
            check = true;
            break;
        case 'h':
            migrate_usage(stdout);
            return 0;
        default:
            migrate_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bulkfhirctl migrate: unexpected argument '%s'\n",
                argv[optind]);
        migrate_usage(stderr);
        return 2;
    }
    if (!dir || !*dir)
        dir = BF_PKGDATADIR "/sql";

    if (!list_migrations(p, dir, &migs))
        return 1;
    if (migs->nelts == 0) {
        bf_log(BF_LOG_ERR, "BF03005: migrate: no NNNN_name.sql files in %s",
               dir);
        return 1;
    }
    conn = bf_pq_connect(g->conninfo, "bulkfhirctl migrate", 10);
    if (!conn)
        return 1;
    if (g->verbose < 2)
        PQsetNoticeProcessor(conn, quiet_notice, NULL);
    if (check) {
        rc = check_pending(conn, migs);
        PQfinish(conn);
        return rc;
    }

    if (!bf_pq_exec(conn, "migrate: lock", SQL_LOCK, 0, NULL, NULL, NULL))
        goto leave;
    locked = true;
    if (!bf_pq_exec(conn, "migrate: schema", SQL_SCHEMA, 0, NULL, NULL, NULL) ||
        !bf_pq_exec(conn, "migrate: bootstrap", SQL_BOOTSTRAP, 0, NULL, NULL,
                    NULL) ||
        !bf_pq_exec(conn, "migrate: applied", SQL_APPLIED, 0, NULL, &res, NULL))
        goto leave;

    for (i = 0; i < migs->nelts; i++) {
        const migration *m = &((migration *)migs->elts)[i];

        if (is_applied(res, m->version)) {
            if (g->verbose)
                printf("already applied: %s\n", m->name);
            continue;
        }
        if (!apply_one(p, conn, m))
            goto leave;
        printf("applied %s\n", m->name);
        fflush(stdout);
        applied++;
    }
    if (applied == 0)
        printf("schema is up to date (%d migrations)\n", migs->nelts);
    rc = 0;

leave:
    if (res)
        PQclear(res);
    if (locked)
        bf_pq_exec_quiet(conn, "migrate: unlock", SQL_UNLOCK, 0, NULL, NULL,
                         NULL);
    PQfinish(conn);
    return rc;
}
