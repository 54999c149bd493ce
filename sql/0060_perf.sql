-- 0060_perf: cheaper status polls and _elements subsetting (issue #6).
--
-- Status polls: one statement per poll (bulkfhir.job_status: the job, the
-- R43 poll gate, progress and, for a completed job, its stored manifest),
-- planned once per connection (plpgsql caches its plans; the module
-- prepares the call).  A completed job's manifest is immutable (its files,
-- transactionTime, request and requiresAccessToken no longer change), so
-- the module renders it once and stores it with the FHIR base URL it was
-- rendered for: a poll through another base (BulkFhirBaseURL, Host)
-- renders again and replaces it.
ALTER TABLE bulkfhir.job
    ADD COLUMN manifest      text,   -- complete-status body (not partial)
    ADD COLUMN manifest_base text;   -- the FHIR base its URLs start with

-- Same results as 0030's job_progress.  plpgsql, so that its plan is
-- cached per connection (a SQL function is planned on every call); the
-- estimates (pg_stats of resource_type) are read once per call instead of
-- once per task.
CREATE OR REPLACE FUNCTION bulkfhir.job_progress(p_job uuid,
                                      OUT pct integer, OUT tasks_done bigint,
                                      OUT tasks_total bigint, OUT written bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    WITH est AS MATERIALIZED (
        SELECT u.v AS rt, u.f * greatest(c.reltuples, 0) AS n
          FROM pg_stats s
          JOIN pg_class c ON c.oid = 'fhir.resource_version'::regclass
          CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[],
                                    s.most_common_freqs) AS u(v, f)
         WHERE s.schemaname = 'fhir' AND s.tablename = 'resource_version'
           AND s.attname = 'resource_type'
    ), t AS (
        SELECT t.state,
               greatest(coalesce((SELECT e.n FROM est e WHERE e.rt = t.resource_type), 0)
                        / greatest(t.shard_count, 1), 1) AS w,
               greatest(t.resources,
                        coalesce((SELECT sum(f.count) FROM bulkfhir.file f
                                   WHERE f.task_id = t.id AND f.kind = 'output'), 0)) AS done_n
          FROM bulkfhir.task t
         WHERE t.job_id = p_job AND t.state <> 'cancelled'
    )
    SELECT coalesce(floor(100 * sum(CASE WHEN state IN ('done', 'failed') THEN w
                                         ELSE least(done_n, 0.99 * w) END)
                          / nullif(sum(w), 0)), 0)::integer,
           count(*) FILTER (WHERE state IN ('done', 'failed')),
           count(*),
           coalesce(sum(done_n), 0)::bigint
      INTO pct, tasks_done, tasks_total, written
      FROM t;
END
$$;

-- One status poll.  No row when the job does not exist.
--   p_min_ms          BulkFhirMinPollInterval; > 0: the R43 gate runs for
--                     a queued/running job the caller may see, i.e. when
--                     NOT p_auth or the job's client is p_client (the
--                     module's ownership rule), as bulkfhir.job_poll did;
--                     s_allowed false + s_wait_ms when the poll is refused
--   p_base            the FHIR base of this request: s_manifest is the
--                     stored manifest when it was rendered for this base
-- Progress (s_pct, s_written) for queued/running jobs, else 0; task counts
-- for every job.
CREATE FUNCTION bulkfhir.job_status(p_job uuid, p_min_ms integer,
                                    p_auth boolean, p_client text,
                                    p_base text)
