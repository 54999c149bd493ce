/* fuzz_copybin: the worker's binary COPY parser (bf_copybin_feed) writing
 * through a real bf_ndjson writer into a scratch directory (on /dev/shm
 * when present).  The input is split into CopyData chunks at each "CHNK"
 * marker.  Small part limits make the writer roll parts; the writer is
 * closed (fsync) when the stream parsed, then aborted, which unlinks every
 * part, so nothing accumulates on disk. */
#include "fuzz_common.h"
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include "bf_ndjson.h"

static char dir[256];

static void rm_dir(void)
{
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct stat sb;
    (void)argc;
    (void)argv;
    fz_init();
    snprintf(dir, sizeof dir, "%s/bf-fuzz-copybin-%ld",
             stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    atexit(rm_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_pool();
    bf_ndjson_t *w = NULL;
    bf_copybin_t st;
    const char *err = NULL;
    const uint8_t *c = data, *end = data + size;
    bool ok = true;
    size_t i;

    if (!bf_ndjson_open(&w, p, dir, "Patient", 7, 3, 5, 512, 256, &err))
        abort();
    bf_copybin_init(&st);
    while (ok) {
        const uint8_t *m = memmem(c, (size_t)(end - c), "CHNK", 4);
        const uint8_t *stop = m ? m : end;
        /* an exact-size copy: ASan flags any read past the chunk */
        size_t n = (size_t)(stop - c);
        char *chunk = malloc(n ? n : 1);

        memcpy(chunk, c, n);
        ok = bf_copybin_feed(&st, chunk, n, w);
        free(chunk);
        if (!m)
            break;
        c = m + 4;
    }
    if (ok && bf_ndjson_close(w)) {
        for (i = 0; i < bf_ndjson_part_count(w); i++)
            fz_use(bf_ndjson_part_at(w, i)->name);
        fz_sink += (size_t)bf_ndjson_total_count(w);
    }
    fz_use(bf_ndjson_error(w));
    fz_use(st.err);
    bf_ndjson_abort(w);
    apr_pool_destroy(p);
    return 0;
}
