-- 0020_export_semantics: what the worker needs for deleted files, lenient
-- warnings, organizeOutputBy and per-part publication (owned by the worker
-- semantics work; CONTRACT for the module and the planner, see below).
--
-- bulkfhir.task.kind
--   'type'       one task per resource type (and shard): output files of
--                that type, plus, with _since, a `deleted` file of Bundles
--                for the versions of that type deleted after _since (R54).
--   'organized'  organizeOutputBy=Patient (R30, R53): one task per patient
--                shard (resource_type 'Patient', shard/shard_count split the
--                patients by hashtext(patient id)); its files hold resource
--                blocks of every requested type.  A job with
--                organizeOutputBy has only 'organized' tasks.
ALTER TABLE bulkfhir.task ADD COLUMN kind text NOT NULL DEFAULT 'type'
    CHECK (kind IN ('type', 'organized'));

-- bulkfhir.file
--   resource_type  NULL for the files of an 'organized' task (the manifest
--                  item then has no `type`); 'Bundle' for kind 'deleted';
--                  'OperationOutcome' for kind 'error'.
--   continues_in   name of the next file when a resource block continues
--                  there (manifest `continuesInFile`), else NULL.
--   A task's file rows may be committed one by one before the task is done
--   (job.params.allowPartialManifests = true): every committed row names a
--   complete, durable, final file, so the module may list it at once.
ALTER TABLE bulkfhir.file ALTER COLUMN resource_type DROP NOT NULL;
ALTER TABLE bulkfhir.file ADD COLUMN continues_in text;
CREATE INDEX file_task ON bulkfhir.file (task_id);
