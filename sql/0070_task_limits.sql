-- 0070_task_limits: the limits every export statement of a task runs under
-- (DESIGN invariant 7, issue #11).  A small _typeFilter made a worker's
-- backend run for minutes with JIT and keep gigabytes after it; one task
-- must cost no more than these settings allow:
--   * jit = off: the export statements are large generated expressions
--     whose JIT compilation costs more (time and backend memory, kept by
--     the long-lived connection) than it saves;
--   * statement_timeout: a statement past it fails the task at once as
--     "too costly" (no retries: it would time out again);
--   * work_mem: sorts and hashes of one statement spill to disk past it;
--   * task_backend_memory_mb: after a task the worker reads its backend's
--     memory and reconnects when it is past this bound, so a big task does
--     not leave a big idle backend behind.
-- The worker applies them (bulkfhir.task_limits_set) on its connection
-- before the first statement that reads the store for a task, and resets
-- statement_timeout and work_mem to the session's defaults (pg_settings
-- reset_val) before it publishes or fails the task; jit stays off.
INSERT INTO bulkfhir.setting (name, value, help) VALUES
    ('task_statement_timeout_ms', '900000',
     'statement_timeout (ms) of every statement that reads the store for a task; a task past it fails its job as too costly (0: no limit)'),
    ('task_work_mem_kb', '16384',
     'work_mem (kB) of the statements of a task (64 .. 2097151)'),
    ('task_backend_memory_mb', '256',
     'after a task, a worker whose database backend holds more than this (MiB) reconnects (0: never)')
ON CONFLICT (name) DO NOTHING;

-- Apply the limits on the calling session (set_config(..., false): they
-- stay for the following statements until the worker resets them).  Returns the
-- values in effect.
CREATE OR REPLACE FUNCTION bulkfhir.task_limits_set(
    OUT statement_timeout_ms bigint, OUT work_mem_kb bigint,
    OUT backend_memory_mb bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    statement_timeout_ms := least(greatest(
        bulkfhir.setting_int('task_statement_timeout_ms', 900000), 0), 2147483647);
    work_mem_kb := least(greatest(bulkfhir.setting_int('task_work_mem_kb', 16384), 64),
                         2097151);
    backend_memory_mb := greatest(bulkfhir.setting_int('task_backend_memory_mb', 256), 0);
    PERFORM set_config('jit', 'off', false);
    PERFORM set_config('work_mem', work_mem_kb::text || 'kB', false);
    PERFORM set_config('statement_timeout', statement_timeout_ms::text, false);
END
$$;

-- The memory held by the calling backend's memory contexts, in bytes; NULL
-- where it cannot be read (PostgreSQL before 14, or the function's owner may
-- not read pg_backend_memory_contexts).  SECURITY DEFINER: the view is
-- readable by superusers and pg_read_all_stats only, and the worker's role
-- need not be either.
CREATE OR REPLACE FUNCTION bulkfhir.backend_memory_bytes()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    v bigint;
BEGIN
    IF current_setting('server_version_num')::int < 140000 THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts' INTO v;
    RETURN v;
EXCEPTION WHEN insufficient_privilege OR undefined_table THEN
    RETURN NULL;
END
$$;
