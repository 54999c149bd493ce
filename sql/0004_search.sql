-- 0004_search: helpers for _typeFilter date search (lib/bf_typefilter.c).
-- A FHIR date, dateTime or instant as the half-open range it denotes:
-- '2020' is the whole year, '2020-03-01' the whole day, a dateTime with
-- seconds one second.  Values without a zone are taken as UTC.  NULL for
-- anything that is not a valid FHIR date (bad stored data never fails an
-- export; it just does not match).
CREATE FUNCTION bulkfhir.fhir_date_range(s text) RETURNS tstzrange
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t    timestamptz;
    frac text;
BEGIN
    IF s IS NULL THEN
        RETURN NULL;
    ELSIF s ~ '^\d{4}$' THEN
        t := (s || '-01-01T00:00:00Z')::timestamptz;
        RETURN tstzrange(t, t + interval '1 year');
    ELSIF s ~ '^\d{4}-\d{2}$' THEN
        t := (s || '-01T00:00:00Z')::timestamptz;
        RETURN tstzrange(t, t + interval '1 month');
    ELSIF s ~ '^\d{4}-\d{2}-\d{2}$' THEN
        t := (s || 'T00:00:00Z')::timestamptz;
        RETURN tstzrange(t, t + interval '1 day');
    ELSIF s ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$' THEN
        t := (CASE WHEN s ~ '(Z|[+-]\d{2}:\d{2})$' THEN s ELSE s || 'Z' END)::timestamptz;
        RETURN tstzrange(t, t + interval '1 minute');
    ELSIF s ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$' THEN
        t := (CASE WHEN s ~ '(Z|[+-]\d{2}:\d{2})$' THEN s ELSE s || 'Z' END)::timestamptz;
        frac := substring(s from '\.(\d+)');
        RETURN tstzrange(t, t + CASE
            WHEN frac IS NULL THEN interval '1 second'
            WHEN length(frac) >= 6 THEN interval '1 microsecond'
            ELSE make_interval(secs => power(10, -length(frac)))
        END);
    END IF;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN NULL;   -- e.g. 2021-02-30
END
$$;

-- The range of a stored date-like element: a date/dateTime/instant string or
-- a Period {start, end} (a missing end is open).
CREATE FUNCTION bulkfhir.fhir_value_range(v jsonb) RETURNS tstzrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN bulkfhir.fhir_date_range(v #>> '{}')
        WHEN 'object' THEN CASE
            WHEN NOT (v ? 'start' OR v ? 'end') THEN NULL
            WHEN lower(bulkfhir.fhir_date_range(v ->> 'start'))
                 > upper(bulkfhir.fhir_date_range(v ->> 'end')) THEN NULL
            ELSE tstzrange(lower(bulkfhir.fhir_date_range(v ->> 'start')),
                           upper(bulkfhir.fhir_date_range(v ->> 'end')))
            END
        ELSE NULL
    END
$$;
