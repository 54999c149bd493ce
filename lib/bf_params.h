/* bf_params: $export kick-off parameters (httpd-free).
 *
 * Parses a GET query string or a POST FHIR Parameters body into one
 * normalized form: the JSON stored in bulkfhir.job.params (keys are the FHIR
 * parameter names) plus the values the kick-off needs as columns.
 *
 * Every known parameter is parsed and validated (_typeFilter with
 * bf_typefilter_parse, _elements with bf_elements_parse, patient as
 * Patient/[id]).  Parameters the workers do not implement (see the table in
 * bf_params.c), unknown parameters and unusable values are refused
 * (code "not-supported" or "invalid") unless the client sent
 * Prefer: handling=lenient; then they are dropped from the normalized form
 * and listed in `ignored` and in the JSON's `_warnings` (the worker writes
 * them to an error file, R60).  Malformed values of single-valued parameters
 * are refused even when lenient. */
#ifndef BF_PARAMS_H
#define BF_PARAMS_H

#include <stdbool.h>
#include <apr_pools.h>
#include <apr_tables.h>

/* The kick-off cost model (README "Bounded cost"): limits checked while a
 * kick-off is parsed, before any SQL runs.  Over a limit, parsing stops
 * with error_code "too-costly" and limit/limit_value name the directive;
 * Prefer: handling=lenient does not lift a limit.  The names are the httpd
 * directives that set them. */
#define BF_LIMIT_TYPE_FILTERS "BulkFhirMaxTypeFilters"
#define BF_LIMIT_FILTER_VALUES "BulkFhirMaxFilterValues"
#define BF_LIMIT_FILTER_BYTES "BulkFhirMaxTypeFilterBytes"
#define BF_LIMIT_FILTER_TERMS "BulkFhirMaxFilterTerms"
#define BF_LIMIT_ELEMENTS "BulkFhirMaxElements"
#define BF_LIMIT_PATIENTS "BulkFhirMaxPatients"
#define BF_LIMIT_TYPES "BulkFhirMaxTypes"

typedef struct bf_params_limits_t {
    long type_filters;  /* _typeFilter values per kick-off */
    long filter_values; /* values of one search parameter in a filter */
    long filter_bytes;  /* bytes of all _typeFilter values (decoded) */
    long filter_terms;  /* sum over the filters of bf_typefilter_terms:
                         * clauses x values x search paths */
    long elements;      /* _elements names (repeats counted) */
    long patients;      /* patient references (repeats counted) */
    long types;         /* _type entries (repeats counted) */
} bf_params_limits_t;

/* The defaults (also those of the directives). */
#define BF_DEFAULT_MAX_TYPE_FILTERS 8
#define BF_DEFAULT_MAX_FILTER_VALUES 64
#define BF_DEFAULT_MAX_FILTER_BYTES 16384
#define BF_DEFAULT_MAX_FILTER_TERMS 1024
#define BF_DEFAULT_MAX_ELEMENTS 500
#define BF_DEFAULT_MAX_PATIENTS 1000
#define BF_DEFAULT_MAX_TYPES 200

extern const bf_params_limits_t bf_params_default_limits;

/* At most this many `ignored` messages are kept (then one that counts the
 * rest). */
#define BF_PARAMS_MAX_WARNINGS 50

typedef struct bf_params_t {
    const char *output_format;   /* always application/fhir+ndjson */
    const char *since;           /* FHIR instant or NULL */
    const char *until;           /* FHIR instant or NULL (when supported) */
    apr_array_header_t *types;   /* const char *; NULL: no _type given */
    const char *organize_by;     /* organizeOutputBy (Patient) or NULL */
    bool associated;             /* includeAssociatedData has a supported
                                  * value (Latest/RelevantProvenanceResources):
                                  * the kick-off adds a Provenance task */
    const char *json;            /* normalized params, serialised */
    apr_array_header_t *ignored; /* const char *: messages, lenient only;
                                  * also stored as params._warnings */
    /* on failure */
    const char *error;      /* human readable, names the parameter */
    const char *error_code; /* OperationOutcome issue code */
    const char *limit;      /* too-costly: the directive, else NULL */
    long limit_value;       /* too-costly: its value */
} bf_params_t;

/* Parse a raw (not yet decoded) query string; NULL or "" is no
 * parameters.  Time and memory are linear in the query's size; every
 * decoded name and value must be UTF-8 (else "invalid", even lenient).  level
 * (system | patient | group, or NULL: not checked) is the export level:
 * `patient` is refused at system level.  `patient` in a query string is refused
 * too (the IG allows it in POST bodies only) unless lenient: then it is
 * honoured and a warning says so.  Returns false with prm->error/error_code set
 * on bad input. */
bool bf_params_from_query(apr_pool_t *p, const char *query, const char *level,
                          bool lenient, bf_params_t **out);

/* Parse a FHIR Parameters resource (JSON text of len bytes). */
bool bf_params_from_body(apr_pool_t *p, const char *body, size_t len,
                         const char *level, bool lenient, bf_params_t **out);

/* The same under explicit limits (NULL: bf_params_default_limits); the two
 * above use the defaults. */
bool bf_params_from_query_lim(apr_pool_t *p, const char *query,
                              const char *level, bool lenient,
                              const bf_params_limits_t *lim, bf_params_t **out);
bool bf_params_from_body_lim(apr_pool_t *p, const char *body, size_t len,
                             const char *level, bool lenient,
                             const bf_params_limits_t *lim, bf_params_t **out);

/* Prefer header preferences the kick-off looks at (RFC 7240, SPEC
 * R13-R16).  bf_params_prefer_add() takes one header value at a time
 * (repeated headers are equivalent to one comma list): preferences are
 * case-insensitive, values may be quoted, white space around ',', ';' and
 * '=' is ignored, preference parameters after ';' are ignored. */
typedef struct bf_prefer_t {
    bool respond_async;
    bool lenient;         /* handling=lenient */
    bool strict;          /* handling=strict (the default behaviour) */
    bool separate_status; /* separate-export-status (R15) */
} bf_prefer_t;

void bf_params_prefer_add(bf_prefer_t *pref, const char *value);

/* Decode one application/x-www-form-urlencoded component ('+' is a space,
 * %XX escapes).  Returns NULL on a malformed escape or an embedded NUL. */
char *bf_params_form_decode(apr_pool_t *p, const char *s, size_t len);

/* The next name=value pair of a query string: segments split on '&' (empty
 * ones skipped), then on their first '=' (none: the value is ""), both
 * form-decoded into p.  *cursor starts at the query (NULL reads as "") and
 * moves on.  False at the end; true with *name or *value NULL when that
 * part has a malformed %-escape. */
bool bf_query_next(apr_pool_t *p, const char **cursor, char **name,
                   char **value);

/* The PostgreSQL text[] literal for prm->types ({"A","B"}), or NULL. */
const char *bf_params_types_literal(apr_pool_t *p, const bf_params_t *prm);

#endif
