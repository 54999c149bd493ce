"""Reference documentation stays in step with the code (no stack needed):
docs/directives.md against the command_rec tables of mod_bulkfhir, and
conf/worker.conf and conf/bulkfhir.conf against the defaults in the code."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MOD = REPO / "mod_bulkfhir"
DOC = REPO / "docs" / "directives.md"


def _c_defines():
    """#define NAME "BulkFhir..." from every header and source of the module."""
    out = {}
    for f in sorted(MOD.glob("*.[ch]")):
        for m in re.finditer(r'#define\s+(\w+)\s+"(BulkFhir\w+)"', f.read_text()):
            out[m.group(1)] = m.group(2)
    return out


def code_directives():
    """{name: set of contexts} from every command_rec table in mod_bulkfhir/."""
    defines = _c_defines()
    found = {}
    for f in sorted(MOD.glob("*.c")):
        text = f.read_text()
        for table in re.finditer(r"command_rec\s+\w+\s*\[\]\s*=\s*\{(.*?)\}\s*;", text, re.S):
            for m in re.finditer(r"AP_INIT_\w+\(\s*([A-Za-z_0-9\"]+)\s*,\s*\w+\s*,\s*[^,]+,\s*([A-Z_| ]+?)\s*,",
                                 table.group(1)):
                name = m.group(1)
                name = name.strip('"') if name.startswith('"') else defines.get(name, name)
                assert name.startswith("BulkFhir"), "%s: cannot resolve %s" % (f, m.group(1))
                found[name] = {c.strip() for c in m.group(2).split("|")}
    return found


def doc_directives():
    """{name: context text} from the '## Name' sections of docs/directives.md."""
    text = DOC.read_text()
    out = {}
    for sec in re.split(r"^## ", text, flags=re.M)[1:]:
        name = sec.split("\n", 1)[0].strip()
        m = re.search(r"^\| Context \| (.*) \|$", sec, re.M)
        assert m, "%s: no Context row" % name
        for row in ("Syntax", "Default", "Values"):
            assert re.search(r"^\| %s \| .+ \|$" % row, sec, re.M), "%s: no %s row" % (name, row)
        assert "```apache\n" in sec, "%s: no example" % name
        syn = re.search(r"^\| Syntax \| `(\w+)", sec, re.M)
        assert syn and syn.group(1) == name, "%s: Syntax names %s" % (name, syn and syn.group(1))
        out[name] = m.group(1)
    return out


def test_410_001_every_directive_is_documented_and_no_other():
    code = code_directives()
    doc = doc_directives()
    assert len(code) >= 9, "found only %s in mod_bulkfhir/*.c" % sorted(code)
    missing = sorted(set(code) - set(doc))
    extra = sorted(set(doc) - set(code))
    assert not missing, "directives missing from docs/directives.md: %s" % missing
    assert not extra, "documented in docs/directives.md but not in the module: %s" % extra


def test_410_002_documented_context_matches_the_code():
    code = code_directives()
    doc = doc_directives()
    for name, ctx in code.items():
        text = doc[name]
        if "RSRC_CONF" in ctx:
            assert "server config" in text and "virtual host" in text, (name, text)
        has_dir = "ACCESS_CONF" in ctx or "OR_ALL" in ctx or any(c.startswith("OR_") for c in ctx)
        assert ("directory" in text) == has_dir, \
            "%s: context %s in the code, '%s' in the docs" % (name, sorted(ctx), text)


def test_410_003_documented_defaults_match_config_h():
    """Numeric defaults in docs/directives.md equal the BF_DEFAULT_* values."""
    # the cost model's defaults live in lib/bf_params.h (config.h includes it)
    hdr = (MOD / "config.h").read_text() + (REPO / "lib" / "bf_params.h").read_text()
    defaults = {}
    for m in re.finditer(r'#define\s+BF_CMD_(\w+)\s+"(BulkFhir\w+)"', hdr):
        d = re.search(r"#define\s+BF_DEFAULT_%s\s+(.+?)\s*(/\*.*)?$" % m.group(1), hdr, re.M)
        if d:
            defaults[m.group(2)] = d.group(1)
    assert defaults, "no BF_DEFAULT_* in config.h"
    text = DOC.read_text()
    for name, expr in defaults.items():
        sec = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % name, text, re.M | re.S).group(1)
        shown = re.search(r"^\| Default \| `([^`]+)`", sec, re.M)
        assert shown, "%s: the Default row shows no value" % name
        if expr.startswith('"'):
            want = expr.strip('"')
        else:
            want = str(eval(expr, {}))     # e.g. (1024 * 1024)
        assert shown.group(1) == want, "%s: docs say %s, config.h %s" % (name, shown.group(1), expr)


