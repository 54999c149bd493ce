/* bf_ndjson: buffered NDJSON part writer and binary COPY parser (see
 * bf_ndjson.h). */
#include "config.h"
#include "bf_ndjson.h"
#include "bf_share.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <zlib.h>

/* compressed output is written ZOUT_SIZE at a time */
#define ZOUT_SIZE (256 * 1024)

/* the process's compression level for new writers (-1: none) */
static int default_level = -1;

struct bf_ndjson {
    apr_pool_t *pool;
    const char *dir;
    const char *type;
    int64_t task_id;
    int64_t fencing;
    int64_t max_resources;
    int64_t max_bytes;
    char *buf;
    size_t bufsize;
    size_t buflen;
    int fd;                    /* current part, -1 when none open */
    apr_array_header_t *parts; /* bf_ndjson_part_t */
    int64_t total_count;
    int64_t total_bytes;
    bool dir_synced;
    const char *error;
    int error_no;
    const char *kind;  /* bulkfhir.file kind */
    const char *rtype; /* bulkfhir.file resource_type (NULL ok) */
    int first_part;
    bf_ndjson_closed_fn on_closed;
    void *on_closed_ctx;
    bf_ndjson_t *next; /* chained writer of the same attempt */
    char *header;      /* current block's header line */
    size_t header_len, header_cap;
    bool in_block;
    int level;           /* gzip level, -1: none */
    z_stream zs;         /* the current part's gzip member */
    bool z_active;       /* zs initialised (deflateEnd owed) */
    unsigned char *zout; /* ZOUT_SIZE, when level >= 0 */
    int64_t total_stored;
    /* A gzip writer compresses in a helper thread: flush hands the full
     * buffer over (swapped with spare) and the main thread goes on filling
     * the other one, so that PostgreSQL keeps sending while a buffer is
     * deflated and written.  zs, zout and fd belong to the helper while a
     * job is pending; everything else to the main thread.  The helper
     * never touches the pool: its failure is an errno and a static verb. */
    pthread_t zthread;
    bool zthread_on;
    pthread_mutex_t zmu;
    pthread_cond_t zcv;
    char *spare;     /* bufsize, the buffer handed to the helper */
    size_t zjob_len; /* bytes of spare to compress */
    bool zjob;       /* a job pending or running */
    bool zquit;
    int zerr;        /* the helper's failure (errno), 0 while none */
    const char *zop; /* "compress" or "write" */
    int64_t zstored; /* bytes the helper wrote, not yet counted */
};

void bf_ndjson_set_default_compression(int level)
{
    default_level = level < 0 ? -1 : level > 9 ? 9 : level;
}

int bf_ndjson_default_compression(void)
{
    return default_level;
}

static void z_end(bf_ndjson_t *w)
{
    if (w->z_active) {
        (void)deflateEnd(&w->zs);
        w->z_active = false;
    }
}

static void z_stop_thread(bf_ndjson_t *w)
{
    if (!w->zthread_on)
        return;
    pthread_mutex_lock(&w->zmu);
    w->zquit = true;
    pthread_cond_broadcast(&w->zcv);
    pthread_mutex_unlock(&w->zmu);
    pthread_join(w->zthread, NULL);
    pthread_cond_destroy(&w->zcv);
    pthread_mutex_destroy(&w->zmu);
    w->zthread_on = false;
}

/* zlib's state is malloc'ed and the helper thread runs until stopped:
 * both end with the writer's pool at the latest */
static apr_status_t z_cleanup(void *data)
{
    z_stop_thread(data);
    z_end(data);
    return APR_SUCCESS;
}

static bool fail(bf_ndjson_t *w, int err, const char *op, const char *path)
{
    if (!w->error) {
        w->error_no = err;
        w->error = apr_psprintf(w->pool, "%s %s: %s", op, path, strerror(err));
    }
    return false;
}

int bf_ndjson_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

