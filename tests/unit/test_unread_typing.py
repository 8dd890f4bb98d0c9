"""Read positions, unread counts and typing notices on two nodes over the broker's twin."""
import pytest

from chat.protocol.identity import GuestIdentities, Identity

from .link_twin import wait_for
from .test_events import Node, broker  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(20)

ALICE = Identity("a" + "1" * 20, "alice", "s" + "1" * 20, user_id=1)
BOB = Identity("a" + "2" * 20, "bob", "s" + "2" * 20, user_id=2)
COOKIES = {"alice": "sessionid=ka", "bob": "sessionid=kb"}


class Emits:
    """What a node's handlers emitted to single connections and rooms."""

    def __init__(self, node):
        self.sent = []
        node.sio.emit = lambda event, data, to=None, skip_sid=None, **kw: self.sent.append(
            (event, data, to, tuple(skip_sid or ())))

    def of(self, event):
        return [s for s in self.sent if s[0] == event]


def nodes(broker, count=2, **limits):  # noqa: F811
    identities = GuestIdentities(["alice", "bob"], sessions={"ka": ALICE, "kb": BOB})
    made = [Node(broker, "n%d" % (i + 1), identities=identities, **limits) for i in range(count)]
    broker.heartbeat()
    for node in made:
        assert node.link.wait_synced(2.0)
    positions = made[0].events.unread.positions
    for node in made[1:]:
        node.events.unread.positions = positions     # one database
    return made


def connect(node, who=None):
    return node.connect({"HTTP_COOKIE": COOKIES[who]} if who else {})


def send(node, sid, room, texts):
    return [node.events.on_message(sid, {"room": room, "text": t})["seq"] for t in texts]


def test_a_read_moves_forward_only_and_reaches_the_accounts_other_node(broker):  # noqa: F811
    a, b = nodes(broker)
    emits = Emits(b)
    mine, other, bob = connect(a, "alice"), connect(b, "alice"), connect(b, "bob")
    for node, sid in ((a, mine), (b, other), (b, bob)):
        assert node.events.on_join(sid, {"room": "r"})["ok"]
    send(b, bob, "r", ["one", "two", "three"])
    wait_for(lambda: a.link.position("r")[1] == 3)
    assert a.events.unread.on_read(mine, {"room": "r", "seq": 2}) == {"ok": True, "read": 2}
    wait_for(lambda: emits.of("read"))
    assert emits.of("read") == [("read", {"room": "r", "seq": 2}, other, ())]
    assert a.events.unread.on_read(mine, {"room": "r", "seq": 1})["read"] == 2   # never back
    assert a.events.unread.on_read(mine, {"room": "r", "seq": 99})["read"] == 3  # the latest
    wait_for(lambda: len(emits.of("read")) == 2)
    # a third connection on the node that only heard it: the join knows, before any flush
    assert b.events.on_join(connect(b, "alice"), {"room": "r"})["read"] == 3
    a.events.unread.flush()
    assert a.events.unread.positions.rows == {(1, "r"): (a.link.position("r")[0], 3)}


def test_guests_keep_no_read_position(broker):  # noqa: F811
    [a] = nodes(broker, 1)
    guest = connect(a)
    ack = a.events.on_join(guest, {"room": "r", "nick": "gus"})
    assert "read" not in ack
    refused = a.events.unread.on_read(guest, {"room": "r", "seq": 0})
    assert refused["error"] == "forbidden" and "log in" in refused["detail"]
    assert a.events.unread.on_read(connect(a, "alice"), {"room": "r", "seq": 0})["error"] == "not_joined"


