/* bf_ndjson: the buffered NDJSON part writer used by the worker, and the
 * parser for PostgreSQL's binary COPY stream that feeds it.
 *
 * A writer produces the part files of one task attempt in dir, named as
 * lib/bf_share.h says (bf_share_part_name, and bf_share_stored_name: ".gz"
 * appended under gzip, the default of the worker, issue #15), through one
 * large buffer, rolling to the next part at max_resources lines
 * or before max_bytes would be exceeded.  A part file is created only when
 * its first line is written (a task with no rows leaves no file).  Every
 * write, fsync and close error is reported (bf_ndjson_error) and the writer
 * is then unusable: the caller aborts it, which unlinks every part.  Nothing
 * here grows with the export size except the list of parts.
 *
 * A gzip writer deflates (zlib, one gzip member per part: every HTTP client
 * inflates it; curl --compressed stops after a first member, which rules
 * out libdeflate's one-member-per-buffer output) in a helper thread of its
 * own, started on its first full buffer and stopped with its pool: the
 * caller's thread fills one buffer while the helper compresses and writes
 * the other.  Memory: two buffers, zlib's state and 256 KiB of output. */
#ifndef BF_NDJSON_H
#define BF_NDJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>

typedef struct bf_ndjson bf_ndjson_t;

typedef struct bf_ndjson_part {
    int part;         /* 0, 1, ... */
    const char *name; /* published name (URL, file row): always .ndjson */
    const char *file; /* name on disk: name, or name + ".gz" when gzip */
    int64_t count;    /* lines */
    int64_t bytes;    /* NDJSON bytes, newlines included (the identity
                         representation; what max_bytes and the file row's
                         bytes count) */
    int64_t stored;   /* bytes on disk (== bytes when not compressed) */
    const char
        *continues_in; /* next part's name when a resource block
                          continues there (organizeOutputBy), else NULL */
    bool closed;       /* flushed, fsynced and closed */
    bool published;    /* its file row is committed (per-part publication) */
} bf_ndjson_part_t;

#define BF_NDJSON_BUFSIZE (1024 * 1024)

/* Create a writer in pool p.  dir is created (mode 0755) when missing; part
 * files are created with mode 0644.  max_resources / max_bytes <= 0 mean no
 * limit.  bufsize 0 means BF_NDJSON_BUFSIZE.  Returns false (message in
 * *err, allocated from p) when dir cannot be created. */
bool bf_ndjson_open(bf_ndjson_t **pw, apr_pool_t *p, const char *dir,
                    const char *type, int64_t task_id, int64_t fencing,
                    int64_t max_resources, int64_t max_bytes, size_t bufsize,
                    const char **err);

/* Compression of the parts of writers opened from now on in this process
 * (the worker sets it from bulkfhir.setting before each task): level < 0
 * none, 1..9 a gzip member written as the part streams (zlib).  Default:
 * none. */
void bf_ndjson_set_default_compression(int level);
int bf_ndjson_default_compression(void);
/* Override it for one writer, before its first line. */
void bf_ndjson_set_compression(bf_ndjson_t *w, int level);

/* What the parts are published as (bulkfhir.file kind and resource_type;
 * resource_type NULL for organized output).  Default: "output" and the
 * writer's type. */
void bf_ndjson_set_publish(bf_ndjson_t *w, const char *kind,
                           const char *resource_type);
const char *bf_ndjson_kind(const bf_ndjson_t *w);
const char *bf_ndjson_resource_type(const bf_ndjson_t *w);
/* Number the next part `first` (resuming after parts published earlier). */
void bf_ndjson_set_first_part(bf_ndjson_t *w, int first);
/* Called after a part was closed durably (file and directory fsynced);
 * returning false fails the writer with the message in *err. */
typedef bool (*bf_ndjson_closed_fn)(void *ctx, bf_ndjson_t *w,
                                    bf_ndjson_part_t *part, const char **err);
void bf_ndjson_on_part_closed(bf_ndjson_t *w, bf_ndjson_closed_fn fn,
                              void *ctx);
/* A chain of writers of one task attempt (output, then deleted, ...):
 * publish walks it, abort removes the parts of every writer in it. */
void bf_ndjson_chain(bf_ndjson_t *w, bf_ndjson_t *next);
bf_ndjson_t *bf_ndjson_next(const bf_ndjson_t *w);

/* Resource blocks (organizeOutputBy, SPEC R53): start a block with its
 * header line; lines and bytes (header included, newlines included) are the
 * block's size, so the block starts a new part when it would not fit in the
 * current one.  A block larger than a part is split: the next part starts
 * with the header again and the previous part's continues_in names it. */
bool bf_ndjson_block(bf_ndjson_t *w, const char *header, size_t len,
                     int64_t lines, int64_t bytes);

/* Append one line (len bytes, no newline; the writer adds it). */
bool bf_ndjson_write(bf_ndjson_t *w, const char *line, size_t len);

/* Flush, fsync and close the current part, fsync the directory once. After
 * this the parts are durable and may be published. */
bool bf_ndjson_close(bf_ndjson_t *w);

/* Close every descriptor and unlink every part file of this writer (also
 * after a successful close, when publication was refused). Idempotent. */
void bf_ndjson_abort(bf_ndjson_t *w);

/* The parts written so far (closed or not). */
size_t bf_ndjson_part_count(const bf_ndjson_t *w);
const bf_ndjson_part_t *bf_ndjson_part_at(const bf_ndjson_t *w, size_t i);
int64_t bf_ndjson_total_count(const bf_ndjson_t *w);
int64_t bf_ndjson_total_bytes(const bf_ndjson_t *w);  /* NDJSON */
int64_t bf_ndjson_total_stored(const bf_ndjson_t *w); /* on disk */
const char *bf_ndjson_dir(const bf_ndjson_t *w);

/* The first error, e.g. "write /x/Patient.1.1.0.ndjson: No space left on
 * device"; NULL while none. */
const char *bf_ndjson_error(const bf_ndjson_t *w);
/* errno of the first error (0 while none). */
int bf_ndjson_errno(const bf_ndjson_t *w);

/* Write all of buf to fd, retrying short writes and EINTR.  Returns 0 or
 * the errno of the failure. */
int bf_ndjson_write_all(int fd, const char *buf, size_t len);

/* Parse a PostgreSQL binary COPY stream, one CopyData chunk at a time (the
 * server never splits a row across chunks), for a query with exactly one
 * jsonb column: each non-NULL value (version byte 1, then the JSON text) is
 * written to w as one line.  The header may precede the first row in the
 * first chunk; the trailer (field count -1) ends the stream. */
typedef struct bf_copybin {
    int ncols; /* 1 (jsonb) or 3 (int8 block lines, int8 block
                  bytes, jsonb: a non-NULL pair starts a block) */
    bool header_seen;
    bool trailer_seen;
    int64_t rows;  /* tuples seen, NULLs included */
    char err[160]; /* parse error, "" while none */
} bf_copybin_t;

void bf_copybin_init(bf_copybin_t *st); /* ncols 1 */
/* False on a malformed stream (st->err) or a writer error
 * (bf_ndjson_error(w)). */
bool bf_copybin_feed(bf_copybin_t *st, const char *buf, size_t len,
                     bf_ndjson_t *w);

#endif
