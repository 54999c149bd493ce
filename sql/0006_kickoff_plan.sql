-- 0006_kickoff_plan: kick-off records its own xid as the snapshot horizon,
-- and task planning moves into its own function so that it can grow
-- (shards, caps) without touching kickoff().
--
-- Why the horizon: pg_current_snapshot()'s xip lists only in-progress xids
-- below its xmax; a writer whose xid is >= xmax may still be running.  The
-- kick-off's own xid is assigned right after its snapshot, so every
-- transaction that held an xid when the snapshot was taken has a smaller
-- one.  A worker waits until pg_snapshot_xmin(pg_current_snapshot()) >=
-- xid_horizon: then all of them have ended.
ALTER TABLE bulkfhir.job ADD COLUMN xid_horizon xid8;

-- One task per resource type (p_types NULL: every type in the store).
-- Returns the number of tasks made.  Owned by the scale work (shards).
CREATE FUNCTION bulkfhir.plan_tasks(p_job uuid, p_types text[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_tasks bigint;
BEGIN
    INSERT INTO bulkfhir.task (job_id, resource_type)
    SELECT p_job, t FROM (
        SELECT unnest(p_types) AS t WHERE p_types IS NOT NULL
        UNION
        SELECT s FROM bulkfhir.stored_types() s WHERE p_types IS NULL
    ) x ORDER BY t;
    GET DIAGNOSTICS v_tasks = ROW_COUNT;
    RETURN v_tasks;
END
$$;

CREATE OR REPLACE FUNCTION bulkfhir.kickoff(p_client text, p_level text, p_group text,
                                            p_params jsonb, p_since timestamptz,
                                            p_until timestamptz, p_request_url text,
                                            p_requires_token boolean, p_types text[])
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_time    timestamptz;
    v_snap    pg_snapshot;
    v_horizon xid8;
    v_job     uuid;
BEGIN
    -- order matters: clock, then snapshot, then our own xid (DESIGN inv. 1)
    v_time := clock_timestamp();
    v_snap := pg_current_snapshot();
    v_horizon := pg_current_xact_id();
    INSERT INTO bulkfhir.job (client_id, level, group_id, params, since, until,
                              request_url, requires_token, transaction_time,
                              snapshot, xid_horizon)
    VALUES (p_client, p_level, p_group, p_params, p_since, p_until,
            p_request_url, p_requires_token, v_time, v_snap, v_horizon)
    RETURNING id INTO v_job;
    IF bulkfhir.plan_tasks(v_job, p_types) = 0 THEN
        -- nothing to export: complete at once with an empty manifest
        UPDATE bulkfhir.job SET state = 'completed', started_at = v_time,
               finished_at = clock_timestamp() WHERE id = v_job;
    END IF;
    PERFORM pg_notify('bulkfhir_task', v_job::text);
    RETURN v_job;
END
$$;
