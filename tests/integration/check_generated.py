#!/usr/bin/python3
"""Check the output of `bulkfhirctl generate` (or any NDJSON export directory).

usage: check_generated.py DIR [--quiet] [--min-per-patient X] [--max-per-patient Y]

Checks, for every DIR/<Type>.ndjson:
  - every line parses as JSON, is an object of that resourceType, has an id
  - ids are unique per type
  - every "reference" of the form Type/id points at a resource in DIR
  - required R4 elements of the generated types are present, a few required
    code bindings hold, dates/dateTimes/instants are well formed
  - clinical consistency: encounters start after the patient's birth,
    observations lie inside their encounter's period, DiagnosticReport
    results are Observations, Provenance has target, recorded and agent.who
Prints counts per type and per patient; exits 1 on the first 50 problems.
Pure standard library, so the test helpers can import check_dir().
"""
import datetime
import json
import os
import re
import sys

DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
DATETIME = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$")
INSTANT = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$")
ID = re.compile(r"^[A-Za-z0-9\-\.]{1,64}$")

DATETIME_KEYS = {"effectiveDateTime", "onsetDateTime", "abatementDateTime", "recordedDate",
                 "authoredOn", "occurrenceDateTime", "start", "end"}
INSTANT_KEYS = {"issued", "recorded"}

# (path of required elements; a tuple means "one of")
REQUIRED = {
    "Patient": [],
    "Organization": [],
    "Location": [],
    "Practitioner": [],
    "PractitionerRole": [],
    "Encounter": ["status", "class"],
    "Observation": ["status", "code"],
    "Condition": ["subject"],
    "Procedure": ["status", "subject"],
    "MedicationRequest": ["status", "intent", "subject",
                          ("medicationCodeableConcept", "medicationReference")],
    "Immunization": ["status", "vaccineCode", "patient",
                     ("occurrenceDateTime", "occurrenceString")],
    "AllergyIntolerance": ["patient"],
    "DiagnosticReport": ["status", "code"],
    "DocumentReference": ["status", "content"],
    "Group": ["type", "actual"],
    "Provenance": ["target", "recorded", "agent"],
}
CODES = {
    ("Encounter", "status"): {"planned", "arrived", "triaged", "in-progress", "onleave",
                              "finished", "cancelled", "entered-in-error", "unknown"},
    ("Observation", "status"): {"registered", "preliminary", "final", "amended", "corrected",
                                "cancelled", "entered-in-error", "unknown"},
    ("Procedure", "status"): {"preparation", "in-progress", "not-done", "on-hold", "stopped",
                              "completed", "entered-in-error", "unknown"},
    ("MedicationRequest", "status"): {"active", "on-hold", "cancelled", "completed",
                                      "entered-in-error", "stopped", "draft", "unknown"},
    ("MedicationRequest", "intent"): {"proposal", "plan", "order", "original-order",
                                      "reflex-order", "filler-order", "instance-order", "option"},
    ("Immunization", "status"): {"completed", "entered-in-error", "not-done"},
    ("DiagnosticReport", "status"): {"registered", "partial", "preliminary", "final", "amended",
                                     "corrected", "appended", "cancelled", "entered-in-error",
                                     "unknown"},
    ("DocumentReference", "status"): {"current", "superseded", "entered-in-error"},
    ("Group", "type"): {"person", "animal", "practitioner", "device", "medication", "substance"},
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Location", "status"): {"active", "suspended", "inactive"},
}


def parse_dt(s):
    if len(s) == 10:
        return datetime.datetime.fromisoformat(s + "T00:00:00+00:00")
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def walk(node, path, visit):
    if isinstance(node, dict):
        for k, v in node.items():
            visit(k, v, path)
            walk(v, path + (k,), visit)
    elif isinstance(node, list):
        for v in node:
            walk(v, path, visit)


