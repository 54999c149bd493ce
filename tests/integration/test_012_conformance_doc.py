"""docs/conformance.md defines every requirement id the project cites
(R1-R64, A1-A14, C1-C5) and names only tests that exist and cite it.

Reads files only: no PostgreSQL, no httpd (the autouse error-log guard of
conftest.py reads the logs of the stacks in bfstack.ACTIVE, and this module
brings none up)."""
import ast
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "conformance.md"

# What is scanned for citations (issue #12 item 5).
SCANNED = ("lib", "mod_bulkfhir", "worker", "ctl", "sql", "tests", "scripts", "conf", "docs",
           "README.md")

# Scanned places whose matches are not citations, each with what the pattern
# caught there.  The pattern is case-sensitive and word-bounded, so hex such
# as 0xA1, \xC3 or 3C1F never matches and needs no rule, and a percent-escape
# (%A0 in a URL-encoded test value) is not a citation either; binary files are
# skipped as a whole (docs/status-page.png and the test_400 screenshot:
# their compressed bytes happen to spell letter-digit words that are no ids).
EXCLUDED_FILES = {
    "lib/bf_r4_data.c",               # generated from lib/r4/: "FHIR R4 (4.0.1)"
    "lib/bf_searchparam_data.c",      # generated search parameter table: "R4 (4.0.1)"
    "mod_bulkfhir/metadata_spurl.c",  # generated canonical URL table: "R4 (4.0.1)"
}
EXCLUDED_DIRS = {
    "tests/fuzz/corpus",     # fuzzer seeds: base64url JWTs and keys, COPY bytes (A1, C3 ...)
    "tests/bench/results",   # benchmark output, ignored by git
}
SKIPPED_DIR_NAMES = {"__pycache__", ".deps", ".libs", ".git"}

# R13, A7, C1; ranges R13-R16 and R20–R23 cite every id in them; A4/A6 cites
# two ids.  With the second letter left out ("R13-16", "R6/7") the number
# counts only when it could be one (a little above the first): elsewhere a
# bare number after a dash or slash is not an id.
CITE_RE = re.compile(
    r"(?<!%)\b([RAC])([0-9]{1,3})\b(?:\s*([-\u2013/])\s*([RAC]?)([0-9]{1,3})\b)?")
NEAR = 30
DEFINED_RE = re.compile(r"^### ([RAC][0-9]+) \(([^)]+)\) \S", re.M)
TEST_REF_RE = re.compile(r"`(tests/[\w./-]+\.(?:py|c))::(\w+)`")
EXPECTED = (["R%d" % i for i in range(1, 65)] + ["A%d" % i for i in range(1, 15)]
            + ["C%d" % i for i in range(1, 6)])


def cited_ids(text):
    out = set()
    for m in CITE_RE.finditer(text):
        letter, first, sep, letter2 = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        out.add(letter + str(first))
        if sep is None:
            continue
        last = int(m.group(5))
        if letter2 == "" and not first < last <= first + NEAR:
            continue
        if sep != "/" and letter2 in ("", letter) and first < last:
            out.update(letter + str(i) for i in range(first, last + 1))
        else:
            out.add((letter2 or letter) + str(last))
    return out


def scanned_files():
    for top in SCANNED:
        path = REPO / top
        if path.is_file():
            yield top
            continue
        for d, dirs, files in os.walk(path):
            rel_d = os.path.relpath(d, REPO)
            dirs[:] = sorted(x for x in dirs if x not in SKIPPED_DIR_NAMES
                             and os.path.join(rel_d, x) not in EXCLUDED_DIRS)
            for f in sorted(files):
                rel = os.path.join(rel_d, f)
                if rel not in EXCLUDED_FILES:
                    yield rel


def read_text(rel):
    data = (REPO / rel).read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def citations():
    """{id: ["file:line", ...]} over every scanned text file."""
    found = {}
    for rel in scanned_files():
        text = read_text(rel)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for i in cited_ids(line):
                found.setdefault(i, []).append("%s:%d" % (rel, n))
    return found


def doc_entries():
    """{id: (strength, entry text)} for every '### <id> (<strength>) title'."""
    text = DOC.read_text()
    heads = list(DEFINED_RE.finditer(text))
    entries = {}
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        nxt = text.find("\n## ", m.end())
        if 0 <= nxt < end:
            end = nxt
        assert m.group(1) not in entries, "%s is defined twice in %s" % (m.group(1), DOC)
        entries[m.group(1)] = (m.group(2), text[m.start():end])
    return entries


def bullets(entry):
    """{"Tests": text, "Source": text, ...} of an entry's '- Name: text' items."""
    out = {}
    for m in re.finditer(r"^- (\w+):\s(.*?)(?=^- \w+:\s|\Z)", entry, re.M | re.S):
        out[m.group(1)] = out.get(m.group(1), "") + " ".join(m.group(2).split())
    return out


