/* fuzz_scope: the strings a SMART client or its JWKS server controls at the
 * token endpoint.  The input is split on newlines: line 1 is the requested
 * scope (form field `scope`), line 2 the client's registered scopes, line 3
 * a JWKS response's Cache-Control header, line 4 a jwks_uri.  Exercises
 * bf_scope_parse_one, bf_scope_grant, bf_scope_can_export/allows/
 * export_types on the grant, bf_jwks_cache_seconds and bf_jwks_url_allowed. */
#include "fuzz_common.h"
#include "bf_scope.h"
#include "bf_jwks.h"

static const char *types[] = { "Patient", "Observation", "Group", "*", "" };

FZ_DEFAULT_INITIALIZE()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fz_pool();
    const char *f[4] = { "", "system/*.rs", "max-age=60", "https://x/jwks" };
    const char *granted;
    apr_array_header_t *ts;
    bf_scope sc;
    size_t start = 0, i, nf = 0;
    bool all = false;
    int k;

    for (i = 0; i <= size && nf < 4; i++) {
        if (i == size || data[i] == '\n') {
            f[nf++] = fz_cstr(p, data + start, i - start);
            start = i + 1;
        }
    }
    if (bf_scope_parse_one(p, f[0], &sc))
        fz_use(sc.type);
    granted = bf_scope_grant(p, f[0], f[1]);
    fz_use(granted);
    if (granted) {
        for (k = 0; k < (int)(sizeof types / sizeof *types); k++) {
            fz_sink += bf_scope_can_export(p, granted, types[k]);
            fz_sink +=
                bf_scope_allows(p, granted, types[k], BF_PERM_R | BF_PERM_S);
        }
        ts = bf_scope_export_types(p, granted, &all);
        for (k = 0; ts && k < ts->nelts; k++)
            fz_use(APR_ARRAY_IDX(ts, k, const char *));
    }
    fz_sink += (size_t)bf_jwks_cache_seconds(f[2]);
    fz_sink += bf_jwks_url_allowed(f[3], true);
    fz_sink += bf_jwks_url_allowed(f[3], false);
    apr_pool_destroy(p);
    return 0;
}
