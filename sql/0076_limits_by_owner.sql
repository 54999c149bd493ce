-- 0076_limits_by_owner: a client's kick-off limits (R9: active jobs,
-- BulkFhirKickoffRate, too-costly refusals) belong to its owner key, the
-- auth mode and the client id together, as job visibility does since 0071.
-- Before, a BulkFhirAuth header user named like a SMART client (or an
-- anonymous <Location>) spent that client's budget.  bulkfhir.client's
-- max_jobs applies to SMART clients only: header users and anonymous
-- requests get the module's BulkFhirMaxActiveJobs.
--
-- New overloads with p_mode first; 0010/0073's signatures stay for a module
-- that is older than this schema (they keep the old, shared counting).

ALTER TABLE bulkfhir.kickoff_refusal
    ADD COLUMN auth_mode text NOT NULL DEFAULT 'none';
DROP INDEX IF EXISTS bulkfhir.kickoff_refusal_client;
CREATE INDEX kickoff_refusal_owner
    ON bulkfhir.kickoff_refusal (auth_mode, client, created_at);

-- Kick-offs of one owner in the last minute: accepted jobs plus refused
-- ones, and the oldest of them.
CREATE FUNCTION bulkfhir.recent_kickoffs(p_mode text, p_client text,
                                         OUT recent bigint,
                                         OUT oldest timestamptz)
LANGUAGE sql STABLE AS $$
    WITH k AS (
        SELECT j.created_at FROM bulkfhir.job j
         WHERE p_client IS NULL AND j.client_id IS NULL
           AND j.created_at > clock_timestamp() - interval '1 minute'
           AND bulkfhir.job_owner(j.auth_mode, j.requires_token, j.client_id)
               = p_mode || ':'
        UNION ALL
        SELECT j.created_at FROM bulkfhir.job j
         WHERE p_client IS NOT NULL AND j.client_id = p_client
           AND j.created_at > clock_timestamp() - interval '1 minute'
           AND bulkfhir.job_owner(j.auth_mode, j.requires_token, j.client_id)
               = p_mode || ':' || p_client
        UNION ALL
        SELECT r.created_at FROM bulkfhir.kickoff_refusal r
         WHERE r.auth_mode = p_mode AND r.client = coalesce(p_client, '')
           AND r.created_at > clock_timestamp() - interval '1 minute')
    SELECT count(*), min(created_at) FROM k
$$;

CREATE FUNCTION bulkfhir.admit(p_mode text, p_client text,
                               p_default_max integer, p_rate integer,
                               OUT verdict text, OUT active bigint,
                               OUT max_jobs integer, OUT recent bigint,
                               OUT retry_after integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_owner text := p_mode || ':' || coalesce(p_client, '');
    v_oldest timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bulkfhir.admit'),
                                  hashtext(v_owner));
    max_jobs := p_default_max;
    IF p_mode = 'smart' AND p_client IS NOT NULL THEN
        SELECT coalesce(c.max_jobs, p_default_max) INTO max_jobs
          FROM bulkfhir.client c WHERE c.id = p_client;
        max_jobs := coalesce(max_jobs, p_default_max);
    END IF;
    SELECT count(*) INTO active FROM bulkfhir.job j
     WHERE j.client_id IS NOT DISTINCT FROM p_client
       AND j.state IN ('queued', 'running')
       AND bulkfhir.job_owner(j.auth_mode, j.requires_token, j.client_id)
           = v_owner;
    SELECT k.recent, k.oldest INTO recent, v_oldest
      FROM bulkfhir.recent_kickoffs(p_mode, p_client) k;
    retry_after := 0;
    IF active >= max_jobs THEN
        verdict := 'busy';
    ELSIF p_rate IS NOT NULL AND recent >= p_rate THEN
        verdict := 'rate';
        retry_after := greatest(1, ceil(extract(epoch FROM
                         v_oldest + interval '1 minute' - clock_timestamp()))::integer);
    ELSE
        verdict := 'ok';
    END IF;
END
$$;

CREATE FUNCTION bulkfhir.refuse_kickoff(p_mode text, p_client text,
                                        p_rate integer,
                                        OUT verdict text, OUT recent bigint,
                                        OUT retry_after integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_oldest timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bulkfhir.admit'),
                                  hashtext(p_mode || ':' || coalesce(p_client, '')));
    DELETE FROM bulkfhir.kickoff_refusal
     WHERE created_at <= clock_timestamp() - interval '1 minute';
    SELECT k.recent, k.oldest INTO recent, v_oldest
      FROM bulkfhir.recent_kickoffs(p_mode, p_client) k;
    retry_after := 0;
    IF p_rate IS NOT NULL AND recent >= p_rate THEN
        verdict := 'rate';
        retry_after := greatest(1, ceil(extract(epoch FROM
                         v_oldest + interval '1 minute' - clock_timestamp()))::integer);
    ELSE
        INSERT INTO bulkfhir.kickoff_refusal (auth_mode, client)
        VALUES (p_mode, coalesce(p_client, ''));
        recent := recent + 1;
        verdict := 'ok';
    END IF;
END
$$;
