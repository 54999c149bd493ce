"""The README's curl walk-through, run exactly as written (issue #7 item 5).

The block between the `walkthrough:begin` and `walkthrough:end` markers in
README.md is extracted and run with bash against the shared stack; its
output must show the manifest entries of the exported types with the loaded
counts, the downloaded line counts, and 202 / 404 for DELETE and the poll
after it (R39, R41).  If the README changes, this test runs the new text."""
import re
import subprocess
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def walkthrough_script():
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- walkthrough:begin -->\s*```sh\n(.*?)```\s*<!-- walkthrough:end -->",
                  text, re.S)
    assert m, "README.md has no walkthrough block"
    return m.group(1)


def test_430_001_readme_walkthrough_runs(stack, dataset, tmp_path):
    script = walkthrough_script()
    assert "curl" in script and "$export" in script
    env = dict(stack.proc_env())
    env["BASE"] = stack.base_url
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, "walkthrough failed (%d):\n%s\n%s" % (
        p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    out = p.stdout
    want = Counter(t for (t, _id) in dataset["resources"] if t in ("Patient", "Observation"))
    # "TYPE COUNT URL" lines printed from the manifest
    listed = Counter()
    for t, n in re.findall(r"^(Patient|Observation) (\d+) http\S+$", out, re.M):
        listed[t] += int(n)
    assert listed == want, (listed, want, out[-2000:])
    # the downloaded files hold exactly those resources
    lines = Counter()
    for f in tmp_path.glob("*.ndjson"):
        for ln in f.read_text().splitlines():
            if ln.strip():
                lines[f.name.split(".")[0]] += 1
    assert lines == want, (lines, want)
    assert re.search(r"^delete: 202$", out, re.M), out[-1000:]
    assert re.search(r"^after delete: 404$", out, re.M), out[-1000:]
