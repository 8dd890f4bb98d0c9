"""The chat's event handlers on a real python-socketio Server over the link's twin."""
import itertools

import gevent
import pytest
import socketio
from socketio import exceptions as sio_exceptions

from chat.protocol.events import ChatEvents, Limits
from chatstream import config
from chat.link import BrokerLink
from harness.twins import MemoryBroker
from chat.engine.limit import ConnectionLimit
from chat.engine.manager import LinkManager

from .link_twin import wait_for

pytestmark = pytest.mark.timeout(20)

_eio_sids = itertools.count(1)


class RecordingManager(LinkManager):
    """Keeps what the link delivered to local members."""

    def __init__(self, link):
        super().__init__(link)
        self.delivered = []

    def deliver(self, event, data, room):
        self.delivered.append((event, data, room))
        super().deliver(event, data, room)


class Node:
    """One node: Server, manager, link and handlers, without sockets."""

    def __init__(self, broker, name, sync=True, identities=None, max_connections=None, **limits):
        self.link = BrokerLink(broker.transport(), node=name, ack_timeout_s=0.3,
                               heartbeat_ms=50, dead_after_ms=1000)
        # tests poll members and rooms: no request limit unless the test sets one
        limits.setdefault("request_rates", {e: (1e6, 10**6) for e in config.REQUEST_RATES})
        self.manager = RecordingManager(self.link)
        self.sio = socketio.Server(async_mode="gevent", client_manager=self.manager)
        # no Engine.IO sessions here: the Socket.IO connections are all the limit counts
        limit = ConnectionLimit(lambda: 0, max_connections)
        self.events = ChatEvents(self.sio, self.link, limits=Limits(**limits), sync_timeout_s=0.3,
                                 identities=identities, connection_limit=limit)
        self.manager.end_session = self.events.end_session   # as chat/assembly.py does
        self.manager.evict_uid = self.events.evictions.evict
        self.manager.after_resync = self.events.evictions.resynced
        self.sio.manager_initialized = True
        self.manager.initialize()

    def connect(self, environ=None):
        sid = self.manager.connect("eio%d" % next(_eio_sids), "/")
        self.events.on_connect(sid, environ or {})
        return sid

    def messages(self, room):
        return [d["text"] for e, d, r in self.manager.delivered if e == "message" and r == room]


@pytest.fixture
def broker():
    return MemoryBroker()


def live_nodes(broker, count=2, **limits):
    nodes = [Node(broker, "n%d" % (i + 1), **limits) for i in range(count)]
    broker.heartbeat()
    for node in nodes:
        assert node.link.wait_synced(2.0)
    return nodes


def test_a_join_answers_from_the_mirror_and_a_message_reaches_every_node(broker):
    a, b = live_nodes(broker)
    alice, bob = a.connect(), b.connect()
    ack = a.events.on_join(alice, {"room": "r", "nick": "alice"})
    assert ack.pop("uid")[0] == "c"         # a guest without a session
    assert ack == {"ok": True, "room": "r", "nick": "alice", "node": "n1", "moderator": False,
                   "epoch": broker.sequencer.epoch, "seq": 0, "history": [], "gap": False}
    assert a.events.on_message(alice, {"room": "r", "text": "hi"})["seq"] == 1
    ack = b.events.on_join(bob, {"room": "r", "nick": "bob"})
    assert [m["text"] for m in ack["history"]] == ["hi"] and ack["seq"] == 1
    assert b.events.on_message(bob, {"room": "r", "text": "hello", "cid": "c-1"})["seq"] == 2
    wait_for(lambda: a.messages("r") == ["hi", "hello"] and b.messages("r") == ["hello"],
             what="both nodes to deliver in seq order")


def test_a_resume_gets_what_it_missed_or_a_gap(broker):
    a, = live_nodes(broker, 1)
    sid = a.connect()
    a.events.on_join(sid, {"room": "r", "nick": "alice"})
    for i in range(3):
        a.events.on_message(sid, {"room": "r", "text": "m%d" % i})
    epoch = broker.sequencer.epoch
    ack = a.events.on_join(a.connect(), {"room": "r", "nick": "bob", "since": 1, "epoch": epoch})
    assert [m["seq"] for m in ack["history"]] == [2, 3] and not ack["gap"]
    ack = a.events.on_join(a.connect(), {"room": "r", "nick": "eve", "since": 1, "epoch": "other"})
    assert ack["gap"] and [m["seq"] for m in ack["history"]] == [1, 2, 3]


def test_refusals_follow_the_contract(broker):
    a, = live_nodes(broker, 1, rate_per_s=0.001, rate_burst=2, max_rooms=1)
    sid = a.connect()
    assert a.events.on_message(sid, {"room": "r", "text": "x"})["error"] == "not_joined"
    a.events.on_join(sid, {"room": "r", "nick": "alice"})
    assert a.events.on_join(sid, {"room": "s", "nick": "alice"})["error"] == "too_many_rooms"
    assert a.events.on_message(sid, {"room": "r", "text": "1"})["ok"]
    assert a.events.on_message(sid, {"room": "r", "text": "2"})["ok"]
    assert a.events.on_message(sid, {"room": "r", "text": "3"})["error"] == "rate_limited"
    assert a.events.on_leave(sid, {"room": "s"})["error"] == "not_joined"
    assert a.events.on_join(sid, {"room": "bad room!", "nick": "x"})["error"] == "invalid_room"


