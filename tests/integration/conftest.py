import shutil

import pytest

from harness.client import ChatClient
from harness.cluster import Cluster, process_errors, start_cluster

if shutil.which("haproxy") is None:  # scripts/setup installs it; say so instead of skipping
    raise RuntimeError("haproxy is not installed: run scripts/test (it installs it) or apt-get install haproxy")


def _check_logs(cluster):
    bad = process_errors(cluster)
    assert not bad, "tracebacks or errors in process logs:\n" + "\n".join(
        "--- %s ---\n%s" % (name, log) for name, log in bad.items())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
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
    _check_logs(c)


@pytest.fixture
def make_cluster(tmp_path):
    """A fresh cluster per test, for tests that stop or break processes."""
    made = []

    def make(env=None, curve=True):
        c = Cluster(tmp_path / ("cluster%d" % len(made)), env=env, curve=curve)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


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
