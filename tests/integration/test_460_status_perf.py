"""Status-poll and _elements performance changes (sql/0060_perf.sql, issue #6)
keep behaviour: the stored manifest of a completed job is the rendered one,
is per base URL, and does not outlive DELETE; fhir_subset gives exactly what
0005's definition gave."""
import json
import urllib.parse

import bfclient

# 0005's fhir_subset body, inline: the reference for the rewritten function
OLD_SUBSET = """
SELECT jsonb_set(s.o, '{meta}',
           coalesce(s.o -> 'meta', '{}'::jsonb)
           || jsonb_build_object('tag',
                  coalesce(s.o -> 'meta' -> 'tag', '[]'::jsonb)
                  || '[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"subsetted"}]'::jsonb))
  FROM (SELECT jsonb_object_agg(e.key, e.value) AS o
          FROM jsonb_each(r.resource) AS e
         WHERE e.key IN ('resourceType', 'id', 'meta', 'modifierExtension')
            OR e.key = ANY (k.keep)
            OR EXISTS (SELECT 1 FROM unnest(k.keep) AS c
                        WHERE right(c, 3) = '[x]'
                          AND (e.key = left(c, -3)
                               OR (starts_with(e.key, left(c, -3))
                                   AND substr(e.key, length(c) - 2, 1) BETWEEN 'A' AND 'Z')))) AS s
"""


def test_460_001_stored_manifest_per_base_and_delete(stack, client, dataset):
    exp = bfclient.run_export(client, "$export", params={"_type": "Patient,Condition"})
    job = bfclient.job_of(exp.status_url)
    first = exp.final.content
    rows = stack.psql("SELECT manifest, manifest_base FROM bulkfhir.job WHERE id = :'p1'", job)
    # rendered once, stored for this base, served as is afterwards
    assert rows[0][1] == stack.base_url
    assert rows[0][0].encode() == first
    again = client.get(exp.status_url)
    assert again.status_code == 200 and again.content == first
    assert again.headers.get("Expires") == exp.final.headers.get("Expires")
    # another Host: rendered for that base (file URLs follow it), stored anew
    u = urllib.parse.urlsplit(stack.base_url)
    other = client.get(exp.status_url, headers={"Host": "other.example:%d" % u.port})
    assert other.status_code == 200
    m = json.loads(other.content)
    assert m["output"] and all(o["url"].startswith("http://other.example:%d%s/bulkfiles/"
                                                   % (u.port, u.path))
                               for o in m["output"])
    assert json.loads(first)["output"] == [
        dict(o, url=o["url"].replace("other.example", u.hostname)) for o in m["output"]]
    rows = stack.psql("SELECT manifest_base FROM bulkfhir.job WHERE id = :'p1'", job)
    assert rows[0][0] == "http://other.example:%d%s" % (u.port, u.path)
    # DELETE: 404 although a manifest is stored
    assert client.delete(exp.status_url).status_code == 202
    gone = client.get(exp.status_url)
    assert gone.status_code == 404
    bfclient.assert_operation_outcome(gone, statuses=[404])


def test_460_002_fhir_subset_same_as_0005(stack, dataset):
    rows = stack.psql("""
        WITH k(keep) AS (VALUES ('{status,code,subject}'::text[]),
                                ('{code,value[x],effective[x],onset[x]}'),
                                ('{name,deceased[x],multipleBirth[x],NULL}'),
                                ('{}'), (NULL))
        SELECT count(*),
               count(*) FILTER (WHERE bulkfhir.fhir_subset(r.resource, k.keep)
                                      IS DISTINCT FROM (%s))
          FROM fhir.resource_version r CROSS JOIN k""" % OLD_SUBSET)
    total, differ = int(rows[0][0]), int(rows[0][1])
    assert total >= 5 * len(dataset["resources"]) and differ == 0