def test_join_leave_rooms_and_members_each_have_their_own_bucket(broker):
    a, = live_nodes(broker, 1, request_rates={"join": (0.001, 2), "leave": (0.001, 1),
                                              "rooms": (0.001, 1), "members": (0.001, 1)})
    sid = a.connect()
    assert a.events.on_join(sid, {"room": "r", "nick": "alice"})["ok"]
    assert a.events.on_join(sid, {"room": "s", "nick": "alice"})["ok"]
    refused = a.events.on_join(sid, {"room": "t", "nick": "alice"})
    assert refused["error"] == "rate_limited" and "join requests/s (burst 2)" in refused["detail"]
    assert a.events.on_leave(sid, {"room": "r"})["ok"]
    assert a.events.on_leave(sid, {"room": "s"})["error"] == "rate_limited"
    for ask, payload in ((a.events.on_rooms, {}), (a.events.on_members, {"room": "s"})):
        assert ask(sid, payload)["ok"]
        assert ask(sid, payload)["error"] == "rate_limited"
    assert a.events.on_message(sid, {"room": "s", "text": "still fine"})["ok"]
    assert a.events.on_rooms(a.connect(), {})["ok"]           # per connection


def test_a_node_full_of_connections_refuses_the_next(broker):
    a, = live_nodes(broker, 1, max_connections=1)
    a.connect()
    with pytest.raises(sio_exceptions.ConnectionRefusedError):
        a.connect()


def test_without_the_broker_joins_and_messages_are_unavailable(broker):
    a = Node(broker, "n1")                     # no heartbeat yet: never synced
    sid = a.connect()
    ack = a.events.on_join(sid, {"room": "r", "nick": "alice"})
    assert ack["error"] == "unavailable"
    broker.heartbeat()
    assert a.link.wait_synced(2.0)
    assert a.events.on_join(sid, {"room": "r", "nick": "alice"})["ok"]
    broker.answering = False                   # a hung broker
    ack = a.events.on_message(sid, {"room": "r", "text": "hi", "cid": "c1"})
    assert ack["error"] == "unavailable" and "same cid" in ack["detail"]
    assert a.events.on_join(sid, {"room": "new", "nick": "alice"})["error"] == "unavailable"
    assert a.link.following.get("new") is None


def test_members_and_rooms_span_nodes_and_a_disconnect_leaves(broker):
    a, b = live_nodes(broker)
    alice, bob = a.connect(), b.connect()
    a.events.on_join(alice, {"room": "r", "nick": "alice"})
    assert a.events.on_members(alice, {"room": "r"})["members"] == ["alice"]
    b.events.on_join(bob, {"room": "r", "nick": "bob"})
    wait_for(lambda: a.events.on_members(alice, {"room": "r"})["members"] == ["alice", "bob"])
    assert a.events.on_rooms(alice) == {"ok": True, "rooms": [{"room": "r", "members": 2}]}
    b.events.on_disconnect(bob)
    wait_for(lambda: a.link.members("r") == ["alice"])
    assert list(b.link.following.idle) == ["r"]  # b has no member left in r: grace period


def test_a_rejoin_with_another_nick_replaces_it(broker):
    a, = live_nodes(broker, 1)
    sid = a.connect()
    a.events.on_join(sid, {"room": "r", "nick": "alice"})
    a.events.on_join(sid, {"room": "r", "nick": "alicia"})
    wait_for(lambda: a.link.members("r") == ["alicia"])
    assert a.link.following.is_live("r")


def test_a_join_whose_connection_closed_during_the_fetch_releases_the_room(broker):
    a, = live_nodes(broker, 1)
    sid = a.connect()
    broker.hold_replies("snapshot")
    join = gevent.spawn(a.events.on_join, sid, {"room": "r", "nick": "alice"})
    wait_for(lambda: broker.held, what="the room's fetch")
    a.events.on_disconnect(sid)
    broker.release_replies()
    assert join.get(timeout=2)["error"] == "not_joined"
    assert a.link.following.get("r") is None
    assert broker.presence.members("r") == []


def test_a_logout_ends_that_sessions_connections_on_every_node_and_no_others(broker):
    from chat.protocol.identity import GuestIdentities, Identity
    alice = Identity("a" + "1" * 20, "alice", session="s" + "1" * 20)
    sessions = {"alice-1": alice,
                "alice-2": Identity(alice.uid, "alice", session="s" + "2" * 20),
                "bert-1": Identity("a" + "3" * 20, "bert", session="s" + "3" * 20)}
    nodes = [Node(broker, "n%d" % i, identities=GuestIdentities(sessions=sessions)) for i in (1, 2)]
    broker.heartbeat()
    for node in nodes:
        assert node.link.wait_synced(2.0)

    def connect(node, cookie=None):
        return node.connect({"HTTP_COOKIE": "sessionid=%s" % cookie} if cookie else {})
    ending = [connect(node, "alice-1") for node in nodes]
    staying = [connect(nodes[0], "alice-2"), connect(nodes[1], "bert-1"), connect(nodes[1])]
    nodes[0].manager.log_out(alice.session)
    assert ending[0] not in nodes[0].events.connections        # here: at once
    wait_for(lambda: ending[1] not in nodes[1].events.connections)   # there: through the broker
    assert all(sid in nodes[0].events.connections or sid in nodes[1].events.connections
               for sid in staying)
    assert alice.session not in nodes[1].events.by_session