RETURNS TABLE (s_id uuid, s_state text, s_client text, s_request text,
               s_requires_token boolean, s_transaction_time text,
               s_finished double precision, s_error text,
               s_tasks_total bigint, s_tasks_done bigint,
               s_expires double precision, s_expired boolean,
               s_separate boolean, s_partial boolean, s_organized text,
               s_pct integer, s_written bigint, s_allowed boolean,
               s_wait_ms integer, s_manifest text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j     record;
    v_now timestamptz;
    v_due timestamptz;
BEGIN
    SELECT jb.id, jb.state, jb.client_id, jb.request_url, jb.requires_token,
           jb.transaction_time, jb.finished_at, jb.error, jb.expires_at,
           jb.separate_status, jb.params, jb.last_poll_at,
           CASE WHEN jb.state = 'completed' AND jb.manifest_base = p_base
                THEN jb.manifest END AS manifest
      INTO j
      FROM bulkfhir.job jb WHERE jb.id = p_job;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    s_allowed := true;
    s_wait_ms := 0;
    IF j.state IN ('queued', 'running') AND p_min_ms > 0
       AND (NOT p_auth OR j.client_id = p_client) THEN
        v_now := clock_timestamp();
        v_due := j.last_poll_at + make_interval(secs => p_min_ms / 1000.0);
        IF v_now < v_due THEN   -- NULL last_poll_at: allowed
            s_allowed := false;
            s_wait_ms := ceil(extract(epoch FROM (v_due - v_now)) * 1000)::integer;
        ELSE
            UPDATE bulkfhir.job SET last_poll_at = v_now WHERE id = p_job;
        END IF;
    END IF;
    IF j.state IN ('queued', 'running') THEN
        -- nothing finished or written yet: 0 % whatever the weights, so
        -- the estimates (pg_stats) are not read
        SELECT count(*) FILTER (WHERE t.state IN ('done', 'failed')),
               count(*),
               coalesce(sum(greatest(t.resources,
                            coalesce((SELECT sum(f.count) FROM bulkfhir.file f
                                       WHERE f.task_id = t.id AND f.kind = 'output'), 0))), 0)::bigint
          INTO s_tasks_done, s_tasks_total, s_written
          FROM bulkfhir.task t
         WHERE t.job_id = p_job AND t.state <> 'cancelled';
        s_pct := 0;
        IF s_tasks_done > 0 OR s_written > 0 THEN
            SELECT jp.pct, jp.tasks_done, jp.tasks_total, jp.written
              INTO s_pct, s_tasks_done, s_tasks_total, s_written
              FROM bulkfhir.job_progress(p_job) jp;
        END IF;
    ELSE
        s_pct := 0;
        s_written := 0;
        SELECT count(*) FILTER (WHERE t.state IN ('done', 'failed')),
               count(*) FILTER (WHERE t.state <> 'cancelled')
          INTO s_tasks_done, s_tasks_total
          FROM bulkfhir.task t WHERE t.job_id = p_job;
    END IF;
    s_id := j.id;
    s_state := j.state;
    s_client := j.client_id;
    s_request := j.request_url;
    s_requires_token := j.requires_token;
    s_transaction_time := to_char(j.transaction_time AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    s_finished := coalesce(extract(epoch FROM j.finished_at), 0);
    s_error := j.error::text;
    s_expires := coalesce(extract(epoch FROM j.expires_at), 0);
    s_expired := coalesce(j.expires_at < now(), false);
    s_separate := j.separate_status;
    s_partial := coalesce(j.params->>'allowPartialManifests' = 'true', false);
    s_organized := j.params->>'organizeOutputBy';
    s_manifest := j.manifest;
    RETURN NEXT;
END
$$;

-- _elements: same signature and results as 0005's fhir_subset, but the
-- unwanted top-level keys are subtracted (jsonb - text[]) instead of the
-- object being rebuilt with jsonb_each + jsonb_object_agg.  meta is always
-- kept, so the subset's meta is r's.  An empty object gave NULL before
-- (jsonb_object_agg over no rows) and still does.
CREATE OR REPLACE FUNCTION bulkfhir.fhir_subset(r jsonb, keep text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN r = '{}'::jsonb THEN NULL ELSE
           jsonb_set(r - ARRAY(
                   SELECT k FROM jsonb_object_keys(r) AS k
                    WHERE (k IN ('resourceType', 'id', 'meta', 'modifierExtension')
                           OR k = ANY (keep)
                           OR EXISTS (SELECT 1 FROM unnest(keep) AS c
                                       WHERE right(c, 3) = '[x]'
                                         AND (k = left(c, -3)
                                              OR (starts_with(k, left(c, -3))
                                                  AND substr(k, length(c) - 2, 1) BETWEEN 'A' AND 'Z'))))
                          IS NOT TRUE),
               '{meta}',
               coalesce(r -> 'meta', '{}'::jsonb)
               || jsonb_build_object('tag',
                      coalesce(r -> 'meta' -> 'tag', '[]'::jsonb)
                      || '[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"subsetted"}]'::jsonb))
           END
$$;
