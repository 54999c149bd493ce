-- 0031_organized_plan: tasks for organizeOutputBy=Patient (SPEC R30, R53).
-- The worker (0020) writes resource blocks for tasks of kind 'organized':
-- resource_type 'Patient', patients split over shard/shard_count by
-- hashtext(patient id).  The kick-off calls this in its transaction, after
-- bulkfhir.kickoff(), to replace the per-type tasks planned there.
-- Shards: about one per 10,000 patients (planner statistics), 1 to 16.
-- Returns the number of tasks; 0 when the job already completed (nothing
-- was stored, so there is nothing to organize).
CREATE FUNCTION bulkfhir.plan_organized(p_job uuid)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_state  text;
    v_est    double precision;
    v_shards integer;
BEGIN
    SELECT state INTO v_state FROM bulkfhir.job WHERE id = p_job FOR UPDATE;
    IF NOT FOUND OR v_state <> 'queued' THEN
        RETURN 0;
    END IF;
    SELECT u.f * greatest(c.reltuples, 0) INTO v_est
      FROM pg_stats s
      JOIN pg_class c ON c.oid = 'fhir.resource_version'::regclass
      CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS u(v, f)
     WHERE s.schemaname = 'fhir' AND s.tablename = 'resource_version'
       AND s.attname = 'resource_type' AND u.v = 'Patient';
    v_shards := least(16, greatest(1, ceil(coalesce(v_est, 0) / 10000.0)::integer));
    DELETE FROM bulkfhir.task WHERE job_id = p_job;
    INSERT INTO bulkfhir.task (job_id, resource_type, shard, shard_count, kind)
    SELECT p_job, 'Patient', s, v_shards, 'organized'
      FROM generate_series(0, v_shards - 1) s;
    RETURN v_shards;
END
$$;
