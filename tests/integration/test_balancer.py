"""The same contract through the real HAProxy balancer (deploy/haproxy.cfg)."""
import collections

import pytest
import requests

from harness.client import new_room
from harness.processes import wait_until

NODES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def balanced(cluster):
    cluster.start_balancer()
    return cluster


@pytest.mark.parametrize("transports", [("websocket",), ("polling",), ("polling", "websocket")],
                         ids=["websocket", "long-polling", "polling-then-upgrade"])
def test_clients_through_the_balancer_spread_over_nodes_and_chat(balanced, client, transports):
    room = new_room()
    clients = [client(balanced.balancer_url, name="b%d" % i, transports=transports) for i in range(6)]
    for c in clients:
        c.join(room)
    for i in range(5):
        for c in clients:
            assert c.send(room, "%s %d" % (c.name, i))["ok"]
    views = [c.wait_messages(room, 30) for c in clients]
    keys = [[(m["seq"], m["id"]) for m in v] for v in views]
    assert all(k == keys[0] for k in keys)
    assert [s for s, _ in keys[0]] == list(range(1, 31))
    # the six connections landed on all three nodes (the node field
    # names the author's node)
    per_node = collections.Counter(m["node"] for m in views[0])
    assert set(per_node) == set(NODES), per_node


def test_long_polling_session_sticks_to_its_node(balanced, client):
    room = new_room()
    c = client(balanced.balancer_url, name="poller", transports=("polling",))
    c.join(room)
    nodes = set()
    for i in range(30):   # each ack is a fresh POST + GET pair through the balancer
        assert c.send(room, "p%d" % i)["ok"]
    for m in c.wait_messages(room, 30):
        nodes.add(m["node"])
    assert len(nodes) == 1, nodes
    assert [m["seq"] for m in c.wait_messages(room, 30)] == list(range(1, 31))


def test_balancer_health_checks_and_pages(balanced):
    r = requests.get(balanced.balancer_url + "/healthz", timeout=5)
    assert r.status_code == 200 and r.json()["node"] in NODES
    seen = {requests.get(balanced.balancer_url + "/healthz", timeout=5).json()["node"] for _ in range(9)}
    assert seen == set(NODES)
    assert requests.get(balanced.balancer_url + "/r/lobby/", timeout=5).status_code == 200


def test_balancer_stops_sending_to_a_node_that_fails_its_health_check(make_cluster):
    c = make_cluster()
    c.start_broker()
    for name in NODES:
        c.start_node(name)
    c.start_balancer()
    c.nodes["node2"][0].stop()
    def answered_by():
        r = requests.get(c.balancer_url + "/healthz", timeout=5)
        assert r.status_code == 200, r.text   # redispatch: never an error page
        return r.json()["node"]
    wait_until(lambda: all(answered_by() != "node2" for _ in range(6)), 15, "the balancer to drop node2")
    assert {answered_by() for _ in range(6)} == {"node1", "node3"}
