/* mod_bulkfhir status cache: the status of recently polled jobs in an httpd
 * socache (BulkFhirStatusCache shmcb, ...), shared by every child, so that
 * most polls are answered without PostgreSQL.
 *
 *   key    the job's uuid (16 bytes, so shmcb's subcache choice -- the first
 *          key byte -- is uniform) + a hash of the server's BulkFhirDatabase
 *   value  entry_t (below), then its strings: what status.c needs to answer
 *          a GET: state, client, separate_status, progress, finished/expires
 *          times, the failed job's OperationOutcome, the completed job's
 *          manifest and the FHIR base it was rendered for; when PostgreSQL
 *          answered (fetched) and the last allowed poll of a running job
 *          through this httpd (R43)
 *
 * An entry of a finished job (completed, failed, cancelled) younger than
 * BulkFhirStatusCacheTimeout answers a GET.  A running job's entry only
 * keeps the R43 gate (a poll within BulkFhirMinPollInterval of the last one
 * is refused from the entry, whatever its age); an allowed poll of a running
 * job goes to PostgreSQL, so that a client sees the job complete at once.
 * Partial-manifest jobs (R46) and entries over ENTRY_MAX are not cached.
 * Every failure of the cache (lock, store, full) costs speed only: debug
 * log, PostgreSQL answers.
 *
 * Providers flagged AP_SOCACHE_FLAG_NOTMPSAFE (shmcb) are serialised by a
 * global mutex (type "bulkfhir-statuscache", `Mutex` directive).  A poll the
 * entry does not refuse runs PostgreSQL's own gate (last_poll_at), and what
 * PostgreSQL answered is stored with the poll time: two polls racing past
 * the entry are settled there.  A DELETE through this
 * httpd removes the entry; a cancel, delete or SQL change made elsewhere
 * (bulkfhirctl, another web host) shows once the entry is stale.
 *
 * The same instance remembers bearer tokens PostgreSQL accepted (auth.c,
 * BulkFhirAuth smart), in their own key space (the token's sha256 -- never
 * the token -- + database hash + a type byte): client id, scope, expiry.
 * Such an entry answers for at most the timeout and never past the token's
 * expiry; unknown tokens are not cached. */
#include "mod_bulkfhir.h"
#include "bf_job.h"
#include "bf_job_state.h"

#include <ap_provider.h>
#include <ap_socache.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <http_core.h>
#include <util_mutex.h>

#define MUTEX_TYPE "bulkfhir-statuscache"
#define CACHE_NAME "bulkfhir-status" /* socache namespace, <= 16 chars */
#define KEY_LEN 20                   /* uuid (16) + database hash (4) */
/* Largest entry (header + strings): a bigger manifest or OperationOutcome
 * is answered from PostgreSQL as without the cache.  Every retrieve needs a
 * buffer this large (shmcb reports a larger entry as missing). */
#define ENTRY_MAX (32 * 1024)
#define ENTRY_MAGIC 0x42465331u /* "BFS1": bump when entry_t changes */

enum { S_ID, S_STATE, S_CLIENT, S_ERROR, S_MANIFEST, S_BASE, S_COUNT };

typedef struct entry_t {
    apr_uint32_t magic;
    apr_int32_t progress_pct;
    apr_time_t fetched;   /* PostgreSQL answered at */
    apr_time_t last_poll; /* R43: last allowed poll (running jobs), 0: none */
    double finished_at;   /* epoch seconds, 0: not finished */
    double expires_at;    /* epoch seconds, 0: not set */
    apr_uint32_t separate_status;
    apr_uint32_t len[S_COUNT]; /* each string with its NUL; 0: NULL */
} entry_t;

/* per configuration pass (reset in pre_config, like mod_authn_socache) */
static ap_socache_provider_t *provider;
static ap_socache_instance_t *instance;
static const char *provider_spec; /* "shmcb:..." as configured; NULL: none */
static apr_global_mutex_t *mutex; /* NULL when the provider needs none */

static apr_status_t instance_cleanup(void *s)
{
    if (instance && provider)
        provider->destroy(instance, s);
    instance = NULL;
    return APR_SUCCESS;
}

static apr_status_t mutex_cleanup(void *unused)
{
    if (mutex)
        apr_global_mutex_destroy(mutex);
    mutex = NULL;
    return APR_SUCCESS;
}