bool bf_ndjson_open(bf_ndjson_t **pw, apr_pool_t *p, const char *dir,
                    const char *type, int64_t task_id, int64_t fencing,
                    int64_t max_resources, int64_t max_bytes, size_t bufsize,
                    const char **err)
{
    bf_ndjson_t *w;

    *pw = NULL;
    if (mkdir(dir, 0755) == 0) {
        /* the umask must not hide the directory from httpd */
        if (chmod(dir, 0755) != 0) {
            *err = apr_psprintf(p, "chmod %s: %s", dir, strerror(errno));
            return false;
        }
    } else if (errno != EEXIST) {
        *err = apr_psprintf(p, "mkdir %s: %s", dir, strerror(errno));
        return false;
    }
    w = apr_pcalloc(p, sizeof *w);
    w->pool = p;
    w->dir = apr_pstrdup(p, dir);
    w->type = apr_pstrdup(p, type);
    w->task_id = task_id;
    w->fencing = fencing;
    w->max_resources = max_resources;
    w->max_bytes = max_bytes;
    w->bufsize = bufsize ? bufsize : BF_NDJSON_BUFSIZE;
    w->buf = apr_palloc(p, w->bufsize);
    w->fd = -1;
    w->parts = apr_array_make(p, 4, sizeof(bf_ndjson_part_t));
    w->kind = "output";
    w->rtype = w->type;
    bf_ndjson_set_compression(w, default_level);
    apr_pool_cleanup_register(p, w, z_cleanup, apr_pool_cleanup_null);
    *pw = w;
    return true;
}

void bf_ndjson_set_compression(bf_ndjson_t *w, int level)
{
    if (w->parts->nelts > 0)
        return; /* parts already named */
    w->level = level < 0 ? -1 : level > 9 ? 9 : level;
    if (w->level >= 0 && !w->zout) {
        w->zout = apr_palloc(w->pool, ZOUT_SIZE);
        w->spare = apr_palloc(w->pool, w->bufsize);
    }
}

void bf_ndjson_set_publish(bf_ndjson_t *w, const char *kind,
                           const char *resource_type)
{
    w->kind = apr_pstrdup(w->pool, kind);
    w->rtype = resource_type ? apr_pstrdup(w->pool, resource_type) : NULL;
}

const char *bf_ndjson_kind(const bf_ndjson_t *w)
{
    return w->kind;
}

const char *bf_ndjson_resource_type(const bf_ndjson_t *w)
{
    return w->rtype;
}

void bf_ndjson_set_first_part(bf_ndjson_t *w, int first)
{
    w->first_part = first;
}

void bf_ndjson_on_part_closed(bf_ndjson_t *w, bf_ndjson_closed_fn fn, void *ctx)
{
    w->on_closed = fn;
    w->on_closed_ctx = ctx;
}

void bf_ndjson_chain(bf_ndjson_t *w, bf_ndjson_t *next)
{
    while (w->next)
        w = w->next;
    w->next = next;
}

bf_ndjson_t *bf_ndjson_next(const bf_ndjson_t *w)
{
    return w->next;
}

static const char *part_path(bf_ndjson_t *w, const bf_ndjson_part_t *part)
{
    return apr_pstrcat(w->pool, w->dir, "/", part->file, NULL);
}

static bf_ndjson_part_t *current(bf_ndjson_t *w)
{
    if (w->fd < 0 || w->parts->nelts == 0)
        return NULL;
    return &APR_ARRAY_IDX(w->parts, w->parts->nelts - 1, bf_ndjson_part_t);
}

/* Deflate len bytes into the current part's gzip member and write the
 * output (zflush Z_FINISH ends the member).  Runs in the helper thread or,
 * when it is idle, in the main thread; touches no pool.  Returns 0 or an
 * errno with *op naming the step; *stored grows by the bytes written. */
