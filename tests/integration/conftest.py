"""Integration test harness: a real PostgreSQL and a real httpd with the module
from the build tree, brought up by scripts/devstack in a temp dir under /tmp.

Fixtures
  stack       session: the shared stack, loaded with `bulkfhirctl generate
              --patients 20 --seed 7` (tests on it must not change the data)
  dataset     session: that data as the ground truth ({(type,id): resource})
  client      a bfclient.Client on the shared stack
  new_stack   factory for a private stack (tests that change data or break
              PostgreSQL); torn down at the end of the test module
  allow_log   allow_log(regex): warn+ error-log lines this test expects

After every test the httpd error-log and worker-log lines written since the
last check are read: any warn/error/crit line that no allow_log pattern
matches fails the test (a worker whose job a client cancelled says so at
notice level: a client's cancel is not a fault).
When a test fails, the tails of the httpd, worker and PostgreSQL logs are
attached to its report.
"""
import re
import tempfile
from pathlib import Path

import pytest

import bfclient
import bfstack


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that loads a large data set")


# ---- log tails on failure -------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and bfstack.ACTIVE:
        for st in bfstack.ACTIVE:
            rep.sections.append(("devstack logs: %s" % st.dir, st.log_tails()))


# ---- the error log guard ------------------------------------------------------------
@pytest.fixture
def allow_log():
    """allow_log(r"BF01\\d{3}: ") lets warn+ lines matching the regex through
    the error-log check for the rest of this test."""
    patterns = []

    def add(regex):
        patterns.append(re.compile(regex))
        for st in bfstack.ACTIVE:
            st.allowed.append(patterns[-1])
    add.patterns = patterns
    return add      # the guard below drops the patterns after its check


@pytest.fixture(autouse=True)
def _error_log_guard(request):
    # lines written since the last check (stack start-up, fixtures) count too
    problems = []
    for st in bfstack.ACTIVE:
        problems += ["%s (before the test) %s" % (st.dir, ln)
                     for ln in st.new_error_log_problems()]
    yield
    for st in list(bfstack.ACTIVE):
        problems += ["%s %s" % (st.dir, ln) for ln in st.new_error_log_problems()]
        st.allowed = []
    if problems:
        pytest.fail("unexpected warn/error lines in the httpd error log or a worker log:\n" +
                    "\n".join(problems[:40]), pytrace=False)


# ---- stacks -----------------------------------------------------------------------------
def _final_log_check(st):
    return ["%s %s" % (st.dir, ln) for ln in st.new_error_log_problems()]


@pytest.fixture(scope="session")
def stack():
    st = bfstack.Stack.up(workers=1)
    try:
        yield st
    finally:
        leftover = _final_log_check(st)
        st.down()
        if leftover:
            pytest.fail("unexpected warn/error lines in the httpd error log or a worker log at the end:\n"
                        + "\n".join(leftover[:40]), pytrace=False)


@pytest.fixture(scope="module")
def new_stack():
    made = []

    def make(workers=1, auth="none", extra_conf=None):
        st = bfstack.Stack.up(workers=workers, auth=auth, extra_conf=extra_conf)
        made.append(st)
        return st
    yield make
    leftovers = []
    for st in made:
        leftovers += _final_log_check(st)
        st.down()
    if leftovers:
        pytest.fail("unexpected warn/error lines in the httpd error log or a worker log at the end:\n"
                    + "\n".join(leftovers[:40]), pytrace=False)


def generate_and_load(st, patients=20, seed=7, workdir=None):
    """bulkfhirctl generate into a fresh dir, then bulkfhirctl load it;
    returns (resources, links, files)."""
    out = Path(workdir or tempfile.mkdtemp(prefix="bf-gen-", dir=str(st.dir)))
    out.mkdir(parents=True, exist_ok=True)
    st.ctl("generate", "--patients", patients, "--seed", seed, "--out", out)
    files = sorted(p for p in out.iterdir() if p.suffix in (".ndjson", ".json"))
    assert files, "bulkfhirctl generate wrote nothing into %s" % out
    st.ctl("load", *files)
    resources, links = bfclient.load_input(files)
    return resources, links, files


@pytest.fixture(scope="session")
def dataset(stack):
    resources, links, files = generate_and_load(stack, patients=20, seed=7)
    return {"resources": resources, "links": links, "files": files}


@pytest.fixture
def client(stack):
    return bfclient.Client(stack.base_url)