const char *bf_statuscache_set(cmd_parms *cmd, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *sep = strchr(arg, ':'), *name;

    if (err) /* names the directive: "... cannot occur within <VirtualHost>" */
        return err;
    if (strcasecmp(arg, "none") == 0) {
        provider = NULL;
        instance = NULL;
        provider_spec = NULL;
        return NULL;
    }
    name = sep ? apr_pstrmemdup(cmd->temp_pool, arg, (apr_size_t)(sep - arg))
               : arg;
    provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                  AP_SOCACHE_PROVIDER_VERSION);
    if (!provider)
        return apr_psprintf(cmd->pool,
                            "%s: no socache provider '%s' is loaded: load "
                            "socache_%s (LoadModule socache_%s_module, or "
                            "a2enmod socache_%s), or use none",
                            cmd->cmd->name, name, name, name, name);
    err = provider->create(&instance, sep ? sep + 1 : NULL, cmd->temp_pool,
                           cmd->pool);
    if (err) {
        provider = NULL;
        instance = NULL;
        return apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, arg, err);
    }
    provider_spec = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

const char *bf_statuscache_describe(void)
{
    return provider_spec ? provider_spec : "none";
}

int bf_statuscache_pre_config(apr_pool_t *pconf, apr_pool_t *plog)
{
    apr_status_t rv =
        ap_mutex_register(pconf, MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);

    if (rv != APR_SUCCESS) {
        ap_log_perror(APLOG_MARK, APLOG_CRIT, rv, plog,
                      "BF01060: cannot register the %s mutex", MUTEX_TYPE);
        return HTTP_INTERNAL_SERVER_ERROR; /* aborts start-up */
    }
    provider = NULL;
    instance = NULL;
    provider_spec = NULL;
    mutex = NULL;
    return OK;
}

int bf_statuscache_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                               server_rec *s)
{
    /* ids are uuids; a completed job's entry holds its manifest */
    static const struct ap_socache_hints hints = { KEY_LEN, 1024,
                                                   apr_time_from_sec(60) };
    apr_status_t rv;

    if (!provider || !instance)
        return OK;
    if (provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv =
            ap_global_mutex_create(&mutex, NULL, MUTEX_TYPE, NULL, s, pconf, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         "BF01061: %s %s: cannot create the %s mutex",
                         BF_CMD_STATUS_CACHE, provider_spec, MUTEX_TYPE);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_cleanup_register(pconf, NULL, mutex_cleanup,
                                  apr_pool_cleanup_null);
    }
    rv = provider->init(instance, CACHE_NAME, &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "BF01062: %s %s: cannot initialise the cache",
                     BF_CMD_STATUS_CACHE, provider_spec);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, s, instance_cleanup,
                              apr_pool_cleanup_null);
    return OK;
}

void bf_statuscache_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (!mutex)
        return;
    rv = apr_global_mutex_child_init(&mutex, apr_global_mutex_lockfile(mutex),
                                     pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "BF01063: %s: cannot attach to the %s mutex in this "
                     "child; its status polls go to PostgreSQL",
                     BF_CMD_STATUS_CACHE, MUTEX_TYPE);
        instance = NULL; /* this child only */
    }
}

/* ---- entries ------------------------------------------------------------- */

/* n bytes from the hex digits of s (dashes skipped: uuids); false unless
 * s holds exactly that many */