static int z_deflate_write(bf_ndjson_t *w, const char *data, size_t len,
                           int zflush, const char **op, int64_t *stored)
{
    int rc, zrc;

    w->zs.next_in = (Bytef *)data;
    w->zs.avail_in = (uInt)len;
    do {
        size_t n;

        w->zs.next_out = w->zout;
        w->zs.avail_out = ZOUT_SIZE;
        zrc = deflate(&w->zs, zflush);
        if (zrc == Z_STREAM_ERROR) {
            *op = "compress";
            return EIO;
        }
        n = ZOUT_SIZE - w->zs.avail_out;
        if (n > 0) {
            rc = bf_ndjson_write_all(w->fd, (const char *)w->zout, n);
            if (rc != 0) {
                *op = "write";
                return rc;
            }
            *stored += (int64_t)n;
        }
    } while (w->zs.avail_out == 0 ||
             (zflush == Z_FINISH && zrc != Z_STREAM_END));
    return 0;
}

static void start_writeback(int fd)
{
#ifdef HAVE_SYNC_FILE_RANGE
    /* Start writeback of what is written so far without waiting for it, so
     * the fsync before publication finds little left to write (1 MB
     * buffers: 1M export 9.8 -> 8.8 s, synthea 0.58 -> 0.54 s, medians of
     * interleaved runs, tests/bench/PROFILE.md).  Only a hint: an I/O error
     * still surfaces at that fsync. */
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
#endif
}

static void *z_helper(void *arg)
{
    bf_ndjson_t *w = arg;

    pthread_mutex_lock(&w->zmu);
    for (;;) {
        const char *op = NULL;
        int64_t stored = 0;
        int err;

        while (!w->zjob && !w->zquit)
            pthread_cond_wait(&w->zcv, &w->zmu);
        if (!w->zjob)
            break; /* quit, nothing pending */
        pthread_mutex_unlock(&w->zmu);
        err =
            z_deflate_write(w, w->spare, w->zjob_len, Z_NO_FLUSH, &op, &stored);
        if (err == 0)
            start_writeback(w->fd);
        pthread_mutex_lock(&w->zmu);
        w->zstored += stored;
        if (err != 0 && w->zerr == 0) {
            w->zerr = err;
            w->zop = op;
        }
        w->zjob = false;
        pthread_cond_broadcast(&w->zcv);
    }
    pthread_mutex_unlock(&w->zmu);
    return NULL;
}

/* Wait until the helper has no job; count what it wrote into the current
 * part and report its failure as the writer's. */
static bool z_wait(bf_ndjson_t *w)
{
    bf_ndjson_part_t *cur = current(w);
    int err;
    const char *op;

    if (!w->zthread_on)
        return true;
    pthread_mutex_lock(&w->zmu);
    while (w->zjob)
        pthread_cond_wait(&w->zcv, &w->zmu);
    if (cur)
        cur->stored += w->zstored;
    w->total_stored += w->zstored;
    w->zstored = 0;
    err = w->zerr;
    op = w->zop;
    pthread_mutex_unlock(&w->zmu);
    if (err != 0)
        return fail(w, err, op, cur ? part_path(w, cur) : w->dir);
    return true;
}

/* Write len bytes of NDJSON to the current part: as they are, or through
 * its gzip member (zflush Z_FINISH ends the member), in this thread once
 * the helper is idle. */
static bool emit(bf_ndjson_t *w, const char *data, size_t len, int zflush)
{
    bf_ndjson_part_t *cur = current(w);
    const char *op = NULL;
    int64_t stored = 0;
    int rc;

    if (w->level < 0) {
        if ((rc = bf_ndjson_write_all(w->fd, data, len)) != 0)
            return fail(w, rc, "write", part_path(w, cur));
        cur->stored += (int64_t)len;
        w->total_stored += (int64_t)len;
        return true;
    }
    if (!z_wait(w))
        return false;
    rc = z_deflate_write(w, data, len, zflush, &op, &stored);
    cur->stored += stored;
    w->total_stored += stored;
    if (rc != 0)
        return fail(w, rc, op, part_path(w, cur));
    return true;
}

/* Hand the full buffer to the helper (started on first use; without it,
 * compress here). */
