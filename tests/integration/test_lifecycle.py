"""Nodes and the broker starting, stopping and failing; limits; the real balancer."""
import signal
import time

import requests

from harness.client import new_room
from harness.cluster import two_nodes_one_room
from harness.processes import wait_until

FAST = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"}


def _three_nodes(make_cluster, env=None):
    c = make_cluster(dict(FAST, **(env or {})))
    c.start_broker()
    for name in ("node1", "node2", "node3"):
        c.start_node(name)
    return c


def test_node_started_after_the_messages_serves_the_same_history(make_cluster, client):
    c = make_cluster(FAST)
    c.start_broker()
    c.start_node("node1")
    room, quiet_room = new_room(), new_room()
    a = client(c.url("node1"), name="a")
    a.join(room)
    a.join(quiet_room)
    for i in range(30):
        assert a.send(room, "m%d" % i)["ok"]
    assert a.send(quiet_room, "only one")["ok"]
    live = a.wait_messages(room, 30)
    c.start_node("node4")
    late = client(c.url("node4"), name="late")
    ack = late.join(room)
    assert (ack["seq"], ack["gap"], ack["history"]) == (30, False, live)
    assert [m["text"] for m in late.join(quiet_room)["history"]] == ["only one"]
    # and it is live: a message sent through node1 reaches node4's client
    a.send(room, "after the late start")
    assert late.wait_messages(room, 1)[0]["seq"] == 31


def test_node_restart_keeps_other_nodes_chatting_and_serves_the_same_history(make_cluster, client):
    c = _three_nodes(make_cluster)
    room = new_room()
    c1, c2, c3 = (client(c.url(n), name="u%d" % i) for i, n in enumerate(("node1", "node2", "node3"), 1))
    for x in (c1, c2, c3):
        x.join(room)
    for i in range(10):
        c3.send(room, "before %d" % i)
    c1.wait_messages(room, 10)
    proc, port = c.nodes["node3"]
    proc.stop()                                   # SIGTERM, like supervisorctl restart
    for i in range(10):                           # the others keep chatting meanwhile
        assert c1.send(room, "during %d" % i)["ok"]
        assert c2.send(room, "during too %d" % i)["ok"]
    c2.wait_messages(room, 30)
    c.start_node("node3", port=port)
    back = client(c.url("node3"), name="back")
    ack = back.join(room)
    assert ack["history"] == c1.wait_messages(room, 30) == c2.wait_messages(room, 30)
    assert c1.send(room, "after")["ok"]
    assert back.wait_messages(room, 1)[0]["seq"] == 31


def test_rate_limit_refuses_then_recovers(make_cluster, client):
    c = make_cluster({"CHAT_RATE_PER_S": "5", "CHAT_RATE_BURST": "3"})
    c.start_broker()
    c.start_node("node1")
    room = new_room()
    a = client(c.url("node1"))
    a.join(room)
    acks = [a.send(room, "m%d" % i) for i in range(4)]
    assert [x["ok"] for x in acks[:3]] == [True, True, True]
    assert acks[3]["ok"] is False and acks[3]["error"] == "rate_limited" and acks[3]["detail"]
    # the connection stays usable: join works at once, messages again after a refill
    assert a.call("join", {"room": room, "nick": "again"})["ok"]
    ok = wait_until(lambda: a.send(room, "after")["ok"], 5, "a token to refill")
    assert ok
    assert [m["text"] for m in a.wait_messages(room, 4)] == ["m0", "m1", "m2", "after"]


def _broker_outage(make_cluster, client, env):
    """Two nodes, a client on each in one room, one message; then kill -9 the broker."""
    c, room, a, b = two_nodes_one_room(make_cluster, client, dict(FAST, CHAT_ACK_TIMEOUT_MS="2000", **env))
    epoch = a.join(room)["epoch"]
    assert a.send(room, "before")["ok"]
    b.wait_messages(room, 1)
    c.broker.kill()
    for name in ("node1", "node2"):
        wait_until(lambda: c.health(c.url(name)) == 503, 10, "%s /healthz 503" % name)
    body = requests.get(c.url("node1") + "/healthz", timeout=5).json()
    assert body == {"ok": False, "node": "node1", "broker": "down"}
    t0 = time.monotonic()
    ack = a.send(room, "while down", cid="down-1")
    assert ack["ok"] is False and ack["error"] == "unavailable", ack
    assert time.monotonic() - t0 < 1.5      # nothing is queued for a broker that is gone
    c.start_broker()
    for name in ("node1", "node2"):
        c.wait_healthy(name)
    return c, room, epoch, a, b


def test_broker_killed_and_restarted_keeps_epoch_history_and_clients(make_cluster, client):
    c, room, epoch, a, b = _broker_outage(make_cluster, client, {})
    assert a.sio.connected and b.sio.connected          # same stream: nobody had to start over
    retry = a.send(room, "while down", cid="down-1")
    assert retry["ok"] and retry["seq"] == 2
    assert [(m["seq"], m["text"]) for m in b.wait_messages(room, 2)] == [(1, "before"), (2, "while down")]
    resumed = client(c.url("node2"), name="r").join(room, since=1, epoch=epoch)
    assert (resumed["epoch"], resumed["gap"]) == (epoch, False)
    assert [m["text"] for m in resumed["history"]] == ["while down"]


def test_memory_only_broker_restart_starts_a_new_epoch_and_clients_hear_gap(make_cluster, client):
    c, room, epoch, a, b = _broker_outage(make_cluster, client, {"CHAT_BROKER_STATE": "memory"})
    # The nodes cannot continue the room's stream: they disconnect its members,
    # who resume with since + epoch and hear gap.
    for old in (a, b):
        wait_until(lambda: not old.sio.connected, 10, "%s disconnected by its node" % old.name)
    a = client(c.url("node1"), name="a")
    resumed_a = a.call("join", {"room": room, "nick": "a", "since": 1, "epoch": epoch})
    assert resumed_a["ok"] and resumed_a["gap"] is True and resumed_a["epoch"] != epoch
    assert resumed_a["history"] == []
    retry = a.send(room, "while down", cid="down-1")
    assert retry["ok"] and retry["seq"] == 1
    b = client(c.url("node2"), name="b")
    resumed = b.call("join", {"room": room, "nick": "b", "since": 1, "epoch": epoch})
    assert resumed["ok"] and resumed["gap"] is True and resumed["epoch"] == resumed_a["epoch"]
    assert [m["text"] for m in resumed["history"]] == ["while down"]


def test_hung_broker_times_out_and_a_retry_with_the_same_cid_delivers_once(make_cluster, client):
    c, room, a, b = two_nodes_one_room(make_cluster, client, dict(FAST, CHAT_ACK_TIMEOUT_MS="1500"))
    c.broker.signal(signal.SIGSTOP)
    try:
        ack = a.send(room, "stuck", cid="stuck-1")
        assert ack["ok"] is False and ack["error"] == "unavailable"
    finally:
        c.broker.signal(signal.SIGCONT)
    for name in ("node1", "node2"):
        c.wait_healthy(name)
    retry = a.send(room, "stuck", cid="stuck-1")
    assert retry["ok"] and retry["seq"] == 1
    a.send(room, "next")
    assert [(m["seq"], m["text"]) for m in b.wait_messages(room, 2)] == [(1, "stuck"), (2, "next")]
