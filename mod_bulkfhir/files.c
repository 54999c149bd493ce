/* mod_bulkfhir files: GET/HEAD bulkfiles/{job}/{name}, served from the
 * part's stored file in {BulkFhirExportRoot}: gzip as the worker stored it
 * (compression = gzip, the default; issue #15), else plain (compression =
 * none).  Names, paths and locks: lib/bf_share.h.
 *
 * Stored gzip:
 *   gzip      (R51) when Accept-Encoding allows it: the stored bytes as they
 *             are, a file bucket sent as httpd's core sends static files
 *             (EnableSendfile, EnableMMAP apply), Content-Encoding: gzip,
 *             Content-Length, a strong ETag of that representation ("-gzip"
 *             appended); httpd's byterange filter answers Range over these
 *             bytes (a resumed download asks with the same Accept-Encoding).
 *   identity  inflated while it is sent (zlib, GZ_CHUNK buffers: memory
 *             does not grow with the file), chunked: no Content-Length, and
 *             Range is ignored (200, the whole NDJSON; Accept-Ranges: none).
 * Stored plain (compression = none):
 *   identity  a file bucket as above; Range answered by the byterange filter
 *   gzip      when Accept-Encoding allows it and no Range was sent: the file
 *             compressed here while it is sent (zlib, bounded buffers).
 * Vary: Accept-Encoding always.
 *   R8        the open file is locked against the sweeper until the response
 *             is done (the descriptor closes with r->pool), so it skips
 *             files being downloaded (bf_share_open_served).  A file
 *             unlinked before we got the lock is 410.
 *   expiry    after the job's expires_at: 410 Gone. */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_id.h"
#include "bf_share.h"

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include <zlib.h>

#define GZ_CHUNK (64 * 1024)

/* Accept-Encoding allows gzip: "gzip"/"x-gzip" or "*" with q > 0, and
 * gzip not refused with q=0. */
static bool accepts_gzip(request_rec *r)
{
    const char *ae = apr_table_get(r->headers_in, "Accept-Encoding");
    char *copy, *item, *last, *semi, *q;
    bool gzip = false, star = false, gzip_zero = false;

    if (!ae)
        return false;
    copy = apr_pstrdup(r->pool, ae);
    for (item = apr_strtok(copy, ",", &last); item;
         item = apr_strtok(NULL, ",", &last)) {
        bool zero = false;

        semi = strchr(item, ';');
        if (semi) {
            *semi = '\0';
            q = strstr(semi + 1, "q=");
            if (q && apr_atoi64(q + 2) == 0 && !strpbrk(q + 2, "123456789"))
                zero = true;
        }
        apr_collapse_spaces(item, item);
        if (!strcasecmp(item, "gzip") || !strcasecmp(item, "x-gzip")) {
            if (zero)
                gzip_zero = true;
            else
                gzip = true;
        } else if (!strcmp(item, "*") && !zero) {
            star = true;
        }
    }
    return !gzip_zero && (gzip || star);
}

/* Open the stored file of part name and hold its lock for the life of
 * r->pool (bf_share_open_part); *fi its info.  APR_ENOENT when it is gone
 * (or was unlinked before the lock). */
static apr_status_t open_part(request_rec *r, const char *root,
                              const char *job_id, const char *name,
                              apr_file_t **fd, bool *gz, const char **path,
                              apr_finfo_t *fi)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    apr_status_t rv;

    rv = bf_share_open_part(fd, gz, path, root, job_id, name,
                            AP_SENDFILE_ENABLED(cd->enable_sendfile), r->pool);
    if (rv != APR_SUCCESS)
        return rv;
    return apr_file_info_get(fi, APR_FINFO_NORM, *fd);
}

