/* Unit tests for bf_share: paths, part names (build/parse round trip,
 * rejected names), stored names, and the lock protocol between a server
 * (LOCK_SH) and the sweeper (LOCK_EX|LOCK_NB), with two descriptors in one
 * process (flock locks belong to the open file description). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "bf_share.h"

#define JOB "3f2a9c1e-0b7d-4e55-9a3c-1d2e3f405162"

typedef struct {
    apr_pool_t *p;
    char root[64];
    const char *dir;
    int dfd;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);

    apr_pool_create(&fx->p, NULL);
    snprintf(fx->root, sizeof fx->root, "/tmp/test_share.XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    fx->dir = bf_share_job_dir(fx->p, fx->root, JOB);
    assert_non_null(fx->dir);
    assert_int_equal(mkdir(fx->dir, 0755), 0);
    fx->dfd = open(fx->dir, O_RDONLY | O_DIRECTORY);
    assert_true(fx->dfd >= 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];

    close(fx->dfd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", fx->root);
    apr_pool_destroy(fx->p);
    free(fx);
    return 0;
}

static void touch(fx_t *fx, const char *name, const char *content)
{
    int fd = openat(fx->dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)),
                     (ssize_t)strlen(content));
    close(fd);
}

static bool exists(fx_t *fx, const char *name)
{
    struct stat sb;

    return fstatat(fx->dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Paths: {root}/{job}[/{file}]; a component that could leave the job's
 * directory gives no path at all. */
static void test_share_001_paths(void **state)
{
    fx_t *fx = *state;
    apr_pool_t *p = fx->p;

    assert_string_equal(bf_share_job_dir(p, "/srv/export", JOB),
                        "/srv/export/" JOB);
    assert_string_equal(
        bf_share_file_path(p, "/srv/export", JOB, "Patient.1.2.0.ndjson"),
        "/srv/export/" JOB "/Patient.1.2.0.ndjson");
    assert_null(bf_share_job_dir(p, "/srv/export", ""));
    assert_null(bf_share_job_dir(p, "/srv/export", ".."));
    assert_null(bf_share_job_dir(p, "/srv/export", "a/b"));
    assert_null(bf_share_job_dir(p, "/srv/export", NULL));
    assert_null(bf_share_file_path(p, "/srv/export", JOB, ".."));
    assert_null(bf_share_file_path(p, "/srv/export", JOB, "."));
    assert_null(bf_share_file_path(p, "/srv/export", JOB, "../x.ndjson"));
    assert_null(bf_share_file_path(p, "/srv/export", "..", "x"));
}

/* Build then parse gives the same fields back, for every prefix the worker
 * writes and for the extremes of each number. */
static void test_share_002_round_trip(void **state)
{
    fx_t *fx = *state;
    static const struct {
        const char *prefix;
        int64_t task, fencing;
        int part;
        const char *name;
    } cases[] = {
        { "Patient", 12, 3, 0, "Patient.12.3.0.ndjson" },
        { "blocks", 7, 1, 4, "blocks.7.1.4.ndjson" },
        { "deleted", 4, 2, 0, "deleted.4.2.0.ndjson" },
        { "error", 1, 1, 0, "error.1.1.0.ndjson" },
        { "MedicationAdministration", 0, 0, 0,
          "MedicationAdministration.0.0.0.ndjson" },
        { "Observation", INT64_MAX, INT64_MAX, INT32_MAX,
          "Observation.9223372036854775807.9223372036854775807.2147483647"
          ".ndjson" },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *name =
            bf_share_part_name(fx->p, cases[i].prefix, cases[i].task,
                               cases[i].fencing, cases[i].part);
        bf_share_part_t pt;

        assert_non_null(name);
        assert_string_equal(name, cases[i].name);
        memset(&pt, 0, sizeof pt);
        assert_true(bf_share_part_parse(name, &pt));
        assert_string_equal(pt.prefix, cases[i].prefix);
        assert_true(pt.task == cases[i].task);
        assert_true(pt.fencing == cases[i].fencing);
        assert_int_equal(pt.part, cases[i].part);
    }
    /* a 64-letter prefix is the longest */
    assert_non_null(bf_share_part_name(fx->p,
                                       "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                       "aaaaaaaaaaaaaaaaaaaaaaaaa",
                                       1, 1, 0));
}