# ---- which test functions cite which ids --------------------------------------
def _comment_above(lines, first):
    """Ids in the comment lines directly above line `first` (1-based); a
    section comment ('# ---- ...') is about several tests and ends the search."""
    ids, n = set(), first - 1
    while n >= 1 and lines[n - 1].lstrip().startswith(("#", "/*", "*")) \
            and not re.match(r"\s*# ---", lines[n - 1]):
        ids |= cited_ids(lines[n - 1])
        n -= 1
    return ids


def python_tests(rel):
    """{function: ids cited in its decorators, docstring, body or the
    comment directly above it}, module and class level."""
    src = (REPO / rel).read_text()
    lines = src.splitlines()
    out = {}
    nodes = []
    for node in ast.parse(src).body:
        if isinstance(node, ast.ClassDef):
            nodes += node.body
        else:
            nodes.append(node)
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            out[node.name] = (cited_ids("\n".join(lines[first - 1:node.end_lineno]))
                              | _comment_above(lines, first))
    return out


def c_tests(rel):
    """{function: ids} for cmocka tests 'static void test_x(void **state)',
    up to the closing brace in column 0, plus the comment directly above."""
    lines = (REPO / rel).read_text().splitlines()
    out, cur = {}, None
    for n, line in enumerate(lines, 1):
        m = re.match(r"static void (test_\w+)\(", line)
        if m:
            cur = m.group(1)
            out[cur] = _comment_above(lines, n)
        if cur:
            out[cur] |= cited_ids(line)
            if line.startswith("}"):
                cur = None
    return out


def all_tests():
    """{"tests/...::function": ids} for every test function in the repository."""
    out = {}
    for rel in sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")):
        out.update(("%s::%s" % (rel, f), ids) for f, ids in python_tests(rel).items())
    for rel in sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.c")):
        out.update(("%s::%s" % (rel, f), ids) for f, ids in c_tests(rel).items())
    return out


# ---- the checks ----------------------------------------------------------------------
def test_012_001_every_cited_id_is_defined():
    """Every requirement id cited anywhere in the scanned tree (code, SQL,
    scripts, configuration, documentation, tests) has its entry in
    docs/conformance.md."""
    defined = set(doc_entries())
    missing = {i: where for i, where in citations().items() if i not in defined}
    assert not missing, "requirement ids cited but not defined in docs/conformance.md:\n" + \
        "\n".join("  %s: %s%s" % (i, ", ".join(w[:5]), " ..." if len(w) > 5 else "")
                  for i, w in sorted(missing.items()))


def test_012_002_entries_are_complete():
    """Each id of the three families (EXPECTED) has one entry with a
    strength, a statement, a Source and a Tests item; there are no others."""
    entries = doc_entries()
    assert set(entries) == set(EXPECTED), \
        "ids without an entry: %s; entries for unknown ids: %s" % (
            sorted(set(EXPECTED) - set(entries)), sorted(set(entries) - set(EXPECTED)))
    for i, (strength, entry) in entries.items():
        items = bullets(entry)
        assert strength.strip(), i
        assert "Source" in items and "Tests" in items, "%s lacks Source or Tests" % i
        body = entry.split("\n", 1)[1].split("\n- ", 1)[0]
        assert len(body.split()) >= 5, "%s has no statement" % i


def test_012_003_named_tests_exist_and_cite_the_id():
    """Every test named in the document exists (file and function); one
    listed under an id's Tests item cites that id."""
    tests = all_tests()
    text = DOC.read_text()
    missing = sorted({"%s::%s" % m.groups() for m in TEST_REF_RE.finditer(text)} - set(tests))
    assert not missing, "tests named in docs/conformance.md that do not exist: %s" % missing
    wrong = []
    for i, (_, entry) in doc_entries().items():
        for m in TEST_REF_RE.finditer(bullets(entry)["Tests"]):
            name = "%s::%s" % m.groups()
            if i not in tests[name]:
                wrong.append("%s under %s" % (name, i))
    assert not wrong, "listed under Tests but not citing the id: %s" % wrong


def test_012_004_not_covered_means_no_test_cites_it():
    """An id whose Tests item says 'not covered by a test' is cited by no
    test function, lists no test there, and the Coverage line counts it."""
    tests = all_tests()
    entries = doc_entries()
    uncovered = [i for i in EXPECTED if i in entries
                 and "not covered by a test" in bullets(entries[i][1])["Tests"].lower()]
    for i in uncovered:
        assert not TEST_REF_RE.search(bullets(entries[i][1])["Tests"]), i
        citing = sorted(t for t, ids in tests.items() if i in ids)
        assert not citing, "%s is marked not covered, but these tests cite it: %s" % (i, citing)
    for code in (c for i in uncovered for c in re.findall(r"`([^`]+)`",
                                                           bullets(entries[i][1]).get("Code", ""))):
        assert (REPO / code).is_file(), code
    m = re.search(r"\*\*Coverage\.\*\* Of the (\d+) ids, (\d+) are cited by at least one test\s+"
                  r"function; (\d+) are not: ([^.]*)\.", DOC.read_text())
    assert m, "the Coverage line is missing"
    listed = [x.strip() for x in m.group(4).split(",") if x.strip()]
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3)), listed) == \
        (len(EXPECTED), len(EXPECTED) - len(uncovered), len(uncovered), uncovered), m.group(0)
