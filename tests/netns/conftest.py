"""Fixtures of the multi-host tests: hosts a-h in network namespaces (harness/netns.py).

Every test here runs with its thread in the clients' host ``f``, so the tests of
tests/integration that these modules import run unchanged against a cluster whose
brokers, nodes and balancer are on hosts of their own.  Without root every test is
skipped, saying why; as root a broken ``ip netns`` fails them, saying why (root on
Linux can make namespaces, so the multi-host tests must not go quietly untested).
"""
import os

import pytest

from harness import netns
from harness.processes import allowed_log_errors, check_logs
from tests.integration.conftest import client  # noqa: F401  (the same client fixture)

NODES = ("node1", "node2", "node3")
# Tests send and ask faster than people do; the rate limits have their own tests.
FAST = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000",
        "CHAT_REQUEST_RATES": ",".join("%s=10000/10000" % event for event in
                                       ("join", "leave", "rooms", "members"))}


@pytest.fixture(scope="package")
def hosts():
    """Hosts a-h on one bridge, deleted (with anything still running in them) afterwards."""
    why = netns.unavailable()
    if why and os.geteuid() == 0:
        pytest.fail("the multi-host tests cannot run as root here: %s" % why, pytrace=False)
    if why:
        pytest.skip(why)
    made = netns.Hosts().create()
    try:
        yield made
    finally:
        made.destroy()


@pytest.fixture(autouse=True)
def on_the_clients_host(hosts):
    """The test runs in host f (clients), with every link up and no partition."""
    with hosts.inside(netns.PLACES["clients"]):
        try:
            yield
        finally:
            hosts.heal()


@pytest.fixture(scope="module")
def cluster(request, hosts, tmp_path_factory):
    """The pair (broker on a, broker2 on b), node1 + node2 on c, node3 on d, shared by a
    module's tests (each uses its own rooms); CURVE on."""
    c = netns.NetnsCluster(hosts, tmp_path_factory.mktemp("netns-cluster"), env=FAST)
    try:
        c.start_pair()
        c.start_nodes(NODES, timeout=60)
        yield c
    finally:
        c.stop()
    check_logs(c.procs, allowed_log_errors(request.node))


@pytest.fixture
def make_cluster(request, hosts, tmp_path):
    """A fresh cluster on the hosts per test, for tests that stop or break processes."""
    made = []

    def make(env=None, curve=True):
        c = netns.NetnsCluster(hosts, tmp_path / ("cluster%d" % len(made)), env=env, curve=curve)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()
    check_logs([p for c in made for p in c.procs], allowed_log_errors(request.node))
