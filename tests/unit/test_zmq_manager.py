"""chat.engine.manager.ZmqManager: a node applies only the relay nodes really send.

Nodes relay exactly one thing to each other: python-socketio's emit of an
``announcement`` to a room (chat.events._announce).  Whatever reaches a node's
SUB socket -- even a frame the broker should have refused -- it may not close a
room, disconnect a client, or emit anything else to its members.
"""
import json

import pytest

from harness.twins import MemoryBroker
from chatstream import wire

from . import relays
from .link_twin import wait_for
from .test_events import Node as ChatNode

pytestmark = pytest.mark.timeout(20)


class Node(ChatNode):
    """test_events' node (Server, manager, link, handlers over the twin) whose
    pub/sub handlers record what they were asked to do instead of doing it."""

    def __init__(self, broker, name):
        super().__init__(broker, name)
        self.applied = []
        for method in ("emit", "disconnect", "close_room", "enter_room", "leave_room",
                       "callback"):
            setattr(self.manager, "_handle_" + method,
                    lambda message, method=method: self.applied.append((method, message)))


def announcement(room="r", text="ann joined", **changes):
    return relays.announcement(room, text, **changes)


FOREIGN = {
    "close_room": {"method": "close_room", "room": "r", "namespace": "/", "host_id": "h"},
    "disconnect": {"method": "disconnect", "sid": "x", "namespace": "/", "host_id": "h"},
    "enter_room": {"method": "enter_room", "sid": "x", "room": "r", "namespace": "/",
                   "host_id": "h"},
    "leave_room": {"method": "leave_room", "sid": "x", "room": "r", "namespace": "/",
                   "host_id": "h"},
    "callback": {"method": "callback", "host_id": "h", "sid": "x", "namespace": "/", "id": 1,
                 "args": []},
    "fake-message": announcement(event="message", data=[{
        "id": "m", "seq": 999999, "room": "r", "nick": "admin", "text": "x", "ts": 1,
        "node": "n1"}]),
    "no-room": announcement(room=None),
    "bad-room": dict(announcement(), room="a b"),
    "room-mismatch": dict(announcement(), room="s"),
    "skip_sid": announcement(skip_sid="x"),
    "with-callback": announcement(callback=["r", "/", 3]),
    "namespace": announcement(namespace="/admin"),
    "binary": announcement(binary=True),
    "two-args": announcement(data=[{"room": "r", "text": "ann joined", "ts": 1}, "extra"]),
    "free-text": announcement(text="server moved to evil.example"),
    "bad-nick": announcement(text="ad\u202emin left"),
    "extra-key": dict(announcement(), to="r"),
}


@pytest.fixture
def node():
    broker = MemoryBroker()
    node = Node(broker, "n1")
    broker.heartbeat()
    assert node.link.wait_synced(2.0)
    return node


@pytest.mark.parametrize("data", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_relay_other_than_an_announcement_is_dropped(node, data, caplog):
    node.manager.relay(data)
    assert node.applied == []
    assert "relay dropped" in caplog.text


def test_an_announcement_relay_is_applied_at_once_and_its_own_echo_not_again(node):
    node.manager.relay(announcement(text="ann left"))
    [(method, message)] = node.applied           # in the caller (the link's read loop)
    assert method == "emit" and message["data"][0]["text"] == "ann left"
    node.manager.relay(announcement(text="own left", host_id=node.manager.host_id))
    assert len(node.applied) == 1                # applied when it was emitted here


def test_forged_relays_on_the_sub_socket_close_and_disconnect_nothing():
    broker = MemoryBroker()
    a, b = Node(broker, "n1"), Node(broker, "n2")
    broker.heartbeat()
    assert a.link.wait_synced(2.0) and b.link.wait_synced(2.0)
    bob = b.connect()
    assert b.events.on_join(bob, {"room": "r", "nick": "bob"})["ok"]
    # frames straight onto the nodes' SUB queues, as if the broker had let them through
    for data in FOREIGN.values():
        broker._publish(wire.room_topic("r"), wire.encode("relay", topic="r", data=data))
    alice = a.connect()
    assert a.events.on_join(alice, {"room": "r", "nick": "alice"})["ok"]
    # node a's own announcement goes through the real broker and is applied by b
    wait_for(lambda: any(m == "emit" and d["data"][0]["text"] == "alice joined"
                         for m, d in b.applied), what="alice's announcement on b")
    # b's own "bob joined" (applied locally by emit) and a's relay: nothing else
    assert [(m, d["event"], d["data"][0]["text"]) for m, d in b.applied] == [
        ("emit", "announcement", "bob joined"), ("emit", "announcement", "alice joined")]
    assert b.manager.is_connected(bob, "/")
    assert [sid for sid, _ in b.manager.get_participants("/", "r")] == [bob]


def test_relays_reach_members_in_the_order_they_came_with_no_listener_greenlet():
    broker = MemoryBroker()
    node = ChatNode(broker, "n1")
    broker.heartbeat()
    assert node.link.wait_synced(2.0)
    assert node.manager.write_only and getattr(node.manager, "thread", None) is None
    sid = node.connect()
    assert node.events.on_join(sid, {"room": "r", "nick": "bob"})["ok"]
    sent = []
    node.sio.eio.send_packet = lambda eio_sid, pkt: sent.append(pkt.data)
    for i in range(500):
        node.manager.relay(announcement(text="n%d left" % i))
    texts = [json.loads(data[data.index("["):])[1]["text"] for data in sent]
    assert texts == ["n%d left" % i for i in range(500)]