static bool z_hand_over(bf_ndjson_t *w, size_t n)
{
    char *full = w->buf;

    if (!w->zthread_on && w->spare) {
        if (pthread_mutex_init(&w->zmu, NULL) == 0) {
            if (pthread_cond_init(&w->zcv, NULL) == 0) {
                sigset_t all, old;

                /* signals are the main thread's (its flags, its waits) */
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                if (pthread_create(&w->zthread, NULL, z_helper, w) == 0)
                    w->zthread_on = true;
                else
                    pthread_cond_destroy(&w->zcv);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
            }
            if (!w->zthread_on)
                pthread_mutex_destroy(&w->zmu);
        }
        if (!w->zthread_on)
            w->spare = NULL; /* no thread: synchronous from now on */
    }
    if (!w->zthread_on) {
        if (!emit(w, full, n, Z_NO_FLUSH))
            return false;
        start_writeback(w->fd);
        return true;
    }
    if (!z_wait(w))
        return false;
    pthread_mutex_lock(&w->zmu);
    w->buf = w->spare;
    w->spare = full;
    w->zjob_len = n;
    w->zjob = true;
    pthread_cond_broadcast(&w->zcv);
    pthread_mutex_unlock(&w->zmu);
    return true;
}

static bool flush(bf_ndjson_t *w)
{
    size_t n = w->buflen;

    if (n == 0)
        return true;
    w->buflen = 0;
    if (w->level >= 0)
        return z_hand_over(w, n);
    if (!emit(w, w->buf, n, Z_NO_FLUSH))
        return false;
    start_writeback(w->fd);
    return true;
}

/* fsync the directory once its new entries must be durable. */
static bool sync_dir(bf_ndjson_t *w)
{
    int dfd;

    if (w->parts->nelts == 0 || w->dir_synced)
        return true;
    dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail(w, errno, "open", w->dir);
    if (fsync(dfd) != 0) {
        int e = errno;
        close(dfd);
        return fail(w, e, "fsync", w->dir);
    }
    close(dfd);
    w->dir_synced = true;
    return true;
}

/* Flush, fsync and close the current part. */
static bool finish_part(bf_ndjson_t *w)
{
    bf_ndjson_part_t *cur = current(w);
    const char *path;
    int fd;

    if (!cur)
        return true;
    path = part_path(w, cur);
    if (!flush(w))
        return false;
    if (w->z_active) {
        if (!emit(w, NULL, 0, Z_FINISH))
            return false;
        z_end(w);
    }
    fd = w->fd;
    w->fd = -1;
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return fail(w, e, "fsync", path);
    }
    if (close(fd) != 0)
        return fail(w, errno, "close", path);
    cur->closed = true;
    if (w->on_closed) {
        const char *err = NULL;

        w->dir_synced = false;
        if (!sync_dir(w))
            return false;
        if (!w->on_closed(w->on_closed_ctx, w, cur, &err)) {
            if (!w->error) {
                w->error_no = EIO;
                w->error =
                    apr_pstrdup(w->pool, err ? err : "part publication failed");
            }
            return false;
        }
    }
    return true;
}

static bool open_part(bf_ndjson_t *w)
{
    bf_ndjson_part_t *part;
    const char *path;
    int fd;

    part = apr_array_push(w->parts);
    memset(part, 0, sizeof *part);
    part->part = w->first_part + w->parts->nelts - 1;
    part->name = bf_share_part_name(w->pool, w->type, w->task_id, w->fencing,
                                    part->part);
    if (!part->name) {
        apr_array_pop(w->parts);
        return fail(w, EINVAL, "name a part of", w->type);
    }
    part->file = bf_share_stored_name(w->pool, part->name, w->level >= 0);
    path = part_path(w, part);
    /* O_EXCL: the fencing token makes the name unique to this attempt */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        /* nothing of ours is there: forget the part so abort leaves it */
        apr_array_pop(w->parts);
        return fail(w, e, "create", path);
    }
    if (fchmod(fd, 0644) != 0) {
        int e = errno;
        close(fd);
        return fail(w, e, "chmod", path);
    }
    if (w->level >= 0) {
        /* windowBits 15 + 16: one gzip member per part */
        memset(&w->zs, 0, sizeof w->zs);
        if (deflateInit2(&w->zs, w->level, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            close(fd);
            return fail(w, ENOMEM, "compress", path);
        }
        w->z_active = true;
    }
    w->fd = fd;
    return true;
}