def check_dir(d, quiet=False):
    """Return (errors, counts, summary lines)."""
    errors = []
    ids = {}            # type -> set(id)
    refs = []           # (source "Type/id", target "Type/id")
    enc_period = {}     # encounter id -> (start, end, patient)
    birth = {}          # patient id -> date
    obs_times = []      # (obs id, encounter id, effective)
    enc_starts = []     # (encounter id, patient id, start)
    dr_results = []
    counts = {}

    def err(msg):
        if len(errors) < 50:
            errors.append(msg)
        elif len(errors) == 50:
            errors.append("... more errors")

    files = sorted(f for f in os.listdir(d) if f.endswith(".ndjson"))
    if not files:
        err("no .ndjson files in %s" % d)
    for f in files:
        rtype = f[:-len(".ndjson")]
        seen = ids.setdefault(rtype, set())
        n = 0
        with open(os.path.join(d, f), encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                where = "%s:%d" % (f, lineno)
                try:
                    r = json.loads(line)
                except ValueError as e:
                    err("%s: not JSON: %s" % (where, e))
                    continue
                n += 1
                if not isinstance(r, dict) or r.get("resourceType") != rtype:
                    err("%s: resourceType is not %s" % (where, rtype))
                    continue
                rid = r.get("id")
                if not isinstance(rid, str) or not ID.match(rid):
                    err("%s: bad id %r" % (where, rid))
                    continue
                if rid in seen:
                    err("%s: duplicate id %s" % (where, rid))
                seen.add(rid)
                src = "%s/%s" % (rtype, rid)
                for req in REQUIRED.get(rtype, []):
                    alts = req if isinstance(req, tuple) else (req,)
                    if not any(a in r for a in alts):
                        err("%s: %s lacks %s" % (where, src, "|".join(alts)))
                for (t, k), allowed in CODES.items():
                    if t == rtype and k in r and r[k] not in allowed:
                        err("%s: %s.%s=%r not in the required value set" % (where, src, k, r[k]))

                def visit(k, v, path, where=where, src=src):
                    if k == "reference" and isinstance(v, str):
                        refs.append((src, v))
                    elif k in DATETIME_KEYS and isinstance(v, str):
                        if not DATETIME.match(v):
                            err("%s: %s bad dateTime %s=%r" % (where, src, k, v))
                    elif k in INSTANT_KEYS or (k == "date" and rtype == "DocumentReference"
                                               and not path):
                        if not isinstance(v, str) or not INSTANT.match(v):
                            err("%s: %s bad instant %s=%r" % (where, src, k, v))
                    elif k == "birthDate" and not DATE.match(str(v)):
                        err("%s: %s bad date %s=%r" % (where, src, k, v))
                walk(r, (), visit)

                if rtype == "Patient":
                    birth[rid] = r.get("birthDate")
                elif rtype == "Encounter":
                    p = r.get("period", {})
                    pat = r.get("subject", {}).get("reference", "")[len("Patient/"):]
                    if "start" in p and "end" in p:
                        enc_period[rid] = (parse_dt(p["start"]), parse_dt(p["end"]))
                        if enc_period[rid][0] > enc_period[rid][1]:
                            err("%s: %s ends before it starts" % (where, src))
                        enc_starts.append((rid, pat, p["start"]))
                elif rtype == "Observation":
                    e = r.get("encounter", {}).get("reference", "")
                    if e.startswith("Encounter/") and "effectiveDateTime" in r:
                        obs_times.append((rid, e[len("Encounter/"):], r["effectiveDateTime"]))
                    if "valueQuantity" not in r and "component" not in r and \
                            "valueCodeableConcept" not in r:
                        err("%s: %s has no value" % (where, src))
                elif rtype == "DiagnosticReport":
                    for res in r.get("result", []):
                        dr_results.append((src, res.get("reference", "")))
                elif rtype == "DocumentReference":
                    for c in r.get("content", []):
                        a = c.get("attachment", {})
                        if a.get("contentType") == "text/plain" and "data" in a:
                            import base64
                            try:
                                base64.b64decode(a["data"], validate=True).decode("utf-8")
                            except Exception as e:  # noqa: BLE001
                                err("%s: %s bad base64 text: %s" % (where, src, e))
                elif rtype == "Provenance":
                    if not r.get("target") or not all(
                            isinstance(t, dict) and t.get("reference") for t in r["target"]):
                        err("%s: %s target without references" % (where, src))
                    for a in r.get("agent") or [{}]:
                        if not a.get("who", {}).get("reference"):
                            err("%s: %s agent lacks who" % (where, src))
                elif rtype == "Group":
                    for m in r.get("member", []):
                        if not m.get("entity", {}).get("reference", "").startswith("Patient/"):
                            err("%s: %s member is not a Patient" % (where, src))
        counts[rtype] = n

    for src, tgt in refs:
        parts = tgt.split("/")
        if len(parts) != 2 or parts[1] not in ids.get(parts[0], ()):
            err("%s references missing %s" % (src, tgt))
    for eid, pat, start in enc_starts:
        b = birth.get(pat)
        if b and start[:10] < b:
            err("Encounter/%s starts %s before birth %s" % (eid, start, b))
    for oid, eid, eff in obs_times:
        p = enc_period.get(eid)
        if p and not (p[0] <= parse_dt(eff) <= p[1]):
            err("Observation/%s effective %s outside Encounter/%s" % (oid, eff, eid))
    for src, tgt in dr_results:
        if not tgt.startswith("Observation/"):
            err("%s result %s is not an Observation" % (src, tgt))

    total = sum(counts.values())
    npat = counts.get("Patient", 0)
    lines = ["%-22s %10d  %8.1f/patient" % (t, c, c / npat if npat else 0)
             for t, c in sorted(counts.items())]
    lines.append("%-22s %10d  %8.1f/patient  (%d references checked)"
                 % ("TOTAL", total, total / npat if npat else 0, len(refs)))
    return errors, counts, lines


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    quiet = "--quiet" in argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    lo = hi = None
    for a in argv[1:]:
        if a.startswith("--min-per-patient="):
            lo = float(a.split("=", 1)[1])
        if a.startswith("--max-per-patient="):
            hi = float(a.split("=", 1)[1])
    errors, counts, lines = check_dir(args[0], quiet)
    if not quiet:
        print("\n".join(lines))
    npat = counts.get("Patient", 0)
    per = sum(counts.values()) / npat if npat else 0
    if lo is not None and per < lo:
        errors.append("%.1f resources per patient < %s" % (per, lo))
    if hi is not None and per > hi:
        errors.append("%.1f resources per patient > %s" % (per, hi))
    for e in errors:
        print("ERROR: " + e, file=sys.stderr)
    print("%s: %s" % (args[0], "FAIL" if errors else "OK"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
