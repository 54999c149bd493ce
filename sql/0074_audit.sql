-- 0074_audit: the audit trail (issue #13, DESIGN invariant 11).
--
-- bulkfhir.audit is append-only and hash-chained.  Each record stores its
-- canonical body once (compact JSON text, written at insert) and
--     hash = sha256(prev_hash || convert_to(chain || E'\n' || seq || E'\n' || body, 'UTF8'))
-- where prev_hash is the hash of the previous record of the same chain
-- (32 zero bytes for a chain's first record).  A chain has one writer at a
-- time in practice (an httpd child, a database session, bulkfhirctl); its
-- row in bulkfhir.audit_chain is locked FOR UPDATE while a record is
-- appended, so concurrent writers of one chain (the threads of an httpd
-- child) still chain correctly.  The columns queried by (at, action,
-- client_id, job_id, status) are generated from the body: changing one
-- means changing the body, which breaks the chain.  `bulkfhirctl audit
-- verify` recomputes every hash in C.
--
-- The sweeper never touches these tables.  Rows leave only through
-- bulkfhir.audit_prune (bulkfhirctl audit prune --before T), which records
-- itself; a trigger refuses every other UPDATE and DELETE.
CREATE TABLE bulkfhir.audit_chain (
    name       text PRIMARY KEY,
    last_seq   bigint NOT NULL DEFAULT 0,
    last_hash  bytea,                 -- NULL: no record yet
    pruned_seq bigint NOT NULL DEFAULT 0, -- records 1..pruned_seq were pruned
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bulkfhir.audit (
    id        bigserial PRIMARY KEY,
    chain     text NOT NULL,
    seq       bigint NOT NULL,
    body      text NOT NULL,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL,
    at        timestamptz GENERATED ALWAYS AS
                  (to_timestamp(((body::jsonb) ->> 'at')::float8)) STORED,
    action    text GENERATED ALWAYS AS ((body::jsonb) ->> 'action') STORED,
    client_id text GENERATED ALWAYS AS ((body::jsonb) ->> 'client') STORED,
    job_id    text GENERATED ALWAYS AS ((body::jsonb) ->> 'job') STORED,
    status    integer GENERATED ALWAYS AS
                  (((body::jsonb) ->> 'status')::integer) STORED,
    UNIQUE (chain, seq)
);
CREATE INDEX audit_at ON bulkfhir.audit (at);
CREATE INDEX audit_job ON bulkfhir.audit (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX audit_client_at ON bulkfhir.audit (client_id, at);

INSERT INTO bulkfhir.setting (name, value, help) VALUES
    ('audit_retention_days', '0',
     'days audit records are kept; 0 keeps them until bulkfhirctl audit prune (which uses this when --before is not given)');

-- Append records to a chain; returns the id of the last one.  Bodies must
-- be JSON objects with "action" and "at" (epoch seconds).
CREATE FUNCTION bulkfhir.audit_append(p_chain text, p_bodies text[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_seq  bigint;
    v_prev bytea;
    v_hash bytea;
    v_j    jsonb;
    v_id   bigint;
    b      text;
BEGIN
    INSERT INTO bulkfhir.audit_chain (name) VALUES (p_chain)
        ON CONFLICT (name) DO NOTHING;
    SELECT last_seq, coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
      INTO v_seq, v_prev
      FROM bulkfhir.audit_chain WHERE name = p_chain FOR UPDATE;
    FOREACH b IN ARRAY p_bodies LOOP
        v_j := b::jsonb;
        IF jsonb_typeof(v_j) <> 'object' OR v_j ->> 'action' IS NULL
           OR v_j ->> 'at' IS NULL THEN
            RAISE EXCEPTION 'audit record needs a JSON object with action and at'
                USING ERRCODE = '22023';
        END IF;
        v_seq := v_seq + 1;
        v_hash := sha256(v_prev || convert_to(p_chain || E'\n' || v_seq::text
                                              || E'\n' || b, 'UTF8'));
        INSERT INTO bulkfhir.audit (chain, seq, body, prev_hash, hash)
            VALUES (p_chain, v_seq, b, v_prev, v_hash)
            RETURNING id INTO v_id;
        v_prev := v_hash;
    END LOOP;
    UPDATE bulkfhir.audit_chain SET last_seq = v_seq, last_hash = v_prev
     WHERE name = p_chain;
    RETURN v_id;
END
$$;

-- The chain of this database session (records written by triggers): one
-- per backend, so sessions never wait for each other's chain lock.
CREATE FUNCTION bulkfhir.audit_session_chain()
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v text := current_setting('bulkfhir.audit_chain', true);
BEGIN
    IF v IS NULL OR v = '' THEN
        SELECT 'db:' || pg_backend_pid() || ':'
               || (extract(epoch FROM backend_start) * 1000000)::bigint
          INTO v FROM pg_stat_activity WHERE pid = pg_backend_pid();
        v := coalesce(v, 'db:' || pg_backend_pid() || ':'
                         || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
        PERFORM set_config('bulkfhir.audit_chain', v, false);
    END IF;
    RETURN v;
END
$$;

-- A record written by the database itself (same transaction as the
-- change it describes).  "by" is the session's role and application.
CREATE FUNCTION bulkfhir.audit_db(p_body jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bulkfhir.audit_append(bulkfhir.audit_session_chain(),
        ARRAY[(jsonb_build_object('at', extract(epoch FROM clock_timestamp()),
                                  'by', jsonb_build_object(
                                      'role', session_user::text,
                                      'application',
                                      current_setting('application_name', true)))
               || p_body)::text]);
END
$$;

-- Output of a job per type: {"Patient": {"count": n, "bytes": b}, ...}
CREATE FUNCTION bulkfhir.audit_job_output(p_job uuid)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    -- organized (organizeOutputBy) blocks files carry no single type
    SELECT coalesce(jsonb_object_agg(t,
                        jsonb_build_object('count', c, 'bytes', b, 'files', n)), '{}')
      FROM (SELECT coalesce(resource_type, 'blocks') AS t, sum(count) AS c,
                   sum(bytes) AS b, count(*) AS n
              FROM bulkfhir.file WHERE job_id = p_job AND kind = 'output'
             GROUP BY 1) s
$$;

CREATE FUNCTION bulkfhir.audit_job_trigger()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_out jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_out := bulkfhir.audit_job_output(OLD.id);
        PERFORM bulkfhir.audit_db(jsonb_build_object(
            'action', 'job.deleted', 'outcome', 'success',
            'job', OLD.id::text, 'client', OLD.client_id,
            'level', OLD.level, 'group', OLD.group_id, 'state', OLD.state,
            'expires_at', OLD.expires_at,
            'files', (SELECT count(*) FROM bulkfhir.file WHERE job_id = OLD.id),
            'bytes', (SELECT coalesce(sum(bytes), 0) FROM bulkfhir.file WHERE job_id = OLD.id),
            'reason', CASE WHEN OLD.expires_at < now() THEN 'expired' ELSE 'deleted' END));
        RETURN OLD;
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state
       AND NEW.state IN ('completed', 'failed', 'cancelled') THEN
        v_out := bulkfhir.audit_job_output(NEW.id);
        PERFORM bulkfhir.audit_db(jsonb_build_object(
            'action', 'job.' || NEW.state,
            'outcome', CASE NEW.state WHEN 'failed' THEN 'failure' ELSE 'success' END,
            'job', NEW.id::text, 'client', NEW.client_id,
            'level', NEW.level, 'group', NEW.group_id, 'previous_state', OLD.state,
            'output', v_out,
            'resources', (SELECT coalesce(sum((v ->> 'count')::bigint), 0)
                            FROM jsonb_each(v_out) e(k, v)),
            'bytes', (SELECT coalesce(sum((v ->> 'bytes')::bigint), 0)
                        FROM jsonb_each(v_out) e(k, v)),
            'duration_s', extract(epoch FROM coalesce(NEW.finished_at, now())
                                              - NEW.created_at),
            'error', CASE WHEN NEW.state = 'failed' THEN
                         NEW.error #>> '{issue,0,diagnostics}' END));
    END IF;
    IF NEW.files_removed_at IS NOT NULL AND OLD.files_removed_at IS NULL THEN
        PERFORM bulkfhir.audit_db(jsonb_build_object(
            'action', 'job.files_removed', 'outcome', 'success',
            'job', NEW.id::text, 'client', NEW.client_id, 'state', NEW.state));
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER job_audit_update AFTER UPDATE OF state, files_removed_at
    ON bulkfhir.job FOR EACH ROW EXECUTE FUNCTION bulkfhir.audit_job_trigger();
CREATE TRIGGER job_audit_delete BEFORE DELETE
    ON bulkfhir.job FOR EACH ROW EXECUTE FUNCTION bulkfhir.audit_job_trigger();

-- Append-only: no UPDATE ever, DELETE only from bulkfhir.audit_prune.
CREATE FUNCTION bulkfhir.audit_guard()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('bulkfhir.audit_pruning', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'bulkfhir.audit is append-only (% refused)', TG_OP
        USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON bulkfhir.audit
    FOR EACH ROW EXECUTE FUNCTION bulkfhir.audit_guard();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON bulkfhir.audit
    FOR EACH STATEMENT EXECUTE FUNCTION bulkfhir.audit_guard();

-- Remove records older than p_before: of each chain the records before its
-- first one at or after p_before (a prefix: buffered records carry their
-- request's time, so a chain's times are not quite ordered), noting in
-- audit_chain.pruned_seq where each chain now starts.  Records the prune
-- itself (count, cut-off) in the caller's chain.  Returns the number removed.
CREATE FUNCTION bulkfhir.audit_prune(p_before timestamptz, p_chain text, p_who text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM set_config('bulkfhir.audit_pruning', 'on', true);
    WITH keep AS (
        SELECT chain, min(seq) AS first_kept FROM bulkfhir.audit
         WHERE at >= p_before GROUP BY chain
    ), d AS (
        DELETE FROM bulkfhir.audit a
         WHERE a.seq < coalesce((SELECT k.first_kept FROM keep k
                                  WHERE k.chain = a.chain),
                                9223372036854775807)
        RETURNING a.chain, a.seq
    ), m AS (
        SELECT chain, max(seq) AS s, count(*) AS c FROM d GROUP BY chain
    ), u AS (
        UPDATE bulkfhir.audit_chain ch SET pruned_seq = greatest(ch.pruned_seq, m.s)
          FROM m WHERE ch.name = m.chain
        RETURNING 1
    )
    SELECT coalesce(sum(c), 0) INTO n FROM m;
    PERFORM set_config('bulkfhir.audit_pruning', 'off', true);
    PERFORM bulkfhir.audit_append(p_chain, ARRAY[jsonb_build_object(
        'action', 'audit.pruned', 'outcome', 'success',
        'at', extract(epoch FROM clock_timestamp()),
        'before', p_before, 'removed', n,
        'by', jsonb_build_object('role', session_user::text, 'user', p_who))::text]);
    RETURN n;
END
$$;

-- Append inside a caller's transaction without ever aborting it (the
-- kick-off's admission transaction): NULL when the append failed, then the
-- caller records after the response instead.
CREATE FUNCTION bulkfhir.audit_append_safe(p_chain text, p_bodies text[])
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RETURN bulkfhir.audit_append(p_chain, p_bodies);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;