static bool append(bf_ndjson_t *w, const char *line, size_t len)
{
    bf_ndjson_part_t *cur = current(w);
    size_t need = len + 1;

    if (w->buflen + need > w->bufsize) {
        if (!flush(w))
            return false;
    }
    if (need > w->bufsize) {
        /* a line larger than the buffer goes straight to the file */
        if (!emit(w, line, len, Z_NO_FLUSH) || !emit(w, "\n", 1, Z_NO_FLUSH))
            return false;
    } else {
        memcpy(w->buf + w->buflen, line, len);
        w->buf[w->buflen + len] = '\n';
        w->buflen += need;
    }
    cur->count++;
    cur->bytes += (int64_t)need;
    w->total_count++;
    w->total_bytes += (int64_t)need;
    return true;
}

static bool write_line(bf_ndjson_t *w, const char *line, size_t len,
                       bool is_header)
{
    bf_ndjson_part_t *cur;
    size_t need = len + 1;

    if (w->error)
        return false;
    cur = current(w);
    if (cur && ((w->max_resources > 0 && cur->count >= w->max_resources) ||
                (w->max_bytes > 0 && cur->bytes > 0 &&
                 cur->bytes + (int64_t)need > w->max_bytes))) {
        /* a block too large for one part continues in the next one, which
         * starts with the block's header again (R53) */
        bool split = w->in_block && !is_header;

        if (!finish_part(w) || !open_part(w))
            return false;
        if (split) {
            bf_ndjson_part_t *prev =
                &APR_ARRAY_IDX(w->parts, w->parts->nelts - 2, bf_ndjson_part_t);

            prev->continues_in = current(w)->name;
            if (!append(w, w->header, w->header_len))
                return false;
        }
        cur = current(w);
    }
    if (!cur && !open_part(w))
        return false;
    return append(w, line, len);
}

bool bf_ndjson_write(bf_ndjson_t *w, const char *line, size_t len)
{
    return write_line(w, line, len, false);
}

bool bf_ndjson_block(bf_ndjson_t *w, const char *header, size_t len,
                     int64_t lines, int64_t bytes)
{
    bf_ndjson_part_t *cur;

    if (w->error)
        return false;
    cur = current(w);
    /* a block that does not fit where we are starts a new part */
    if (cur && cur->count > 0 &&
        ((w->max_resources > 0 && cur->count + lines > w->max_resources) ||
         (w->max_bytes > 0 && cur->bytes + bytes > w->max_bytes))) {
        if (!finish_part(w))
            return false;
    }
    if (len > w->header_cap) {
        w->header_cap = len * 2;
        w->header = apr_palloc(w->pool, w->header_cap);
    }
    memcpy(w->header, header, len);
    w->header_len = len;
    w->in_block = true;
    return write_line(w, header, len, true);
}

bool bf_ndjson_close(bf_ndjson_t *w)
{
    if (w->error)
        return false;
    /* make the new directory entries durable before publishing */
    return finish_part(w) && sync_dir(w);
}

void bf_ndjson_abort(bf_ndjson_t *w)
{
    int i;

    if (!w)
        return;
    if (w->next)
        bf_ndjson_abort(w->next);
    (void)z_wait(w); /* the helper may be writing to fd */
    z_end(w);
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    w->buflen = 0;
    for (i = 0; i < w->parts->nelts; i++) {
        const bf_ndjson_part_t *part =
            &APR_ARRAY_IDX(w->parts, i, bf_ndjson_part_t);

        if (part->published)
            continue; /* a client may be reading it already */
        /* no file row: no one serves it, no lock needed (bf_share.h) */
        if (unlink(part_path(w, part)) != 0 && errno != ENOENT && !w->error)
            fail(w, errno, "unlink", part_path(w, part));
    }
    apr_array_clear(w->parts);
    if (!w->error)
        w->error = "aborted";
}

size_t bf_ndjson_part_count(const bf_ndjson_t *w)
{
    return (size_t)w->parts->nelts;
}

