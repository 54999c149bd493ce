"""Tests are numbered by area: tests/integration/test_NNN_area.py holds
test_NNN_MMM_what functions, so a failure names its area and a report can
cite it.  This keeps it so."""
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_013_001_every_test_is_numbered_by_its_file():
    bad = []
    for f in sorted(HERE.glob("test_*.py")):
        m = re.match(r"test_(\d{3})_\w+\.py$", f.name)
        if not m:
            bad.append(f.name)
            continue
        for name in re.findall(r"^def (test_\w+)\(", f.read_text(), re.M):
            if not re.match(r"test_%s_\d{3}_\w+$" % m.group(1), name):
                bad.append("%s::%s" % (f.name, name))
    assert not bad, bad