/* Names the writer never produces are not parts: the module answers 404
 * for them and the sweeper leaves them to the job directory's removal. */
static void test_share_003_rejects(void **state)
{
    fx_t *fx = *state;
    static const char *odd[] = {
        "",
        "Patient",
        "Patient.ndjson",
        "Patient.1.2.ndjson",
        "Patient.1.2.3.4.ndjson",
        "Patient.1.2.3.ndjson.gz", /* a stored name, not a published one */
        "Patient.1.2.3.json",
        "Patient.1.2.3.ndjson ",
        "Patient.1.2.3.ndjsonx",
        ".1.2.3.ndjson",
        "Pat1ent.1.2.3.ndjson",
        "Pat-ient.1.2.3.ndjson",
        "../Patient.1.2.3.ndjson",
        "Patient/x.1.2.3.ndjson",
        "Patient.-1.2.3.ndjson",
        "Patient.+1.2.3.ndjson",
        "Patient. 1.2.3.ndjson",
        "Patient.01.2.3.ndjson",
        "Patient.1.2.03.ndjson",
        "Patient..2.3.ndjson",
        "Patient.1.2.x.ndjson",
        "Patient.9223372036854775808.2.3.ndjson", /* > INT64_MAX */
        "Patient.1.99999999999999999999.3.ndjson",
        "Patient.1.2.2147483648.ndjson", /* > INT_MAX */
        "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ".1.2.3.ndjson", /* 65 letters */
    };
    bf_share_part_t pt;
    size_t i;

    for (i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        memset(&pt, 0x5a, sizeof pt);
        if (bf_share_part_parse(odd[i], &pt))
            fail_msg("accepted '%s'", odd[i]);
        assert_int_equal((unsigned char)pt.prefix[0], 0x5a); /* untouched */
    }
    assert_false(bf_share_part_parse(NULL, &pt));
    assert_null(bf_share_part_name(fx->p, "", 1, 1, 0));
    assert_null(bf_share_part_name(fx->p, "Pat.ient", 1, 1, 0));
    assert_null(bf_share_part_name(fx->p, "Patient", -1, 1, 0));
    assert_null(bf_share_part_name(fx->p, "Patient", 1, -1, 0));
    assert_null(bf_share_part_name(fx->p, "Patient", 1, 1, -1));
}

/* Stored names: ".gz" appended under gzip, and removed again once by the
 * reverse. */
static void test_share_004_stored_names(void **state)
{
    fx_t *fx = *state;
    bool gz = false;

    assert_string_equal(
        bf_share_stored_name(fx->p, "Patient.1.2.0.ndjson", true),
        "Patient.1.2.0.ndjson.gz");
    assert_string_equal(
        bf_share_stored_name(fx->p, "Patient.1.2.0.ndjson", false),
        "Patient.1.2.0.ndjson");
    assert_string_equal(
        bf_share_published_name(fx->p, "Patient.1.2.0.ndjson.gz", &gz),
        "Patient.1.2.0.ndjson");
    assert_true(gz);
    assert_string_equal(
        bf_share_published_name(fx->p, "Patient.1.2.0.ndjson", &gz),
        "Patient.1.2.0.ndjson");
    assert_false(gz);
    assert_string_equal(bf_share_published_name(fx->p, "x.gz.gz", &gz), "x.gz");
    assert_true(gz);
    assert_string_equal(bf_share_published_name(fx->p, ".gz", &gz), ".gz");
    assert_false(gz);
}

/* The lock protocol: while a server holds the file open for serving
 * (LOCK_SH), unlink-if-unused refuses with EWOULDBLOCK and the file stays;
 * once the server's descriptor is closed, it unlinks. */
