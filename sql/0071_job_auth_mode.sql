-- 0071_job_auth_mode: a job is visible only to requests authenticated the
-- way it was created.  Before, only the client id was compared: a
-- <Location> with BulkFhirAuth none saw every job (given its id), and a
-- BulkFhirAuth header user name shared the id space with SMART clients.
--
-- job.auth_mode records the creator's BulkFhirAuth (none | smart | header);
-- the kick-off sets it (bf_job_kickoff).  NULL (a row written by an older
-- module) counts as smart when the job required a token, else none.
-- The owner key "<mode>:<client id>" is what the module compares
-- (bf_auth_may_see); status, manifest, files and DELETE answer 404 when it
-- differs from the request's.
ALTER TABLE bulkfhir.job ADD COLUMN auth_mode text
    CHECK (auth_mode IN ('none', 'smart', 'header'));

-- jobs of header-mode clients: their client id is not a registered client
UPDATE bulkfhir.job j
   SET auth_mode = CASE
           WHEN NOT j.requires_token THEN 'none'
           WHEN EXISTS (SELECT 1 FROM bulkfhir.client c WHERE c.id = j.client_id)
               THEN 'smart'
           ELSE 'header' END
 WHERE j.auth_mode IS NULL;

CREATE FUNCTION bulkfhir.job_owner(p_mode text, p_requires_token boolean,
                                   p_client text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(p_mode, CASE WHEN p_requires_token THEN 'smart' ELSE 'none' END)
           || ':' || coalesce(p_client, '')
$$;

-- 0060's job_status with the owner key: p_client is the caller's owner
-- key ("<mode>:<client>"; p_auth true: the R43 gate runs only for the
-- job's owner, never for a request authenticated another way), s_client
-- is the job's owner key.  Signature and result columns unchanged.
CREATE OR REPLACE FUNCTION bulkfhir.job_status(p_job uuid, p_min_ms integer,
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
    SELECT jb.id, jb.state,
           bulkfhir.job_owner(jb.auth_mode, jb.requires_token, jb.client_id) AS owner,
           jb.request_url, jb.requires_token,
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
       AND (NOT p_auth OR j.owner = p_client) THEN
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
    s_client := j.owner;
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

-- The JWKS negative cache, shared by every httpd child (bf_jwks_get): a
-- failed fetch of a client's JWKS URL (error, timeout, not a key set) is
-- remembered until failed_until; meanwhile token requests for that URL
-- are refused without a fetch.  Such a row has no body.
ALTER TABLE bulkfhir.jwks_cache
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN failed_until timestamptz,
    ADD COLUMN failure      text;
