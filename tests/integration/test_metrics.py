"""Prometheus metrics: /metrics on every node and on the broker's metrics port
move with traffic, carry no per-room or per-user label, and JSON logs are one
object per line."""
import json

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.client import new_room
from harness.processes import wait_until

from .traffic import send_across


def _samples(url):
    """{(name, labels as sorted tuple): value} of one /metrics page."""
    text = requests.get(url + "/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_move_with_traffic_on_nodes_and_broker(cluster, client):
    room, a, _ = send_across(cluster, client, 3)
    a.sio.emit("message", {"room": "not-" + room, "text": "x"})   # refused: not_joined

    node1 = _samples(cluster.url("node1"))
    assert node1[("chat_messages_accepted_total", ())] >= 3
    assert node1[("chat_ack_seconds_count", ())] >= 3
    assert node1[("chat_connections", (("transport", "websocket"),))] >= 1
    assert node1[("chat_rooms_local", ())] >= 1
    assert node1[("chat_link_up", ())] == 1
    assert node1[("chat_link_state", (("state", "live"),))] == 1
    assert 0 <= node1[("chat_heartbeat_age_seconds", ())] < 5
    wait_until(lambda: _samples(cluster.url("node1")).get(
        ("chat_messages_refused_total", (("error", "not_joined"),))) == 1, 5, "refusal counted")
    # every message reached both members: node2 counts its own deliveries too
    assert _samples(cluster.url("node2"))[("chat_deliveries_total", ())] >= 3

    broker = _samples(cluster.broker_metrics_url)
    assert broker[("chat_broker_messages_sequenced_total", ())] >= 3
    assert broker[("chat_broker_nodes", ())] == 3
    assert broker[("chat_broker_rooms_in_memory", ())] >= 1
    assert broker[("chat_broker_commit_seconds_count", ())] >= 1
    assert broker[("chat_broker_batch_messages_count", ())] >= 1
    assert broker[("chat_broker_role", (("role", "primary"),))] == 1

    labels = {k for (_, labels) in list(node1) + list(broker) for k, _ in labels}
    assert labels <= {"transport", "error", "event", "state", "role", "le", "generation"}, labels


def test_a_resent_cid_counts_as_a_broker_duplicate(cluster, client):
    room = new_room()
    a = client(cluster.url("node3"), name="a")
    a.join(room, "ann")
    before = _samples(cluster.broker_metrics_url).get(("chat_broker_duplicates_total", ()), 0)
    a.send(room, "once", cid="cid-dup-1")
    a.send(room, "once", cid="cid-dup-1")
    assert _samples(cluster.broker_metrics_url)[("chat_broker_duplicates_total", ())] == before + 1


def test_json_logs_are_one_object_per_line(make_cluster, client):
    c = make_cluster({"CHAT_LOG_FORMAT": "json"})
    c.start_broker()
    c.start_node("node1")
    room = new_room()
    a = client(c.url("node1"), name="a")
    a.join(room, "ann")
    a.send(room, "hi")
    records = {}
    for name in ("broker", "node1"):
        lines = [line for line in c.logs()[name].splitlines() if line.strip()]
        assert lines, name
        for line in lines:
            try:
                records.setdefault(name, []).append(json.loads(line))
            except ValueError:
                raise AssertionError("%s logged a line that is not JSON: %r" % (name, line)) from None
        for record in records[name]:
            assert {"time", "level", "process", "message"} <= set(record), record
        assert any(record["process"] == name for record in records[name])
    assert all(record["node"] == "node1" for record in records["node1"])
