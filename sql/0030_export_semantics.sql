-- 0030_export_semantics: what the module needs for export semantics
-- (SPEC R15/R16 separate-export-status, R42-R43 poll rate, Expires and file
-- expiry, R46 partial manifests, X-Progress).  Owned by the module side.

-- The kick-off's choices, recorded on the job in the kick-off transaction:
--   separate_status  Prefer: separate-export-status was honoured (R15, R16)
--   file_lifetime    seconds the files stay available after the job ends
--                    (BulkFhirFileLifetime at kick-off time)
--   last_poll_at     the last status poll answered while the job ran (R43)
ALTER TABLE bulkfhir.job
    ADD COLUMN separate_status boolean NOT NULL DEFAULT false,
    ADD COLUMN file_lifetime   integer CHECK (file_lifetime IS NULL OR file_lifetime >= 0),
    ADD COLUMN last_poll_at    timestamptz;

-- expires_at follows the job's end: finished_at + file_lifetime, set when
-- the job becomes completed or failed (or its lifetime changes while it is
-- one).  NULL lifetime: 3600 s, BulkFhirFileLifetime's default.  The sweeper
-- removes the files of jobs whose expires_at has passed; the module answers
-- 410 Gone for their status and files from then on.
CREATE FUNCTION bulkfhir.job_set_expires() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('completed', 'failed')
       AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state
            OR OLD.file_lifetime IS DISTINCT FROM NEW.file_lifetime
            OR NEW.expires_at IS NULL) THEN
        NEW.expires_at := coalesce(NEW.finished_at, now())
                          + make_interval(secs => coalesce(NEW.file_lifetime, 3600));
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER job_expires BEFORE INSERT OR UPDATE OF state, file_lifetime, finished_at
    ON bulkfhir.job FOR EACH ROW EXECUTE FUNCTION bulkfhir.job_set_expires();
-- jobs that ended before this migration
UPDATE bulkfhir.job SET expires_at = coalesce(finished_at, now()) + interval '3600 seconds'
 WHERE state IN ('completed', 'failed') AND expires_at IS NULL;

-- Partial manifests (R46): page N of a job lists the files with
-- lo < id <= max_file_id, lo being page N-1's max_file_id (0 for page 1).
-- A page is recorded the first time it is served and never changes; `final`
-- pages were recorded after the job completed and hold every remaining file.
-- Recording takes the job row FOR SHARE: workers insert bulkfhir.file rows
-- only while holding the job row FOR UPDATE, so no file with a smaller id
-- can commit after a page boundary was drawn.
CREATE TABLE bulkfhir.manifest_page (
    job_id      uuid NOT NULL REFERENCES bulkfhir.job (id) ON DELETE CASCADE,
    page        integer NOT NULL CHECK (page >= 1),
    max_file_id bigint NOT NULL,
    final       boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, page)
);

