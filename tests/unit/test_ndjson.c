/* Unit tests for bf_ndjson: part naming and rolling, buffering, byte-exact
 * output, write errors, abort, and the binary COPY parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bf_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include <zlib.h>

#include "bf_ndjson.h"

typedef struct {
    apr_pool_t *p;
    char root[64];
    const char *dir;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);

    apr_pool_create(&fx->p, NULL);
    snprintf(fx->root, sizeof fx->root, "/tmp/test_ndjson.XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    fx->dir = apr_pstrcat(fx->p, fx->root, "/job", NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", fx->root);
    apr_pool_destroy(fx->p);
    free(fx);
    return 0;
}

static char *slurp(apr_pool_t *p, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = apr_palloc(p, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const char *path_of(fx_t *fx, const char *name)
{
    return apr_pstrcat(fx->p, fx->dir, "/", name, NULL);
}

/* Lines are written byte for byte, with "\n" after each; JSON escapes such
 * as \n, \" and \\ pass through untouched. */
static void test_ndjson_001_exact_bytes(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;
    const char *l1 =
        "{\"resourceType\": \"Patient\", \"id\": \"a\\\\b\\\"c\\nd\"}";
    const char *l2 = "{\"text\": \"caf\xc3\xa9 \\u0000\"}";
    char *content;
    size_t len;
    struct stat sb;

    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Patient", 12, 3, 0, 0, 0, &err));
    assert_true(bf_ndjson_write(w, l1, strlen(l1)));
    assert_true(bf_ndjson_write(w, l2, strlen(l2)));
    assert_true(bf_ndjson_close(w));
    assert_int_equal(bf_ndjson_part_count(w), 1);
    assert_string_equal(bf_ndjson_part_at(w, 0)->name, "Patient.12.3.0.ndjson");
    assert_int_equal(bf_ndjson_part_at(w, 0)->count, 2);
    assert_int_equal(bf_ndjson_total_bytes(w), strlen(l1) + strlen(l2) + 2);
    content = slurp(fx->p, path_of(fx, "Patient.12.3.0.ndjson"), &len);
    assert_non_null(content);
    assert_int_equal(len, strlen(l1) + strlen(l2) + 2);
    assert_string_equal(content, apr_pstrcat(fx->p, l1, "\n", l2, "\n", NULL));
    /* httpd (another user) must be able to read them */
    assert_int_equal(stat(path_of(fx, "Patient.12.3.0.ndjson"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    assert_int_equal(stat(fx->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0755);
}

/* No rows: no file at all. */
static void test_ndjson_002_empty_task_no_file(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;
    struct stat sb;

    assert_true(bf_ndjson_open(&w, fx->p, fx->dir, "Observation", 1, 1, 10, 100,
                               0, &err));
    assert_true(bf_ndjson_close(w));
    assert_int_equal(bf_ndjson_part_count(w), 0);
    assert_int_not_equal(stat(path_of(fx, "Observation.1.1.0.ndjson"), &sb), 0);
}

/* Roll at max_resources; tiny buffer forces many flushes. */
static void test_ndjson_003_roll_by_count(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;
    size_t len, i;
    char line[32];

    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Encounter", 7, 2, 3, 0, 16, &err));
    for (i = 0; i < 7; i++) {
        snprintf(line, sizeof line, "{\"n\":%zu}", i);
        assert_true(bf_ndjson_write(w, line, strlen(line)));
    }
    assert_true(bf_ndjson_close(w));
    assert_int_equal(bf_ndjson_part_count(w), 3);
    assert_int_equal(bf_ndjson_part_at(w, 0)->count, 3);
    assert_int_equal(bf_ndjson_part_at(w, 1)->count, 3);
    assert_int_equal(bf_ndjson_part_at(w, 2)->count, 1);
    assert_string_equal(bf_ndjson_part_at(w, 2)->name,
                        "Encounter.7.2.2.ndjson");
    assert_string_equal(
        slurp(fx->p, path_of(fx, "Encounter.7.2.1.ndjson"), &len),
        "{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n");
    assert_int_equal(bf_ndjson_total_count(w), 7);
}

/* Roll before max_bytes would be exceeded; an oversized line gets its own
 * part and bypasses the buffer. */
static void test_ndjson_004_roll_by_bytes(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;
    char big[100];
    size_t len;
    size_t i;

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Claim", 5, 1, 0, 20, 32, &err));
    assert_true(bf_ndjson_write(w, "123456789", 9));   /* 10 bytes */
    assert_true(bf_ndjson_write(w, "123456789", 9));   /* 20: fits exactly */
    assert_true(bf_ndjson_write(w, "1", 1));           /* would be 22: rolls */
    assert_true(bf_ndjson_write(w, big, strlen(big))); /* 100 bytes: own part */
    assert_true(bf_ndjson_write(w, "z", 1));
    assert_true(bf_ndjson_close(w));
    assert_int_equal(bf_ndjson_part_count(w), 4);
    assert_int_equal(bf_ndjson_part_at(w, 0)->bytes, 20);
    assert_int_equal(bf_ndjson_part_at(w, 1)->bytes, 2);
    assert_int_equal(bf_ndjson_part_at(w, 2)->bytes, 100);
    assert_int_equal(bf_ndjson_part_at(w, 3)->bytes, 2);
    for (i = 0; i < 4; i++) {
        const bf_ndjson_part_t *pt = bf_ndjson_part_at(w, i);
        assert_non_null(slurp(fx->p, path_of(fx, pt->name), &len));
        assert_int_equal(len, pt->bytes);
    }
}

/* Abort removes every part, also after close. */
static void test_ndjson_005_abort_unlinks(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;
    struct stat sb;

    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Patient", 9, 4, 1, 0, 0, &err));
    assert_true(bf_ndjson_write(w, "{}", 2));
    assert_true(bf_ndjson_write(w, "{}", 2));
    assert_true(bf_ndjson_close(w));
    assert_int_equal(stat(path_of(fx, "Patient.9.4.1.ndjson"), &sb), 0);
    bf_ndjson_abort(w);
    assert_int_not_equal(stat(path_of(fx, "Patient.9.4.0.ndjson"), &sb), 0);
    assert_int_not_equal(stat(path_of(fx, "Patient.9.4.1.ndjson"), &sb), 0);
    bf_ndjson_abort(w); /* idempotent */
}

/* A full disk is reported, not ignored: /dev/full gives ENOSPC. */
static void test_ndjson_006_write_all_enospc(void **state)
{
    int fd = open("/dev/full", O_WRONLY);

    (void)state;
    if (fd < 0)
        skip();
    assert_int_equal(bf_ndjson_write_all(fd, "abc", 3), ENOSPC);
    close(fd);
}

/* A write error in the writer (file size limit -> EFBIG) fails the write or
 * the close with a message naming the file; the writer stays failed. */
static void test_ndjson_007_writer_error(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;
    struct rlimit old, lim;
    char line[64];
    bool ok = true;
    int i;

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Patient", 1, 1, 0, 0, 64, &err));
    memset(line, 'a', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    for (i = 0; i < 10 && ok; i++)
        ok = bf_ndjson_write(w, line, strlen(line));
    if (ok)
        ok = bf_ndjson_close(w);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_false(ok);
    assert_non_null(bf_ndjson_error(w));
    assert_non_null(strstr(bf_ndjson_error(w), "Patient.1.1.0.ndjson"));
    assert_int_equal(bf_ndjson_errno(w), EFBIG);
    assert_false(bf_ndjson_write(w, "x", 1));
    assert_false(bf_ndjson_close(w));
    bf_ndjson_abort(w);
}

/* An unwritable directory is an error at open. */
static void test_ndjson_008_bad_dir(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;

    assert_false(bf_ndjson_open(&w, fx->p, "/nonexistent/dir/job", "Patient", 1,
                                1, 0, 0, 0, &err));
    assert_non_null(err);
    assert_null(w);
}

/* ---- binary COPY ------------------------------------------------------------
 */

static size_t put16(char *b, int v)
{
    b[0] = (char)((v >> 8) & 0xff);
    b[1] = (char)(v & 0xff);
    return 2;
}

static size_t put32(char *b, int32_t v)
{
    uint32_t u = (uint32_t)v;
    b[0] = (char)(u >> 24);
    b[1] = (char)(u >> 16);
    b[2] = (char)(u >> 8);
    b[3] = (char)u;
    return 4;
}

static size_t header(char *b)
{
    memcpy(b, "PGCOPY\n\377\r\n\0", 11);
    put32(b + 11, 0);
    put32(b + 15, 0);
    return 19;
}

static size_t tuple(char *b, const char *json)
{
    size_t n = 0, len;

    n += put16(b, 1);
    if (!json)
        return n + put32(b + n, -1);
    len = strlen(json);
    n += put32(b + n, (int32_t)len + 1);
    b[n++] = 1; /* jsonb version */
    memcpy(b + n, json, len);
    return n + len;
}

static void test_ndjson_009_copybin_stream(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    bf_copybin_t st;
    const char *err = NULL;
    char buf[512];
    size_t n, len;
    const char *a = "{\"id\": \"a\\\\b\"}", *b = "{\"id\": \"\\\"q\\\"\"}";

    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Patient", 2, 1, 0, 0, 0, &err));
    bf_copybin_init(&st);
    /* header and first row in one chunk, as the server sends it */
    n = header(buf);
    n += tuple(buf + n, a);
    assert_true(bf_copybin_feed(&st, buf, n, w));
    n = tuple(buf, NULL); /* NULL: skipped */
    assert_true(bf_copybin_feed(&st, buf, n, w));
    n = tuple(buf, b);
    assert_true(bf_copybin_feed(&st, buf, n, w));
    assert_false(st.trailer_seen);
    n = put16(buf, -1);
    assert_true(bf_copybin_feed(&st, buf, n, w));
    assert_true(st.trailer_seen);
    assert_int_equal(st.rows, 3);
    assert_true(bf_ndjson_close(w));
    assert_string_equal(slurp(fx->p, path_of(fx, "Patient.2.1.0.ndjson"), &len),
                        apr_pstrcat(fx->p, a, "\n", b, "\n", NULL));
}

static void test_ndjson_010_copybin_malformed(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    bf_copybin_t st;
    const char *err = NULL;
    char buf[256];
    size_t n;

    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Patient", 3, 1, 0, 0, 0, &err));
    /* bad signature */
    bf_copybin_init(&st);
    assert_false(bf_copybin_feed(&st, "PGCOPY\nxx", 9, w));
    assert_non_null(strstr(st.err, "header"));
    /* truncated field */
    bf_copybin_init(&st);
    n = header(buf);
    n += tuple(buf + n, "{\"a\":1}");
    assert_false(bf_copybin_feed(&st, buf, n - 3, w));
    assert_non_null(strstr(st.err, "truncated"));
    /* two columns */
    bf_copybin_init(&st);
    n = header(buf);
    n += put16(buf + n, 2);
    assert_false(bf_copybin_feed(&st, buf, n, w));
    /* wrong jsonb version */
    bf_copybin_init(&st);
    n = header(buf);
    n += tuple(buf + n, "{}");
    buf[19 + 6] = 2;
    assert_false(bf_copybin_feed(&st, buf, n, w));
    assert_non_null(strstr(st.err, "version"));
    bf_ndjson_abort(w);
}

/* Inflate a whole gzip file into a pool buffer (NUL-terminated). */
static char *inflate_file(apr_pool_t *p, const char *path, size_t *outlen)
{
    size_t len, cap = 1 << 20;
    char *in = slurp(p, path, &len), *out = apr_palloc(p, cap);
    z_stream zs;

    if (!in)
        return NULL;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap - 1;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.avail_in, 0);
    *outlen = zs.total_out;
    out[*outlen] = '\0';
    inflateEnd(&zs);
    return out;
}

/* gzip (issue #15): the process default applies to writers opened after
 * it; each part is {name}.gz holding one gzip member of exactly its lines
 * (tiny buffer: many flushes; one line larger than the buffer), rolled by
 * count as in plain mode; bytes count the NDJSON, stored the file; no
 * plain file; abort unlinks the .gz. */
static void test_ndjson_011_gzip_parts(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w, *w2;
    const char *err = NULL;
    char big[200];
    const char *lines[7];
    int64_t total = 0;
    size_t i, len;
    struct stat sb;

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (i = 0; i < 7; i++)
        lines[i] =
            i == 4 ? big : apr_psprintf(fx->p, "{\"id\": \"%d\"}", (int)i);
    bf_ndjson_set_default_compression(1);
    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Condition", 4, 2, 3, 0, 64, &err));
    assert_true(
        bf_ndjson_open(&w2, fx->p, fx->dir, "deleted", 4, 2, 0, 0, 0, &err));
    bf_ndjson_set_default_compression(-1);
    for (i = 0; i < 7; i++)
        assert_true(bf_ndjson_write(w, lines[i], strlen(lines[i])));
    assert_true(bf_ndjson_close(w));
    assert_int_equal(bf_ndjson_part_count(w), 3);
    for (i = 0; i < 3; i++) {
        const bf_ndjson_part_t *pt = bf_ndjson_part_at(w, i);
        const char *want = "";
        char *got;
        size_t j;

        assert_string_equal(
            pt->name, apr_psprintf(fx->p, "Condition.4.2.%d.ndjson", (int)i));
        assert_string_equal(pt->file,
                            apr_pstrcat(fx->p, pt->name, ".gz", NULL));
        assert_int_not_equal(stat(path_of(fx, pt->name), &sb), 0);
        assert_int_equal(stat(path_of(fx, pt->file), &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0644);
        assert_int_equal(sb.st_size, pt->stored);
        for (j = i * 3; j < i * 3 + 3 && j < 7; j++)
            want = apr_pstrcat(fx->p, want, lines[j], "\n", NULL);
        got = inflate_file(fx->p, path_of(fx, pt->file), &len);
        assert_non_null(got);
        assert_string_equal(got, want);
        assert_int_equal(pt->bytes, strlen(want));
        total += pt->bytes;
    }
    assert_int_equal(bf_ndjson_total_bytes(w), total);
    /* the second writer was opened with gzip too: its part is a .gz */
    assert_true(bf_ndjson_write(w2, "{}", 2));
    assert_string_equal(bf_ndjson_part_at(w2, 0)->file,
                        "deleted.4.2.0.ndjson.gz");
    assert_int_equal(stat(path_of(fx, "deleted.4.2.0.ndjson.gz"), &sb), 0);
    bf_ndjson_abort(w2);
    assert_int_not_equal(stat(path_of(fx, "deleted.4.2.0.ndjson.gz"), &sb), 0);
    /* the default is back to none */
    assert_int_equal(bf_ndjson_default_compression(), -1);
}

/* gzip: a write error in the helper thread (file size limit -> EFBIG)
 * fails a later write or the close with a message naming the .gz file;
 * the writer stays failed and abort removes the part. */
static void test_ndjson_012_gzip_writer_error(void **state)
{
    fx_t *fx = *state;
    bf_ndjson_t *w;
    const char *err = NULL;
    struct rlimit old, lim;
    char line[64];
    bool ok = true;
    struct stat sb;
    unsigned seed = 7;
    int i, j;

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_true(
        bf_ndjson_open(&w, fx->p, fx->dir, "Patient", 1, 1, 0, 0, 64, &err));
    bf_ndjson_set_compression(w, 1);
    /* incompressible lines: the gzip output outgrows the limit */
    for (i = 0; i < 200 && ok; i++) {
        for (j = 0; j < (int)sizeof line - 1; j++)
            line[j] = (char)('!' + rand_r(&seed) % 90);
        line[sizeof line - 1] = '\0';
        ok = bf_ndjson_write(w, line, strlen(line));
    }
    if (ok)
        ok = bf_ndjson_close(w);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_false(ok);
    assert_non_null(bf_ndjson_error(w));
    assert_non_null(strstr(bf_ndjson_error(w), "Patient.1.1.0.ndjson.gz"));
    assert_int_equal(bf_ndjson_errno(w), EFBIG);
    assert_false(bf_ndjson_write(w, "x", 1));
    assert_false(bf_ndjson_close(w));
    bf_ndjson_abort(w);
    assert_int_not_equal(stat(path_of(fx, "Patient.1.1.0.ndjson.gz"), &sb), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ndjson_001_exact_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_002_empty_task_no_file,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_003_roll_by_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_004_roll_by_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_005_abort_unlinks, setup,
                                        teardown),
        cmocka_unit_test(test_ndjson_006_write_all_enospc),
        cmocka_unit_test_setup_teardown(test_ndjson_007_writer_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_008_bad_dir, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_009_copybin_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_010_copybin_malformed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_011_gzip_parts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_012_gzip_writer_error,
                                        setup, teardown),
    };

    umask(077); /* the writer must still produce 0644 / 0755 */
    return bf_test_run(tests, NULL);
}
