/* bulkfhirctl: shared declarations of the sub-commands. */
#ifndef CTL_H
#define CTL_H

#include <apr_pools.h>

/* Global options parsed by main.c before the sub-command. */
typedef struct ctl_globals {
    const char *conninfo; /* --database CONNINFO, else "" (PG* environment) */
    int verbose;          /* -v */
} ctl_globals;

/* Each sub-command gets argv starting at its own name and returns the
 * process exit code: 0 ok, 1 failure, 2 usage. */
int ctl_migrate_main(apr_pool_t *p, const ctl_globals *g, int argc,
                     char **argv);
int ctl_load_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv);
int ctl_generate_main(apr_pool_t *p, const ctl_globals *g, int argc,
                      char **argv);
int ctl_client_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv);
int ctl_workers_main(apr_pool_t *p, const ctl_globals *g, int argc,
                     char **argv);
int ctl_jobs_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv);
int ctl_audit_main(apr_pool_t *p, const ctl_globals *g, int argc, char **argv);
/* workers.c: print a result as aligned columns under head[] (ncol <= 16). */
struct pg_result;
void ctl_print_table(struct pg_result *res, const char *const *head, int ncol,
                     const char *empty);

#endif
