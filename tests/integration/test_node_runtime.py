"""Nodes join and leave a running balancer through its runtime API (deploy/balancer.py),
and "ready" means every node is UP in HAProxy (scripts/run): real HAProxy, real nodes."""
import collections
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from broker import keys
from deploy import balancer
from harness.client import new_room
from harness.processes import free_port, wait_until

from .supervised import SupervisedCluster

NODES = ("node1", "node2", "node3")


@pytest.fixture
def stats_socket():
    # A unix socket path has at most 107 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="chat-hap") as folder:
        yield Path(folder) / "haproxy.sock"


@pytest.fixture
def balanced(make_cluster, stats_socket):
    c = make_cluster({"BALANCER_STATS_SOCKET": str(stats_socket),
                      "CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"})
    c.start_broker()
    c.start_nodes(NODES)
    c.start_balancer()
    balancer.wait_all_up(stats_socket, timeout=20)
    return c


def _node_of(client, room):
    return client.join(room)["node"]


def test_a_node_added_at_runtime_gets_new_connections_and_an_existing_client_keeps_chatting(
        balanced, client, stats_socket):
    room = new_room()
    old = client(balanced.balancer_url, name="old")
    _node_of(old, room)
    balancer_pid = balanced.balancer.pid
    balanced.start_node("node4")
    up = balancer.add_server(stats_socket, "node4", "127.0.0.1:%d" % balanced.nodes["node4"][1],
                             timeout=20)
    assert up == dict.fromkeys(NODES + ("node4",), "UP")
    newcomers = [client(balanced.balancer_url, name="new%d" % i) for i in range(8)]
    landed = collections.Counter(_node_of(c, room) for c in newcomers)
    assert landed["node4"] >= 1, landed
    assert old.send(room, "still here")["ok"]
    assert [m["text"] for m in old.wait_messages(room, 1)] == ["still here"]
    assert old.sio.connected and balanced.balancer.pid == balancer_pid and balanced.balancer.alive()


def test_removing_a_node_disconnects_only_its_clients_and_it_gets_no_new_ones(
        balanced, client, stats_socket):
    balanced.start_node("node4")
    balancer.add_server(stats_socket, "node4", "127.0.0.1:%d" % balanced.nodes["node4"][1], timeout=20)
    room = new_room()
    clients = [client(balanced.balancer_url, name="c%d" % i) for i in range(8)]
    on = {c.name: _node_of(c, room) for c in clients}
    assert "node4" in on.values(), on
    node4_proc = balanced.nodes["node4"][0]
    balancer.remove_server(stats_socket, "node4", stop=node4_proc.stop)
    assert "node4" not in balancer.statuses(stats_socket)
    wait_until(lambda: all(not c.sio.connected for c in clients if on[c.name] == "node4"), 10,
               "node4's clients disconnected")
    stayed = [c for c in clients if on[c.name] != "node4"]
    assert all(c.sio.connected for c in stayed)
    assert stayed[0].send(room, "after removal")["ok"]
    for c in stayed:
        assert [m["text"] for m in c.wait_messages(room, 1)] == ["after removal"]
    later = [client(balanced.balancer_url, name="later%d" % i) for i in range(6)]
    assert {_node_of(c, room) for c in later} == set(NODES)


def test_ready_waits_until_late_nodes_are_up_and_the_first_30_connections_reach_all_three(
        make_cluster, client, stats_socket):
    c = make_cluster({"BALANCER_STATS_SOCKET": str(stats_socket)})
    c.start_broker()
    ports = {name: free_port() for name in NODES}
    c.nodes = {name: (None, port) for name, port in ports.items()}   # addresses only, for now
    ready = {}
    waiter = threading.Thread(target=lambda: ready.update(
        up=balancer.wait_all_up(stats_socket, timeout=60), at=time.monotonic()))
    # start_balancer returns once a node answers through it: in a thread as well
    starting = threading.Thread(target=c.start_balancer)
    starting.start()
    waiter.start()
    # the balancer up and every node's health check failing: none may count as ready yet
    balancer.wait_until(stats_socket, lambda seen: sorted(seen) == sorted(NODES) and
                        all(status == "DOWN" for status in seen.values()), "every node DOWN", timeout=30)
    assert not ready, "ready before any node started: %s" % ready
    started = time.monotonic()
    for name in NODES:
        c.start_node(name, port=ports[name], wait=False)
    waiter.join(60)
    starting.join(30)
    assert ready["up"] == dict.fromkeys(NODES, "UP") and ready["at"] > started
    room = new_room()
    landed = collections.Counter(
        _node_of(client(c.balancer_url, name="first%d" % i), room) for i in range(30))
    assert set(landed) == set(NODES), landed


