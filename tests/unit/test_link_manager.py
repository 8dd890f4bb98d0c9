"""chat.engine.manager.LinkManager: what the broker publishes reaches a node's members
only as the link's own bodies, and an announcement takes the path of every broadcast.

Nodes send each other nothing directly: an announcement goes node -> broker -> every
node following the room (the author's too).  Whatever else reaches a node's SUB
socket -- even a python-socketio pub/sub message, as nodes once relayed -- may not
close a room, disconnect a client, or emit anything to its members.
"""
import json

import pytest

from chatstream import wire
from harness.twins import MemoryBroker

from . import relays
from .link_twin import wait_for
from .test_events import Node

pytestmark = pytest.mark.timeout(20)


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


def live(broker, *names):
    nodes = [Node(broker, name) for name in names]
    broker.heartbeat()
    for node in nodes:
        assert node.link.wait_synced(2.0)
    return nodes


def sent_texts(node):
    """The announcements' texts the node's server sent to its members, in order."""
    return [d["text"] for e, d, r in node.manager.delivered if e == "announcement"]


@pytest.fixture
def member():
    """A node with bob in room r, and the Engine.IO packets its server sends."""
    broker = MemoryBroker()
    node, = live(broker, "n1")
    bob = node.connect()
    assert node.events.on_join(bob, {"room": "r", "nick": "bob"})["ok"]
    wait_for(lambda: sent_texts(node) == ["bob joined"], what="bob's own announcement")
    node.broker, node.bob, node.sent = broker, bob, []
    node.sio.eio.send_packet = lambda eio_sid, pkt: node.sent.append(pkt.data)
    return node


@pytest.mark.parametrize("data", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_pub_sub_message_on_the_sub_socket_reaches_no_member(member, data):
    forged = wire.encode_typed(wire.TYPES | {"relay"}, "relay", {"topic": "r", "data": data})
    member.broker._publish(wire.room_topic("r"), forged)
    member.link.announce("r", "carol joined")  # read after the forged frame, on the same queue
    wait_for(lambda: member.sent, what="the next announcement")
    assert [json.loads(p[p.index("["):])[1]["text"] for p in member.sent] == ["carol joined"]
    assert member.manager.is_connected(member.bob, "/")
    assert [sid for sid, _ in member.manager.get_participants("/", "r")] == [member.bob]


def capture(node):
    """The texts of the announcements the node's server sends its members, as sent."""
    node.sent = []
    node.sio.eio.send_packet = lambda eio_sid, pkt: node.sent.append(pkt.data)
    return lambda: [json.loads(p[p.index("["):])[1]["text"] for p in node.sent if "announcement" in p]


def test_an_announcement_is_heard_once_on_every_node_the_author_s_from_the_broker():
    a, b = live(MemoryBroker(), "n1", "n2")
    heard_a, heard_b = capture(a), capture(b)
    bob = b.connect()
    assert b.events.on_join(bob, {"room": "r", "nick": "bob"})["ok"]
    alice = a.connect()
    assert a.events.on_join(alice, {"room": "r", "nick": "alice"})["ok"]
    assert heard_a() == []                     # nothing emitted before the broker's answer
    wait_for(lambda: heard_a() == ["alice joined"] and heard_b() == ["bob joined", "alice joined"],
             what="alice's announcement on both nodes")
    assert a.events.on_leave(alice, {"room": "r"})["ok"]
    wait_for(lambda: heard_b()[-1:] == ["alice left"], what="alice's departure on b")
    assert heard_a() == ["alice joined"]       # alice left the room before it came back
    assert [sorted(d) for e, d, r in b.manager.delivered if e == "announcement"] == [
        ["room", "text", "ts"]] * 3


def test_announcements_reach_members_in_the_broker_s_order_with_no_listener_greenlet(member):
    assert getattr(member.manager, "thread", None) is None
    for i in range(500):
        member.link.announce("r", "n%d left" % i)
    wait_for(lambda: len(member.sent) == 500, what="500 announcements")
    texts = [json.loads(data[data.index("["):])[1]["text"] for data in member.sent]
    assert texts == ["n%d left" % i for i in range(500)]


def test_the_manager_publishes_nothing_an_emit_reaches_local_members_only(member):
    member.sio.emit("announcement", {"room": "r", "text": "local", "ts": 1}, room="r")
    assert len(member.sent) == 1
    assert not any(channel == "intake" and b'"announcement"' in body
                   for channel, body in member.broker.frames_seen)