def test_unread_leaves_out_ones_own_and_deleted_messages_and_is_capped(broker):  # noqa: F811
    [a] = nodes(broker, 1, unread_max=5)
    alice, bob = connect(a, "alice"), connect(a, "bob")
    for sid in (alice, bob):
        a.events.on_join(sid, {"room": "r"})
    send(a, bob, "r", ["b1", "b2"])
    send(a, alice, "r", ["a1"])
    wait_for(lambda: a.link.active_rooms() == [("r", 2)])
    assert a.events.on_rooms(alice, {})["rooms"] == [{"room": "r", "members": 2, "unread": 2}]
    assert "unread" not in a.events.on_rooms(connect(a), {})["rooms"][0]     # a guest
    # a delete (kind "delete", PROTOCOL.md "Conversation") of one of bob's in the mirror
    history = a.link.mirror.rooms["r"]
    history.append({"seq": 4, "room": "r", "kind": "delete", "target": 1, "uid": BOB.uid,
                    "id": "d", "ts": 1})
    assert a.events.on_rooms(alice, {})["rooms"][0]["unread"] == 1
    send(a, bob, "r", ["more %d" % i for i in range(10)])
    assert a.events.on_rooms(alice, {})["rooms"][0]["unread"] == 6     # "more than 5"


def test_typing_reaches_the_rooms_other_nodes_once_per_interval(broker):  # noqa: F811
    a, b = nodes(broker, typing_interval_ms=60_000)
    emits = Emits(b)
    alice, bob, alice_too = connect(a, "alice"), connect(b, "bob"), connect(b, "alice")
    for node, sid in ((a, alice), (b, bob), (b, alice_too)):
        node.events.on_join(sid, {"room": "r"})
    for _ in range(3):
        assert a.events.typing.on_typing(alice, {"room": "r"}) == {"ok": True}
    wait_for(lambda: emits.of("typing"))
    send(a, alice, "r", ["after"])              # the same path: it comes after the notices
    wait_for(lambda: "after" in b.messages("r"))
    assert emits.of("typing") == [("typing", {"room": "r", "nick": "alice", "uid": ALICE.uid},
                                   "r", (alice_too,))]
    assert a.events.typing.on_typing(alice, {"room": "s"})["error"] == "not_joined"


def test_rooms_counts_the_accounts_own_rooms_first_when_it_cannot_count_all(broker):  # noqa: F811
    [a] = nodes(broker, 1, unread_rooms_max=1)
    alice, bob, carol, dave = connect(a, "alice"), connect(a, "bob"), connect(a), connect(a)
    a.events.on_join(alice, {"room": "mine"})
    for sid, nick in ((bob, None), (carol, "carol"), (dave, "dave")):
        a.events.on_join(sid, {"room": "busy", "nick": nick})   # busier: listed first
    send(a, bob, "busy", ["b"])
    a.events.on_join(bob, {"room": "mine"})
    send(a, bob, "mine", ["m1", "m2"])
    assert a.events.unread.on_read(alice, {"room": "mine", "seq": 1})["read"] == 1
    a.events.unread.flush()
    wait_for(lambda: a.link.active_rooms() == [("busy", 3), ("mine", 2)])
    rooms = {r["room"]: r.get("unread") for r in a.events.on_rooms(alice, {})["rooms"]}
    assert rooms == {"busy": None, "mine": 1}


def test_a_read_waiting_on_the_database_never_moves_a_position_back(broker):  # noqa: F811
    """PostgreSQL lets other greenlets run while a query waits: a read of 2 that waits on
    the database while a read of 3 goes through leaves 3, in memory and in the batch."""
    import gevent

    from chat.protocol.unread import MemoryPositions

    class SlowFirstLoad(MemoryPositions):
        slow = False

        def load(self, user_id, rooms):
            if self.slow:                # the next load waits, once
                self.slow = False
                gevent.sleep(0.2)
            return super().load(user_id, rooms)

    [a] = nodes(broker, 1)
    a.events.unread.positions = SlowFirstLoad()
    alice, bob = connect(a, "alice"), connect(a, "bob")
    for sid in (alice, bob):
        a.events.on_join(sid, {"room": "r"})
    send(a, bob, "r", ["one", "two", "three"])
    a.events.unread.positions.slow = True
    slow = gevent.spawn(a.events.unread.on_read, alice, {"room": "r", "seq": 2})
    gevent.sleep(0.05)
    assert a.events.unread.on_read(alice, {"room": "r", "seq": 3})["read"] == 3
    assert slow.get(timeout=5) == {"ok": True, "read": 3}
    assert a.events.unread.pending[(1, "r")][1] == 3
