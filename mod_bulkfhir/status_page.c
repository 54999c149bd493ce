/* mod_bulkfhir operator status page, in the spirit of mod_status:
 *
 *   <Location /bulkfhir-status>
 *       SetHandler bulkfhir-status
 *       Require ip 127.0.0.1 ::1
 *   </Location>
 *
 * GET                 an HTML page (?refresh=N reloads it every N seconds)
 * GET ?json           the same data as JSON (application/json)
 * GET ?metrics        Prometheus text exposition (version 0.0.4)
 *
 * BulkFhirAuth does not apply here: access is controlled by the ordinary
 * Require lines of the <Location>.  The data comes from one read-only query
 * (lib/bf_statusq.c) on a pooled connection of the server's database. */
#include "mod_bulkfhir.h"
#include "bf_statusq.h"

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>

#define BF_STATUS_HANDLER "bulkfhir-status"
#define MAX_ACTIVE_JOBS 50
#define MAX_RECENT_JOBS 20

typedef enum { FMT_HTML, FMT_JSON, FMT_METRICS } fmt_e;

static const char *const job_states[] = { "queued", "running",   "completed",
                                          "failed", "cancelled", NULL };
static const char *const task_states[] = { "queued", "running",   "done",
                                           "failed", "cancelled", NULL };

/* ---- json-c accessors: a missing or null member reads as empty/0 ------ */
static json_object *jget(json_object *o, const char *key)
{
    json_object *v = NULL;

    if (o && json_object_is_type(o, json_type_object) &&
        json_object_object_get_ex(o, key, &v))
        return v;
    return NULL;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = jget(o, key);

    return v && !json_object_is_type(v, json_type_null)
               ? json_object_get_string(v)
               : "";
}

static double jnum(json_object *o, const char *key)
{
    json_object *v = jget(o, key);

    return v ? json_object_get_double(v) : 0.0;
}

static long long jint(json_object *o, const char *key)
{
    json_object *v = jget(o, key);

    return v ? (long long)json_object_get_int64(v) : 0;
}

static size_t jlen(json_object *a)
{
    return a && json_object_is_type(a, json_type_array)
               ? json_object_array_length(a)
               : 0;
}