static bool hex_bytes(const char *s, unsigned char *out, int n)
{
    int i = 0, hi = -1, v;

    for (; *s && i < n; s++) {
        if (*s == '-')
            continue;
        v = apr_isdigit(*s) ? *s - '0' : (apr_tolower(*s) - 'a' + 10);
        if (v < 0 || v > 15)
            return false;
        if (hi < 0) {
            hi = v;
        } else {
            out[i++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    return i == n && !*s;
}

/* the server's BulkFhirDatabase: one cache may serve several databases */
static unsigned int db_hash(const bf_req_t *rq)
{
    const char *c = rq->sc->conninfo ? rq->sc->conninfo : "";
    apr_ssize_t n = APR_HASH_KEY_STRING;

    return apr_hashfunc_default(c, &n);
}

static bool make_key(const bf_req_t *rq, const char *job_id,
                     unsigned char key[KEY_LEN])
{
    unsigned int h = db_hash(rq);

    if (!hex_bytes(job_id, key, 16))
        return false;
    memcpy(key + 16, &h, 4);
    return true;
}

static bool lock(const bf_req_t *rq)
{
    apr_status_t rv;

    if (!mutex)
        return true;
    rv = apr_global_mutex_lock(mutex);
    if (rv != APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, rq->r,
                      "status cache: lock failed");
    return rv == APR_SUCCESS;
}

static void unlock(void)
{
    if (mutex)
        (void)apr_global_mutex_unlock(mutex);
}

/* The entry's strings, pointing into buf; false when it is not one of ours
 * (another layout, truncated). */
static bool decode(unsigned char *buf, unsigned int len, entry_t *e,
                   const char *str[S_COUNT])
{
    apr_size_t off = sizeof *e;
    int i;

    if (len < sizeof *e)
        return false;
    memcpy(e, buf, sizeof *e);
    if (e->magic != ENTRY_MAGIC)
        return false;
    for (i = 0; i < S_COUNT; i++) {
        str[i] = NULL;
        if (!e->len[i])
            continue;
        if (e->len[i] > len - off || buf[off + e->len[i] - 1] != '\0')
            return false;
        str[i] = (const char *)buf + off;
        off += e->len[i];
    }
    return str[S_ID] && str[S_STATE];
}

/* socache expiry: the entry answers for the timeout, and keeps the R43
 * gate for the poll interval after its last poll */
static apr_time_t store_expiry(const bf_req_t *rq, apr_time_t now)
{
    apr_time_t fresh = apr_time_from_sec(bf_srv_status_cache_timeout(rq->sc));
    apr_time_t gate = apr_time_from_msec(bf_dir_min_poll_interval(rq->dc));

    return now + (fresh > gate ? fresh : gate) + apr_time_from_sec(1);
}

static void store(const bf_req_t *rq, const unsigned char key[KEY_LEN],
                  unsigned char *buf, unsigned int len, apr_time_t now)
{
    apr_status_t rv =
        provider->store(instance, rq->r->server, key, KEY_LEN,
                        store_expiry(rq, now), buf, len, rq->r->pool);

    if (rv != APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, rq->r,
                      "status cache: entry of %u bytes not stored", len);
}

bool bf_statuscache_get(bf_req_t *rq, const char *job_id, bf_job_t **out)
{
    request_rec *r = rq->r;
    unsigned char key[KEY_LEN], *buf;
    unsigned int len = ENTRY_MAX;
    apr_time_t now, wait;
    int min_ms = bf_dir_min_poll_interval(rq->dc);
    const char *str[S_COUNT];
    bool running, gate, fresh, answer = false;
    bf_job_t *job;
    entry_t e;
    apr_status_t rv;

    *out = NULL;
    if (!instance || !make_key(rq, job_id, key))
        return false;
    buf = apr_palloc(r->pool, ENTRY_MAX);
    if (!lock(rq))
        return false;
    now = apr_time_now();
    rv = provider->retrieve(instance, r->server, key, KEY_LEN, buf, &len,
                            r->pool);
    if (rv != APR_SUCCESS || !decode(buf, len, &e, str))
        goto leave;
    job = apr_pcalloc(r->pool, sizeof *job);
    running = bf_job_state_is_live(str[S_STATE]);
    /* R43 as bulkfhir.job_status: only for a job the caller may see */
    gate = running && min_ms > 0 && bf_auth_may_see(rq, str[S_CLIENT]);
    fresh = now - e.fetched <
            apr_time_from_sec(bf_srv_status_cache_timeout(rq->sc));
    wait = e.last_poll + apr_time_from_msec(min_ms) - now;
    if (gate && e.last_poll && wait > 0) {
        /* the last poll is this httpd's knowledge: refused whatever the
         * entry's age (its state is then at most timeout + interval old) */
        job->poll_refused = true;
        job->poll_wait_ms = (int)((wait + 999) / 1000);
    } else if (!fresh || running) {
        /* a running job's 202 comes from PostgreSQL: its completion (and
         * progress) shows at once, not up to the timeout later; its entry
         * only keeps the R43 gate */
        goto leave;
    } else if (bf_job_state_parse(str[S_STATE]) == BF_JOB_STATE_COMPLETED &&
               (!str[S_MANIFEST] || !str[S_BASE] ||
                strcmp(str[S_BASE], rq->base) != 0)) {
        goto leave; /* rendered for another base: PostgreSQL renders it */
    }
    job->id = str[S_ID];
    job->state = str[S_STATE];
    job->client_id = str[S_CLIENT];
    job->error = str[S_ERROR];
    job->manifest = str[S_MANIFEST];
    job->separate_status = e.separate_status != 0;
    job->progress_pct = e.progress_pct;
    job->finished_at = e.finished_at;
    job->expires_at = e.expires_at;
    /* expiry at answer time, as PostgreSQL's expires_at < now() */
    job->expired =
        e.expires_at > 0 &&
        (double)apr_time_sec(now) + (double)apr_time_usec(now) / 1e6 >
            e.expires_at;
    *out = job;
    answer = true;
leave:
    unlock();
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "status cache: job %s: %s",
                  job_id, answer ? "hit" : "miss");
    return answer;
}

void bf_statuscache_put(bf_req_t *rq, const bf_job_t *job)
{
    request_rec *r = rq->r;
    const char *str[S_COUNT];
    unsigned char key[KEY_LEN], *buf;
    apr_size_t total = sizeof(entry_t), off;
    int min_ms = bf_dir_min_poll_interval(rq->dc), i;
    apr_time_t now = apr_time_now();
    entry_t e;

    if (!instance || !job || job->partial_manifests ||
        !make_key(rq, job->id, key))
        return;
    if (bf_job_state_parse(job->state) == BF_JOB_STATE_COMPLETED &&
        !job->manifest)
        return; /* expired before it was rendered: PostgreSQL answers */
    memset(&e, 0, sizeof e);
    str[S_ID] = job->id;
    str[S_STATE] = job->state;
    str[S_CLIENT] = job->client_id;
    str[S_ERROR] = job->error;
    str[S_MANIFEST] = job->manifest;
    str[S_BASE] = job->manifest ? rq->base : NULL;
    for (i = 0; i < S_COUNT; i++) {
        e.len[i] = str[i] ? (apr_uint32_t)strlen(str[i]) + 1 : 0;
        total += e.len[i];
    }
    if (total > ENTRY_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "status cache: job %s: %" APR_SIZE_T_FMT " bytes, "
                      "over %d: not cached",
                      job->id, total, ENTRY_MAX);
        return;
    }
    e.magic = ENTRY_MAGIC;
    e.progress_pct = job->progress_pct;
    e.fetched = now;
    e.finished_at = job->finished_at;
    e.expires_at = job->expires_at;
    e.separate_status = job->separate_status;
    if (bf_job_state_is_live(job->state) && min_ms > 0 &&
        bf_auth_may_see(rq, job->client_id))
        /* PostgreSQL's gate ran: allowed now, or refused because of a poll
         * min_ms - wait ago */
        e.last_poll = job->poll_refused
                          ? now + apr_time_from_msec(job->poll_wait_ms) -
                                apr_time_from_msec(min_ms)
                          : now;
    buf = apr_palloc(r->pool, total);
    memcpy(buf, &e, sizeof e);
    for (i = 0, off = sizeof e; i < S_COUNT; off += e.len[i], i++)
        if (e.len[i])
            memcpy(buf + off, str[i], e.len[i]);
    if (!lock(rq))
        return;
    store(rq, key, buf, (unsigned int)total, now);
    unlock();
}

void bf_statuscache_forget(bf_req_t *rq, const char *job_id)
{
    unsigned char key[KEY_LEN];

    if (!instance || !make_key(rq, job_id, key) || !lock(rq))
        return;
    (void)provider->remove(instance, rq->r->server, key, KEY_LEN, rq->r->pool);
    unlock();
}

/* ---- bearer tokens (BulkFhirAuth smart) --------------------------------- */

/* key: the token's sha256 (32 bytes: uniform first byte, as shmcb wants) +
 * the database hash (4) + TOKEN_KEY_TYPE; its length alone keeps it apart
 * from job keys.  value: token_entry_t, then client id and scope. */
#define TOKEN_KEY_LEN (32 + 4 + 1)
#define TOKEN_KEY_TYPE 'T'
#define TOKEN_ENTRY_MAX 4096    /* a longer scope list is checked in SQL */
#define TOKEN_MAGIC 0x42465431u /* "BFT1": bump when token_entry_t changes */

typedef struct token_entry_t {
    apr_uint32_t magic;
    apr_uint32_t client_len; /* with its NUL */
    apr_uint32_t scope_len;  /* with its NUL */
    apr_uint32_t pad;
    apr_time_t fetched; /* PostgreSQL answered at */
    apr_time_t expires; /* the token's own expiry */
} token_entry_t;

static bool make_token_key(const bf_req_t *rq, const char *hash_hex,
                           unsigned char key[TOKEN_KEY_LEN])
{
    unsigned int h = db_hash(rq);

    if (strncmp(hash_hex, "\\x", 2) != 0 || !hex_bytes(hash_hex + 2, key, 32))
        return false;
    memcpy(key + 32, &h, 4);
    key[36] = TOKEN_KEY_TYPE;
    return true;
}

bool bf_statuscache_token_get(bf_req_t *rq, const char *hash_hex,
                              const char **client_id, const char **scope)
{
    request_rec *r = rq->r;
    unsigned char key[TOKEN_KEY_LEN], *buf;
    unsigned int len = TOKEN_ENTRY_MAX;
    apr_time_t now;
    token_entry_t e;
    apr_status_t rv;
    bool answer = false;

    if (!instance || !make_token_key(rq, hash_hex, key))
        return false;
    buf = apr_palloc(r->pool, TOKEN_ENTRY_MAX);
    if (!lock(rq))
        return false;
    rv = provider->retrieve(instance, r->server, key, TOKEN_KEY_LEN, buf, &len,
                            r->pool);
    unlock();
    now = apr_time_now();
    if (rv != APR_SUCCESS || len < sizeof e)
        goto leave;
    memcpy(&e, buf, sizeof e);
    if (e.magic != TOKEN_MAGIC || !e.client_len || !e.scope_len ||
        e.client_len > len - sizeof e ||
        e.scope_len != len - sizeof e - e.client_len ||
        buf[sizeof e + e.client_len - 1] || buf[len - 1])
        goto leave;
    /* at most the timeout after PostgreSQL said yes, never past expiry */
    if (now < e.fetched || now >= e.expires ||
        now - e.fetched >=
            apr_time_from_sec(bf_srv_status_cache_timeout(rq->sc)))
        goto leave;
    *client_id = (const char *)buf + sizeof e;
    *scope = (const char *)buf + sizeof e + e.client_len;
    answer = true;
leave:
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "token cache: %s%s",
                  answer ? "hit, client " : "miss", answer ? *client_id : "");
    return answer;
}

