/* fuzz_common.h: shared set-up for the libFuzzer harnesses in tests/fuzz.
 *
 * Each harness is built by `make fuzz` with clang -fsanitize=fuzzer,address,
 * undefined, compiling the lib sources it needs directly (not the normal
 * libbulkfhir).  One APR pool per process; a subpool per input, destroyed
 * after it, so leaks in lib code show up as growth LeakSanitizer reports
 * only for malloc'd memory (json-c objects, OpenSSL keys). */
#ifndef BF_FUZZ_COMMON_H
#define BF_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem, RTLD_NEXT */
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>
#include "bf_log.h"

static apr_pool_t *fz_root;

/* ASan cannot see overflows inside APR pool blocks, so the harness
 * interposes apr_palloc/apr_pcalloc: each allocation is its own malloc
 * block (with red zones), freed by a cleanup when its pool goes.  Calls
 * made while registering that cleanup use the real allocator.  Strings
 * libapr formats itself (apr_psprintf) still live in pool blocks. */
#include <dlfcn.h>
typedef void *fz_palloc_fn(apr_pool_t *, apr_size_t);
static fz_palloc_fn *fz_real_palloc;
static __thread int fz_in_hook;
/* Off while APR initialises: its global pool lives in mmap'd memory that
 * LeakSanitizer does not scan, so malloc'd blocks it owns would look lost. */
static int fz_hook_on;

static apr_status_t fz_free(void *m)
{
    free(m);
    return APR_SUCCESS;
}

void *apr_palloc(apr_pool_t *p, apr_size_t n);
void *apr_palloc(apr_pool_t *p, apr_size_t n)
{
    void *m;
    if (!fz_real_palloc)
        fz_real_palloc = (fz_palloc_fn *)dlsym(RTLD_NEXT, "apr_palloc");
    if (fz_in_hook || !fz_hook_on)
        return fz_real_palloc(p, n);
    fz_in_hook = 1;
    m = malloc(n ? n : 1);
    if (!m)
        abort();
    apr_pool_cleanup_register(p, m, fz_free, apr_pool_cleanup_null);
    fz_in_hook = 0;
    return m;
}

#undef apr_pcalloc
void *apr_pcalloc(apr_pool_t *p, apr_size_t n);
void *apr_pcalloc(apr_pool_t *p, apr_size_t n)
{
    void *m = apr_palloc(p, n);
    memset(m, 0, n);
    return m;
}

static void fz_quiet_log(void *baton, const char *file, int line,
                         bf_log_level_e level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    (void)msg;
}

/* The libFuzzer entry points every harness defines. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Called from LLVMFuzzerInitialize (FZ_DEFAULT_INITIALIZE when that is all
 * a harness needs). */
static __attribute__((unused)) void fz_init(void)
{
    if (fz_root)
        return;
    if (apr_initialize() != APR_SUCCESS)
        abort();
    if (apr_pool_create(&fz_root, NULL) != APR_SUCCESS)
        abort();
    bf_log_set(fz_quiet_log, NULL, BF_LOG_ERR);
    fz_hook_on = 1;
}

#define FZ_DEFAULT_INITIALIZE()                                                \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                          \
    {                                                                          \
        (void)argc;                                                            \
        (void)argv;                                                            \
        fz_init();                                                             \
        return 0;                                                              \
    }

/* A pool for one input. */
static __attribute__((unused)) apr_pool_t *fz_pool(void)
{
    apr_pool_t *p;
    if (apr_pool_create(&p, fz_root) != APR_SUCCESS)
        abort();
    return p;
}

/* A NUL-terminated copy of the input in p (the lib takes C strings). */
static __attribute__((unused)) char *fz_cstr(apr_pool_t *p, const uint8_t *data,
                                             size_t size)
{
    char *s = apr_palloc(p, size + 1);
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Use a result so the compiler keeps the call and its reads. */
static volatile size_t fz_sink;
static __attribute__((unused)) void fz_use(const char *s)
{
    if (s)
        fz_sink += strlen(s);
}

#endif
