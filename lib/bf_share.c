/* bf_share: names and lock protocol of the export root (see bf_share.h). */
#include "config.h"
#include "bf_share.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_portable.h>
#include <apr_strings.h>

#define PART_EXT ".ndjson"
#define GZ_EXT ".gz"

/* One path component: not empty, not "." or "..", no '/'. */
static bool component_ok(const char *s)
{
    return s && *s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           !strchr(s, '/');
}

const char *bf_share_job_dir(apr_pool_t *p, const char *root,
                             const char *job_id)
{
    if (!component_ok(job_id))
        return NULL;
    return apr_pstrcat(p, root, "/", job_id, NULL);
}

const char *bf_share_file_path(apr_pool_t *p, const char *root,
                               const char *job_id, const char *file)
{
    if (!component_ok(job_id) || !component_ok(file))
        return NULL;
    return apr_pstrcat(p, root, "/", job_id, "/", file, NULL);
}

const char *bf_share_stored_name(apr_pool_t *p, const char *name, bool gzip)
{
    return gzip ? apr_pstrcat(p, name, GZ_EXT, NULL) : name;
}

const char *bf_share_published_name(apr_pool_t *p, const char *stored,
                                    bool *gzip)
{
    size_t n = strlen(stored), g = sizeof GZ_EXT - 1;
    bool gz = n > g && strcmp(stored + n - g, GZ_EXT) == 0;

    if (gzip)
        *gzip = gz;
    return gz ? apr_pstrndup(p, stored, n - g) : stored;
}

static bool prefix_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > BF_SHARE_PREFIX_MAX)
        return false;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    return true;
}

const char *bf_share_part_name(apr_pool_t *p, const char *prefix, int64_t task,
                               int64_t fencing, int part)
{
    if (!prefix || !prefix_ok(prefix, strlen(prefix)) || task < 0 ||
        fencing < 0 || part < 0)
        return NULL;
    return apr_psprintf(
        p, "%s.%" APR_INT64_T_FMT ".%" APR_INT64_T_FMT ".%d" PART_EXT, prefix,
        (apr_int64_t)task, (apr_int64_t)fencing, part);
}

/* Decimal digits up to '.', no sign, no leading zero, at most max; *s moves
 * past them. */
static bool number(const char **s, int64_t max, int64_t *out)
{
    const char *q = *s;
    int64_t v = 0;

    if (*q < '0' || *q > '9' || (*q == '0' && q[1] >= '0' && q[1] <= '9'))
        return false;
    for (; *q >= '0' && *q <= '9'; q++) {
        if (v > (max - (*q - '0')) / 10)
            return false;
        v = v * 10 + (*q - '0');
    }
    *s = q;
    *out = v;
    return true;
}

bool bf_share_part_parse(const char *name, bf_share_part_t *out)
{
    const char *dot, *q;
    int64_t task, fencing, part;

    if (!name || !(dot = strchr(name, '.')) ||
        !prefix_ok(name, (size_t)(dot - name)))
        return false;
    q = dot + 1;
    if (!number(&q, INT64_MAX, &task) || *q++ != '.' ||
        !number(&q, INT64_MAX, &fencing) || *q++ != '.' ||
        !number(&q, INT32_MAX, &part) || strcmp(q, PART_EXT) != 0)
        return false;
    memcpy(out->prefix, name, (size_t)(dot - name));
    out->prefix[dot - name] = '\0';
    out->task = task;
    out->fencing = fencing;
    out->part = (int)part;
    return true;
}

apr_status_t bf_share_open_served(apr_file_t **fd, const char *path,
                                  apr_int32_t flags, apr_pool_t *p)
{
    apr_os_file_t os;
    struct stat st;
    apr_status_t rv;

    rv = apr_file_open(fd, path, APR_READ | APR_BINARY | flags, 0, p);
    if (rv != APR_SUCCESS)
        return rv;
    apr_os_file_get(&os, *fd);
    /* blocks only while a sweeper holds LOCK_EX: between its lock and its
     * unlink, a moment */
    while (flock(os, LOCK_SH) != 0) {
        if (errno != EINTR)
            return APR_FROM_OS_ERROR(errno);
    }
    /* the sweeper may have unlinked it between our open and our lock */
    if (fstat(os, &st) != 0)
        return APR_FROM_OS_ERROR(errno);
    if (st.st_nlink == 0)
        return APR_ENOENT;
    return APR_SUCCESS;
}

apr_status_t bf_share_open_part(apr_file_t **fd, bool *gzip, const char **path,
                                const char *root, const char *job_id,
                                const char *name, apr_int32_t flags,
                                apr_pool_t *p)
{
    const char *plain = bf_share_file_path(p, root, job_id, name);
    apr_status_t rv;

    *gzip = false;
    *path = plain;
    if (!plain)
        return APR_ENOENT;
    *path = bf_share_stored_name(p, plain, true);
    rv = bf_share_open_served(fd, *path, flags, p);
    if (rv == APR_SUCCESS)
        *gzip = true;
    if (!APR_STATUS_IS_ENOENT(rv))
        return rv;
    *path = plain;
    return bf_share_open_served(fd, plain, flags, p);
}

bool bf_share_unlink_unused(int dirfd, const char *name, int *err,
                            const char **op)
{
    const int how = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    /* open for writing: over NFS, flock(LOCK_EX) is a whole-file write
     * lock, refused (EBADF) on a read-only descriptor; read-only where
     * writing is not allowed (a local flock needs no more) */
    int fd = openat(dirfd, name, O_RDWR | how);
    bool ok = true;

    if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS ||
                   errno == EISDIR || errno == ETXTBSY))
        fd = openat(dirfd, name, O_RDONLY | how);
    *err = 0;
    *op = "remove";
    if (fd < 0) {
        if (errno == ENOENT)
            return true;
        /* a symlink or something unreadable: no one serves it */
        if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
            return true;
        *err = errno;
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        /* EWOULDBLOCK: a reader holds LOCK_SH */
        *err = errno == EINTR ? EWOULDBLOCK : errno;
        *op = "flock";
        ok = false;
    } else if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
        *err = errno;
        ok = false;
    }
    close(fd); /* drops the lock */
    return ok;
}
