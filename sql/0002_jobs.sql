-- 0002_jobs: export jobs, the tasks workers claim, published files, workers,
-- and the SMART client / token / jti tables.
CREATE SCHEMA IF NOT EXISTS bulkfhir;

CREATE TABLE bulkfhir.client (
    id          text PRIMARY KEY,
    jwks        jsonb,                 -- inline JWKS (A2)
    jwks_uri    text,                  -- registered JWKS URL (A2)
    scopes      text NOT NULL,         -- pre-authorised scopes, space separated (A10)
    max_jobs    integer NOT NULL DEFAULT 5,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (jwks IS NOT NULL OR jwks_uri IS NOT NULL)
);

CREATE TABLE bulkfhir.token (
    hash        bytea PRIMARY KEY,     -- sha256 of the bearer token; the token itself is never stored
    client_id   text NOT NULL REFERENCES bulkfhir.client (id) ON DELETE CASCADE,
    scope       text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX token_expires ON bulkfhir.token (expires_at);

CREATE TABLE bulkfhir.jti (
    client_id   text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX jti_expires ON bulkfhir.jti (expires_at);

-- One row per kick-off.
--   state: queued -> running -> completed | failed; cancelled by DELETE.
--   transaction_time and snapshot implement DESIGN invariant 1: the worker
--   waits for every transaction in progress at the snapshot, then exports the
--   versions valid at transaction_time.
CREATE TABLE bulkfhir.job (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id        text,             -- NULL when BulkFhirAuth none
    level            text NOT NULL CHECK (level IN ('system', 'patient', 'group')),
    group_id         text,
    params           jsonb NOT NULL DEFAULT '{}',   -- normalized kick-off parameters
    since            timestamptz,
    until            timestamptz,
    request_url      text NOT NULL,
    requires_token   boolean NOT NULL DEFAULT false,
    transaction_time timestamptz NOT NULL,
    snapshot         pg_snapshot NOT NULL,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    expires_at       timestamptz,      -- files removed after this (set on completion)
    error            jsonb             -- OperationOutcome when failed
);
CREATE INDEX job_client_state ON bulkfhir.job (client_id, state);
CREATE INDEX job_state ON bulkfhir.job (state, expires_at);

-- The unit of work a worker claims (DESIGN invariant 3).
CREATE TABLE bulkfhir.task (
    id            bigserial PRIMARY KEY,
    job_id        uuid NOT NULL REFERENCES bulkfhir.job (id) ON DELETE CASCADE,
    resource_type text NOT NULL,
    shard         integer NOT NULL DEFAULT 0,
    shard_count   integer NOT NULL DEFAULT 1,
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempt       integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 3,
    run_after     timestamptz NOT NULL DEFAULT now(),
    locked_by     text,
    lease_until   timestamptz,
    fencing       bigint NOT NULL DEFAULT 0,
    resources     bigint NOT NULL DEFAULT 0,
    bytes         bigint NOT NULL DEFAULT 0,
    errors        jsonb NOT NULL DEFAULT '[]',
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX task_job ON bulkfhir.task (job_id);
CREATE INDEX task_queue ON bulkfhir.task (run_after, id) WHERE state = 'queued';
CREATE INDEX task_lease ON bulkfhir.task (lease_until) WHERE state = 'running';

-- Published output (DESIGN invariant 2): a part file exists for clients only
-- once its row is committed.  path is relative to the export root.
CREATE TABLE bulkfhir.file (
    id            bigserial PRIMARY KEY,
    job_id        uuid NOT NULL REFERENCES bulkfhir.job (id) ON DELETE CASCADE,
    task_id       bigint REFERENCES bulkfhir.task (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('output', 'deleted', 'error')),
    resource_type text NOT NULL,
    part          integer NOT NULL DEFAULT 0,
    name          text NOT NULL,       -- file name inside the job directory
    count         bigint NOT NULL,
    bytes         bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, name)
);

CREATE TABLE bulkfhir.worker (
    id            text PRIMARY KEY,    -- host:pid:random
    host          text NOT NULL,
    pid           integer NOT NULL,
    version       text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    current_task  bigint
);

-- Resource types present in the store as current versions, without a full
-- scan: a loose index scan over resource_version_type_updated.
CREATE FUNCTION bulkfhir.stored_types() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE t(rt) AS (
        (SELECT resource_type FROM fhir.resource_version ORDER BY resource_type LIMIT 1)
        UNION ALL
        SELECT (SELECT r.resource_type FROM fhir.resource_version r
                 WHERE r.resource_type > t.rt ORDER BY r.resource_type LIMIT 1)
          FROM t WHERE t.rt IS NOT NULL
    )
    SELECT rt FROM t WHERE rt IS NOT NULL
$$;

-- Kick-off: one job row plus its tasks, atomically, then a wake-up hint.
-- transaction_time is read from the clock BEFORE the snapshot is taken, so a
-- transaction whose xid is not in the snapshot (began writing later) can only
-- stamp versions after transaction_time (loaders stamp last_updated with
-- clock_timestamp() after taking their xid; see bulkfhirctl load).
-- p_types NULL means every type in the store.
CREATE FUNCTION bulkfhir.kickoff(p_client text, p_level text, p_group text,
                                 p_params jsonb, p_since timestamptz,
                                 p_until timestamptz, p_request_url text,
                                 p_requires_token boolean, p_types text[])
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_time  timestamptz;
    v_snap  pg_snapshot;
    v_job   uuid;
    v_tasks bigint;
BEGIN
    v_time := clock_timestamp();
    v_snap := pg_current_snapshot();
    INSERT INTO bulkfhir.job (client_id, level, group_id, params, since, until,
                              request_url, requires_token, transaction_time, snapshot)
    VALUES (p_client, p_level, p_group, p_params, p_since, p_until,
            p_request_url, p_requires_token, v_time, v_snap)
    RETURNING id INTO v_job;
    INSERT INTO bulkfhir.task (job_id, resource_type)
    SELECT v_job, t FROM (
        SELECT unnest(p_types) AS t WHERE p_types IS NOT NULL
        UNION
        SELECT s FROM bulkfhir.stored_types() s WHERE p_types IS NULL
    ) x ORDER BY t;
    GET DIAGNOSTICS v_tasks = ROW_COUNT;
    IF v_tasks = 0 THEN
        -- nothing to export: complete at once with an empty manifest
        UPDATE bulkfhir.job SET state = 'completed', started_at = v_time,
               finished_at = clock_timestamp() WHERE id = v_job;
    END IF;
    PERFORM pg_notify('bulkfhir_task', v_job::text);
    RETURN v_job;
END
$$;
