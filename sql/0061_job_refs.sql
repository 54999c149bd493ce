-- 0061_job_refs: the R32 referenced-resource set of a Patient/Group export,
-- computed once per job instead of once per task.
--
-- A Patient or Group export also exports each resource outside every
-- compartment (Practitioner, Organization, Location, ...) that an exported
-- compartment resource references (README, "What goes into an export").
-- Finding those references walks the jsonb of every exported compartment
-- row; each type task used to do that walk for itself.  Now the first task
-- that needs the set fills bulkfhir.job_ref for the whole job (lib/
-- bf_task_sql.c, refs_fill) and the other tasks of the job wait for it, then
-- join it:
--   * job_refset holds one row per job once its set is filled.  A task
--     inserts that row ON CONFLICT DO NOTHING in the transaction that fills
--     the set: a second task's insert blocks on the unique index until the
--     first commits (0 rows: the set is there) or rolls back (1 row: it
--     fills the set itself).  No advisory lock, nothing to release on crash.
--   * job_ref: (type, id) of every resource of a requested type that an
--     exported compartment resource of ANOTHER type references, for the
--     types that have rows outside every compartment.
-- Both are UNLOGGED: a crash empties both together and the next task fills
-- them again.  Rows go when the job finishes (trigger below) or is deleted
-- (ON DELETE CASCADE).
CREATE UNLOGGED TABLE bulkfhir.job_refset (
    job_id    uuid PRIMARY KEY REFERENCES bulkfhir.job (id) ON DELETE CASCADE,
    refs      bigint NOT NULL DEFAULT 0,   -- rows in job_ref
    filled_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNLOGGED TABLE bulkfhir.job_ref (
    job_id        uuid NOT NULL REFERENCES bulkfhir.job (id) ON DELETE CASCADE,
    resource_type text NOT NULL,
    id            text NOT NULL,
    PRIMARY KEY (job_id, resource_type, id)
);

-- A job that completed, failed or was cancelled runs no more tasks.
CREATE FUNCTION bulkfhir.job_refs_drop() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM bulkfhir.job_ref WHERE job_id = NEW.id;
    DELETE FROM bulkfhir.job_refset WHERE job_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_refs_drop AFTER UPDATE OF state ON bulkfhir.job
    FOR EACH ROW
    WHEN (NEW.state IN ('completed', 'failed', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION bulkfhir.job_refs_drop();

-- fhir_date_range (0004) catches invalid dates with an EXCEPTION block, i.e.
-- a subtransaction, which PostgreSQL cannot start in parallel mode ("cannot
-- start subtransactions during a parallel operation"): it was labelled
-- PARALLEL SAFE, so any parallel plan that evaluated it failed the task
-- (R25 LatestProvenanceResources, date _typeFilter).  fhir_value_range calls
-- it and is labelled the same way.
ALTER FUNCTION bulkfhir.fhir_date_range(text) PARALLEL UNSAFE;
ALTER FUNCTION bulkfhir.fhir_value_range(jsonb) PARALLEL UNSAFE;