static void test_share_005_lock_protocol(void **state)
{
    fx_t *fx = *state;
    const char *name = "Patient.1.2.0.ndjson";
    const char *path = bf_share_file_path(fx->p, fx->root, JOB, name);
    apr_file_t *served, *second;
    const char *op = NULL;
    int err = 0;

    touch(fx, name, "{}\n");
    assert_int_equal(bf_share_open_served(&served, path, 0, fx->p),
                     APR_SUCCESS);
    /* two servers may share it */
    assert_int_equal(bf_share_open_served(&second, path, 0, fx->p),
                     APR_SUCCESS);
    assert_int_equal(apr_file_close(second), APR_SUCCESS);
    assert_false(bf_share_unlink_unused(fx->dfd, name, &err, &op));
    assert_int_equal(err, EWOULDBLOCK);
    assert_string_equal(op, "flock");
    assert_true(exists(fx, name));
    assert_int_equal(apr_file_close(served), APR_SUCCESS);
    assert_true(bf_share_unlink_unused(fx->dfd, name, &err, &op));
    assert_false(exists(fx, name));
    /* gone already: nothing to do, and that is success */
    assert_true(bf_share_unlink_unused(fx->dfd, name, &err, &op));
    /* a file that is gone cannot be served */
    assert_true(
        APR_STATUS_IS_ENOENT(bf_share_open_served(&served, path, 0, fx->p)));
}

/* A symlink is unlinked (itself, not its target) without a lock. */
static void test_share_006_symlink(void **state)
{
    fx_t *fx = *state;
    const char *op = NULL;
    int err = 0;

    touch(fx, "target", "x");
    assert_int_equal(symlinkat("target", fx->dfd, "Patient.1.2.0.ndjson"), 0);
    assert_true(
        bf_share_unlink_unused(fx->dfd, "Patient.1.2.0.ndjson", &err, &op));
    assert_false(exists(fx, "Patient.1.2.0.ndjson"));
    assert_true(exists(fx, "target"));
}

/* The module finds a part's stored file: the ".gz" first, else the plain
 * one, and says which. */
static void test_share_007_open_part(void **state)
{
    fx_t *fx = *state;
    apr_file_t *fd;
    const char *path = NULL;
    bool gz = true;
    char buf[8];
    apr_size_t n = sizeof buf;

    assert_true(APR_STATUS_IS_ENOENT(bf_share_open_part(
        &fd, &gz, &path, fx->root, JOB, "Patient.1.2.0.ndjson", 0, fx->p)));
    assert_false(gz);
    touch(fx, "Patient.1.2.0.ndjson", "plain");
    assert_int_equal(bf_share_open_part(&fd, &gz, &path, fx->root, JOB,
                                        "Patient.1.2.0.ndjson", 0, fx->p),
                     APR_SUCCESS);
    assert_false(gz);
    assert_string_equal(
        path, apr_pstrcat(fx->p, fx->dir, "/Patient.1.2.0.ndjson", NULL));
    apr_file_close(fd);
    touch(fx, "Patient.1.2.0.ndjson.gz", "gzip");
    assert_int_equal(bf_share_open_part(&fd, &gz, &path, fx->root, JOB,
                                        "Patient.1.2.0.ndjson", 0, fx->p),
                     APR_SUCCESS);
    assert_true(gz);
    assert_string_equal(
        path, apr_pstrcat(fx->p, fx->dir, "/Patient.1.2.0.ndjson.gz", NULL));
    assert_int_equal(apr_file_read(fd, buf, &n), APR_SUCCESS);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "gzip", 4);
    /* the open part is locked against the sweeper */
    {
        const char *op;
        int err;

        assert_false(bf_share_unlink_unused(fx->dfd, "Patient.1.2.0.ndjson.gz",
                                            &err, &op));
        assert_int_equal(err, EWOULDBLOCK);
    }
    apr_file_close(fd);
    assert_true(APR_STATUS_IS_ENOENT(
        bf_share_open_part(&fd, &gz, &path, fx->root, JOB, "..", 0, fx->p)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_share_001_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_002_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_share_003_rejects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_share_004_stored_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_share_005_lock_protocol, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_share_006_symlink, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_share_007_open_part, setup,
                                        teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
