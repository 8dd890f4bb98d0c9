"""ban and report (chat/protocol/moderation.py) on real python-socketio Servers over the
link's twin, with the database side in memory (MemoryModeration, shared by the nodes)."""
import pytest

from chat.protocol.identity import GuestIdentities, Identity
from chat.protocol.moderation import BanBook, MemoryModeration
from harness.twins import MemoryBroker

from .link_twin import wait_for
from .test_eviction import EmitRecorder
from .test_events import Node

pytestmark = pytest.mark.timeout(20)

STAFF = Identity("a" + "5" * 20, "mod", session="s" + "5" * 20, user_id=5, staff=True)
ALICE = Identity("a" + "1" * 20, "alice", session="s" + "1" * 20, user_id=1)
BERT = Identity("a" + "3" * 20, "bert", session="s" + "3" * 20, user_id=3)
SESSIONS = {"mod": STAFF, "alice": ALICE, "alice-2": Identity(ALICE.uid, "alice", session="s" + "2" * 20,
                                                                 user_id=1), "bert": BERT}


class Clock:
    def __init__(self, ms=1_800_000_000_000):
        self.ms = ms

    def __call__(self):
        return self.ms


@pytest.fixture
def cluster():
    """Two nodes sharing one in-memory database and a clock the test moves."""
    broker, clock = MemoryBroker(), Clock()
    store = MemoryModeration(clock_ms=clock)
    nodes = [Node(broker, "n%d" % i, identities=GuestIdentities(sessions=SESSIONS)) for i in (1, 2)]
    for node in nodes:   # the shared database
        moderation = node.events.moderation
        moderation.store = moderation.bans.store = store
        moderation.clock_ms = moderation.bans.clock_ms = clock
        node.emitted = EmitRecorder(node.sio)
    broker.heartbeat()
    for node in nodes:
        assert node.link.wait_synced(2.0)
    return nodes, store, clock


def connect(node, cookie):
    return node.connect({"HTTP_COOKIE": "sessionid=%s" % cookie})


def test_a_ban_evicts_on_every_node_and_refuses_join_and_message_until_it_ends(cluster):
    (a, b), store, clock = cluster
    mod, alice = connect(a, "mod"), connect(b, "alice")
    assert a.events.on_join(mod, {"room": "r"})["ok"] and b.events.on_join(alice, {"room": "r"})["ok"]
    assert b.events.on_message(alice, {"room": "r", "text": "troll"})["ok"]
    wait_for(lambda: a.messages("r") == ["troll"])    # the moderator's node knows her nick so

    assert a.events.moderation.on_ban(mod, {"room": "r", "uid": ALICE.uid, "minutes": 2}) == {"ok": True}
    until = clock.ms + 120_000
    wait_for(lambda: "r" not in b.events.connections[alice].rooms, what="the eviction on b")
    assert b.emitted.sent == [(alice, "banned", {"room": "r", "until": until})]
    assert store.banned == [("r", ALICE.uid, until, STAFF.uid, "alice")]
    assert store.actions == [(STAFF.uid, "ban", "r", ALICE.uid)]

    refused = b.events.on_message(alice, {"room": "r", "text": "still here?"})
    assert refused["error"] == "banned" and refused["until"] == until
    refused = b.events.on_join(alice, {"room": "r"})
    assert refused["error"] == "banned" and "until" in refused["detail"]
    second = connect(a, "alice-2")                     # another connection, another node
    assert a.events.on_join(second, {"room": "r"})["error"] == "banned"
    assert b.events.on_join(alice, {"room": "other"})["ok"]       # other rooms are open

    clock.ms = until + 1                               # the ban is over
    assert b.events.on_join(alice, {"room": "r"})["ok"]
    assert b.events.on_message(alice, {"room": "r", "text": "back"})["ok"]


def test_only_a_moderator_bans_and_not_itself_and_minutes_are_bounded(cluster):
    (a, b), store, clock = cluster
    mod, bert = connect(a, "mod"), connect(a, "bert")
    ban = a.events.moderation.on_ban
    assert ban(bert, {"room": "r", "uid": ALICE.uid})["error"] == "forbidden"
    assert ban(mod, {"room": "r", "uid": STAFF.uid})["error"] == "forbidden"
    assert ban(mod, {"room": "r", "uid": ALICE.uid, "minutes": 525_601})["error"] == "invalid_payload"
    assert ban(mod, {"room": "r", "uid": ALICE.uid, "minutes": 0})["error"] == "invalid_payload"
    assert ban(mod, {"room": "r", "uid": "alice"})["error"] == "invalid_payload"
    assert store.banned == [] and store.actions == []
    assert ban(mod, {"room": "r", "uid": ALICE.uid, "minutes": 525_600}) == {"ok": True}
    assert ban(mod, {"room": "r", "uid": BERT.uid}) == {"ok": True}    # for good
    assert store.banned[-1][2] is None
    assert b.events.on_join(connect(b, "bert"), {"room": "r"})["detail"].endswith(
        "for good; a moderator may lift it")


