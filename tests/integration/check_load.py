#!/usr/bin/python3
"""Check that `bulkfhirctl load DIR` stored DIR's NDJSON faithfully.

usage: check_load.py DIR [--expect-version N]

Connects with psql (PG* environment).  Checks, for the current versions in
fhir.resource_version:
  - one current version per Type/id, and as many as the input has resources;
  - per-type counts equal DIR/COUNTS.tsv (when present);
  - every stored resource equals its input line apart from meta.versionId,
    meta.lastUpdated and urn:uuid references, which must be resolved to
    Type/id of a resource in the input;
  - meta.versionId is the row's version_id (all equal N when given) and
    meta.lastUpdated is the row's last_updated (UTC, microseconds);
  - patient_ids: a Patient holds its own id; an Observation holds exactly its
    subject; every Group member reference is Patient/<id>.
Exits 1 with a list of problems, 0 when all hold.
"""
import argparse
import collections
import datetime
import glob
import json
import os
import re
import subprocess
import sys

URN = "urn:uuid:"


def psql_rows(sql):
    out = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def resolve(obj, ids):
    """Input resource with urn:uuid references replaced as the loader does."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if (k == "reference" and isinstance(v, str) and v.startswith(URN)
                    and v[len(URN):] in ids):
                out[k] = "%s/%s" % (ids[v[len(URN):]], v[len(URN):])
            else:
                out[k] = resolve(v, ids)
        return out
    if isinstance(obj, list):
        return [resolve(v, ids) for v in obj]
    return obj


def strip_meta(res, had_meta):
    res = json.loads(json.dumps(res))
    meta = res.get("meta", {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    if not meta and not had_meta:
        res.pop("meta", None)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--expect-version", type=int)
    args = ap.parse_args()

    problems = []
    inputs = {}
    ids = {}
    for path in sorted(glob.glob(os.path.join(args.dir, "*.ndjson"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    inputs[(r["resourceType"], r["id"])] = r
                    ids[r["id"]] = r["resourceType"]

    rows = psql_rows(
        "SELECT json_build_object('t', resource_type, 'id', id, 'v', version_id,"
        " 'lu', to_char(last_updated AT TIME ZONE 'UTC',"
        "               'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " 'p', patient_ids, 'd', deleted, 'r', resource)"
        " FROM fhir.resource_version WHERE superseded_at IS NULL")
    current = collections.Counter((r["t"], r["id"]) for r in rows)
    dup = [k for k, n in current.items() if n > 1]
    if dup:
        problems.append("%d Type/ids with more than one current version, e.g. "
                        "%s" % (len(dup), dup[0]))
    if len(rows) != len(inputs):
        problems.append("%d current rows, %d input resources"
                        % (len(rows), len(inputs)))

    counts_file = os.path.join(args.dir, "COUNTS.tsv")
    if os.path.exists(counts_file):
        want = {}
        with open(counts_file) as f:
            for line in f:
                t, n = line.split("\t")[:2]
                if t not in ("type", "TOTAL"):
                    want[t] = int(n)
        got = collections.Counter(r["t"] for r in rows)
        if dict(got) != want:
            problems.append("per-type counts differ from COUNTS.tsv: %s"
                            % sorted(set(got.items()) ^ set(want.items())))

    mismatched = 0
    for row in rows:
        key = (row["t"], row["id"])
        src = inputs.get(key)
        res = row["r"]
        if src is None:
            problems.append("%s/%s is not in the input" % key)
            continue
        if row["d"] or res is None:
            problems.append("%s/%s is deleted" % key)
            continue
        meta = res.get("meta", {})
        if meta.get("versionId") != str(row["v"]):
            problems.append("%s/%s: meta.versionId %r, version_id %s"
                            % (key + (meta.get("versionId"), row["v"])))
        if args.expect_version and row["v"] != args.expect_version:
            problems.append("%s/%s: version %s, expected %s"
                            % (key + (row["v"], args.expect_version)))
        lu = meta.get("lastUpdated", "")
        if lu != row["lu"] or not re.match(
                r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", lu):
            problems.append("%s/%s: meta.lastUpdated %r, last_updated %s"
                            % (key + (lu, row["lu"])))
        want = resolve(src, ids)
        if strip_meta(res, "meta" in src) != strip_meta(want, "meta" in src):
            mismatched += 1
            if mismatched <= 5:
                problems.append("%s/%s differs from its input line" % key)
        if URN in json.dumps(res):
            problems.append("%s/%s keeps an urn:uuid reference" % key)
        if row["t"] == "Patient" and row["id"] not in row["p"]:
            problems.append("Patient/%s: own id not in patient_ids %s"
                            % (row["id"], row["p"]))
        if row["t"] == "Observation":
            subj = src.get("subject", {}).get("reference", "")
            exp = [subj.split("/", 1)[1]] if subj.startswith("Patient/") else []
            if row["p"] != exp:
                problems.append("Observation/%s: patient_ids %s, subject %s"
                                % (row["id"], row["p"], subj))
        if row["t"] == "Group":
            for m in res.get("member", []):
                ref = m.get("entity", {}).get("reference", "")
                if not ref.startswith("Patient/"):
                    problems.append("Group/%s: member %r is not Patient/..."
                                    % (row["id"], ref))
    if mismatched > 5:
        problems.append("... %d resources differ in all" % mismatched)

    if problems:
        for p in problems[:50]:
            print("check_load: " + p, file=sys.stderr)
        return 1
    print("check_load: %d current resources match %s" % (len(rows), args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