static apr_status_t pass_bytes(request_rec *r, apr_bucket_brigade *bb,
                               const char *data, apr_size_t n)
{
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(
        bb, apr_bucket_heap_create(data, n, NULL, r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv;
}

/* Send fd gzip-compressed, GZ_CHUNK at a time. */
static apr_status_t send_gzip(request_rec *r, apr_file_t *fd)
{
    apr_bucket_brigade *bb =
        apr_brigade_create(r->pool, r->connection->bucket_alloc);
    char *in = apr_palloc(r->pool, GZ_CHUNK),
         *out = apr_palloc(r->pool, GZ_CHUNK);
    z_stream zs;
    apr_size_t n;
    apr_status_t rv = APR_SUCCESS, rd;
    int flush, zrc;

    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return APR_ENOMEM;
    do {
        n = GZ_CHUNK;
        rd = apr_file_read(fd, in, &n);
        if (rd != APR_SUCCESS && rd != APR_EOF) {
            rv = rd;
            goto leave;
        }
        flush = rd == APR_EOF ? Z_FINISH : Z_NO_FLUSH;
        zs.next_in = (Bytef *)in;
        zs.avail_in = (uInt)n;
        do {
            zs.next_out = (Bytef *)out;
            zs.avail_out = GZ_CHUNK;
            zrc = deflate(&zs, flush);
            if (zrc == Z_STREAM_ERROR) {
                rv = APR_EGENERAL;
                goto leave;
            }
            if (GZ_CHUNK - zs.avail_out > 0) {
                rv = pass_bytes(r, bb, out, GZ_CHUNK - zs.avail_out);
                if (rv != APR_SUCCESS)
                    goto leave;
            }
        } while (zs.avail_out == 0);
    } while (flush != Z_FINISH);
    APR_BRIGADE_INSERT_TAIL(bb,
                            apr_bucket_eos_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
leave:
    deflateEnd(&zs);
    return rv;
}

/* Send a stored gzip file inflated, GZ_CHUNK at a time (a file of several
 * gzip members is inflated member after member). */
static apr_status_t send_inflated(request_rec *r, apr_file_t *fd,
                                  const char *job_id, const char *name)
{
    apr_bucket_brigade *bb =
        apr_brigade_create(r->pool, r->connection->bucket_alloc);
    char *in = apr_palloc(r->pool, GZ_CHUNK),
         *out = apr_palloc(r->pool, GZ_CHUNK);
    z_stream zs;
    apr_size_t n;
    apr_status_t rv = APR_SUCCESS, rd = APR_SUCCESS;
    int zrc = Z_OK;

    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return APR_ENOMEM;
    while (rd != APR_EOF) {
        n = GZ_CHUNK;
        rd = apr_file_read(fd, in, &n);
        if (rd != APR_SUCCESS && rd != APR_EOF) {
            rv = rd;
            goto leave;
        }
        zs.next_in = (Bytef *)in;
        zs.avail_in = (uInt)n;
        while (zs.avail_in > 0) {
            if (zrc == Z_STREAM_END) {
                /* another member follows */
                if (inflateReset(&zs) != Z_OK) {
                    rv = APR_EGENERAL;
                    goto leave;
                }
            }
            zs.next_out = (Bytef *)out;
            zs.avail_out = GZ_CHUNK;
            zrc = inflate(&zs, Z_NO_FLUSH);
            if (zrc != Z_OK && zrc != Z_STREAM_END) {
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                              "BF01100: job %s: stored file %s cannot be "
                              "inflated (zlib %d, after %lu bytes)",
                              job_id, name, zrc, (unsigned long)zs.total_out);
                rv = APR_EGENERAL;
                goto leave;
            }
            if (GZ_CHUNK - zs.avail_out > 0) {
                rv = pass_bytes(r, bb, out, GZ_CHUNK - zs.avail_out);
                if (rv != APR_SUCCESS)
                    goto leave;
            }
        }
    }
    if (zrc != Z_STREAM_END) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BF01101: job %s: stored file %s is truncated "
                      "(%lu bytes inflated)",
                      job_id, name, (unsigned long)zs.total_out);
        rv = APR_EGENERAL;
        goto leave;
    }
    APR_BRIGADE_INSERT_TAIL(bb,
                            apr_bucket_eos_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
leave:
    inflateEnd(&zs);
    return rv;
}

/* A strong ETag of the gzip representation must differ from identity's. */
static void etag_gzip(request_rec *r)
{
    const char *etag = apr_table_get(r->headers_out, "ETag");
    size_t n;

    if (!etag || (n = strlen(etag)) < 2 || etag[n - 1] != '"')
        return;
    apr_table_setn(r->headers_out, "ETag",
                   apr_psprintf(r->pool, "%.*s-gzip\"", (int)(n - 1), etag));
}

int bf_files_handle(bf_req_t *rq, const char *job_id, const char *name)
{
    request_rec *r = rq->r;
    const char *path, *client, *types;
    char sqlstate[6], buf[120];
    bf_share_part_t pt;
    bool found, expired, gzip, stored_gz, as_stored;
    apr_file_t *fd;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_bucket_brigade *bb;
    int st;

    if (r->method_number != M_GET)
        return bf_http_not_allowed(rq, "GET, HEAD");
    if (!bf_id_is_uuid(job_id) || !bf_share_part_parse(name, &pt))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no such file");
    if (!rq->sc->export_root) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BF01030: job %s: %s is not set, cannot serve %s", job_id,
                      BF_CMD_EXPORT_ROOT, name);
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no such file");
    }
    if (!bf_db_acquire(rq))
        return bf_http_unavailable(rq, "file");
    if (!bf_job_file_lookup(rq->conn, r->pool, job_id, name, &found, &client,
                            &expired, &types, sqlstate))
        return bf_http_db_error(rq, sqlstate, "file");
    if (!found || !bf_auth_may_see(rq, client))
        return bf_http_oo(rq, HTTP_NOT_FOUND, "not-found", "no such file");
    if (!bf_auth_file_scope(rq, name, types, &st)) /* R3: the type(s) */
        return st;
    if (expired)
        return bf_http_oo(rq, HTTP_GONE, "not-found",
                          "the file has expired; start a new export");

    /* the worker's stored gzip part, else a plain one (compression = none) */
    rv = open_part(r, rq->sc->export_root, job_id, name, &fd, &stored_gz, &path,
                   &fi);
    if (rv != APR_SUCCESS || fi.filetype != APR_REG) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BF01031: job %s: published file %s missing on disk "
                      "(%s: %s)",
                      job_id, name, path,
                      rv != APR_SUCCESS ? apr_strerror(rv, buf, sizeof buf)
                                        : "not a regular file");
        return bf_http_oo(rq, HTTP_GONE, "not-found",
                          "the file is no longer available");
    }

    apr_table_mergen(r->headers_out, "Vary", "Accept-Encoding");
    gzip = accepts_gzip(r);
    if (stored_gz) {
        as_stored = gzip;
    } else {
        /* compressing on the fly cannot answer a Range */
        gzip = gzip && !apr_table_get(r->headers_in, "Range");
        as_stored = !gzip;
    }

    /* validators: r->finfo feeds ap_set_etag and ap_meets_conditions */
    r->finfo = fi;
    r->filename = apr_pstrdup(r->pool, path);
    ap_update_mtime(r, fi.mtime);
    ap_set_last_modified(r);
    ap_set_etag(r);
    ap_set_content_type(r, BF_CT_NDJSON);
    if (gzip) {
        etag_gzip(r);
        apr_table_setn(r->headers_out, "Content-Encoding", "gzip");
    }
    if (as_stored) {
        ap_set_accept_ranges(r);
    } else {
        /* a representation made while it is sent has no byte ranges */
        apr_table_setn(r->headers_out, "Accept-Ranges", "none");
        apr_table_unset(r->headers_in, "Range");
    }
    st = ap_meets_conditions(r);
    if (st != OK)
        return st;
    if (as_stored)
        ap_set_content_length(r, fi.size);
    if (r->header_only)
        return OK;

    if (!as_stored && stored_gz) {
        rv = send_inflated(r, fd, job_id,
                           bf_share_stored_name(r->pool, name, true));
    } else if (!as_stored) {
        rv = send_gzip(r, fd);
    } else {
        core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
        apr_bucket *e;

        bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
        e = apr_brigade_insert_file(bb, fd, 0, fi.size, r->pool);
#if APR_HAS_MMAP
        if (cd->enable_mmap == ENABLE_MMAP_OFF)
            (void)apr_bucket_file_enable_mmap(e, 0);
#endif
        APR_BRIGADE_INSERT_TAIL(
            bb, apr_bucket_eos_create(r->connection->bucket_alloc));
        rv = ap_pass_brigade(r->output_filters, bb);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                      "job %s: sending %s aborted", job_id, name);
        return AP_FILTER_ERROR;
    }
    return OK;
}
