-- 0072_compression: output parts compressed once, by the worker, as they
-- stream (issue #15).  With compression = gzip (the default) every part a
-- worker writes (output, deleted, organized blocks, error files, parts of a
-- partial manifest) is one gzip member on disk, {name}.gz; the file row, the
-- manifest URL and the resource count keep the .ndjson name, and the row's
-- bytes count the NDJSON (identity) representation.  The module serves the
-- stored bytes to a client that accepts gzip and inflates them for one that
-- does not.  compression = none writes plain {name} as before.  Workers read
-- the level before each task: a change applies to the tasks claimed after it.
INSERT INTO bulkfhir.setting (name, value, help) VALUES
    ('compression', 'gzip',
     'how workers store output parts: gzip (one gzip member per part, served as stored to clients accepting gzip) or none'),
    ('compression_level', '1',
     'gzip level 1 (fastest) .. 9 (smallest) of the parts workers write; synthea-100p: 1 = 11.5x smaller, 6 = 15x at less than half the speed')
ON CONFLICT (name) DO NOTHING;

-- The gzip level workers write parts with, -1 for none.
CREATE OR REPLACE FUNCTION bulkfhir.compression_level()
RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN coalesce((SELECT lower(value) FROM bulkfhir.setting
                                WHERE name = 'compression'), 'gzip') = 'none'
                THEN -1
                ELSE least(greatest(bulkfhir.setting_int('compression_level', 1), 1), 9)::int
           END
$$;
