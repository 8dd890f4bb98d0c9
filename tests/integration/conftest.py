import shutil

import pytest

from harness.client import ChatClient
from harness.cluster import Cluster, start_cluster
from harness.processes import allowed_log_errors, check_logs

if shutil.which("haproxy") is None:  # scripts/setup installs it; say so instead of skipping
    raise RuntimeError("haproxy is not installed: run scripts/test (it installs it) or apt-get install haproxy")


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """Broker + node1..node3, shared by a module's tests (each test uses its own rooms)."""
    # Tests send and ask faster than people do; the rate limits have their own tests.
    c = start_cluster(tmp_path_factory.mktemp("cluster"), balancer=False,
                      env={"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000",
                           "CHAT_REQUEST_RATES": ",".join("%s=10000/10000" % event for event in
                                                          ("join", "leave", "rooms", "members"))})
    try:
        yield c
    finally:
        c.stop()
    check_logs(c.procs, allowed_log_errors(request.node))


@pytest.fixture
def make_cluster(request, tmp_path):
    """A fresh cluster per test, for tests that stop or break processes; their logs are
    checked as the shared cluster's are (the test's ``allow_log_errors`` markers)."""
    made = []

    def make(env=None, curve=True):
        c = Cluster(tmp_path / ("cluster%d" % len(made)), env=env, curve=curve)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()
    check_logs([p for c in made for p in c.procs], allowed_log_errors(request.node))


@pytest.fixture
def client():
    """Factory of connected clients, all disconnected after the test."""
    made = []

    def connect(url, name="client", transports=("websocket",), cookies=None):
        c = ChatClient(url, transports=transports, name=name, cookies=cookies)
        made.append(c)
        return c
    yield connect
    for c in made:
        c.close()
