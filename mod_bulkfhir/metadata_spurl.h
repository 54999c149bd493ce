/* metadata_spurl: canonical ids of R4 search parameters that are not
 * <Base>-<code> (generated, see scripts/gen-searchparam-urls). */
#ifndef BF_METADATA_SPURL_H
#define BF_METADATA_SPURL_H

typedef struct bf_spurl {
    const char *base;
    const char *code;
    const char *id; /* SearchParameter id, e.g. clinical-patient */
} bf_spurl;

/* sorted by (base, code), strcmp order */
extern const bf_spurl bf_spurl_table[];
extern const unsigned bf_spurl_count;

#endif
