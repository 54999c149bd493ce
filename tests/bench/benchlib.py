"""Helpers for scripts/bench: a devstack of our own, psql, HTTP exports,
/proc sampling, wrk and curl runners.  Python 3 from Debian (requests).

Nothing here kills by name: every process we stop was started by us and is
stopped by its pid (workers) or through `scripts/devstack down DIR`.
"""
import base64
import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time
import uuid

import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVSTACK = os.path.join(REPO, "scripts", "devstack")
FHIR_JSON = "application/fhir+json"
KICK_HEADERS = {"Accept": FHIR_JSON, "Prefer": "respond-async"}
SMART_LOCATION = "/smartfhir"   # a second FHIR base with BulkFhirAuth smart
GATED_LOCATION = "/fhir-gated"    # the defaults (BulkFhirMinPollInterval 500 ms)


def say(*a):
    print("bench:", *a, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def run(cmd, env=None, check=True, capture=True, timeout=None):
    r = subprocess.run(cmd, env=env, check=False, timeout=timeout,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (
            r.returncode, " ".join(cmd), r.stdout or "", r.stderr or ""))
    return r


# ---- /proc ----------------------------------------------------------------------
def proc_status(pid):
    """{'VmRSS': kB, 'VmHWM': kB, ...} or {} when the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                k, _, v = ln.partition(":")
                if k.startswith("Vm"):
                    out[k] = int(v.split()[0])
    except (OSError, ValueError):
        return {}
    return out


def children_of(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            # the field after the ")" of comm: state, then ppid
            rest = st[st.rindex(")") + 2:].split()
            if int(rest[1]) == ppid:
                kids.append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(kids)


class RssSampler:
    """Samples VmRSS/VmHWM of some pids every `period` seconds in a thread."""

    def __init__(self, pids, period=0.02):
        self.pids = list(pids)
        self.period = period
        self.max_rss = {p: 0 for p in self.pids}
        self.hwm = {p: 0 for p in self.pids}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.period)

    def _sample(self):
        for p in self.pids:
            st = proc_status(p)
            if st:
                self.max_rss[p] = max(self.max_rss[p], st.get("VmRSS", 0))
                self.hwm[p] = max(self.hwm[p], st.get("VmHWM", 0))

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self._sample()


def settle():
    """Write back every dirty page before a timed run, so a measurement does
    not pay for the writeback of the one before it (an export's parts are
    written back while the next COPY runs otherwise)."""
    os.sync()


# ---- the stack ------------------------------------------------------------------
class Stack:
    """A devstack in `d` with our extra httpd conf (static Alias, high limits)."""

    def __init__(self, d, build_dir, port=None):
        self.dir = os.path.abspath(d)
        self.build = build_dir
        self.port = port
        self.env = {}
        self.workers = []          # pids we started, in order
        self.static = os.path.join(self.dir, "static")

    def _devstack(self, *args, capture=True):
        env = dict(os.environ, BULKFHIR_BUILD_DIR=self.build)
        return run([DEVSTACK] + list(args), env=env, capture=capture)

    def write_extra_conf(self):
        os.makedirs(self.static, exist_ok=True)
        os.chmod(self.static, 0o755)
        export_root = os.path.join(self.dir, "export")
        conf = os.path.join(self.dir, "bench-extra.conf")
        with open(conf, "w") as f:
            f.write("""# written by scripts/bench
<IfModule !alias_module>
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
</IfModule>
Alias /static-export "%(export)s"
Alias /static "%(static)s"
<Directory "%(export)s">
    Require all granted
</Directory>
<Directory "%(static)s">
    Require all granted
</Directory>
# exports are timed by polling every 10 ms: without R43's gate (most of
# those polls would be 429s, and a 429 can hold the manifest back by up to
# the interval); request rates with the default gate: %(gated)s
<Location /fhir>
    BulkFhirMaxActiveJobs 100000
    BulkFhirKickoffRate 100000
    BulkFhirMinPollInterval 0
</Location>
<Location %(gated)s>
    SetHandler bulkfhir
    Require all granted
</Location>
<Location %(smart)s>
    SetHandler bulkfhir
    Require all granted
    BulkFhirAuth smart
    BulkFhirBaseURL http://127.0.0.1:${BF_PORT}%(smart)s
    BulkFhirMaxActiveJobs 100000
    BulkFhirKickoffRate 100000
</Location>
""" % {"export": export_root, "static": self.static, "smart": SMART_LOCATION,
       "gated": GATED_LOCATION})
        return conf

    def up(self):
        os.makedirs(self.dir, exist_ok=True)
        conf = self.write_extra_conf()
        args = ["up", self.dir, "--workers", "0", "--extra-conf", conf]
        if self.port:
            args += ["--port", str(self.port)]
        out = self._devstack(*args).stdout
        for ln in out.splitlines():
            k, _, v = ln.partition("=")
            if k:
                self.env[k] = v
        self.base = self.env["BULKFHIR_BASE_URL"]
        self.root = "http://127.0.0.1:%s" % self.env["BULKFHIR_PORT"]
        self.export_root = self.env["BULKFHIR_EXPORT_ROOT"]
        self.conninfo = self.env["BULKFHIR_DATABASE"]
        self.ctl = self.env["BULKFHIR_CTL"]
        self.http = requests.Session()
        return self

    def down(self):
        self._devstack("down", self.dir)

    def add_worker(self):
        pid = int(self._devstack("worker", self.dir).stdout.strip().splitlines()[-1])
        self.workers.append(pid)
        return pid

    def stop_worker(self, pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(150):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.1)
        self.workers.remove(pid)

    def httpd_pid(self):
        with open(os.path.join(self.dir, "run", "httpd.pid")) as f:
            return int(f.read().split()[0])

    def httpd_children_rss(self):
        return {p: proc_status(p).get("VmRSS", 0) for p in children_of(self.httpd_pid())}

    # ---- SQL ----
    def pgenv(self):
        e = dict(os.environ)
        for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
            e[k] = self.env[k]
        return e

    def psql(self, *cmds, timing=False):
        """Run psql -c CMD...; returns (stdout, [ms per \\timing line])."""
        args = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
        if timing:
            args += ["-c", "\\timing on"]
        for c in cmds:
            args += ["-c", c]
        r = run(args, env=self.pgenv())
        ms = [float(m) for m in re.findall(r"^Time: ([0-9.]+) ms", r.stdout, re.M)]
        out = "\n".join(ln for ln in r.stdout.splitlines() if not ln.startswith("Time: "))
        return out.strip(), ms

    def q1(self, sql):
        return self.psql(sql)[0]

    # ---- data ----
    def load(self, path):
        t0 = time.monotonic()
        run([self.ctl, "--database", self.conninfo, "load", path], env=self.pgenv())
        t = time.monotonic() - t0
        self.psql("VACUUM (ANALYZE) fhir.resource_version")
        return t

    # ---- exports ----
    def kickoff(self, path, params=None, base=None, auth=None):
        return self.http.get((base or self.base) + "/" + path, params=params,
                             headers=dict(KICK_HEADERS, **(auth or {})), timeout=60)

    def export(self, path, params=None, poll=0.01, timeout=3600, base=None, auth=None):
        """Kick-off -> manifest complete, polling every `poll` s.  Returns a
        dict with seconds, the manifest and the job id.  base: another FHIR
        base (SMART_LOCATION), auth: its Authorization header."""
        t0 = time.monotonic()
        k = self.kickoff(path, params, base, auth)
        if k.status_code != 202:
            raise RuntimeError("kick-off %s %s: %d %s" % (path, params, k.status_code,
                                                          k.text[:500]))
        status_url = k.headers["Content-Location"]
        polls = 0
        while True:
            r = self.http.get(status_url, headers=dict({"Accept": "application/json"},
                                                       **(auth or {})), timeout=60)
            polls += 1
            if r.status_code == 200:
                break
            if r.status_code not in (202, 429):
                raise RuntimeError("status %s: %d %s" % (status_url, r.status_code,
                                                         r.text[:500]))
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("export %s still running after %ss" % (path, timeout))
            time.sleep(poll)
        secs = time.monotonic() - t0
        job = status_url.rstrip("/").rsplit("/", 1)[1]
        return {"seconds": secs, "status_url": status_url, "job": job,
                "manifest": r.json(), "polls": polls}

    def job_stats(self, job):
        out, _ = self.psql(
            "SELECT coalesce(sum(count),0), coalesce(sum(bytes),0), count(*) "
            "FROM bulkfhir.file WHERE kind = 'output' AND job_id = '%s'" % job)
        res, byt, nfiles = (int(x) for x in out.split("|"))
        tasks, _ = self.psql(
            "SELECT resource_type, locked_by, resources, bytes, "
            "round(extract(epoch FROM finished_at - started_at)::numeric, 3) "
            "FROM bulkfhir.task WHERE job_id = '%s' ORDER BY started_at" % job)
        tl = []
        for ln in tasks.splitlines():
            t, w, r, b, s = ln.split("|")
            tl.append({"type": t, "worker": w, "resources": int(r), "bytes": int(b),
                       "seconds": float(s) if s else None})
        return {"resources": res, "bytes": byt, "files": nfiles, "tasks": tl}

    def discard(self, status_url, job, auth=None):
        """DELETE the job and remove its directory at once (the sweeper would
        do it later, while the next measurement runs)."""
        try:
            self.http.delete(status_url, headers=auth, timeout=60)
        except requests.RequestException:
            pass
        run(["rm", "-rf", os.path.join(self.export_root, job)], check=False)

    # ---- SMART ----
    def smart_auth(self, client_id="bench"):
        """{"Authorization": "Bearer ..."} for SMART_LOCATION, got as a SMART
        Backend Services client does: an ES384 key registered with
        bulkfhirctl, a signed client assertion posted to the token endpoint
        (python3-jwt, python3-cryptography, as the integration tests)."""
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP384R1())
        pub = key.public_key().public_numbers()

        def b64(n):
            return base64.urlsafe_b64encode(n.to_bytes(48, "big")).rstrip(b"=").decode()
        jwks = os.path.join(self.dir, "bench-jwks.json")
        with open(jwks, "w") as f:
            json.dump({"keys": [{"kty": "EC", "crv": "P-384", "kid": "bench", "alg": "ES384",
                                 "use": "sig", "x": b64(pub.x), "y": b64(pub.y)}]}, f)
        run([self.ctl, "--database", self.conninfo, "client", "add", "--id", client_id,
             "--jwks", jwks, "--scope", "system/*.read"], env=self.pgenv())
        url = self.root + SMART_LOCATION + "/token"
        claims = {"iss": client_id, "sub": client_id, "aud": url,
                  "exp": int(time.time()) + 240, "jti": uuid.uuid4().hex}
        form = {"grant_type": "client_credentials", "scope": "system/*.read",
                "client_assertion_type":
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": jwt.encode(claims, key, algorithm="ES384",
                                               headers={"kid": "bench"})}
        r = self.http.post(url, data=form, timeout=60)
        if r.status_code != 200:
            raise RuntimeError("token %s: %d %s" % (url, r.status_code, r.text[:500]))
        return {"Authorization": "Bearer " + r.json()["access_token"]}

    def cancel_all_jobs(self):
        self.psql("UPDATE bulkfhir.task SET state = 'cancelled' "
                  "WHERE state IN ('queued', 'running')",
                  "UPDATE bulkfhir.job SET state = 'cancelled' "
                  "WHERE state IN ('queued', 'running')")


# ---- load generators -----------------------------------------------------------------
def wrk(url, seconds, threads=2, conns=16, headers=None, script=None):
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency"]
    for k, v in (headers or {}).items():
        args += ["-H", "%s: %s" % (k, v)]
    if script:
        args += ["-s", script]
    args.append(url)
    out = run(args, timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    return {"rps": float(m.group(1)) if m else None,
            "requests": int(total.group(1)) if total else None,
            "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
            "p50": p50.group(1) if p50 else None, "p99": p99.group(1) if p99 else None,
            "threads": threads, "connections": conns, "seconds": seconds}


def curl_download(url, headers=None):
    args = ["curl", "-s", "-o", "/dev/null", "-w",
            "%{http_code} %{size_download} %{time_total}"]
    for k, v in (headers or {}).items():
        args += ["-H", "%s: %s" % (k, v)]
    args.append(url)
    code, size, secs = run(args, timeout=600).stdout.split()
    if code != "200":
        raise RuntimeError("download %s: HTTP %s" % (url, code))
    size, secs = int(size), float(secs)
    return {"bytes": size, "seconds": secs, "MBps": size / secs / 1e6 if secs else None}


def dumps(obj):
    return json.dumps(obj, indent=1, sort_keys=True, default=str)
