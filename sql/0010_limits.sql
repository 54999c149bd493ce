-- 0010_limits: per-client kick-off limits (SPEC R9: mitigate denial of
-- service).  A client may have at most max_jobs (bulkfhir.client.max_jobs,
-- else the module's BulkFhirMaxActiveJobs) jobs queued or running at once
-- -- cancelled, completed and failed jobs never count, so a DELETE frees the
-- slot at once -- and may start at most p_rate jobs per minute.  Anonymous
-- jobs (BulkFhirAuth none, client_id NULL) share one budget.
CREATE INDEX job_client_created ON bulkfhir.job (client_id, created_at);

-- Admission of one kick-off.  Takes a transaction-scoped advisory lock per
-- client, so the caller must run bulkfhir.kickoff() in the SAME transaction
-- and commit: concurrent kick-offs of one client are then counted one after
-- the other and cannot both take the last slot.  Assigns no xid.
--   verdict: 'ok' | 'busy' (too many active jobs) | 'rate' (too many per minute)
--   retry_after: seconds until the rate window frees a kick-off ('rate' only)
CREATE FUNCTION bulkfhir.admit(p_client text, p_default_max integer,
                               p_rate integer,
                               OUT verdict text, OUT active bigint,
                               OUT max_jobs integer, OUT recent bigint,
                               OUT retry_after integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_oldest timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bulkfhir.admit'),
                                  hashtext(coalesce(p_client, '')));
    IF p_client IS NULL THEN
        max_jobs := p_default_max;
        SELECT count(*) INTO active FROM bulkfhir.job j
         WHERE j.client_id IS NULL AND j.state IN ('queued', 'running');
        SELECT count(*), min(j.created_at) INTO recent, v_oldest
          FROM bulkfhir.job j
         WHERE j.client_id IS NULL
           AND j.created_at > clock_timestamp() - interval '1 minute';
    ELSE
        SELECT c.max_jobs INTO max_jobs FROM bulkfhir.client c
         WHERE c.id = p_client;
        max_jobs := coalesce(max_jobs, p_default_max);
        SELECT count(*) INTO active FROM bulkfhir.job j
         WHERE j.client_id = p_client AND j.state IN ('queued', 'running');
        SELECT count(*), min(j.created_at) INTO recent, v_oldest
          FROM bulkfhir.job j
         WHERE j.client_id = p_client
           AND j.created_at > clock_timestamp() - interval '1 minute';
    END IF;
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
