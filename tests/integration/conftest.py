"""pytest fixtures for ferry's integration tests: a fresh Ferry per test, cleaned up after."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferry_harness import Ferry, Peers  # noqa: E402


def pytest_sessionstart(session):
    # A report left by an earlier run must not stand in for this one when this run is killed.
    path = session.config.option.xmlpath
    if path and os.path.exists(path):
        os.remove(path)


@pytest.fixture
def ferry(request):
    f = Ferry()
    yield f
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        sys.stderr.write(f.all_logs()[-6000:])
    f.cleanup()


@pytest.fixture
def host(ferry):
    """ferry with example.test and demo@example.test (password "demo-secret"); nothing started."""
    ferry.add_domain("example.test")
    ferry.add_account("demo@example.test", "demo-secret")
    return ferry


@pytest.fixture
def outside():
    """Makes outside peers: outside(ScriptedPeer, handler) or outside(SmtpSink); stopped after the test."""
    peers = Peers()
    yield peers
    peers.stop()


@pytest.fixture
def mailhost(host):
    """host with mda, qmgr and smtpd running."""
    host.start("mda", "qmgr", "smtpd")
    return host


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
