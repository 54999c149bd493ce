-- 0075: bulkfhir.job_poll is unused since 0060 moved the R43 poll gate into
-- bulkfhir.job_status (one round trip per poll); nothing calls it.
DROP FUNCTION IF EXISTS bulkfhir.job_poll(uuid, integer);
