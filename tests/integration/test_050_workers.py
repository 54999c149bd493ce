"""One export, two workers (DESIGN invariants 3 and 4): both claim tasks of
the same job and the result is still exact."""
import os
import time

import bfclient
from bfstack import HeldTransaction
from bfclient import check_exact, check_files


def _claimers(st, job_id):
    rows = st.psql("SELECT DISTINCT locked_by FROM bulkfhir.task "
                   "WHERE job_id = :'p1' AND locked_by IS NOT NULL", job_id)
    return {r[0] for r in rows}


def test_050_001_two_workers_share_one_export(stack, client, dataset):
    """Invariant 4: with a second worker started by `devstack worker`, the
    tasks of one system export are claimed by both workers
    (bulkfhir.task.locked_by), and the output is exactly the loaded data."""
    pid = int(stack.devstack("worker").stdout.strip())
    try:
        os.kill(pid, 0)
    except OSError:
        raise AssertionError("second worker %d is not running" % pid)
    time.sleep(1.0)   # let it connect and LISTEN
    seen = []
    for attempt in range(3):
        held = HeldTransaction(stack)
        kick = client.kickoff("$export")
        assert kick.status_code == 202, kick.text[:500]
        job_id = bfclient.job_of(kick.headers["Content-Location"])
        # wait until no task is left queued (each worker holds one, waiting for
        # our xid) or a few seconds passed
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            claimers = _claimers(stack, job_id)
            if len(claimers) >= 2:
                break
            time.sleep(0.1)
        held.end()
        exp = bfclient.Export(client, kick, None, None).wait().fetch_all()
        check_files(exp)
        check_exact(exp, dataset["resources"], dataset["links"])
        claimers = _claimers(stack, job_id)
        seen.append(claimers)
        if len(claimers) >= 2:
            break
    assert any(len(c) >= 2 for c in seen), \
        "every export's tasks were claimed by one worker only: %s" % seen