-- The bounds of page p_page of job p_job, recording it when it is the next
-- page and there is something to put on it: new files, or the job has
-- completed (the final page, possibly with no files).  No row: the page
-- does not exist (yet).
CREATE FUNCTION bulkfhir.manifest_page_take(p_job uuid, p_page integer)
RETURNS TABLE (lo bigint, hi bigint, final boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_lo    bigint := 0;
    v_prev  boolean := false;
    v_state text;
    v_max   bigint;
BEGIN
    IF p_page > 1 THEN
        SELECT m.max_file_id, m.final INTO v_lo, v_prev
          FROM bulkfhir.manifest_page m WHERE m.job_id = p_job AND m.page = p_page - 1;
        IF NOT FOUND OR v_prev THEN
            RETURN;             -- no previous page, or it was the last one
        END IF;
    END IF;
    RETURN QUERY SELECT v_lo, m.max_file_id, m.final FROM bulkfhir.manifest_page m
                  WHERE m.job_id = p_job AND m.page = p_page;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT j.state INTO v_state FROM bulkfhir.job j WHERE j.id = p_job FOR SHARE;
    IF NOT FOUND OR v_state NOT IN ('queued', 'running', 'completed') THEN
        RETURN;
    END IF;
    SELECT coalesce(max(f.id), v_lo) INTO v_max FROM bulkfhir.file f
     WHERE f.job_id = p_job AND f.id > v_lo;
    IF v_state <> 'completed' AND v_max = v_lo THEN
        RETURN;                 -- nothing new yet
    END IF;
    INSERT INTO bulkfhir.manifest_page (job_id, page, max_file_id, final)
    VALUES (p_job, p_page, v_max, v_state = 'completed')
    ON CONFLICT (job_id, page) DO NOTHING;
    RETURN QUERY SELECT v_lo, m.max_file_id, m.final FROM bulkfhir.manifest_page m
                  WHERE m.job_id = p_job AND m.page = p_page;
END
$$;

-- Status poll gate (R43): records this poll and says whether it came at
-- least p_min_ms after the previous one.  wait_ms: how long to wait when
-- it did not.  The previous poll time is kept when the poll is refused, so
-- a client that keeps polling too fast does not lock itself out.
CREATE FUNCTION bulkfhir.job_poll(p_job uuid, p_min_ms integer,
                                  OUT allowed boolean, OUT wait_ms integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_last timestamptz;
    v_now  timestamptz := clock_timestamp();
BEGIN
    SELECT j.last_poll_at INTO v_last FROM bulkfhir.job j WHERE j.id = p_job;
    IF p_min_ms > 0 AND v_last IS NOT NULL
       AND v_now < v_last + make_interval(secs => p_min_ms / 1000.0) THEN
        allowed := false;
        wait_ms := ceil(extract(epoch FROM (v_last + make_interval(secs => p_min_ms / 1000.0)
                                            - v_now)) * 1000)::integer;
        RETURN;
    END IF;
    UPDATE bulkfhir.job SET last_poll_at = v_now WHERE id = p_job;
    allowed := true;
    wait_ms := 0;
END
$$;

-- Progress of a running job for X-Progress, from counters only (no scan of
-- the store): each task weighs its type's estimated row count (planner
-- statistics: reltuples x the most-common-value frequency of resource_type,
-- divided over the task's shards; 1 when unknown).  A finished task counts
-- fully, a running one with the resources it has written so far (its
-- counter, or its published files), capped at 99 % of its weight.
CREATE FUNCTION bulkfhir.job_progress(p_job uuid,
                                      OUT pct integer, OUT tasks_done bigint,
                                      OUT tasks_total bigint, OUT written bigint)
LANGUAGE sql STABLE AS $$
    WITH est AS (
        SELECT u.v AS rt, u.f * greatest(c.reltuples, 0) AS n
          FROM pg_stats s
          JOIN pg_class c ON c.oid = 'fhir.resource_version'::regclass
          CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[],
                                    s.most_common_freqs) AS u(v, f)
         WHERE s.schemaname = 'fhir' AND s.tablename = 'resource_version'
           AND s.attname = 'resource_type'
    ), t AS (
        SELECT t.state,
               greatest(coalesce((SELECT e.n FROM est e WHERE e.rt = t.resource_type), 0)
                        / greatest(t.shard_count, 1), 1) AS w,
               greatest(t.resources,
                        coalesce((SELECT sum(f.count) FROM bulkfhir.file f
                                   WHERE f.task_id = t.id AND f.kind = 'output'), 0)) AS done_n
          FROM bulkfhir.task t
         WHERE t.job_id = p_job AND t.state <> 'cancelled'
    )
    SELECT coalesce(floor(100 * sum(CASE WHEN state IN ('done', 'failed') THEN w
                                         ELSE least(done_n, 0.99 * w) END)
                          / nullif(sum(w), 0)), 0)::integer,
           count(*) FILTER (WHERE state IN ('done', 'failed')),
           count(*),
           coalesce(sum(done_n), 0)::bigint
      FROM t
$$;