/* ---- formatting ----------------------------------------------------- */
/* libc formatting (APR's formatter lacks %lld/%zu and prints %g as ".6") */
static char *pvf(apr_pool_t *p, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    char *s;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return apr_pstrdup(p, "");
    s = apr_palloc(p, (apr_size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *pf(apr_pool_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *pf(apr_pool_t *p, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = pvf(p, fmt, ap);
    va_end(ap);
    return s;
}

static void out(request_rec *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out(request_rec *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ap_rputs(pvf(r->pool, fmt, ap), r);
    va_end(ap);
}
static const char *esc(apr_pool_t *p, const char *s)
{
    return ap_escape_html2(p, s ? s : "", 1);
}

static const char *human_bytes(apr_pool_t *p, double b)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;

    while (b >= 1024.0 && i < 4) {
        b /= 1024.0;
        i++;
    }
    return i == 0 ? pf(p, "%.0f B", b) : pf(p, "%.1f %s", b, unit[i]);
}

static const char *human_age(apr_pool_t *p, double s)
{
    if (s < 120)
        return pf(p, "%.1f s", s);
    if (s < 7200)
        return pf(p, "%.1f min", s / 60);
    if (s < 172800)
        return pf(p, "%.1f h", s / 3600);
    return pf(p, "%.1f d", s / 86400);
}

/* "2026-11-26T07:53:12.495602+00:00" -> "2026-11-26 07:53:12" */
static const char *short_time(apr_pool_t *p, const char *ts)
{
    char *s;

    if (!ts || strlen(ts) < 19)
        return ts ? ts : "";
    s = apr_pstrndup(p, ts, 19);
    s[10] = ' ';
    return s;
}

/* ---- HTML ------------------------------------------------------------- */
static const char css[] =
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;"
    "margin-top:1.5em}table{border-collapse:collapse;margin:.4em 0}"
    "th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left;"
    "font-size:.9em}th{background:#e8eef4}td.n{text-align:right}"
    ".bar{width:160px;height:12px;background:#ddd;display:inline-block;"
    "vertical-align:middle}.bar span{display:block;height:100%;"
    "background:#3a7bd5}td.p{white-space:nowrap}.state-failed{color:#b00}.state-completed"
    "{color:#070}.muted{color:#777}code{font-size:.95em}";

static void html_counts(request_rec *r, const char *title, json_object *o,
                        const char *const *states)
{
    int i;

    out(r, "<table><tr><th>%s</th>", title);
    for (i = 0; states[i]; i++)
        out(r, "<th>%s</th>", states[i]);
    ap_rputs("</tr><tr><td>count</td>", r);
    for (i = 0; states[i]; i++)
        out(r, "<td class=\"n\">%lld</td>", jint(o, states[i]));
    ap_rputs("</tr></table>\n", r);
}

static void html_jobs(request_rec *r, const char *title, json_object *jobs,
                      const char *empty)
{
    apr_pool_t *p = r->pool;
    size_t i, n = jlen(jobs);
    json_object *j, *t;
    double prog;

    out(r, "<h2>%s (%zu)</h2>\n", title, n);
    if (n == 0) {
        out(r, "<p class=\"muted\">%s</p>\n", empty);
        return;
    }
    ap_rputs("<table><tr><th>job</th><th>client</th><th>level</th>"
             "<th>state</th><th>created</th><th>progress</th>"
             "<th>tasks q/r/d/f/c</th><th>resources</th><th>written</th>"
             "<th>files</th><th>resources/s</th></tr>\n",
             r);
    for (i = 0; i < n; i++) {
        j = json_object_array_get_idx(jobs, i);
        t = jget(j, "tasks");
        prog = jnum(j, "progress");
        if (!(prog >= 0))
            prog = 0;
        if (prog > 1)
            prog = 1;
        out(r,
            "<tr><td><code>%s</code></td><td>%s</td><td>%s%s%s</td>"
            "<td class=\"state-%s\">%s</td><td>%s <span class=\"muted\">"
            "(%s ago)</span></td><td class=\"p\"><span class=\"bar\" title=\"%.0f%%\">"
            "<span style=\"width:%.0f%%\"></span></span> %.0f%%</td>"
            "<td>%lld/%lld/%lld/%lld/%lld of %lld</td><td class=\"n\">%lld"
            "</td><td class=\"n\">%s</td><td class=\"n\">%lld</td>"
            "<td class=\"n\">%s</td></tr>\n",
            esc(p, jstr(j, "id")),
            *jstr(j, "client_id") ? esc(p, jstr(j, "client_id"))
                                  : "<span class=\"muted\">(none)</span>",
            esc(p, jstr(j, "level")), *jstr(j, "group_id") ? " " : "",
            esc(p, jstr(j, "group_id")), esc(p, jstr(j, "state")),
            esc(p, jstr(j, "state")),
            esc(p, short_time(p, jstr(j, "created_at"))),
            human_age(p, jnum(j, "age_seconds")), prog * 100, prog * 100,
            (double)(int)(prog * 100), jint(t, "queued"), jint(t, "running"),
            jint(t, "done"), jint(t, "failed"), jint(t, "cancelled"),
            jint(j, "tasks_total"), jint(j, "resources"),
            human_bytes(p, jnum(j, "bytes")), jint(j, "files"),
            jget(j, "resources_per_second") &&
                    !json_object_is_type(jget(j, "resources_per_second"),
                                         json_type_null)
                ? pf(p, "%.1f", jnum(j, "resources_per_second"))
                : "-");
    }
    ap_rputs("</table>\n", r);
}

static void html_workers(request_rec *r, json_object *ws)
{
    apr_pool_t *p = r->pool;
    size_t i, n = jlen(ws);
    json_object *w;

    out(r, "<h2>Workers (%zu)</h2>\n", n);
    if (n == 0) {
        ap_rputs("<p class=\"muted\">No worker has a heartbeat row: start "
                 "<code>bulkfhir-worker</code>.</p>\n",
                 r);
        return;
    }
    ap_rputs("<table><tr><th>worker</th><th>host</th><th>pid</th>"
             "<th>version</th><th>started</th><th>heartbeat age</th>"
             "<th>current task</th></tr>\n",
             r);
    for (i = 0; i < n; i++) {
        w = json_object_array_get_idx(ws, i);
        out(r,
            "<tr><td><code>%s</code></td><td>%s</td><td class=\"n\">"
            "%lld</td><td>%s</td><td>%s</td><td class=\"n\">%s</td>"
            "<td>%s</td></tr>\n",
            esc(p, jstr(w, "id")), esc(p, jstr(w, "host")), jint(w, "pid"),
            esc(p, jstr(w, "version")),
            esc(p, short_time(p, jstr(w, "started_at"))),
            human_age(p, jnum(w, "heartbeat_age_seconds")),
            *jstr(w, "current_task") ? pf(p, "%s (%s, job <code>%s</code>)",
                                          esc(p, jstr(w, "current_task")),
                                          esc(p, jstr(w, "current_type")),
                                          esc(p, jstr(w, "current_job")))
                                     : "<span class=\"muted\">idle</span>");
    }
    ap_rputs("</table>\n", r);
}

/* ---- audit trail: the last hour per client (issue #13 item 4) -------- */
#define AUDIT_MAX_CLIENTS 50
static const char audit_sql[] =
    "SELECT coalesce(json_agg(json_build_object("
    "         'client', c, 'tokens', t, 'tokens_refused', tr,"
    "         'kickoffs', k, 'downloads', d, 'download_bytes', db,"
    "         'refused', rf, 'foreign', fo) ORDER BY n DESC, c), '[]')::text"
    "  FROM (SELECT coalesce(client_id, (body::jsonb)->>'claimed_client',"
    "                        '-') AS c, count(*) AS n,"
    "         count(*) FILTER (WHERE action = 'token.issued') AS t,"
    "         count(*) FILTER (WHERE action = 'token.refused') AS tr,"
    "         count(*) FILTER (WHERE action = 'kickoff.accepted') AS k,"
    "         count(*) FILTER (WHERE action = 'download') AS d,"
    "         coalesce(sum(((body::jsonb)->>'bytes')::bigint)"
    "                  FILTER (WHERE action = 'download'), 0) AS db,"
    "         count(*) FILTER (WHERE status >= 400) AS rf,"
    "         count(*) FILTER (WHERE (body::jsonb)->>'foreign' = 'true') AS fo"
    "          FROM bulkfhir.audit WHERE at > now() - interval '1 hour'"
    "         GROUP BY 1 ORDER BY n DESC LIMIT " APR_STRINGIFY(
        AUDIT_MAX_CLIENTS) ") s";

/* doc.audit_last_hour: [{client, tokens, ...}]; left out when the query
 * fails (e.g. before migration 0074). */
static void audit_fetch(request_rec *r, PGconn *conn, json_object *doc)
{
    PGresult *res = PQexec(conn, audit_sql);
    json_object *a;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        (a = json_tokener_parse(PQgetvalue(res, 0, 0))))
        json_object_object_add(doc, "audit_last_hour", a);
    else
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "bulkfhir-status: audit query: %s",
                      PQresultErrorMessage(res));
    PQclear(res);
}

static void html_audit(request_rec *r, json_object *a)
{
    json_object *c;
    size_t i, n = jlen(a);

    ap_rputs("<h2>Audit: the last hour per client</h2>\n", r);
    if (n == 0) {
        ap_rputs("<p>Nothing recorded in the last hour.</p>\n", r);
        return;
    }
    ap_rputs("<table><tr><th>client</th><th>tokens</th><th>tokens refused"
             "</th><th>kick-offs</th><th>downloads</th><th>bytes "
             "downloaded</th><th>refused requests</th><th>another client's "
             "job</th></tr>\n",
             r);
    for (i = 0; i < n; i++) {
        c = json_object_array_get_idx(a, i);
        out(r,
            "<tr><td>%s</td><td class=\"n\">%lld</td><td class=\"n\">%lld"
            "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>"
            "<td class=\"n\">%s</td><td class=\"n\">%lld</td>"
            "<td class=\"n\">%lld</td></tr>\n",
            esc(r->pool, jstr(c, "client")), jint(c, "tokens"),
            jint(c, "tokens_refused"), jint(c, "kickoffs"),
            jint(c, "downloads"),
            human_bytes(r->pool, jnum(c, "download_bytes")), jint(c, "refused"),
            jint(c, "foreign"));
    }
    ap_rputs("</table>\n", r);
}

/* a Prometheus label value: \ " and newline escaped */
static const char *label(apr_pool_t *p, const char *s)
{
    char *o = apr_palloc(p, 2 * strlen(s) + 1), *d = o;

    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            *d++ = '\\';
        if (*s == '\n') {
            *d++ = '\\';
            *d++ = 'n';
            continue;
        }
        *d++ = *s;
    }
    *d = '\0';
    return o;
}

static void metric_audit(request_rec *r, json_object *a, const char *name,
                         const char *key, const char *help)
{
    json_object *c;
    size_t i, n = jlen(a);

    out(r, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (i = 0; i < n; i++) {
        c = json_object_array_get_idx(a, i);
        out(r, "%s{client=\"%s\"} %lld\n", name,
            label(r->pool, jstr(c, "client")), jint(c, key));
    }
}

static void render_html(request_rec *r, json_object *doc, int refresh)
{
    apr_pool_t *p = r->pool;
    json_object *q = jget(doc, "queue"), *tot = jget(doc, "totals");

    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8"
             "\"><title>mod_bulkfhir status</title>",
             r);
    if (refresh > 0)
        out(r, "<meta http-equiv=\"refresh\" content=\"%d\">", refresh);
    out(r, "<style>%s</style></head><body>\n", css);
    out(r,
        "<h1>mod_bulkfhir status</h1>\n<p>Server %s, module %s; "
        "database time %s. <a href=\"?json\">JSON</a> &middot; "
        "<a href=\"?metrics\">metrics</a> &middot; "
        "<a href=\"?refresh=5\">refresh every 5 s</a></p>\n",
        esc(p, ap_get_server_name(r)), esc(p, BF_VERSION),
        esc(p, short_time(p, jstr(doc, "now"))));
    out(r,
        "<h2>Queue</h2>\n<table><tr><th>queued tasks</th><th>ready"
        "</th><th>oldest ready task waits</th><th>resources "
        "exported</th><th>bytes written</th><th>files</th>"
        "<th>resources/s (last minute)</th></tr><tr><td class=\"n\">"
        "%lld</td><td class=\"n\">%lld</td><td class=\"n\">%s</td>"
        "<td class=\"n\">%lld</td><td class=\"n\">%s</td>"
        "<td class=\"n\">%lld</td><td class=\"n\">%.1f</td></tr>"
        "</table>\n",
        jint(q, "depth"), jint(q, "ready"),
        human_age(p, jnum(q, "oldest_seconds")),
        jint(tot, "resources_exported"),
        human_bytes(p, jnum(tot, "bytes_written")), jint(tot, "files"),
        jnum(tot, "resources_per_second_1m"));
    ap_rputs("<h2>Jobs and tasks by state</h2>\n", r);
    html_counts(r, "jobs", jget(doc, "jobs"), job_states);
    html_counts(r, "tasks", jget(doc, "tasks"), task_states);
    html_jobs(r, "Active jobs", jget(doc, "active_jobs"),
              "No job is queued or running.");
    html_workers(r, jget(doc, "workers"));
    html_jobs(r, "Recent jobs", jget(doc, "recent_jobs"),
              "No job has finished yet.");
    if (jget(doc, "audit_last_hour"))
        html_audit(r, jget(doc, "audit_last_hour"));
    ap_rputs("</body></html>\n", r);
}

/* ---- Prometheus text exposition --------------------------------------- */
static void metric(request_rec *r, const char *name, const char *type,
                   const char *help, double v)
{
    out(r, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type,
        name, v);
}

static void metric_states(request_rec *r, const char *name, const char *help,
                          json_object *o, const char *const *states)
{
    int i;

    out(r, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (i = 0; states[i]; i++)
        out(r, "%s{state=\"%s\"} %lld\n", name, states[i], jint(o, states[i]));
}

static void render_metrics(request_rec *r, json_object *doc)
{
    json_object *q = jget(doc, "queue"), *tot = jget(doc, "totals");
    json_object *ws = jget(doc, "workers"), *w, *a;
    size_t i, n = jlen(ws), busy = 0;
    double age, max_age = 0;

    for (i = 0; i < n; i++) {
        w = json_object_array_get_idx(ws, i);
        if (*jstr(w, "current_task"))
            busy++;
        age = jnum(w, "heartbeat_age_seconds");
        if (age > max_age)
            max_age = age;
    }
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    metric_states(r, "bulkfhir_jobs", "Export jobs by state.",
                  jget(doc, "jobs"), job_states);
    metric_states(r, "bulkfhir_tasks", "Export tasks by state.",
                  jget(doc, "tasks"), task_states);
    metric(r, "bulkfhir_queue_depth", "gauge",
           "Queued tasks, including those waiting for a retry back-off.",
           (double)jint(q, "depth"));
    metric(r, "bulkfhir_queue_ready", "gauge",
           "Queued tasks a worker may claim now.", (double)jint(q, "ready"));
    metric(r, "bulkfhir_queue_oldest_seconds", "gauge",
           "How long the oldest ready task has waited.",
           jnum(q, "oldest_seconds"));
    metric(r, "bulkfhir_workers", "gauge",
           "Workers with a row in bulkfhir.worker.", (double)n);
    metric(r, "bulkfhir_workers_busy", "gauge", "Workers running a task.",
           (double)busy);
    metric(r, "bulkfhir_worker_heartbeat_age_max_seconds", "gauge",
           "Age of the stalest worker heartbeat.", max_age);
    metric(r, "bulkfhir_resources_exported_total", "counter",
           "Resources in published output files of jobs still on record.",
           (double)jint(tot, "resources_exported"));
    metric(r, "bulkfhir_bytes_written_total", "counter",
           "Bytes in published files of jobs still on record.",
           jnum(tot, "bytes_written"));
    metric(r, "bulkfhir_files_total", "counter",
           "Published files of jobs still on record.",
           (double)jint(tot, "files"));
    metric(r, "bulkfhir_resources_per_second_1m", "gauge",
           "Resources published per second over the last minute.",
           jnum(tot, "resources_per_second_1m"));
    if ((a = jget(doc, "audit_last_hour"))) {
        metric_audit(r, a, "bulkfhir_audit_tokens_1h", "tokens",
                     "Access tokens issued per client, last hour.");
        metric_audit(r, a, "bulkfhir_audit_tokens_refused_1h", "tokens_refused",
                     "Token requests refused per claimed client, last hour.");
        metric_audit(r, a, "bulkfhir_audit_kickoffs_1h", "kickoffs",
                     "Kick-offs accepted per client, last hour.");
        metric_audit(r, a, "bulkfhir_audit_downloads_1h", "downloads",
                     "File downloads per client, last hour.");
        metric_audit(r, a, "bulkfhir_audit_refused_1h", "refused",
                     "Requests refused (4xx/5xx) per client, last hour.");
        metric_audit(r, a, "bulkfhir_audit_foreign_1h", "foreign",
                     "Attempts on another client's job or file, last hour.");
    }
}

/* ---- the handler ------------------------------------------------------ */
static fmt_e parse_args(request_rec *r, int *refresh)
{
    fmt_e fmt = FMT_HTML;
    char *args, *tok, *last, *eq;

    *refresh = 0;
    if (!r->args)
        return fmt;
    args = apr_pstrdup(r->pool, r->args);
    for (tok = apr_strtok(args, "&;", &last); tok;
         tok = apr_strtok(NULL, "&;", &last)) {
        eq = strchr(tok, '=');
        if (eq)
            *eq++ = '\0';
        if (!strcmp(tok, "json"))
            fmt = FMT_JSON;
        else if (!strcmp(tok, "metrics"))
            fmt = FMT_METRICS;
        else if (!strcmp(tok, "refresh") && eq) {
            *refresh = atoi(eq);
            if (*refresh < 1 || *refresh > 3600)
                *refresh = 0;
        }
    }
    return fmt;
}

static int fail(request_rec *r, int status, const char *text)
{
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    r->status = status;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    ap_rputs(text, r);
    ap_rputs("\n", r);
    return OK;
}

static apr_status_t doc_free(void *doc)
{
    json_object_put(doc);
    return APR_SUCCESS;
}

int bf_status_page_handler(request_rec *r)
{
    bf_req_t rq;
    const char *json = NULL;
    char sqlstate[6] = "";
    json_object *doc;
    apr_time_t t0;
    fmt_e fmt;
    int refresh;

    if (!r->handler || strcmp(r->handler, BF_STATUS_HANDLER) != 0)
        return DECLINED;
    ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    fmt = parse_args(r, &refresh);

    memset(&rq, 0, sizeof rq);
    rq.r = r;
    rq.sc = ap_get_module_config(r->server->module_config, &bulkfhir_module);
    rq.dc = ap_get_module_config(r->per_dir_config, &bulkfhir_module);
    t0 = apr_time_now();
    if (!bf_db_acquire(&rq)) {
        apr_table_setn(r->headers_out, "Retry-After",
                       apr_itoa(r->pool, bf_dir_retry_after(rq.dc)));
        return fail(r, HTTP_SERVICE_UNAVAILABLE,
                    "bulkfhir-status: the database is unavailable");
    }
    if (!bf_statusq_fetch(rq.conn, r->pool, MAX_ACTIVE_JOBS, MAX_RECENT_JOBS,
                          &json, sqlstate)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BF08001: status page %s: query failed, SQLSTATE %s",
                      r->uri, *sqlstate ? sqlstate : "(connection lost)");
        return fail(r, HTTP_SERVICE_UNAVAILABLE,
                    "bulkfhir-status: the status query failed");
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "bulkfhir-status: %s, query %.1f ms, %" APR_SIZE_T_FMT
                  " bytes",
                  fmt == FMT_JSON      ? "json"
                  : fmt == FMT_METRICS ? "metrics"
                                       : "html",
                  (double)(apr_time_now() - t0) / 1000.0, strlen(json));
    doc = json_tokener_parse(json);
    if (!doc) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BF08002: status page %s: the status query returned "
                      "no JSON object",
                      r->uri);
        return fail(r, HTTP_INTERNAL_SERVER_ERROR,
                    "bulkfhir-status: internal error");
    }
    apr_pool_cleanup_register(r->pool, doc, doc_free, apr_pool_cleanup_null);
    audit_fetch(r, rq.conn, doc);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    switch (fmt) {
    case FMT_JSON:
        json_object_object_add(doc, "module_version",
                               json_object_new_string(BF_VERSION));
        ap_set_content_type(r, "application/json");
        ap_rputs(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN),
                 r);
        ap_rputs("\n", r);
        break;
    case FMT_METRICS:
        render_metrics(r, doc);
        break;
    case FMT_HTML:
        render_html(r, doc, refresh);
        break;
    }
    return OK;
}
