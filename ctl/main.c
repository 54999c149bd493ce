/* bulkfhirctl: the admin CLI.  Parses the global options, initialises APR
 * once, routes log lines to stderr without decoration and dispatches to the
 * sub-command.  Exit codes: 0 ok, 1 failure, 2 usage. */
#include "config.h"
#include "ctl.h"
#include "bf_log.h"

#include <apr_general.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: bulkfhirctl [--database CONNINFO] [-v] COMMAND [ARGS...]\n"
        "\n"
        "commands:\n"
        "  migrate [--sql-dir DIR]      create or upgrade the database schema\n"
        "  migrate --check              list pending migrations (exit 3 if any)\n"
        "  load [OPTIONS] PATH...       load NDJSON (.ndjson, .ndjson.gz) and Bundle\n"
        "                               (.json) files or directories into the store\n"
        "  generate [OPTIONS]           write synthetic R4 data\n"
        "  client add|list|enable|disable|remove ...\n"
        "                               manage SMART backend-services clients\n"
        "  workers                      list the workers of every host\n"
        "  jobs [--state S] [--client C] | jobs cancel ID\n"
        "                               list export jobs, cancel one\n"
        "  audit verify|export|prune|list ...\n"
        "                               check, export (FHIR AuditEvent), prune the audit trail\n"
        "\n"
        "global options:\n"
        "  -d, --database CONNINFO      libpq connection string or URI (default: the\n"
        "                               PG* environment variables)\n"
        "  -v, --verbose                more output (repeat for debug)\n"
        "  -h, --help                   this help; COMMAND --help for its options\n"
        "  -V, --version                print the version\n");
}

/* Log sink for a CLI: "bulkfhirctl: [level] message" on stderr. */
static void cli_sink(void *baton, const char *file, int line,
                     bf_log_level_e level, const char *msg)
{
    (void)baton;
    if (isatty(2))
        fputs("\r\033[K", stderr); /* over a progress line, if any */
    if (level <= BF_LOG_WARN)
        fprintf(stderr, "bulkfhirctl: %s: %s\n", bf_log_level_name(level), msg);
    else if (level >= BF_LOG_DEBUG)
        fprintf(stderr, "bulkfhirctl: debug: %s:%d: %s\n", file, line, msg);
    else
        fprintf(stderr, "bulkfhirctl: %s\n", msg);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = { { "database", required_argument, NULL,
                                            'd' },
                                          { "verbose", no_argument, NULL, 'v' },
                                          { "help", no_argument, NULL, 'h' },
                                          { "version", no_argument, NULL, 'V' },
                                          { NULL, 0, NULL, 0 } };
    ctl_globals g = { "", 0 };
    apr_pool_t *pool = NULL;
    const char *cmd;
    int c, rc;

    /* '+': stop at the sub-command; its options are its own */
    while ((c = getopt_long(argc, argv, "+d:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            g.conninfo = optarg;
            break;
        case 'v':
            g.verbose++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("bulkfhirctl (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
            return 0;
        default: /* getopt_long has printed what is wrong */
            fprintf(stderr, "Try 'bulkfhirctl --help'.\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "bulkfhirctl: no command given\n");
        usage(stderr);
        return 2;
    }
    cmd = argv[optind];

    if (apr_initialize() != APR_SUCCESS ||
        apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "bulkfhirctl: cannot initialise APR\n");
        return 1;
    }
    bf_log_set(cli_sink, NULL,
               g.verbose >= 2 ? BF_LOG_DEBUG
               : g.verbose    ? BF_LOG_INFO
                              : BF_LOG_NOTICE);

    /* each sub-command parses argv from its own name with getopt_long;
     * optind = 0 makes glibc re-initialise its state */
    argc -= optind;
    argv += optind;
    optind = 0;
    if (strcmp(cmd, "migrate") == 0)
        rc = ctl_migrate_main(pool, &g, argc, argv);
    else if (strcmp(cmd, "load") == 0)
        rc = ctl_load_main(pool, &g, argc, argv);
    else if (strcmp(cmd, "generate") == 0)
        rc = ctl_generate_main(pool, &g, argc, argv);
    else if (strcmp(cmd, "client") == 0)
        rc = ctl_client_main(pool, &g, argc, argv);
    else if (strcmp(cmd, "workers") == 0)
        rc = ctl_workers_main(pool, &g, argc, argv);
    else if (strcmp(cmd, "jobs") == 0)
        rc = ctl_jobs_main(pool, &g, argc, argv);
    else if (strcmp(cmd, "audit") == 0)
        rc = ctl_audit_main(pool, &g, argc, argv);
    else if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        rc = 0;
    } else {
        fprintf(stderr, "bulkfhirctl: unknown command '%s'\n", cmd);
        fprintf(stderr, "Try 'bulkfhirctl --help'.\n");
        rc = 2;
    }
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
