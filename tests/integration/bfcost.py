"""Cost measurements for the bounded-cost suite (test_5xx_cost, issue #11).

What a test measures, beside the status it gets:
  - memory of a process from /proc/<pid>/status (VmRSS, VmHWM, RssAnon).
    For a PostgreSQL backend use RssAnon: its VmRSS also counts the
    shared_buffers pages it touched, which are not its own cost;
  - the PostgreSQL backends of the workers (pg_stat_activity,
    application_name bulkfhir-worker*);
  - Peak: a sampler thread that records the peak of each while a job runs.

Every loop here is bounded in count and time."""
import threading
import time
from pathlib import Path


def proc_kib(pid, field="VmRSS"):
    """One field of /proc/<pid>/status in KiB, or None (gone, no field)."""
    try:
        for line in Path("/proc/%d/status" % int(pid)).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def worker_pids(st):
    """The pids of the devstack's own workers (DIR/run/workers: 'k pid')."""
    pids = []
    f = Path(st.dir) / "run" / "workers"
    if f.exists():
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and proc_kib(parts[1]) is not None:
                pids.append(int(parts[1]))
    return pids


def worker_backend_pids(st):
    """pids of the PostgreSQL backends the workers are connected with."""
    rows = st.psql("SELECT pid FROM pg_stat_activity "
                   "WHERE application_name LIKE 'bulkfhir-worker%'")
    return [int(r[0]) for r in rows if r and r[0]]


def backend_kib(pid):
    """A backend's private memory (RssAnon), KiB."""
    return proc_kib(pid, "RssAnon")


class Peak:
    """with Peak(st, workers=[pid, ...]) as pk: ... ; then pk.worker_kib
    (peak VmRSS over the given worker pids), pk.backend_kib (peak RssAnon
    over the workers' backends, re-listed every few samples), pk.alive
    (worker pids still alive at the end).  Samples every `every` seconds
    for at most `limit` seconds."""

    def __init__(self, st, workers=None, every=0.05, limit=600):
        self.st = st
        self.workers = list(workers if workers is not None else worker_pids(st))
        self.every = every
        self.limit = limit
        self.worker_kib = 0
        self.backend_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        backends = []
        start = time.monotonic()
        n = 0
        while not self._stop.is_set() and time.monotonic() - start < self.limit:
            if n % 10 == 0:
                try:
                    backends = worker_backend_pids(self.st)
                except AssertionError:
                    backends = []
            for pid in self.workers:
                self.worker_kib = max(self.worker_kib, proc_kib(pid) or 0)
            for pid in backends:
                self.backend_kib = max(self.backend_kib, backend_kib(pid) or 0)
            n += 1
            self.samples = n
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        self.alive = [p for p in self.workers if proc_kib(p) is not None]
        return False


def timed(fn, *args, **kw):
    """(result, seconds) of fn(*args, **kw)."""
    t = time.monotonic()
    r = fn(*args, **kw)
    return r, time.monotonic() - t
