-- 0040_scale: fan-out of large resource types into shards, the settings that
-- size it, and the bookkeeping the sweeper needs for cancelled jobs.
--
-- Shards are hash buckets of the resource id:
--     (hashtext(id)::bigint & 2147483647) % shard_count = shard
-- (the predicate lives in bf_task_export_sql, lib/bf_task.c).  Why hash
-- buckets and not keyset id ranges from pg_stats histogram bounds:
--   * pg_stats keeps ONE histogram for fhir.resource_version.id across all
--     types; per-type ranges cut from it are badly skewed whenever ids carry
--     a type-specific shape (prefixes, sequences), and empty for a type whose
--     ids sort apart from the rest.  Hash buckets are even for any id shape.
--   * correctness never depends on statistics: stale or missing statistics
--     (a site's view, a table never analysed) only change HOW MANY shards a
--     type gets, never which rows a shard holds; every row belongs to
--     exactly one bucket, so the shards of a type partition it.
--   * the price: every shard scans the type's rows and discards the other
--     buckets before the jsonb is detoasted and sent; serialising, sending
--     and writing the kept rows dominates that scan, so N shards on N workers
--     still finish close to N times sooner (see BENCHMARKS.md).
-- The number of rows per type is estimated from statistics only (no count):
-- pg_class.reltuples times the type's frequency in pg_stats'
-- most_common_vals of resource_type (types are few, so they are all there
-- once the table was analysed), else the remaining fraction spread over the
-- remaining distinct values.
CREATE TABLE bulkfhir.setting (
    name  text PRIMARY KEY,
    value text NOT NULL,
    help  text NOT NULL
);
INSERT INTO bulkfhir.setting (name, value, help) VALUES
    ('shard_rows', '200000',
     'target number of resource versions per task; a type estimated larger is split into hash shards'),
    ('max_tasks_per_job', '64',
     'cap on the tasks of one job (every type keeps at least one task)'),
    ('max_shards_per_type', '256', 'cap on the shards of one resource type'),
    ('task_max_attempts', '3',
     'attempts per task before the job fails (expired leases count)');

-- An integer setting, or the default when missing or not a number.
CREATE FUNCTION bulkfhir.setting_int(p_name text, p_default bigint)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT CASE WHEN value ~ '^[0-9]{1,15}$' THEN value::bigint END
                       FROM bulkfhir.setting WHERE name = p_name), p_default)
$$;

-- Estimated resource versions per type, from statistics only.  NULL when
-- there are none (never analysed, or the store is a view).
CREATE FUNCTION bulkfhir.estimate_type_rows(p_type text)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT greatest(cl.reltuples, 0)::float8 AS rows
          FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
         WHERE n.nspname = 'fhir' AND cl.relname = 'resource_version'
           AND cl.relkind = 'r' AND cl.reltuples > 0
    ), s AS (
        SELECT most_common_vals::text::text[] AS vals, most_common_freqs AS freqs,
               n_distinct
          FROM pg_stats
         WHERE schemaname = 'fhir' AND tablename = 'resource_version'
           AND attname = 'resource_type'
    )
    SELECT (c.rows * coalesce(
               (SELECT f FROM unnest(s.vals, s.freqs) u(v, f) WHERE u.v = p_type),
               -- not a common value: what the common values leave, spread
               -- over the other distinct values
               greatest(1 - coalesce((SELECT sum(f) FROM unnest(s.freqs) f), 0), 0)
                 / greatest(CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * c.rows
                                 ELSE s.n_distinct END
                            - coalesce(cardinality(s.vals), 0), 1)))::bigint
      FROM c, s
$$;

-- Tasks of a new job: one per type, more for a type estimated above
-- shard_rows; with more wanted than max_tasks_per_job allows, the extra
-- shards are shared out in proportion to each type's size.  Returns the
-- number of tasks made.
CREATE OR REPLACE FUNCTION bulkfhir.plan_tasks(p_job uuid, p_types text[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_rows     bigint := greatest(bulkfhir.setting_int('shard_rows', 200000), 1);
    v_cap      bigint := greatest(bulkfhir.setting_int('max_tasks_per_job', 64), 1);
    v_per_type bigint := greatest(bulkfhir.setting_int('max_shards_per_type', 256), 1);
    v_attempts int := greatest(bulkfhir.setting_int('task_max_attempts', 3), 1)::int;
    v_tasks    bigint;
BEGIN
    -- one statement, no temporary table (kick-off runs this every time)
    INSERT INTO bulkfhir.task (job_id, resource_type, shard, shard_count, max_attempts)
    WITH types AS (
        SELECT unnest(p_types) AS t WHERE p_types IS NOT NULL
        UNION
        SELECT s FROM bulkfhir.stored_types() s WHERE p_types IS NULL
    ), w AS (
        SELECT t, least(greatest(ceil(coalesce(bulkfhir.estimate_type_rows(t), 0)::numeric
                                      / v_rows), 1), v_per_type)::bigint AS wanted
          FROM types
    ), tot AS (
        SELECT count(*) AS n, sum(wanted - 1) AS extra FROM w
    ), plan AS (
        -- every type keeps one task; over the cap, the budget left is shared
        -- out by size (rounded down)
        SELECT w.t, CASE WHEN tot.extra > 0 AND tot.n + tot.extra > v_cap
                         THEN 1 + floor((w.wanted - 1)::numeric
                                        * greatest(v_cap - tot.n, 0) / tot.extra)
                         ELSE w.wanted END::int AS shards
          FROM w, tot
    )
    SELECT p_job, plan.t, s, plan.shards, v_attempts
      FROM plan, generate_series(0, plan.shards - 1) s
     ORDER BY plan.t, s;
    GET DIAGNOSTICS v_tasks = ROW_COUNT;
    RETURN v_tasks;
END
$$;

-- Sweeper bookkeeping: when the files of a cancelled job were removed, so a
-- cancelled job is looked at for a short while after (a worker that had not
-- yet noticed the cancel may still write a part), then never again.
ALTER TABLE bulkfhir.job ADD COLUMN files_removed_at timestamptz;
CREATE INDEX job_cancelled_unswept ON bulkfhir.job (files_removed_at)
    WHERE state = 'cancelled';
CREATE INDEX job_expires ON bulkfhir.job (expires_at)
    WHERE expires_at IS NOT NULL;
