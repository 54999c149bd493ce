/* bf_audit: the audit trail (sql/0074_audit.sql) -- append, verify the
 * hash chains, render FHIR R4 AuditEvent.  Used by the module (append),
 * bulkfhirctl audit (verify, export, prune) and the tests.
 *
 * A record is a JSON object (its canonical body, stored as text once):
 * "action" and "at" (epoch seconds) always; "client", "job", "status",
 * "outcome", "remote", ... as the action has them.  Never a token, an
 * assertion or a secret. */
#ifndef BF_AUDIT_H
#define BF_AUDIT_H

#include <stdbool.h>

#include <apr_pools.h>
#include <apr_tables.h>
#include <libpq-fe.h>

/* Append n bodies to `chain` with one statement (bulkfhir.audit_append:
 * the chain row is locked, hashes chained in order).  Inside the caller's
 * transaction when one is open. */
bool bf_audit_append(PGconn *conn, apr_pool_t *p, const char *chain,
                     const char *const *bodies, int n, char sqlstate[6]);

/* The text[] literal of n strings (" and \ escaped). */
const char *bf_audit_array_literal(apr_pool_t *p, const char *const *v, int n);

/* hash = sha256(prev || chain "\n" seq "\n" body); out: 32 bytes. */
void bf_audit_hash(const unsigned char prev[32], const char *chain,
                   long long seq, const char *body, unsigned char out[32]);

typedef struct {
    long long records; /* records checked */
    long long chains;  /* chains seen */
    long long broken;  /* chains with a broken record */
    /* the first broken record (lowest id over all chains); 0: none */
    long long first_id;
    long long first_seq;
    const char *first_chain;
    const char *first_at;
    const char *first_why;
} bf_audit_verify_t;

/* Recompute every chain from the records at or after `since` (an ISO
 * instant; NULL: all).  A chain's first record checked trusts its
 * prev_hash unless it is seq 1 (then it must be zeros); every later one
 * must follow without a gap; the last must be the chain's recorded tail
 * (bulkfhir.audit_chain: records deleted from the end are found).  false
 * only on a database error. */
bool bf_audit_verify(PGconn *conn, apr_pool_t *p, const char *since,
                     bf_audit_verify_t *out);

/* The FHIR R4 AuditEvent (compact JSON) for one record; NULL when the
 * body is not a JSON object. */
const char *bf_audit_event(apr_pool_t *p, long long id, const char *chain,
                           const char *body);

#endif
