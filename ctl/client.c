/* bulkfhirctl client: register and manage SMART Backend Services clients
 * (bulkfhir.client).  add | list | enable | disable | remove. */
#include "ctl.h"
#include "bf_log.h"
#include "bf_pq.h"

#include <apr_strings.h>
#include <ctype.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_ADD[] =
    "INSERT INTO bulkfhir.client (id, jwks, jwks_uri, scopes, max_jobs)"
    " VALUES ($1, $2::jsonb, $3, $4, $5::integer)";
static const char SQL_LIST[] =
    "SELECT id, CASE WHEN enabled THEN 'yes' ELSE 'no' END, max_jobs::text,"
    "       scopes,"
    "       coalesce(jwks_uri, 'inline, '"
    "                || coalesce(jsonb_array_length(jwks->'keys'), 0)::text"
    "                || ' key(s)'),"
    "       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
    "  FROM bulkfhir.client ORDER BY id";
static const char SQL_ENABLE[] =
    "UPDATE bulkfhir.client SET enabled = $2::boolean WHERE id = $1";
/* tokens go with the client (ON DELETE CASCADE) */
static const char SQL_REMOVE[] = "DELETE FROM bulkfhir.client WHERE id = $1";

static void client_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bulkfhirctl client add --id ID (--jwks FILE | --jwks-uri URL)\n"
        "                              --scope \"SCOPES\" [--max-jobs N]\n"
        "       bulkfhirctl client list\n"
        "       bulkfhirctl client enable ID\n"
        "       bulkfhirctl client disable ID\n"
        "       bulkfhirctl client remove ID\n"
        "  --jwks FILE      the client's public keys as a JWKS ({\"keys\": [...]})\n"
        "  --jwks-uri URL   where the server fetches them (https; http only for\n"
        "                   127.0.0.1 and localhost)\n"
        "  --scope SCOPES   pre-authorised scopes, e.g. \"system/*.read\"\n"
        "  --max-jobs N     active export jobs allowed at once (default 5)\n");
}

/* Client ids travel in JWT iss/sub claims: keep them URL-safe. */
static bool valid_client_id(const char *id)
{
    size_t n = strlen(id), i;

    if (n == 0 || n > 128)
        return false;
    for (i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("-._~:@", id[i]))
            return false;
    return true;
}

static bool valid_jwks_uri(const char *uri)
{
    static const char *const local[] = { "http://127.0.0.1", "http://localhost",
                                         NULL };
    int i;

    if (strncmp(uri, "https://", 8) == 0)
        return uri[8] != '\0' && uri[8] != '/';
    for (i = 0; local[i]; i++) {
        size_t n = strlen(local[i]);

        if (strncmp(uri, local[i], n) == 0 &&
            (uri[n] == '\0' || uri[n] == ':' || uri[n] == '/'))
            return true;
    }
    return false;
}