def test_410_004_bulkfhir_conf_shows_every_directive():
    """conf/bulkfhir.conf (the a2enmod example) mentions every directive."""
    conf = (REPO / "conf" / "bulkfhir.conf").read_text()
    missing = [n for n in code_directives() if not re.search(r"^\s*#?\s*%s\s" % n, conf, re.M)]
    assert not missing, "conf/bulkfhir.conf lacks %s" % missing
    assert "SetHandler bulkfhir-status" in conf


def test_410_005_worker_conf_shows_every_key_at_its_default():
    """conf/worker.conf lists every key of worker/config.c at its default."""
    src = (REPO / "worker" / "config.c").read_text()
    keys = dict(re.findall(r'CF\(\s*(\w+)\s*,\s*CF_\w+\s*,\s*"([^"]*)"', src))
    assert keys, "no CF(...) keys in worker/config.c"
    conf = (REPO / "conf" / "worker.conf").read_text()
    shown = dict(re.findall(r"^#(\w+) = ?(.*)$", conf, re.M))
    for k, v in keys.items():
        assert k in shown, "conf/worker.conf lacks %s" % k
        assert shown[k] == v, "conf/worker.conf: %s = %r, the code's default is %r" % (k, shown[k], v)
    extra = set(shown) - set(keys)
    assert not extra, "conf/worker.conf has keys the worker does not know: %s" % extra


# ---- man pages against --help ---------------------------------------------------
import os            # noqa: E402
import subprocess    # noqa: E402

import pytest        # noqa: E402

BUILD = Path(os.environ.get("BULKFHIR_BUILD_DIR") or REPO / "build")


def _help(binary, *args):
    path = BUILD / binary
    if not path.exists():
        pytest.skip("%s is not built (set BULKFHIR_BUILD_DIR)" % path)
    p = subprocess.run([str(path), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    return p.stdout


def _roff_text(page):
    """The man page's text with roff escapes for '-' undone."""
    return (REPO / "docs" / page).read_text().replace("\\-", "-").replace("\\e", "\\")


def test_410_006_worker_man_page_matches_help():
    """Every option that `bulkfhir-worker --help` lists is in bulkfhir-worker.8."""
    out = _help("worker/bulkfhir-worker", "--help")
    opts = set(re.findall(r"(?m)^\s+(-\w), (--[a-z-]+)", out))
    assert len(opts) >= 8, out
    man = _roff_text("bulkfhir-worker.8")
    for short, long_ in sorted(opts):
        assert long_ in man and short in man, "bulkfhir-worker.8 lacks %s/%s" % (short, long_)


def test_410_007_ctl_man_page_matches_help():
    """Every command and option in `bulkfhirctl --help` and `COMMAND --help` is
    in bulkfhirctl.1."""
    out = _help("ctl/bulkfhirctl", "--help")
    man = _roff_text("bulkfhirctl.1")
    commands = re.findall(r"(?m)^  ([a-z]+) ", out.split("commands:", 1)[1].split("options:", 1)[0])
    assert "migrate" in commands and "load" in commands, out
    for c in commands:
        assert re.search(r'(?m)^\.SS "%s\b' % c, man), "bulkfhirctl.1 has no section for %s" % c
        sub = _help("ctl/bulkfhirctl", c, "--help")
        for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", sub))):
            if opt == "--help":
                continue
            assert opt in man, "bulkfhirctl.1 lacks %s of %s" % (opt, c)
    for opt in re.findall(r"(?<![\w-])--[a-z][a-z-]+", out.split("options:", 1)[1]):
        assert opt in man, "bulkfhirctl.1 lacks the global option %s" % opt
