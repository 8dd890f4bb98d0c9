"""The balancer counts open connections (``balance leastconn``): new sessions after a
node restart spread over every node, the restarted one included, and a long-polling
session still sticks to its node.  Real HAProxy on deploy/haproxy.cfg, real nodes."""
import collections
import tempfile
from pathlib import Path

import pytest

from deploy import balancer
from harness.client import new_room

NODES = ("node1", "node2", "node3")
TRANSPORTS = ("polling", "websocket")   # what a browser does: polling first, then upgrade


@pytest.fixture
def stats_socket():
    # A unix socket path has at most 107 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="chat-hap") as folder:
        yield Path(folder) / "haproxy.sock"


def _landed(client, url, room, names, transports=TRANSPORTS):
    """{node: how many} of new clients ``names`` that joined ``room`` through ``url``."""
    return collections.Counter(client(url, name=n, transports=transports).join(room)["node"]
                               for n in names)


@pytest.mark.timeout(180)
def test_thirty_new_connections_after_a_node_restart_spread_over_every_node(
        make_cluster, client, stats_socket):
    c = make_cluster({"BALANCER_STATS_SOCKET": str(stats_socket),
                      "CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000",
                      "CHAT_REQUEST_RATES": "join=10000/10000"})
    c.start_broker()
    c.start_nodes(NODES)
    c.start_balancer()
    balancer.wait_all_up(stats_socket, timeout=20)
    room = new_room()
    before = _landed(client, c.balancer_url, room, ["old%d" % i for i in range(9)])
    assert set(before) == set(NODES), before
    proc, port = c.nodes["node3"]
    proc.stop()
    c.start_node("node3", port=port)
    balancer.wait_all_up(stats_socket, timeout=20)
    after = _landed(client, c.balancer_url, room, ["new%d" % i for i in range(30)])
    # node3 lost its sessions, so it takes new ones first until the open sessions are
    # even (round robin deals the new ones out evenly and node3 stays behind)
    assert set(after) == set(NODES) and sum(after.values()) == 30, after
    assert after["node3"] > max(after["node1"], after["node2"]), after
    open_now = {name: after[name] + (0 if name == "node3" else before[name]) for name in NODES}
    assert max(open_now.values()) - min(open_now.values()) <= 2, open_now


def test_a_long_polling_session_sticks_to_its_node_under_leastconn(make_cluster, client):
    c = make_cluster({"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"})
    c.start_broker()
    c.start_nodes(NODES)
    c.start_balancer()
    room = new_room()
    # other sessions open meanwhile, so the least loaded node keeps changing
    others = [client(c.balancer_url, name="o%d" % i) for i in range(4)]
    poller = client(c.balancer_url, name="poller", transports=("polling",))
    node = poller.join(room)["node"]
    for i in range(20):     # each ack is a fresh POST + GET pair through the balancer
        assert poller.send(room, "p%d" % i)["ok"]
        if i < len(others):
            others[i].join(room)
    received = poller.wait_messages(room, 20)
    assert {m["node"] for m in received} == {node}
    assert [m["seq"] for m in received] == list(range(1, 21))
