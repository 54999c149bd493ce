/* fuzz_manifest: the manifest builder.  Its only client-controlled input is
 * the kick-off request URL (and, through the Host header, the base URL);
 * the input is split on newlines into request, base_url, job_id and then
 * (kind, type, name) triples of file rows. */
#include "fuzz_common.h"
#include "bf_manifest.h"

FZ_DEFAULT_INITIALIZE()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_pool();
    bf_manifest_t m;
    const char *f[64];
    size_t nf = 0, start = 0, i;

    for (i = 0; i <= size && nf < 64; i++) {
        if (i == size || data[i] == '\n') {
            f[nf++] = fz_cstr(p, data + start, i - start);
            start = i + 1;
        }
    }
    while (nf < 3)
        f[nf++] = "";
    memset(&m, 0, sizeof m);
    m.transaction_time = "2024-01-31T12:00:00.123Z";
    m.request = f[0];
    m.base_url = f[1];
    m.job_id = f[2];
    m.requires_token = size & 1;
    m.files = apr_array_make(p, 4, sizeof(bf_manifest_file_t));
    for (i = 3; i + 2 < nf; i += 3) {
        bf_manifest_file_t *mf = apr_array_push(m.files);
        mf->kind = f[i];
        mf->type = f[i + 1];
        mf->name = f[i + 2];
        mf->part = (int)(i % 5);
        mf->count = (long long)strlen(f[i + 2]) - 3;
    }
    fz_use(bf_manifest_json(p, &m));
    fz_use(bf_manifest_file_url(p, m.base_url, m.job_id, f[nf - 1]));
    apr_pool_destroy(p);
    return 0;
}
