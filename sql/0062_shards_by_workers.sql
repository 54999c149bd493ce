-- 0062_shards_by_workers: a type gets no more hash shards than there are
-- live workers at kick-off (at least two), and a job's tasks are numbered
-- (claimed) largest first.  synthea-100p, 2 workers: ExplanationOfBenefit
-- and Observation, the two largest tasks, were claimed 12th and 15th of 19,
-- 0.08 and 0.13 s after the kick-off, and Observation alone ran to the end.  Measured at 1M resources with
-- one worker (BENCHMARKS.md, tests/bench/PROFILE.md): Observation, 62 % of
-- the rows, planned as 4 shards was 4 sequential scans of the whole table
-- (4.6 s against 2.9 s for one scan), which put the export at 0.73x the
-- COPY ceiling.  The shards still partition the type (0040), so which rows
-- a task holds never depends on the count.
INSERT INTO bulkfhir.setting (name, value, help) VALUES
    ('shard_live_worker_seconds', '30',
     'a worker heartbeating within this many seconds counts as live when a kick-off sizes its shards (a type gets at most max(live workers, 2) shards)')
ON CONFLICT (name) DO NOTHING;

CREATE OR REPLACE FUNCTION bulkfhir.plan_tasks(p_job uuid, p_types text[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_rows     bigint := greatest(bulkfhir.setting_int('shard_rows', 200000), 1);
    v_cap      bigint := greatest(bulkfhir.setting_int('max_tasks_per_job', 64), 1);
    v_per_type bigint := greatest(bulkfhir.setting_int('max_shards_per_type', 256), 1);
    v_attempts int := greatest(bulkfhir.setting_int('task_max_attempts', 3), 1)::int;
    v_live     bigint := greatest(bulkfhir.setting_int('shard_live_worker_seconds', 30), 1);
    v_workers  bigint;
    v_tasks    bigint;
BEGIN
    -- more shards than workers add no parallelism, only scans: every shard
    -- reads all of its type's rows (for a type most of the table is, a
    -- sequential scan of the whole table); at least two, so that a worker
    -- started after the kick-off can still share a large type
    SELECT count(*) INTO v_workers FROM bulkfhir.worker
     WHERE heartbeat_at > now() - make_interval(secs => v_live);
    v_per_type := least(v_per_type, greatest(v_workers, 2));
    -- one statement, no temporary table (kick-off runs this every time)
    INSERT INTO bulkfhir.task (job_id, resource_type, shard, shard_count, max_attempts)
    WITH types AS (
        SELECT unnest(p_types) AS t WHERE p_types IS NOT NULL
        UNION
        SELECT s FROM bulkfhir.stored_types() s WHERE p_types IS NULL
    ), e AS (
        SELECT t, coalesce(bulkfhir.estimate_type_rows(t), 0) AS est FROM types
    ), w AS (
        SELECT t, est, least(greatest(ceil(est::numeric / v_rows), 1),
                             v_per_type)::bigint AS wanted
          FROM e
    ), tot AS (
        SELECT count(*) AS n, sum(wanted - 1) AS extra FROM w
    ), plan AS (
        -- every type keeps one task; over the cap, the budget left is shared
        -- out by size (rounded down)
        SELECT w.t, w.est, CASE WHEN tot.extra > 0 AND tot.n + tot.extra > v_cap
                         THEN 1 + floor((w.wanted - 1)::numeric
                                        * greatest(v_cap - tot.n, 0) / tot.extra)
                         ELSE w.wanted END::int AS shards
          FROM w, tot
    )
    SELECT p_job, plan.t, s, plan.shards, v_attempts
      FROM plan, generate_series(0, plan.shards - 1) s
     -- task ids (the claim order within a job) largest task first: the
     -- biggest type no longer starts last and bounds the job alone
     ORDER BY plan.est / plan.shards DESC, plan.t, s;
    GET DIAGNOSTICS v_tasks = ROW_COUNT;
    RETURN v_tasks;
END
$$;