def test_scripts_node_adds_and_removes_a_supervisor_program_and_its_server(tmp_path, client):
    """scripts/node against supervisord.conf itself (relocated to free ports), as a user runs it."""
    cluster = SupervisedCluster(tmp_path)
    # CURVE with a key per node and the archiver's, as scripts/run makes them
    keys.init(cluster.var / "keys", nodes=("node1", "node2", "node3", "archiver"))
    cluster.start()
    var, url = cluster.var, cluster.url

    def run(*args):
        return subprocess.run(cluster.node_command(*args), env=cluster.env, capture_output=True,
                              text=True, timeout=120)

    try:
        ready = run("ready")
        assert ready.returncode == 0, ready.stderr
        room = new_room()
        old = client(url, name="old")
        old.join(room)
        port = free_port()
        added = run("add", "node4", "--port", str(port))
        assert added.returncode == 0, added.stdout + added.stderr
        assert (var / "nodes" / "node4.conf").exists()
        # node4's own key, authorised for its name: the broker admitted it unsignalled (UP)
        assert (var / "keys/authorized_nodes/node4.key").read_bytes() == (
            var / "keys/nodes/node4.key").read_bytes()
        assert "made %s" % (var / "keys/nodes/node4.key_secret") in added.stdout
        landed = {client(url, name="n%d" % i).join(room)["node"] for i in range(8)}
        assert "node4" in landed, landed
        assert old.sio.connected and old.send(room, "after the add")["ok"]
        # the balancer restarts (as with the whole cluster) knowing only its static servers:
        # `ready` (what scripts/run waits on) puts the node added earlier back
        restarted = cluster.ctl("restart", "balancer")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        again = run("ready")
        assert again.returncode == 0 and "node4 (added earlier" in again.stdout, again.stderr
        assert balancer.statuses(var / "haproxy.sock").get("node4") == "UP"
        # the restart cut every proxied connection: one more client, on a node that stays
        old = next(c for c in (client(url, name="old%d" % i) for i in range(6))
                   if c.join(room)["node"] != "node4")
        removed = run("remove", "node4")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert not (var / "nodes" / "node4.conf").exists()
        assert "node4" not in balancer.statuses(var / "haproxy.sock")
        assert old.sio.connected and old.send(room, "still here")["ok"]
    finally:
        cluster.stop(timeout=30)


@pytest.mark.timeout(180)
def test_a_node_added_and_removed_under_a_stream_loses_nothing_and_disconnects_nobody(
        balanced, stats_socket):
    """The contract's figures for docs/FAULTS.md: a sender on each node, node4 added and
    taken out at runtime (what scripts/node does through HAProxy's runtime API)."""
    from tests.integration.test_failover import Sender, _more, check_stream, record
    room = new_room()
    senders = [Sender(balanced.url(name), room, name) for name in NODES]
    for s in senders:
        s.thread.start()
    wait_until(lambda: all(len(s.acked) >= 20 for s in senders), 30, "a steady stream")
    began = time.monotonic()
    balanced.start_node("node4")
    balancer.add_server(stats_socket, "node4", "127.0.0.1:%d" % balanced.nodes["node4"][1],
                        timeout=20)
    newcomer = Sender(balanced.url("node4"), room, "node4")
    newcomer.thread.start()
    _more(senders + [newcomer], 20, "the stream with node4 in it")
    newcomer.stop.set()
    newcomer.thread.join(15)
    newcomer.client.close()
    balancer.remove_server(stats_socket, "node4", stop=balanced.nodes["node4"][0].stop)
    assert "node4" not in balancer.statuses(stats_socket)
    _more(senders, 20, "the stream after node4 left")
    times = sorted(t for s in senders for _, t in s.acked.values() if t >= began)
    pause_s = max(b - a for a, b in zip(times, times[1:]))
    total = check_stream(senders, room)                 # nobody disconnected, exactly once
    record({"fault": "node4 added at runtime, then taken out (balancer runtime API)",
            "acked": total + len(newcomer.acked), "longest_ack_pause_s": round(pause_s, 2),
            "disconnects": 0, "same_epoch": True})
    for s in senders:
        s.client.close()
    assert pause_s < 5.0
