"""The module is a guest in httpd's address space: it exports the one
symbol httpd looks up (bulkfhir_module) and keeps the core library's
bf_* functions to itself, so they cannot clash with another module's."""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module_so():
    build = Path(os.environ.get("BULKFHIR_BUILD_DIR", REPO / "build"))
    so = build / "mod_bulkfhir" / ".libs" / "mod_bulkfhir.so"
    assert so.exists(), "build the module first (%s)" % so
    return so


def test_011_001_module_exports_only_its_module_symbol():
    out = subprocess.run(["nm", "-D", "--defined-only", str(_module_so())],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         check=True, timeout=60).stdout
    names = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
    assert names == ["bulkfhir_module"], names[:20]