def test_a_report_names_a_message_of_a_joined_room_with_a_bounded_reason(cluster):
    (a, b), store, clock = cluster
    alice, bert = connect(a, "alice"), connect(b, "bert")
    for node, sid in ((a, alice), (b, bert)):
        assert node.events.on_join(sid, {"room": "r"})["ok"]
    seq = a.events.on_message(alice, {"room": "r", "text": "rude"})["seq"]
    wait_for(lambda: b.messages("r") == ["rude"])
    report = b.events.moderation.on_report
    assert report(bert, {"room": "r", "seq": seq + 5, "reason": "spam"})["error"] == "not_found"
    assert report(bert, {"room": "r", "seq": seq, "reason": ""})["error"] == "invalid_payload"
    assert report(bert, {"room": "r", "seq": seq, "reason": "x" * 501})["error"] == "invalid_payload"
    assert report(bert, {"room": "other", "seq": seq, "reason": "spam"})["error"] == "not_joined"
    assert report(bert, {"room": "r", "seq": seq, "reason": "x" * 500}) == {"ok": True}
    epoch = b.link.view("r")["epoch"]
    assert store.reports == [("r", epoch, seq, {"uid": ALICE.uid, "nick": "alice"}, BERT.uid, "x" * 500)]


def test_a_message_out_of_the_buffer_is_found_in_the_archive(cluster):
    (a, b), store, clock = cluster
    bert = connect(b, "bert")
    assert b.events.on_join(bert, {"room": "r"})["ok"]
    for i in range(3):
        b.events.on_message(bert, {"room": "r", "text": "m%d" % i})
    view = b.link.view("r")
    b.link.mirror.install_room("r", dict(view, history=[]))     # buffer emptied
    assert b.events.moderation.on_report(bert, {"room": "r", "seq": 2, "reason": "x"})["error"] == "not_found"
    store.messages[("r", view["epoch"], 2)] = {"uid": ALICE.uid, "nick": "alice", "deleted": False}
    assert b.events.moderation.on_report(bert, {"room": "r", "seq": 2, "reason": "x"}) == {"ok": True}
    store.messages[("r", view["epoch"], 3)] = {"uid": ALICE.uid, "nick": "alice", "deleted": True}
    assert b.events.moderation.on_report(bert, {"room": "r", "seq": 3, "reason": "x"})["error"] == "not_found"


def test_bans_are_rate_limited_per_connection(cluster):
    (a, b), store, clock = cluster
    a.events.limits.request_rates["ban"] = (0.001, 2)
    mod = connect(a, "mod")             # its buckets from the limits above
    answers = [a.events.moderation.on_ban(mod, {"room": "r%d" % i, "uid": ALICE.uid})
               for i in range(3)]
    assert [r.get("error") for r in answers] == [None, None, "rate_limited"]
    assert len(store.banned) == 2


def test_reports_are_rate_limited_per_connection(cluster):
    (a, b), store, clock = cluster
    a.events.limits.request_rates["report"] = (0.001, 2)
    alice = connect(a, "alice")         # its buckets from the limits above
    assert a.events.on_join(alice, {"room": "r"})["ok"]
    seq = a.events.on_message(alice, {"room": "r", "text": "hello"})["seq"]
    answers = [a.events.moderation.on_report(alice, {"room": "r", "seq": seq, "reason": "x"})
               for _ in range(3)]
    assert [r.get("error") for r in answers] == [None, None, "rate_limited"]


def test_after_a_resync_a_node_evicts_members_banned_while_it_was_away(cluster):
    (a, b), store, clock = cluster
    alice = connect(b, "alice")
    assert b.events.on_join(alice, {"room": "r"})["ok"]
    store.ban("r", ALICE.uid, None, STAFF)       # written while b heard nothing
    b.events.evictions.resynced()
    wait_for(lambda: "r" not in b.events.connections[alice].rooms, what="the re-check")
    assert b.emitted.sent == [(alice, "banned", {"room": "r", "until": None})]


def test_the_ban_book_keeps_the_later_end_and_forgets_the_least_recently_read():
    clock = Clock(1000)
    book = BanBook(MemoryModeration(clock_ms=clock), max_uids=2, clock_ms=clock)
    book.record("r", "u1", 5000)
    book.record("r", "u1", 3000)
    assert book.ban("u1", "r").until == 5000 and book.ban("u1", "s") is None
    book.record(None, "u1", None)
    assert book.ban("u1", "s") == (None, None)
    book.record("r", "u2", 2000)
    book.record("r", "u3", 2000)
    assert book.ban("u1", "r") is None and book.ban("u3", "r").until == 2000
    clock.ms = 2000
    assert book.ban("u3", "r") is None