const bf_ndjson_part_t *bf_ndjson_part_at(const bf_ndjson_t *w, size_t i)
{
    if (i >= (size_t)w->parts->nelts)
        return NULL;
    return &APR_ARRAY_IDX(w->parts, i, bf_ndjson_part_t);
}

int64_t bf_ndjson_total_count(const bf_ndjson_t *w)
{
    return w->total_count;
}

int64_t bf_ndjson_total_bytes(const bf_ndjson_t *w)
{
    return w->total_bytes;
}

int64_t bf_ndjson_total_stored(const bf_ndjson_t *w)
{
    return w->total_stored;
}

const char *bf_ndjson_dir(const bf_ndjson_t *w)
{
    return w->dir;
}

const char *bf_ndjson_error(const bf_ndjson_t *w)
{
    return w->error;
}

int bf_ndjson_errno(const bf_ndjson_t *w)
{
    return w->error_no;
}

/* ---- binary COPY ----------------------------------------------------------
 */

static const char copy_signature[11] = "PGCOPY\n\377\r\n\0";

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint16_t be16(const unsigned char *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

void bf_copybin_init(bf_copybin_t *st)
{
    memset(st, 0, sizeof *st);
    st->ncols = 1;
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)(((uint64_t)be32(p) << 32) | (uint64_t)be32(p + 4));
}

static bool bad(bf_copybin_t *st, const char *what)
{
    if (!st->err[0])
        snprintf(st->err, sizeof st->err, "binary COPY: %s (after %lld rows)",
                 what, (long long)st->rows);
    return false;
}

bool bf_copybin_feed(bf_copybin_t *st, const char *buf, size_t len,
                     bf_ndjson_t *w)
{
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned char *end = p + len;

    if (st->err[0])
        return false;
    if (!st->header_seen) {
        uint32_t ext;

        /* signature (11) + flags (4) + header extension length (4) */
        if (len < 19 || memcmp(p, copy_signature, 11) != 0)
            return bad(st, "bad header");
        if (be32(p + 11) & 0x10000)
            return bad(st, "OIDs not supported");
        ext = be32(p + 15);
        p += 19;
        if ((size_t)(end - p) < ext)
            return bad(st, "truncated header extension");
        p += ext;
        st->header_seen = true;
    }
    while (p < end) {
        int16_t nfields;
        int32_t flen;

        if (st->trailer_seen)
            return bad(st, "data after trailer");
        if (end - p < 2)
            return bad(st, "truncated tuple");
        nfields = (int16_t)be16(p);
        p += 2;
        if (nfields == -1) {
            st->trailer_seen = true;
            continue;
        }
        if (nfields != st->ncols)
            return bad(st, st->ncols == 1 ? "expected one column"
                                          : "expected three columns");
        {
            int64_t blk[2] = { -1, -1 };
            int c;

            for (c = 0; c + 1 < st->ncols; c++) {
                if (end - p < 4)
                    return bad(st, "truncated field length");
                flen = (int32_t)be32(p);
                p += 4;
                if (flen == -1)
                    continue;
                if (flen != 8 || end - p < 8)
                    return bad(st, "bad int8 field");
                blk[c < 2 ? c : 1] = be64(p);
                p += 8;
            }
            if (end - p < 4)
                return bad(st, "truncated field length");
            flen = (int32_t)be32(p);
            p += 4;
            st->rows++;
            if (flen == -1)
                continue; /* NULL resource: nothing to export */
            if (flen < 1 || end - p < flen)
                return bad(st, "truncated field");
            if (p[0] != 1)
                return bad(st, "unknown jsonb version");
            if (blk[0] >= 0 && blk[1] >= 0) {
                if (!bf_ndjson_block(w, (const char *)p + 1, (size_t)flen - 1,
                                     blk[0], blk[1]))
                    return false;
            } else if (!bf_ndjson_write(w, (const char *)p + 1,
                                        (size_t)flen - 1)) {
                return false;
            }
            p += flen;
        }
    }
    return true;
}
