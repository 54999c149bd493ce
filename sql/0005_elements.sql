-- 0005_elements: _elements subsetting (lib/bf_elements.c builds `keep`).
-- Keeps resourceType, id, meta, modifierExtension and the listed root
-- elements; "name[x]" keeps name itself and every typed variant (valueQuantity, ...); adds
-- the SUBSETTED tag to meta.tag as the IG asks.
CREATE FUNCTION bulkfhir.fhir_subset(r jsonb, keep text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_set(s.o, '{meta}',
               coalesce(s.o -> 'meta', '{}'::jsonb)
               || jsonb_build_object('tag',
                      coalesce(s.o -> 'meta' -> 'tag', '[]'::jsonb)
                      || '[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"subsetted"}]'::jsonb))
    FROM (SELECT jsonb_object_agg(e.key, e.value) AS o
            FROM jsonb_each(r) AS e
           WHERE e.key IN ('resourceType', 'id', 'meta', 'modifierExtension')
              OR e.key = ANY (keep)
              OR EXISTS (SELECT 1 FROM unnest(keep) AS c
                          WHERE right(c, 3) = '[x]'
                            AND (e.key = left(c, -3)
                                 OR (starts_with(e.key, left(c, -3))
                                     AND substr(e.key, length(c) - 2, 1) BETWEEN 'A' AND 'Z')))) AS s
$$;
