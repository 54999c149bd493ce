-- 0073_cost_refusals: kick-offs refused as too costly (README "Bounded
-- cost") count against the client's kick-off rate (BulkFhirKickoffRate)
-- like accepted ones, so a client cannot make the module parse costly
-- requests faster than it may start jobs.  Anonymous kick-offs
-- (BulkFhirAuth none) are one client, as in bulkfhir.admit.
CREATE TABLE bulkfhir.kickoff_refusal (
    client     text NOT NULL,           -- '' for anonymous
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX kickoff_refusal_client ON bulkfhir.kickoff_refusal (client, created_at);
CREATE INDEX kickoff_refusal_created ON bulkfhir.kickoff_refusal (created_at);

-- Kick-offs of one client in the last minute: accepted jobs plus refused
-- ones, and the oldest of them.
CREATE FUNCTION bulkfhir.recent_kickoffs(p_client text, OUT recent bigint,
                                         OUT oldest timestamptz)
LANGUAGE sql STABLE AS $$
    WITH k AS (
        SELECT j.created_at FROM bulkfhir.job j
         WHERE p_client IS NULL AND j.client_id IS NULL
           AND j.created_at > clock_timestamp() - interval '1 minute'
        UNION ALL
        SELECT j.created_at FROM bulkfhir.job j
         WHERE p_client IS NOT NULL AND j.client_id = p_client
           AND j.created_at > clock_timestamp() - interval '1 minute'
        UNION ALL
        SELECT r.created_at FROM bulkfhir.kickoff_refusal r
         WHERE r.client = coalesce(p_client, '')
           AND r.created_at > clock_timestamp() - interval '1 minute')
    SELECT count(*), min(created_at) FROM k
$$;

-- As in 0010, with refusals counted in `recent`.
CREATE OR REPLACE FUNCTION bulkfhir.admit(p_client text, p_default_max integer,
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
    ELSE
        SELECT c.max_jobs INTO max_jobs FROM bulkfhir.client c
         WHERE c.id = p_client;
        max_jobs := coalesce(max_jobs, p_default_max);
        SELECT count(*) INTO active FROM bulkfhir.job j
         WHERE j.client_id = p_client AND j.state IN ('queued', 'running');
    END IF;
    SELECT k.recent, k.oldest INTO recent, v_oldest
      FROM bulkfhir.recent_kickoffs(p_client) k;
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

-- Record one too-costly refusal of p_client (NULL: anonymous), under the
-- same per-client lock as bulkfhir.admit.  verdict 'ok': recorded (the
-- caller answers 400 too-costly); 'rate': the client is over p_rate already,
-- nothing recorded (the caller answers 429, retry_after seconds).  Rows
-- older than a minute are dropped on the way: the table holds at most
-- p_rate rows per client.
CREATE FUNCTION bulkfhir.refuse_kickoff(p_client text, p_rate integer,
                                        OUT verdict text, OUT recent bigint,
                                        OUT retry_after integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_oldest timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bulkfhir.admit'),
                                  hashtext(coalesce(p_client, '')));
    DELETE FROM bulkfhir.kickoff_refusal
     WHERE created_at <= clock_timestamp() - interval '1 minute';
    SELECT k.recent, k.oldest INTO recent, v_oldest
      FROM bulkfhir.recent_kickoffs(p_client) k;
    retry_after := 0;
    IF p_rate IS NOT NULL AND recent >= p_rate THEN
        verdict := 'rate';
        retry_after := greatest(1, ceil(extract(epoch FROM
                         v_oldest + interval '1 minute' - clock_timestamp()))::integer);
    ELSE
        INSERT INTO bulkfhir.kickoff_refusal (client)
        VALUES (coalesce(p_client, ''));
        recent := recent + 1;
        verdict := 'ok';
    END IF;
END
$$;
