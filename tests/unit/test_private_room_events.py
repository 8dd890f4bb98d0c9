"""Private rooms' events (chat/protocol/private_rooms.py) on nodes over the link's twin:
a change of members reaches every node's cache through the broker's ``access``, a removed
member leaves on the other node, a resync re-checks, and each event has its rate."""
from types import SimpleNamespace

import pytest

from chat.protocol.identity import GuestIdentities, Identity
from chat.protocol.private_rooms import PrivateRoomEvents
from chatstream import config
from rooms.access import MembershipAccess, Private

from .link_twin import wait_for
from .test_events import Node, broker  # noqa: F401 - broker is a fixture

pytestmark = pytest.mark.timeout(20)

ALICE = Identity("a" + "1" * 20, "alice", user_id=1)
BOB = Identity("a" + "2" * 20, "bob", user_id=2)
USERS = {"alice": ALICE, "bob": BOB}
SESSIONS = {"alice": ALICE, "bob": BOB}


class Directory:
    """The database's twin: rooms -> Private, shared by every node, as the database is."""

    def __init__(self):
        self.rooms = {}

    def load(self, names):
        return {name: self.rooms[name] for name in names if name in self.rooms}

    def open_direct(self, user_id, username):
        other = USERS[username]
        room = "dm-%d-%d" % tuple(sorted((user_id, other.user_id)))
        made = room not in self.rooms
        self.rooms.setdefault(room, Private(None, frozenset({user_id, other.user_id})))
        return room, SimpleNamespace(pk=other.user_id, get_username=lambda: username), made

    def invite(self, room, username):
        entry = self.rooms[room]
        self.rooms[room] = Private(entry.owner_id, entry.members | {USERS[username].user_id})

    def create(self, owner_id, room, usernames):
        self.rooms[room] = Private(owner_id, frozenset(
            {owner_id} | {USERS[name].user_id for name in usernames}))

    def remove(self, room, username):
        user = USERS[username]
        entry = self.rooms[room]
        self.rooms[room] = Private(entry.owner_id, entry.members - {user.user_id})
        return SimpleNamespace(pk=user.user_id)

    def of_account(self, user_id):
        return [{"room": room} for room, entry in self.rooms.items() if user_id in entry.members]


def private_nodes(broker, directory, count=2, **limits):  # noqa: F811
    nodes = []
    for i in range(count):
        node = Node(broker, "n%d" % (i + 1), identities=GuestIdentities(sessions=SESSIONS),
                    **limits)
        node.events.access = MembershipAccess(load=directory.load)
        node.private = PrivateRoomEvents(node.events, directory,
                                         lambda user_id: {1: ALICE.uid, 2: BOB.uid}[user_id])
        # as chat/assembly.py does
        node.manager.forget_access = node.private.changed
        node.manager.evict_uid = node.events.evictions.evict
        node.manager.after_resync = node.events.evictions.resynced
        nodes.append(node)
    broker.heartbeat()
    for node in nodes:
        assert node.link.wait_synced(2.0)
    return nodes


def connect(node, name):
    return node.connect({"HTTP_COOKIE": "sessionid=%s" % name})


def joined(node, sid, room):
    return room in node.events.connections[sid].rooms


def test_a_removal_on_one_node_evicts_the_member_on_the_other(broker):  # noqa: F811
    directory = Directory()
    a, b = private_nodes(broker, directory)
    alice, bob = connect(a, "alice"), connect(b, "bob")
    assert a.private.on_create(alice, {"room": "team", "private": True, "members": ["bob"]})["ok"]
    assert b.events.on_join(bob, {"room": "team"})["ok"]         # node b caches bob as a member
    assert a.private.on_remove(alice, {"room": "team", "user": "bob"}) == {"ok": True}
    wait_for(lambda: not joined(b, bob, "team"), what="bob evicted on node b")
    assert b.events.on_join(bob, {"room": "team"})["error"] == "forbidden"


def test_a_room_made_private_evicts_whoever_is_in_it_without_being_a_member(broker):  # noqa: F811
    directory = Directory()
    a, b = private_nodes(broker, directory)
    alice, bob = connect(a, "alice"), connect(b, "bob")
    assert b.events.on_join(bob, {"room": "quiet"})["ok"]       # public: node b caches that
    assert a.private.on_create(alice, {"room": "quiet", "private": True, "members": []})["ok"]
    wait_for(lambda: not joined(b, bob, "quiet"), what="bob evicted on node b")


def test_a_resync_rechecks_the_nodes_connections(broker):  # noqa: F811
    directory = Directory()
    (b,) = private_nodes(broker, directory, count=1)
    bob = connect(b, "bob")
    directory.create(ALICE.user_id, "team", ["bob"])
    assert b.events.on_join(bob, {"room": "team"})["ok"]
    directory.remove("team", "bob")            # nothing told the node: its link was away
    assert joined(b, bob, "team")
    broker = broker.restart(keep_state=True)  # noqa: F811
    broker.heartbeat()
    wait_for(lambda: not joined(b, bob, "team"), what="the re-check after the resync")


@pytest.mark.parametrize("event, payload", [
    ("dm", {"to": "bob"}),
    ("create", {"room": "team", "private": True, "members": []}),
    ("invite", {"room": "team", "user": "bob"}),
    ("remove", {"room": "team", "user": "bob"}),
    ("private_rooms", {}),
])
def test_each_event_is_rate_limited_per_connection(broker, event, payload):  # noqa: F811
    (a,) = private_nodes(broker, Directory(), count=1,
                         request_rates=dict(config.REQUEST_RATES))
    alice = connect(a, "alice")
    burst = config.REQUEST_RATES[event][1]
    handler = getattr(a.private, "on_" + event)
    answers = [handler(alice, payload) for _ in range(burst + 1)]
    assert all(ack.get("error") not in ("rate_limited", "internal")
               for ack in answers[:burst]), answers
    assert answers[-1]["error"] == "rate_limited" and event in answers[-1]["detail"]


def test_guests_are_refused_every_event(broker):  # noqa: F811
    (a,) = private_nodes(broker, Directory(), count=1)
    guest = a.connect()
    for event in ("dm", "create", "invite", "remove", "private_rooms"):
        ack = getattr(a.private, "on_" + event)(guest, {"to": "bob", "room": "team",
                                                         "user": "bob", "private": True})
        assert ack["error"] == "forbidden", (event, ack)