/* Read FILE, check it is a JWKS, return it compact in pool p. */
static const char *read_jwks(apr_pool_t *p, const char *file)
{
    json_object *root = json_object_from_file(file);
    json_object *keys;
    const char *out = NULL;
    size_t i;

    if (!root) {
        fprintf(stderr,
                "bulkfhirctl client add: %s: cannot read or not "
                "JSON: %s\n",
                file, json_util_get_last_err());
        return NULL;
    }
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "keys", &keys) ||
        !json_object_is_type(keys, json_type_array)) {
        fprintf(stderr,
                "bulkfhirctl client add: %s: not a JWKS (a JSON "
                "object with a \"keys\" array)\n",
                file);
        goto leave;
    }
    if (json_object_array_length(keys) == 0) {
        fprintf(stderr, "bulkfhirctl client add: %s: the JWKS has no keys\n",
                file);
        goto leave;
    }
    for (i = 0; i < json_object_array_length(keys); i++) {
        json_object *k = json_object_array_get_idx(keys, i), *kty;

        if (!json_object_is_type(k, json_type_object) ||
            !json_object_object_get_ex(k, "kty", &kty) ||
            !json_object_is_type(kty, json_type_string)) {
            fprintf(stderr,
                    "bulkfhirctl client add: %s: keys[%zu] is not a "
                    "JWK (no \"kty\")\n",
                    file, i);
            goto leave;
        }
        if (json_object_object_get_ex(k, "d", NULL)) {
            fprintf(stderr,
                    "bulkfhirctl client add: %s: keys[%zu] holds a "
                    "PRIVATE key (\"d\"); register the public key only\n",
                    file, i);
            goto leave;
        }
    }
    out = apr_pstrdup(
        p, json_object_to_json_string_ext(
               root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
leave:
    json_object_put(root);
    return out;
}

static int client_add(apr_pool_t *p, const ctl_globals *g, int argc,
                      char **argv)
{
    PGconn *conn = NULL;
    int rc = 1;
    static const struct option opts[] = {
        { "id", required_argument, NULL, 'i' },
        { "jwks", required_argument, NULL, 'j' },
        { "jwks-uri", required_argument, NULL, 'u' },
        { "scope", required_argument, NULL, 's' },
        { "max-jobs", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *id = NULL, *jwks_file = NULL, *uri = NULL, *scope = NULL;
    const char *max_jobs = "5", *jwks = NULL;
    const char *params[5];
    char state[6];
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            id = optarg;
            break;
        case 'j':
            jwks_file = optarg;
            break;
        case 'u':
            uri = optarg;
            break;
        case 's':
            scope = optarg;
            break;
        case 'm':
            max_jobs = optarg;
            break;
        case 'h':
            client_usage(stdout);
            return 0;
        default:
            client_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bulkfhirctl client add: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (!id || !valid_client_id(id)) {
        fprintf(stderr, "bulkfhirctl client add: --id is required: 1-128 of "
                        "A-Z a-z 0-9 - . _ ~ : @\n");
        return 2;
    }
    if (!jwks_file == !uri) {
        fprintf(stderr, "bulkfhirctl client add: give exactly one of --jwks "
                        "FILE and --jwks-uri URL\n");
        return 2;
    }
    if (uri && !valid_jwks_uri(uri)) {
        fprintf(stderr,
                "bulkfhirctl client add: --jwks-uri must be an "
                "https:// URL (http:// only for 127.0.0.1 or localhost)\n");
        return 2;
    }
    if (!scope || !*scope || strspn(scope, " ") == strlen(scope)) {
        fprintf(stderr, "bulkfhirctl client add: --scope is required, e.g. "
                        "--scope \"system/*.read\"\n");
        return 2;
    }
    {
        char *end;
        long n = strtol(max_jobs, &end, 10);

        if (*end || end == max_jobs || n < 1 || n > 100000) {
            fprintf(stderr, "bulkfhirctl client add: --max-jobs must be a "
                            "positive number\n");
            return 2;
        }
    }
    if (jwks_file && !(jwks = read_jwks(p, jwks_file)))
        return 1;
    conn = bf_pq_connect(g->conninfo, "bulkfhirctl client", 10);
    if (!conn)
        return 1;

    params[0] = id;
    params[1] = jwks;
    params[2] = uri;
    params[3] = scope;
    params[4] = max_jobs;
    if (!bf_pq_exec_quiet(conn, "client add", SQL_ADD, 5, params, NULL,
                          state)) {
        if (strcmp(state, "23505") == 0)
            fprintf(stderr,
                    "bulkfhirctl client add: client '%s' already "
                    "exists\n",
                    id);
        else
            bf_log(BF_LOG_ERR,
                   "BF03020: client add %s: failed (SQLSTATE "
                   "%s): %s",
                   id, *state ? state : "-----", PQerrorMessage(conn));
        goto leave;
    }
    printf("added client %s\n", id);
    rc = 0;
leave:
    PQfinish(conn);
    return rc;
}

static int client_list(PGconn *conn)
{
    static const char *const head[] = { "ID",     "ENABLED", "MAX JOBS",
                                        "SCOPES", "KEYS",    "CREATED (UTC)" };
    enum { NCOL = 6 };
    PGresult *res;
    int w[NCOL], r, col;

    if (!bf_pq_exec(conn, "client list", SQL_LIST, 0, NULL, &res, NULL))
        return 1;
    for (col = 0; col < NCOL; col++) {
        w[col] = (int)strlen(head[col]);
        for (r = 0; r < PQntuples(res); r++)
            if (PQgetlength(res, r, col) > w[col])
                w[col] = PQgetlength(res, r, col);
    }
    for (col = 0; col < NCOL; col++)
        printf("%-*s%s", col < NCOL - 1 ? w[col] : 0, head[col],
               col < NCOL - 1 ? "  " : "\n");
    for (r = 0; r < PQntuples(res); r++)
        for (col = 0; col < NCOL; col++)
            printf("%-*s%s", col < NCOL - 1 ? w[col] : 0,
                   PQgetvalue(res, r, col), col < NCOL - 1 ? "  " : "\n");
    if (PQntuples(res) == 0)
        printf("(no clients)\n");
    PQclear(res);
    return 0;
}

static int client_change(PGconn *conn, const char *verb, int argc, char **argv)
{
    const char *params[2];
    PGresult *res;
    const char *what;
    int rows;

    (void)argc;
    params[0] = argv[1];
    params[1] = strcmp(verb, "enable") == 0 ? "true" : "false";
    what = strcmp(verb, "remove") == 0 ? SQL_REMOVE : SQL_ENABLE;
    if (!bf_pq_exec(conn, "client change", what, what == SQL_REMOVE ? 1 : 2,
                    params, &res, NULL))
        return 1;
    rows = atoi(PQcmdTuples(res));
    PQclear(res);
    if (rows == 0) {
        fprintf(stderr, "bulkfhirctl client %s: no client '%s'\n", verb,
                argv[1]);
        return 1;
    }
    printf("%s client %s\n",
           strcmp(verb, "remove") == 0   ? "removed"
           : strcmp(verb, "enable") == 0 ? "enabled"
                                         : "disabled",
           argv[1]);
    return 0;
}

int ctl_client_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv)
{
    const char *sub;
    PGconn *conn = NULL;
    int rc;

    if (argc < 2) {
        client_usage(stderr);
        return 2;
    }
    sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        client_usage(stdout);
        return 0;
    }
    if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "enable") &&
        strcmp(sub, "disable") && strcmp(sub, "remove")) {
        fprintf(stderr, "bulkfhirctl client: unknown sub-command '%s'\n", sub);
        client_usage(stderr);
        return 2;
    }
    /* usage checks before connecting where they need no database */
    if (strcmp(sub, "list") == 0 && argc != 2) {
        fprintf(stderr, "usage: bulkfhirctl client list\n");
        return 2;
    }
    if (strcmp(sub, "add") && strcmp(sub, "list") && argc != 3) {
        fprintf(stderr, "usage: bulkfhirctl client %s ID\n", sub);
        return 2;
    }
    if (strcmp(sub, "add") == 0)
        return client_add(p, g, argc - 1, argv + 1);
    conn = bf_pq_connect(g->conninfo, "bulkfhirctl client", 10);
    if (!conn)
        return 1;
    if (strcmp(sub, "list") == 0)
        rc = client_list(conn);
    else
        rc = client_change(conn, sub, argc - 1, argv + 1);
    PQfinish(conn);
    return rc;
}
