"""System export of the Synthea 100-patient sample (38,483 resources, 19
types) from ../shared/data/synthea-100p, in a stack of its own."""
import pytest

import bfclient
import bfstack
from bfclient import check_exact, check_files, check_manifest_shape, run_export

DATA = bfstack.SHARED_DATA / "synthea-100p"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(),
                    reason="Synthea sample not present at %s (shared/ beside the repo)" % DATA)
def test_025_001_system_export_synthea_100p(new_stack):
    """R20, R21, R34, R52, 1.9: load 38,483 Synthea resources, export all of
    them; each comes back exactly once, equal to its input apart from
    meta.versionId/lastUpdated, counts per type as in COUNTS.tsv."""
    st = new_stack(workers=2)
    files = sorted(DATA.glob("*.ndjson"))
    st.ctl("load", *files, timeout=900)
    expected, links = bfclient.load_input(files)
    want = {}
    for line in (DATA / "COUNTS.tsv").read_text().splitlines()[1:]:
        t, n, _ = line.split("\t")
        if t != "TOTAL":
            want[t] = int(n)
    assert sum(want.values()) == 38483 and len(want) == 19
    assert bfclient.counts_by_type(expected) == want

    exp = run_export(bfclient.Client(st.base_url), timeout=600)
    check_manifest_shape(exp, st.base_url)
    check_files(exp)
    per_type = {}
    for item in exp.manifest["output"]:
        per_type[item["type"]] = per_type.get(item["type"], 0) + item.get("count", 0)
    assert per_type == want
    check_exact(exp, expected, links)
