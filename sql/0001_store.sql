-- 0001_store: the versioned FHIR resource store.
--
-- fhir.resource_version is a CONTRACT: sites map their own FHIR stores onto
-- exactly these columns with views, and tools outside the project read it.
--   one row per resource version; superseded_at is NULL while the version is
--   current; deleted versions keep the id and carry deleted = true;
--   patient_ids lists the patients whose R4 Patient compartment holds it.
CREATE SCHEMA IF NOT EXISTS fhir;

CREATE TABLE fhir.resource_version (
    resource_type text        NOT NULL,
    id            text        NOT NULL,
    version_id    bigint      NOT NULL,
    last_updated  timestamptz NOT NULL,
    superseded_at timestamptz,
    deleted       boolean     NOT NULL DEFAULT false,
    patient_ids   text[]      NOT NULL DEFAULT '{}',
    resource      jsonb,
    PRIMARY KEY (resource_type, id, version_id)
);

-- At most one current version per resource.
CREATE UNIQUE INDEX resource_version_current
    ON fhir.resource_version (resource_type, id) WHERE superseded_at IS NULL;
-- Export scans: per type, by lastUpdated (_since/_until, transactionTime).
CREATE INDEX resource_version_type_updated
    ON fhir.resource_version (resource_type, last_updated);
-- Patient / Group exports: compartment membership.
CREATE INDEX resource_version_patients
    ON fhir.resource_version USING gin (patient_ids);
-- Loader: resolve urn:uuid references and bare ids to their type.
CREATE INDEX resource_version_id
    ON fhir.resource_version (id) WHERE superseded_at IS NULL;
