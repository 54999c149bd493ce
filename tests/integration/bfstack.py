"""A devstack instance seen from the tests: start/stop, bulkfhirctl, psql, logs.

The tests never start PostgreSQL, httpd or workers themselves: scripts/devstack
does, in a fresh world-traversable directory under /tmp, and prints KEY=VALUE
lines that this module reads.
"""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVSTACK = REPO / "scripts" / "devstack"
SHARED_DATA = REPO.parent / "shared" / "data"

# Error-log lines at these levels are checked after every test.
_LEVEL_RE = re.compile(r"^\[[^\]]*\] \[([^:\]]*):(warn|error|crit|alert|emerg)\] (.*)$")
_ANY_LEVEL_RE = re.compile(r"^\[[^\]]*\] \[[^:\]]*:[a-z0-9]+\] ")
# strip "[pid 1:tid 2] " and an optional "[client 1.2.3.4:5] " in front of a message
_MSG_PREFIX_RE = re.compile(r"^(\[(pid|client|remote) [^\]]*\] )*")

# bulkfhir-worker log lines: "2026-01-01T00:00:00.000Z [warn] [pid 1] message"
_WORKER_RE = re.compile(r"^\S+ \[([a-z]+)\] (?:\[pid \d+\] )?(.*)$")
_WORKER_BAD = ("warn", "warning", "error", "err", "crit", "alert", "emerg")

ACTIVE = []  # stacks that are up, for log tails on failure and the log guard