void bf_statuscache_token_put(bf_req_t *rq, const char *hash_hex,
                              const char *client_id, const char *scope,
                              double expires_at)
{
    request_rec *r = rq->r;
    unsigned char key[TOKEN_KEY_LEN], *buf;
    apr_time_t now = apr_time_now(), until;
    apr_size_t total;
    token_entry_t e;
    apr_status_t rv;

    if (!instance || !client_id || !scope || !make_token_key(rq, hash_hex, key))
        return;
    memset(&e, 0, sizeof e);
    e.magic = TOKEN_MAGIC;
    e.client_len = (apr_uint32_t)strlen(client_id) + 1;
    e.scope_len = (apr_uint32_t)strlen(scope) + 1;
    e.fetched = now;
    e.expires = (apr_time_t)(expires_at * (double)APR_USEC_PER_SEC);
    total = sizeof e + e.client_len + e.scope_len;
    if (e.expires <= now || total > TOKEN_ENTRY_MAX)
        return; /* expiring now, or a huge scope: PostgreSQL answers */
    until = now + apr_time_from_sec(bf_srv_status_cache_timeout(rq->sc));
    if (until > e.expires)
        until = e.expires;
    buf = apr_palloc(r->pool, total);
    memcpy(buf, &e, sizeof e);
    memcpy(buf + sizeof e, client_id, e.client_len);
    memcpy(buf + sizeof e + e.client_len, scope, e.scope_len);
    if (!lock(rq))
        return;
    rv = provider->store(instance, r->server, key, TOKEN_KEY_LEN, until, buf,
                         (unsigned int)total, r->pool);
    unlock();
    if (rv != APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r,
                      "token cache: client %s: entry not stored", client_id);
}