class Stack:
    """One running devstack (PostgreSQL + httpd + workers) in self.dir."""

    def __init__(self, directory, env):
        self.dir = Path(directory)
        self.env = env
        self.base_url = env["BULKFHIR_BASE_URL"]
        self.ctl_bin = env["BULKFHIR_CTL"]
        self.export_root = Path(env["BULKFHIR_EXPORT_ROOT"])
        self.database = env["BULKFHIR_DATABASE"]
        self.error_log = Path(env["BULKFHIR_HTTPD_ERROR_LOG"])
        self.offsets = {}           # log file -> bytes already checked
        self.allowed = []           # (regex) warn+ lines allowed for the current test
        # warn+ lines that are expected whenever this stack runs
        self.base_allowed = []
        if env.get("BULKFHIR_AUTH", "none") == "none":
            # the module warns at start-up that anyone may export
            self.base_allowed.append(re.compile(r"^BF01004: BulkFhirAuth none"))

    # ---- processes ---------------------------------------------------------
    @classmethod
    def up(cls, workers=1, auth="none", extra_conf=None, prefix="bf-it-"):
        """extra_conf: text of httpd directives added at the end of the conf."""
        d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        os.chmod(d, 0o755)
        args = [str(DEVSTACK), "up", d, "--workers", str(workers), "--auth", auth]
        if extra_conf:
            path = Path(d) / "extra.conf"
            path.write_text(extra_conf)
            args += ["--extra-conf", str(path)]
        p = subprocess.run(
            args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180,
            stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            tails = _tail_dir(Path(d) / "log")
            subprocess.run([str(DEVSTACK), "down", d], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=120)
            if not os.environ.get("BULKFHIR_KEEP_STACK"):
                shutil.rmtree(d, ignore_errors=True)
            raise RuntimeError("devstack up failed (rc %d):\n%s\n%s\n%s"
                               % (p.returncode, p.stdout, p.stderr, tails))
        env = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        st = cls(d, env)
        ACTIVE.append(st)
        return st

    def down(self, remove=True):
        if self in ACTIVE:
            ACTIVE.remove(self)
        self.devstack("down", check=False)
        if remove and not os.environ.get("BULKFHIR_KEEP_STACK"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def devstack(self, *args, check=True, timeout=120):
        """Run scripts/devstack CMD ... DIR (DIR goes last, as devstack wants)."""
        p = subprocess.run([str(DEVSTACK), *args, str(self.dir)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError("devstack %s failed (rc %d): %s%s"
                               % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def proc_env(self):
        e = dict(os.environ)
        for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
            e[k] = self.env[k]
        return e

    def ctl(self, *args, check=True, timeout=600):
        """bulkfhirctl --database CONNINFO ARGS...; returns CompletedProcess."""
        cmd = [self.ctl_bin, "--database", self.database, *[str(a) for a in args]]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, env=self.proc_env(), stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (rc %d):\nstdout: %s\nstderr: %s"
                                 % (" ".join(cmd), p.returncode, p.stdout[-4000:],
                                    p.stderr[-4000:]))
        return p

    def psql(self, sql, *params):
        """Run one statement; return rows as lists of strings (NULL -> None).

        params are bound as psql variables :'p1', :'p2', ... (quoted literals)."""
        cmd = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", "\x1f",
               "-P", "null=\x1e"]
        for i, v in enumerate(params, 1):
            cmd += ["-v", "p%d=%s" % (i, v)]
        p = subprocess.run(cmd, input=sql + "\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120, env=self.proc_env())
        if p.returncode != 0:
            raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))
        rows = []
        for line in p.stdout.splitlines():
            rows.append([None if c == "\x1e" else c for c in line.split("\x1f")])
        return rows

    def httpd_pid(self):
        try:
            return int((self.dir / "run" / "httpd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # ---- logs --------------------------------------------------------------
    def log_tails(self, lines=40):
        return _tail_dir(self.dir / "log", lines)

    def fresh(self):
        """True until the logs were checked once."""
        return not self.offsets

    def _new_lines(self, path):
        off = self.offsets.get(path, 0)
        try:
            with open(path, "rb") as f:
                f.seek(off)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1          # only complete lines
        self.offsets[path] = off + end
        return data[:end].decode("utf-8", "replace").splitlines()

    def _allowed(self, msg):
        return any(rx.search(msg) for rx in self.allowed + self.base_allowed)

    def new_error_log_problems(self):
        """warn+ lines (or unformatted lines) written to the httpd error log
        and the worker logs since the last check that no allow pattern
        matches; advances the checked offsets."""
        bad = []
        for raw in self._new_lines(str(self.error_log)):
            if not raw.strip():
                continue
            m = _LEVEL_RE.match(raw)
            if m:
                msg = _MSG_PREFIX_RE.sub("", m.group(3))
            elif _ANY_LEVEL_RE.match(raw):
                continue        # notice/info/debug
            else:
                msg = raw       # unformatted stderr output of a child
            if not self._allowed(msg):
                bad.append("%s: %s" % (self.error_log.name, raw))
        for wlog in sorted((self.dir / "log").glob("worker-*.log")):
            for raw in self._new_lines(str(wlog)):
                m = _WORKER_RE.match(raw)
                if not m:
                    continue    # free text (e.g. --help, a crash) shows in the tails
                if m.group(1) in _WORKER_BAD and not self._allowed(m.group(2)):
                    bad.append("%s: %s" % (wlog.name, raw))
        return bad


def _tail_dir(logdir, lines=40):
    out = []
    try:
        names = sorted(os.listdir(logdir))
    except OSError:
        return ""
    for name in names:
        path = Path(logdir) / name
        if not path.is_file() or name.endswith("access.log") or name == "initdb.log":
            continue
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        out.append("---- %s (last %d lines)" % (path, lines))
        out.extend(text[-lines:])
    return "\n".join(out)


class HeldTransaction:
    """An open transaction that owns an xid.  A job kicked off meanwhile has
    it in its snapshot, so no worker may export that job before it ends
    (DESIGN invariant 1): the job stays "in progress" for as long as we like."""

    def __init__(self, st):
        self.p = subprocess.Popen(["psql", "-X", "-A", "-t", "-q"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=st.proc_env())
        self.p.stdin.write("BEGIN; SELECT pg_current_xact_id();\n")
        self.p.stdin.flush()
        self.xid = self.p.stdout.readline().strip()
        assert self.xid.isdigit(), self.xid

    def end(self):
        if self.p.poll() is None:
            self.p.communicate("COMMIT;\n", timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end()
