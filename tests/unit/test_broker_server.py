"""broker.server.Broker: request handling without network (fake sockets), plus
one run of the real loop over zmq inproc sockets."""
import contextlib
import itertools
import json
import threading
import time

import pytest
import zmq

from chatstream.config import BrokerConfig
from broker.presence_registry import PresenceRegistry
from broker.sequencer import Sequencer
from broker import server as server_module
from broker.server import Broker
from chatstream import wire


PEER = b"\x00peer-1"


class FakeSocket:
    """Records multipart messages sent frame by frame (SNDMORE until the last);
    optionally raises instead of sending."""

    def __init__(self, raises=None):
        self.sent = []
        self.raises = raises
        self.partial = []

    def send(self, frame, flags=0):
        if self.raises is not None:
            raise self.raises
        self.partial.append(frame)
        if not flags & zmq.SNDMORE:
            self.sent.append(self.partial)
            self.partial = []


def make_broker(history_size=50, presence=None, **config):
    clock = itertools.count(1_000)
    sequencer = Sequencer(epoch="E1", history_size=history_size,
                          clock_ms=lambda: next(clock))
    broker = Broker(BrokerConfig(history_size=history_size, **config), context=object(),
                    sequencer=sequencer, presence=presence)
    broker.publisher = FakeSocket()
    broker.instance = "E1-1"
    return broker


def frame(type_, **fields):
    return wire.encode(type_, **fields)


def serve(broker, handlers, *frames):
    """Serve one request from PEER; returns the decoded replies sent to it."""
    sock = FakeSocket()
    broker._serve(sock, handlers, [PEER, *frames])
    broker._flush()   # the batch ends: commit, then send
    for identity, _ in sock.sent:
        assert identity == PEER
    return [wire.decode(body) for _, body in sock.sent]


def intake(broker, *frames):
    return serve(broker, broker.intake_handlers, *frames)


def snapshots(broker, *frames):
    return serve(broker, broker.snapshot_handlers, *frames)


def published(broker):
    """What went out on PUB: [(topic, body)]."""
    return [(topic, wire.decode(body)) for topic, body in broker.publisher.sent]


def publish_frame(rid=1, room="lobby", nick="ann", text="hi", node="node1", cid=None):
    return frame("publish", rid=rid, room=room, nick=nick, text=text, node=node, cid=cid)


# --- publish -----------------------------------------------------------------

def test_publish_is_sequenced_acked_and_published_on_the_room_topic():
    broker = make_broker()
    [reply] = intake(broker, publish_frame(rid="r-7", cid="c1"))
    assert reply["type"] == "published"
    assert reply["rid"] == "r-7"
    assert reply["duplicate"] is False
    message = reply["message"]
    assert (message["seq"], message["room"], message["nick"], message["text"],
            message["node"], message["cid"], message["ts"]) == (
        1, "lobby", "ann", "hi", "node1", "c1", 1_000)
    [(topic, body)] = published(broker)
    assert topic == wire.room_topic("lobby")
    assert body["type"] == "message"
    assert body["message"] == message
    assert body["epoch"] == "E1"


def test_publish_seqs_count_up_per_room():
    broker = make_broker()
    got = []
    for rid, room in enumerate(["a", "a", "b", "a"]):
        [reply] = intake(broker, publish_frame(rid=rid, room=room))
        got.append((reply["rid"], room, reply["message"]["seq"]))
    assert got == [(0, "a", 1), (1, "a", 2), (2, "b", 1), (3, "a", 3)]
    assert [b["message"]["seq"] for _, b in published(broker)] == [1, 2, 1, 3]


def test_publish_retry_with_same_cid_acks_the_first_message_and_is_not_republished():
    broker = make_broker()
    [first] = intake(broker, publish_frame(rid=1, cid="c1", text="first"))
    [retry] = intake(broker, publish_frame(rid=2, cid="c1", text="first"))
    assert retry["rid"] == 2
    assert retry["duplicate"] is True
    assert retry["message"] == first["message"]
    assert len(published(broker)) == 1
    assert broker.sequencer.rooms["lobby"].seq == 1


def test_publish_without_cid_field_is_accepted():
    broker = make_broker()
    body = {"v": 1, "type": "publish", "rid": 1, "room": "r", "nick": "n", "text": "t",
            "node": "node1"}
    [reply] = intake(broker, json.dumps(body).encode())
    assert reply["type"] == "published"
    assert "cid" not in reply["message"]


@pytest.mark.parametrize("change", [
    {"room": 5}, {"room": None}, {"room": ""}, {"room": ["a"]}, {"room": True},
    {"nick": None}, {"nick": 3}, {"text": None}, {"text": ["x"]}, {"text": False},
    {"node": None}, {"node": 1.5}, {"cid": 5}, {"cid": True}, {"cid": {"a": 1}},
], ids=lambda c: "%s=%r" % next(iter(c.items())))
def test_publish_with_missing_or_mistyped_fields_is_refused_and_changes_nothing(change):
    broker = make_broker()
    fields = dict(rid=9, room="lobby", nick="ann", text="hi", node="node1", cid=None)
    fields.update(change)
    [reply] = intake(broker, frame("publish", **fields))
    assert reply["type"] == "error"
    assert reply["error"] == "bad_request"
    assert reply["rid"] == 9
    assert isinstance(reply["detail"], str) and reply["detail"]
    assert broker.sequencer.snapshot() == {}
    assert published(broker) == []


def test_publish_still_acks_when_the_pub_queue_is_full():
    broker = make_broker()
    broker.publisher = FakeSocket(raises=zmq.Again())
    [reply] = intake(broker, publish_frame())
    # sequenced (nodes repair the dropped frame by seq), so the ack must go out
    assert reply["type"] == "published"
    assert broker.sequencer.rooms["lobby"].seq == 1


@pytest.mark.parametrize("change", [
    {"nick": "ad\u202emin"}, {"nick": "ad\u200bmin"}, {"nick": "a" * 1000}, {"nick": ""},
    {"nick": " ann"}, {"nick": "\uff41nn"}, {"nick": "a\x00"},
    {"text": "x" * 2001}, {"text": "x" * 1_000_000}, {"text": " \n "}, {"text": "a\x00b"},
    {"text": "esc\x1b[2J"}, {"text": "a\ud800"},
    {"room": "a b"}, {"room": "a" * 65}, {"cid": ""}, {"cid": "c" * 65},
    {"node": ""}, {"node": "node 1"}, {"node": "<b>n</b>"}, {"node": "n" * 65},
], ids=lambda c: "%s=%r" % next((k, v[:12]) for k, v in c.items()))
def test_publish_breaking_a_contract_rule_is_refused_with_the_rule_and_not_sequenced(change):
    broker = make_broker()
    fields = dict(rid=4, room="lobby", nick="ann", text="hi", node="node1", cid=None)
    fields.update(change)
    [reply] = intake(broker, frame("publish", **fields))
    assert (reply["type"], reply["error"], reply["rid"]) == ("error", "bad_request", 4)
    field = next(iter(change))
    code = {"nick": "invalid_nick", "text": "invalid_text", "room": "invalid_room",
            "cid": "invalid_payload", "node": "invalid_node"}[field]
    assert reply["detail"].startswith(code + ": ")
    assert broker.sequencer.snapshot() == {}
    assert published(broker) == []


def test_publish_with_newlines_tabs_and_a_unicode_nick_is_sequenced():
    broker = make_broker()
    [reply] = intake(broker, publish_frame(nick="Zo\u00eb \u65e5\u672c", text="a\n\tb"))
    assert reply["type"] == "published"
    assert (reply["message"]["nick"], reply["message"]["text"]) == ("Zo\u00eb \u65e5\u672c", "a\n\tb")


# --- announce ----------------------------------------------------------------

def announce_frame(room="lobby", text="ann joined", node="node1", **changes):
    fields = {"room": room, "text": text, "node": node}
    fields.update(changes)
    return frame("announce", **{k: v for k, v in fields.items() if v is not ...})


@pytest.mark.parametrize("text", ["ann joined", "ann left", "Zo\u00eb \u65e5\u672c joined"])
def test_an_announce_is_published_as_an_announcement_on_its_room_topic_without_a_reply(text):
    broker = make_broker()
    assert intake(broker, announce_frame(text=text)) == []
    [(topic, body)] = published(broker)
    assert topic == wire.room_topic("lobby")
    assert (body["type"], body["room"], body["text"]) == ("announcement", "lobby", text)
    assert isinstance(body["ts"], int) and body["ts"] > 1_600_000_000_000   # the broker's clock


FORGED_ANNOUNCES = {
    "free-text": {"text": "maintenance: log in at evil.example"},
    "spoofed-nick": {"text": "ad\u202emin joined"},
    "untrimmed-nick": {"text": " ann joined"},
    "no-nick": {"text": " joined"},
    "nick-too-long": {"text": "x" * 33 + " joined"},
    "other-verb": {"text": "ann kicked"},
    "verb-only": {"text": "joined"},
    "trailing-space": {"text": "ann joined "},
    "two-spaces": {"text": "ann  joined"},
    "capital-verb": {"text": "ann Joined"},
    "newline-after": {"text": "ann joined\n"},
    "newline-nick": {"text": "ann\nsmith joined"},
    "zero-width-nick": {"text": "a\u200bnn joined"},
    "empty-text": {"text": ""},
    "text-null": {"text": None},
    "room-too-long": {"room": "r" * 65},
    "node-too-long": {"node": "n" * 65},
    "node-number": {"node": 1},
    "text-not-a-string": {"text": ["ann joined"]},
    "no-text": {"text": ...},
    "bad-room": {"room": "no room"},
    "room-number": {"room": 5},
    "no-room": {"room": ...},
    "bad-node": {"node": "node 1"},
    "no-node": {"node": ...},
}


@pytest.mark.parametrize("changes", FORGED_ANNOUNCES.values(), ids=FORGED_ANNOUNCES.keys())
def test_a_bad_announce_is_counted_and_neither_published_nor_answered(changes, caplog):
    broker = make_broker()
    before = server_module.metrics.ANNOUNCES_REFUSED._value.get()
    with caplog.at_level("WARNING", logger="broker.handlers"):
        assert intake(broker, announce_frame(**changes)) == []
    assert published(broker) == []
    assert server_module.metrics.ANNOUNCES_REFUSED._value.get() == before + 1
    assert "announce refused" in caplog.text
    [reply] = intake(broker, publish_frame(rid="after"))          # the loop serves on
    assert reply["type"] == "published"


def test_a_node_key_cannot_speak_for_another_node():
    """The CURVE User-Id is the name the key was authorised for (broker/keys.py):
    presence, goodbye, publish and announce under another node's name are refused."""
    broker = make_broker()
    sock = FakeSocket()
    broker._serve(sock, broker.intake_handlers, [PEER, presence_frame(node="node1")], "node1")
    for frame in (presence_frame(node="node1", bye=True), publish_frame(node="node1", rid="as1"),
                  presence_frame(node="node1", rooms={"lobby": ["ghost"]}),
                  announce_frame(node="node1")):
        broker._serve(sock, broker.intake_handlers, [PEER, frame], "node2")
    broker._flush()

    def announcements():
        return [b["text"] for _, b in published(broker) if b["type"] == "announcement"]
    replies = [wire.decode(frames[-1]) for frames in sock.sent]
    assert [r["type"] for r in replies] == ["error"] * 3          # announce: never a reply
    assert all("key of node 'node2' cannot speak for node 'node1'" in r["detail"] for r in replies)
    assert announcements() == [] and "node1" in broker.presence.nodes
    assert broker.sequencer.rooms.get("lobby") is None or not broker.sequencer.rooms["lobby"].messages
    broker._serve(sock, broker.intake_handlers, [PEER, announce_frame(node="node1")], "node1")
    broker._flush()
    assert announcements() == ["ann joined"]


def test_refused_announces_are_logged_at_most_once_per_interval(caplog):
    from broker.handlers import RefusalLog
    clock = [100.0]
    refusals = RefusalLog(interval_s=10.0, clock=lambda: clock[0])
    with caplog.at_level("WARNING", logger="broker.handlers"):
        for _ in range(50):
            refusals.note("announce refused: %s", "x")
        clock[0] += 10.0
        refusals.note("announce refused: %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "announce refused: x", "announce refused: y (and 49 more refused since the last warning)"]


def test_a_relay_is_no_longer_a_type_the_broker_accepts():
    broker = make_broker()
    [reply] = intake(broker, b'{"v": 1, "type": "relay", "topic": "lobby", "data": {}}')
    assert (reply["type"], reply["error"]) == ("error", "bad_request")
    assert published(broker) == []


def test_an_announce_carries_the_brokers_time_and_no_field_the_node_added():
    broker = make_broker()
    assert intake(broker, announce_frame(ts=1, rid="r1", seq=999999)) == []   # no reply, rid or not
    [(_, body)] = published(broker)
    assert set(body) == {"v", "type", "room", "text", "ts"}
    assert body["ts"] > 1_600_000_000_000


# --- presence ----------------------------------------------------------------

def presence_frame(node="node1", rooms=None, full=False, bye=False):
    return frame("presence", node=node, rooms={"lobby": ["ann"]} if rooms is None else rooms,
                 full=full, bye=bye)


def presence_published(broker):
    """Every room list published, one ``presence`` body each (batches unpacked)."""
    return [one for _, body in published(broker) if body["type"] in ("presence", "presences")
            for one in wire.unbatch(body)]


def test_a_report_is_published_at_once_then_changes_wait_for_the_interval():
    broker = make_broker(presence_interval_ms=60_000)
    intake(broker, presence_frame(rooms={"lobby": ["ann"]}))
    assert [(p["room"], p["members"]) for p in presence_published(broker)] == [("lobby", ["ann"])]
    for i in range(50):                            # a join storm inside one interval
        intake(broker, presence_frame(rooms={"lobby": ["ann"] + ["u%02d" % j for j in range(i + 1)]}))
    assert len(presence_published(broker)) == 1
    broker.next_presence = 0                       # the interval is over
    broker._flush()
    assert [len(p["members"]) for p in presence_published(broker)] == [1, 51]
    broker.next_presence = 0
    broker._flush()                                # nothing changed: nothing sent
    assert len(presence_published(broker)) == 2


def test_each_changed_room_is_published_once_per_interval():
    broker = make_broker(presence_interval_ms=60_000)
    broker.next_presence = float("inf")
    intake(broker, presence_frame(rooms={"a": ["x"], "b": ["y"]}))
    intake(broker, presence_frame(node="node2", rooms={"a": ["z"], "c": ["w"]}))
    intake(broker, presence_frame(rooms={"b": []}))
    assert presence_published(broker) == []
    broker.next_presence = 0
    broker._flush()
    assert [(p["room"], p["members"]) for p in presence_published(broker)] == [
        ("a", ["x", "z"]), ("c", ["w"])]           # b came and went: nothing to say
    [(topic, batch)] = published(broker)           # one frame for every changed room
    assert (topic, batch["type"]) == (wire.PRESENCE_TOPIC, "presences")


def test_a_goodbye_announces_departures_at_once_and_the_list_at_the_interval():
    broker = make_broker(presence_interval_ms=60_000)
    intake(broker, presence_frame(rooms={"lobby": ["ann", "bob"]}))
    intake(broker, presence_frame(node="node2", rooms={"lobby": ["bob"]}))
    broker.publisher.sent.clear()
    intake(broker, presence_frame(rooms={}, full=True, bye=True))
    assert [(t, b["type"], b.get("text")) for t, b in published(broker)] == [
        (wire.room_topic("lobby"), "announcement", "ann left")]
    broker.next_presence = 0
    broker._flush()
    assert presence_published(broker)[-1]["members"] == ["bob"]


def test_an_expired_node_is_announced_by_the_heartbeat_at_once():
    clock = [1_000_000]
    broker = make_broker(presence_interval_ms=60_000, presence=PresenceRegistry(
        node_ttl_ms=5000, clock_ms=lambda: clock[0]))
    intake(broker, presence_frame(rooms={"lobby": ["ann"]}))
    broker.publisher.sent.clear()
    clock[0] += 6000
    broker.heartbeat()
    broker._flush()
    assert [(b["type"], b.get("text")) for _, b in published(broker)] == [
        ("announcement", "ann left"), ("heartbeat", None)]


BAD_REPORTS = {
    "bad-room": {"rooms": {"a b": ["ann"]}},
    "nicks-not-a-list": {"rooms": {"lobby": "ann"}},
    "nick-not-a-string": {"rooms": {"lobby": [5]}},
    "nick-rlo": {"rooms": {"lobby": ["ad\u202emin"]}},
    "nick-zero-width": {"rooms": {"lobby": ["a\u200b"]}},
    "nick-too-long": {"rooms": {"lobby": ["a" * 33]}},
    "nick-not-normalised": {"rooms": {"lobby": ["\uff41nn"]}},
    "node-name": {"node": "node 1"},
    "node-not-a-string": {"node": 7},
    "too-many-rooms": {"rooms": {"r%d" % i: ["ann"] for i in range(11)}},
    "too-many-nicks": {"rooms": {"lobby": ["u%d" % i for i in range(21)]}},
}


@pytest.mark.parametrize("change", BAD_REPORTS.values(), ids=BAD_REPORTS.keys())
def test_a_bad_presence_report_is_refused_whole_and_changes_nothing(change):
    broker = make_broker(presence_max_rooms=10, presence_max_nicks=20)
    fields = dict(node="node1", rooms={"lobby": ["ann"], "ok": ["bob"]}, full=True, bye=False)
    fields.update(change)
    [reply] = intake(broker, frame("presence", **fields))
    assert (reply["type"], reply["error"]) == ("error", "bad_request")
    assert broker.presence.snapshot() == {} and broker.presence.nodes == {}
    assert presence_published(broker) == []


def test_reports_at_the_caps_are_accepted():
    broker = make_broker(presence_max_rooms=10, presence_max_nicks=20)
    rooms = {"r%d" % i: ["u%d" % j for j in range(20)] for i in range(10)}
    assert intake(broker, presence_frame(rooms=rooms, full=True)) == []
    assert len(broker.presence.snapshot()) == 10


def test_a_new_node_name_beyond_the_cap_is_refused_and_logged(caplog):
    broker = make_broker(presence_max_nodes=3)
    for i in range(3):
        assert intake(broker, presence_frame(node="n%d" % i, rooms={"lobby": ["u%d" % i]})) == []
    [reply] = intake(broker, presence_frame(node="ghost", rooms={"lobby": ["ghost"]}))
    assert reply["type"] == "error" and "ghost" in reply["detail"]
    assert "ghost" in caplog.text
    assert broker.presence.members("lobby") == ["u0", "u1", "u2"]
    assert intake(broker, presence_frame(node="n0", rooms={}, full=True, bye=True)) == []
    assert intake(broker, presence_frame(node="ghost", rooms={"lobby": ["ghost"]})) == []


def test_a_goodbye_for_an_unknown_node_changes_nothing():
    broker = make_broker()
    intake(broker, presence_frame(rooms={"lobby": ["ann"]}))
    broker.publisher.sent.clear()
    assert intake(broker, presence_frame(node="nobody", rooms={}, full=True, bye=True)) == []
    assert published(broker) == [] and broker.presence.members("lobby") == ["ann"]


# --- snapshot and history ----------------------------------------------------

def fill(broker, room, count):
    for i in range(count):
        intake(broker, publish_frame(rid=i, room=room))


def test_snapshot_reply_carries_every_room_state():
    broker = make_broker(history_size=3)
    fill(broker, "a", 5)
    fill(broker, "b", 1)
    [reply] = snapshots(broker, frame("snapshot", rid=42))
    assert reply["type"] == "snapshot"
    assert reply["rid"] == 42
    assert reply["broker"] == "E1-1"
    assert reply["epoch"] == "E1"
    assert reply["rooms"] == broker.sequencer.snapshot()
    assert [m["seq"] for m in reply["rooms"]["a"]["history"]] == [3, 4, 5]
    assert reply["rooms"]["b"]["seq"] == 1


@pytest.mark.parametrize("since,epoch,expected,gap", [
    (None, None, [3, 4, 5], False),
    (3, "E1", [4, 5], False),
    (5, "E1", [], False),
    (1, "E1", [3, 4, 5], True),
    (3, "E0", [3, 4, 5], True),
    (9, "E1", [3, 4, 5], True),
])
def test_history_reply_answers_since(since, epoch, expected, gap):
    broker = make_broker(history_size=3)
    fill(broker, "a", 5)
    [reply] = snapshots(broker, frame("history", rid="h1", room="a", since=since, epoch=epoch))
    assert reply["type"] == "history"
    assert reply["rid"] == "h1"
    assert (reply["room"], reply["epoch"], reply["seq"]) == ("a", "E1", 5)
    assert [m["seq"] for m in reply["history"]] == expected
    assert reply["gap"] is gap


def test_history_of_an_unknown_room_is_empty_and_creates_nothing():
    broker = make_broker()
    [reply] = snapshots(broker, frame("history", rid=1, room="none", since=0, epoch="E1"))
    assert (reply["seq"], reply["history"], reply["gap"]) == (0, [], False)
    assert broker.sequencer.snapshot() == {}


@pytest.mark.parametrize("fields", [
    {"room": None}, {"room": 1}, {"room": "a", "since": True}, {"room": "a", "since": "3"},
    {"room": "a", "since": 2.5}, {"room": "a", "epoch": 7}, {"room": "a", "epoch": ["E1"]},
], ids=repr)
def test_history_with_bad_fields_is_refused(fields):
    broker = make_broker()
    [reply] = snapshots(broker, frame("history", rid=3, **fields))
    assert (reply["type"], reply["error"], reply["rid"]) == ("error", "bad_request", 3)


# --- garbage never raises ----------------------------------------------------

def raw(body):
    return json.dumps(body).encode()


GARBAGE = [
    pytest.param([], id="no-body-frame"),
    pytest.param([b"a", b"b"], id="two-body-frames"),
    pytest.param([publish_frame(), publish_frame()], id="two-valid-bodies"),
    pytest.param([b""], id="empty"),
    pytest.param([b"not json"], id="not-json"),
    pytest.param([b"\xff\xfe\x80"], id="bad-utf8"),
    pytest.param([b"[1, 2]"], id="json-list"),
    pytest.param([b'"publish"'], id="json-string"),
    pytest.param([b"null"], id="json-null"),
    pytest.param([raw({"type": "publish", "rid": 1})], id="no-version"),
    pytest.param([raw({"v": 2, "type": "publish", "rid": 1})], id="version-2"),
    pytest.param([raw({"v": 1, "rid": 1})], id="no-type"),
    pytest.param([raw({"v": 1, "type": "bogus", "rid": 1})], id="unknown-type"),
    pytest.param([raw({"v": 1, "type": 5})], id="numeric-type"),
]


@pytest.mark.parametrize("handlers_name", ["intake_handlers", "snapshot_handlers"])
@pytest.mark.parametrize("frames", GARBAGE)
def test_garbage_frames_get_a_bad_request_error_reply(frames, handlers_name):
    broker = make_broker()
    replies = serve(broker, getattr(broker, handlers_name), *frames)
    assert len(replies) == 1
    reply = replies[0]
    assert reply["type"] == "error"
    assert reply["error"] == "bad_request"
    assert isinstance(reply["detail"], str) and reply["detail"]
    assert broker.sequencer.snapshot() == {}
    assert published(broker) == []


@pytest.mark.parametrize("frames", [
    pytest.param([raw({"v": 1, "type": [], "rid": 1})], id="list-type"),
    pytest.param([raw({"v": 1, "type": {"x": 1}, "rid": 1})], id="object-type"),
])
def test_unhashable_type_still_gets_an_error_reply(frames):
    broker = make_broker()
    [reply] = intake(broker, *frames)
    assert reply["type"] == "error"


def test_unhashable_type_is_refused_as_bad_request():
    broker = make_broker()
    [reply] = intake(broker, raw({"v": 1, "type": [], "rid": 1}))
    assert reply["error"] == "bad_request"


@pytest.mark.parametrize("type_,handlers_name", [
    ("snapshot", "intake_handlers"), ("history", "intake_handlers"),
    ("message", "intake_handlers"), ("heartbeat", "intake_handlers"),
    ("publish", "snapshot_handlers"), ("announce", "snapshot_handlers"),
    ("published", "snapshot_handlers"), ("error", "snapshot_handlers"),
])
def test_valid_types_are_refused_on_the_wrong_socket(type_, handlers_name):
    broker = make_broker()
    [reply] = serve(broker, getattr(broker, handlers_name), frame(type_, rid=5, room="a"))
    assert (reply["type"], reply["error"], reply["rid"]) == ("error", "bad_request", 5)
    assert published(broker) == []


@pytest.mark.parametrize("rid,echoed", [
    ("abc", "abc"), (17, 17), (None, None), ({"a": 1}, None), ([1], None),
], ids=repr)
def test_error_reply_echoes_only_scalar_rids(rid, echoed):
    broker = make_broker()
    # a decodable body refused by the broker (a snapshot-socket type on intake)
    [reply] = intake(broker, raw({"v": 1, "type": "history", "rid": rid}))
    assert reply["type"] == "error"
    assert reply["rid"] == echoed


def test_a_crashing_handler_gets_an_internal_error_reply():
    broker = make_broker()

    def crash(body, peer=None):
        raise KeyError("boom")

    [reply] = serve(broker, {"publish": crash}, publish_frame(rid="x1"))
    assert (reply["type"], reply["error"], reply["rid"]) == ("error", "internal", "x1")


def test_a_reply_that_cannot_be_sent_does_not_raise():
    broker = make_broker()
    sock = FakeSocket(raises=zmq.Again())
    broker._serve(sock, broker.intake_handlers, [PEER, publish_frame()])
    broker._serve(sock, broker.intake_handlers, [PEER, b"garbage"])
    assert broker.sequencer.rooms["lobby"].seq == 1


def test_broker_keeps_serving_after_garbage():
    broker = make_broker()
    for param in GARBAGE:
        intake(broker, *param.values[0])
    [reply] = intake(broker, publish_frame(rid="after"))
    assert (reply["type"], reply["rid"], reply["message"]["seq"]) == ("published", "after", 1)


# --- heartbeat ---------------------------------------------------------------

def test_heartbeat_carries_the_rooms_changed_since_the_last_one():
    broker = make_broker()
    fill(broker, "a", 2)
    fill(broker, "b", 1)
    broker.publisher.sent.clear()
    broker.heartbeat()
    broker._flush()
    broker.heartbeat()
    broker._flush()
    fill(broker, "b", 1)
    broker.heartbeat()
    broker._flush()
    beats = [(t, b) for t, b in published(broker) if b["type"] == "heartbeat"]
    assert len(published(broker)) == 4  # three beats and the message to "b"
    assert [topic for topic, _ in beats] == [wire.HEARTBEAT_TOPIC] * 3
    assert [body["seqs"] for _, body in beats] == [{"a": 2, "b": 1}, {}, {"b": 2}]
    for _, body in beats:
        assert (body["type"], body["broker"], body["epoch"]) == ("heartbeat", "E1-1", "E1")
        assert isinstance(body["ts"], int)


def test_heartbeat_with_a_full_pub_queue_does_not_raise_it_is_dropped_with_a_warning(caplog):
    broker = make_broker()
    full = broker.publisher = FakeSocket(raises=zmq.Again())
    with caplog.at_level("WARNING", logger="broker.outbox"):
        broker.heartbeat()
        broker._flush()                       # raising here fails the test
    assert "send queue full, frame dropped" in caplog.text
    assert len(broker.outbox) == 0 and full.sent == []   # dropped, not kept for later
    full.raises = None                        # the queue has room again: the loop goes on
    broker.heartbeat()
    broker._flush()
    assert [body["type"] for _, body in published(broker)] == ["heartbeat"]


# --- the real loop over inproc sockets ----------------------------------------

def recv(sock, timeout_ms=5000):
    assert sock.poll(timeout_ms), "no frame within %d ms" % timeout_ms
    return sock.recv_multipart()


@contextlib.contextmanager
def running(config, sequencer, *peers):
    """A real Broker's loop in a thread, with ``peers`` connected before it starts.

    :param peers: (zmq socket kind, endpoint, [topics to subscribe]) each.
    Yields the peers' sockets; stops the loop and closes everything after.
    """
    context = zmq.Context()
    broker = Broker(config, context=context, sequencer=sequencer)
    broker.bind()
    sockets, thread = [], None
    try:
        for kind, endpoint, topics in peers:
            sock = context.socket(kind)
            sockets.append(sock)
            sock.setsockopt(zmq.LINGER, 0)
            for topic in topics:
                sock.setsockopt(zmq.SUBSCRIBE, topic)
            sock.connect(endpoint)
        thread = threading.Thread(target=broker.run, daemon=True)
        thread.start()
        yield sockets
    finally:
        broker.stop()
        if thread is not None:
            thread.join(5)
            assert not thread.is_alive()
        for sock in sockets:
            sock.close(0)
        broker.close()
        context.term()


def test_run_loop_over_inproc_sockets():
    config = BrokerConfig(intake="inproc://intake", publish="inproc://publish",
                          snapshot="inproc://snapshot", history_size=5, heartbeat_ms=20)
    with running(config, Sequencer(epoch="E9", history_size=5),
                 (zmq.DEALER, config.intake, ()), (zmq.DEALER, config.snapshot, ()),
                 (zmq.SUB, config.publish, (wire.room_topic("lobby"), wire.HEARTBEAT_TOPIC))
                 ) as (node_intake, node_snap, sub):
        # A heartbeat proves the subscriptions (sent before it, in order) are live.
        while True:
            topic, body = recv(sub)
            if topic == wire.HEARTBEAT_TOPIC:
                assert wire.decode(body)["epoch"] == "E9"
                break

        node_intake.send(b"garbage")
        [error] = recv(node_intake)
        assert wire.decode(error)["error"] == "bad_request"

        node_intake.send(publish_frame(rid=1, room="lobby", cid="c1"))
        [ack] = recv(node_intake)
        ack = wire.decode(ack)
        assert (ack["type"], ack["rid"], ack["duplicate"]) == ("published", 1, False)
        # room "lobby2" must not reach a subscriber of "lobby"
        node_intake.send(publish_frame(rid=2, room="lobby2"))
        recv(node_intake)
        node_intake.send(publish_frame(rid=3, room="lobby", cid="c2"))
        recv(node_intake)

        room_frames = []
        while len(room_frames) < 2:
            topic, body = recv(sub)
            if topic != wire.HEARTBEAT_TOPIC:
                room_frames.append((topic, wire.decode(body)))
        assert [t for t, _ in room_frames] == [wire.room_topic("lobby")] * 2
        assert [b["message"]["seq"] for _, b in room_frames] == [1, 2]
        assert room_frames[0][1]["message"] == ack["message"]

        node_snap.send(frame("snapshot", rid="s"))
        [snap] = recv(node_snap)
        snap = wire.decode(snap)
        assert snap["rid"] == "s" and snap["epoch"] == "E9"
        assert {room: state["seq"] for room, state in snap["rooms"].items()} == {
            "lobby": 2, "lobby2": 1}


def test_run_loop_refuses_a_hostile_peer_coalesces_presence_and_keeps_serving():
    config = BrokerConfig(intake="inproc://h-intake", publish="inproc://h-publish",
                          snapshot="inproc://h-snapshot", heartbeat_ms=50,
                          presence_interval_ms=100, presence_max_nodes=4)
    with running(config, Sequencer(epoch="E7"), (zmq.DEALER, config.intake, ()),
                 (zmq.DEALER, config.intake, ()),
                 (zmq.SUB, config.publish, (b"",))) as (rogue, node, sub):
        while wire.decode(recv(sub)[1])["type"] != "heartbeat":
            pass

        node.send(presence_frame(node="node1", rooms={}, full=True))   # registered first
        # bad publishes, ghost nodes: each refused with an error reply; forged announces
        # are fire-and-forget: refused without one
        for fields in ({"nick": "ad\u202emin"}, {"text": "x" * 100_000}, {"text": "\x00"}):
            rogue.send(publish_frame(rid="bad", **fields))
        for changes in FORGED_ANNOUNCES.values():
            rogue.send(announce_frame(**changes))
        for i in range(10):                    # 3 more names fit; 7 are refused
            rogue.send(presence_frame(node="ghost%d" % i, rooms={"lobby": ["g%d" % i]}))
        refusals = 3 + 7
        replies = [wire.decode(recv(rogue)[0]) for _ in range(refusals)]
        assert {r["type"] for r in replies} == {"error"}
        assert not rogue.poll(200)

        # a join storm from a good node: at most one list per 100 ms, the last one complete
        started = time.monotonic()
        for i in range(200):
            node.send(presence_frame(node="node1", rooms={"storm": ["u%03d" % j
                                                                     for j in range(i + 1)]}))
        lists, deadline = [], time.monotonic() + 5
        while (not lists or len(lists[-1]) < 200) and time.monotonic() < deadline:
            topic, body = recv(sub)
            body = wire.decode(body)
            if body["type"] == "presence" and body["room"] == "storm":
                lists.append(body["members"])
        assert lists and len(lists[-1]) == 200
        assert len(lists) <= 2 + (time.monotonic() - started) / 0.1
        node.send(publish_frame(rid="ok", nick="ann", text="still here"))
        reply = wire.decode(recv(node)[0])
        assert (reply["type"], reply["message"]["seq"]) == ("published", 1)
        seen = []
        while not any(b["type"] == "message" for b in seen):
            seen.append(wire.decode(recv(sub)[1]))
        assert [b["message"]["nick"] for b in seen if b["type"] == "message"] == ["ann"]
        assert not any(b["type"] == "announcement" for b in seen)


class QueuedSocket:
    """A ROUTER socket with requests queued: recv gives them, then raises Again."""

    def __init__(self, requests):
        self.requests = [list(r) for r in requests]
        self.frames = []
        self.sent = []

    def recv(self, flags=0, copy=True):
        if not self.frames:
            if not self.requests:
                raise zmq.Again()
            self.frames = self.requests.pop(0)
        return self.frames.pop(0)

    def getsockopt(self, option):
        return 1 if self.frames else 0

    def send(self, frame, flags=0):
        self.sent.append(frame)


def test_one_turn_of_the_loop_serves_requests_for_about_its_budget_only(monkeypatch):
    broker = make_broker()
    served = []
    monkeypatch.setattr(broker, "_serve", lambda sock, handlers, frames, peer=None: served.append(frames))
    clock = itertools.count(0.0, 0.03)                   # each request takes 30 ms
    monkeypatch.setattr(server_module.time, "monotonic", lambda: next(clock))
    sock = QueuedSocket([[PEER, b"x%d" % i] for i in range(50)])
    broker._drain(sock, broker.intake_handlers, budget_s=0.1)
    assert 3 <= len(served) <= 5                          # the heartbeat is not kept waiting
    broker._drain(sock, broker.intake_handlers, budget_s=10.0)
    assert len(served) == 50                              # the rest, next turns


def test_no_node_is_judged_silent_while_the_intake_holds_unread_requests(monkeypatch):
    clock = [1_000_000]
    broker = make_broker(presence_interval_ms=60_000, presence=PresenceRegistry(
        node_ttl_ms=5000, clock_ms=lambda: clock[0]))
    intake(broker, presence_frame(rooms={"lobby": ["ann"]}))
    broker.intake = QueuedSocket([[PEER, b"{}"] for _ in range(5)])   # a storm's requests
    monkeypatch.setattr(broker, "_serve", lambda sock, handlers, frames, peer=None: None)
    broker._drain(broker.intake, broker.intake_handlers, budget_s=-1.0)  # its budget spent
    assert broker.intake_behind_since is not None
    clock[0] += 6000                                     # node1's report may be behind them
    broker.heartbeat()
    assert "node1" in broker.presence.nodes
    broker._drain(broker.intake, broker.intake_handlers)  # read to the end: now it is judged
    assert broker.intake_behind_since is None
    broker.heartbeat()
    assert "node1" not in broker.presence.nodes


def test_an_intake_that_stays_behind_for_three_ttls_no_longer_shields_silent_nodes(monkeypatch):
    clock = [1_000_000]
    broker = make_broker(presence_interval_ms=60_000, presence=PresenceRegistry(
        node_ttl_ms=5000, clock_ms=lambda: clock[0]))
    intake(broker, presence_frame(rooms={"lobby": ["ann"]}))
    broker.intake_behind_since = server_module.time.monotonic() - 16.0
    clock[0] += 6000
    broker.heartbeat()
    assert "node1" not in broker.presence.nodes


# --- revoke ------------------------------------------------------------------

SESSION = "s0123456789abcdef0123"


def test_a_revoke_goes_to_every_node_on_its_topic_unanswered():
    broker = make_broker()
    assert intake(broker, frame("revoke", session=SESSION, node="node1")) == []
    assert published(broker) == [(wire.REVOKE_TOPIC, {"session": SESSION, "v": 1, "type": "revoke"})]
    assert wire.REVOKE_TOPIC in wire.CLUSTER_TOPICS          # every node subscribes to it


@pytest.mark.parametrize("fields, peer", [
    ({"session": "a-session-key-itself", "node": "node1"}, None),   # never the key, never junk
    ({"session": SESSION}, None),
    ({"session": SESSION, "node": "node1"}, "node2"),               # under another node's name
])
def test_a_bad_revoke_is_refused_and_logged_not_published(fields, peer, caplog):
    broker = make_broker()
    sock = FakeSocket()
    with caplog.at_level("WARNING", logger="broker.handlers"):
        broker._serve(sock, broker.intake_handlers, [PEER, frame("revoke", **fields)], peer)
        broker._flush()
    assert sock.sent == [] and published(broker) == []
    assert "revoke refused" in caplog.text


# --- evict -------------------------------------------------------------------

UID = "a0123456789abcdef0123"


@pytest.mark.parametrize("room, until", [("lobby", 1_700_000_000_000), (None, None)])
def test_an_evict_goes_to_every_node_on_its_topic_unanswered(room, until):
    broker = make_broker()
    assert intake(broker, frame("evict", room=room, uid=UID, reason="banned", until=until,
                                node="node1")) == []
    assert published(broker) == [(wire.EVICT_TOPIC, {
        "room": room, "uid": UID, "reason": "banned", "until": until, "v": 1, "type": "evict"})]
    assert wire.EVICT_TOPIC in wire.CLUSTER_TOPICS          # every node subscribes to it


@pytest.mark.parametrize("fields, peer", [
    ({"room": "no room!", "uid": UID, "reason": "banned", "node": "node1"}, None),
    ({"room": "lobby", "uid": "not-a-uid", "reason": "banned", "node": "node1"}, None),
    ({"room": "lobby", "uid": UID, "reason": "<b>banned</b>", "node": "node1"}, None),
    ({"room": "lobby", "uid": UID, "reason": "banned", "until": "soon", "node": "node1"}, None),
    ({"room": "lobby", "uid": UID, "reason": "banned", "until": True, "node": "node1"}, None),
    ({"room": "lobby", "uid": UID, "reason": "banned"}, None),
    ({"room": "lobby", "uid": UID, "reason": "banned", "node": "node1"}, "node2"),
])
def test_a_bad_evict_is_refused_and_logged_not_published(fields, peer, caplog):
    broker = make_broker()
    sock = FakeSocket()
    with caplog.at_level("WARNING", logger="broker.handlers"):
        broker._serve(sock, broker.intake_handlers, [PEER, frame("evict", **fields)], peer)
        broker._flush()
    assert sock.sent == [] and published(broker) == []
    assert "evict refused" in caplog.text


# --- access ------------------------------------------------------------------

def test_an_access_change_goes_to_every_node_on_its_topic_unanswered():
    broker = make_broker()
    assert intake(broker, frame("access", room="team", node="node1")) == []
    assert published(broker) == [(wire.ACCESS_TOPIC, {"room": "team", "v": 1,
                                                      "type": "access"})]
    assert wire.ACCESS_TOPIC in wire.CLUSTER_TOPICS         # every node subscribes to it


@pytest.mark.parametrize("fields, peer", [
    ({"room": "no room!", "node": "node1"}, None),
    ({"room": "team"}, None),
    ({"room": "team", "node": "node1"}, "node2"),
])
def test_a_bad_access_change_is_refused_and_logged_not_published(fields, peer, caplog):
    broker = make_broker()
    sock = FakeSocket()
    with caplog.at_level("WARNING", logger="broker.handlers"):
        broker._serve(sock, broker.intake_handlers, [PEER, frame("access", **fields)], peer)
        broker._flush()
    assert sock.sent == [] and published(broker) == []
    assert "access refused" in caplog.text


# --- natural batching: one turn, one commit, nothing waits ---------------------

class TurnPoller:
    """A poller whose every poll reports the intake readable and records its timeout."""

    def __init__(self, broker):
        self.broker = broker
        self.timeouts = []

    def poll(self, timeout_ms):
        self.timeouts.append(timeout_ms)
        return [(self.broker.intake, zmq.POLLIN)]


def turning_broker(monkeypatch, clock):
    """A broker whose intake is a QueuedSocket, counting its commits, on ``clock``."""
    broker = make_broker()
    broker.snapshots = QueuedSocket([])
    commits = []
    commit = broker.sequencer.commit
    monkeypatch.setattr(broker.sequencer, "commit", lambda: (commits.append(1), commit()))
    monkeypatch.setattr(server_module.time, "monotonic", lambda: clock[0])
    broker.next_beat = clock[0] + 3600   # heartbeats are not what is counted here
    return broker, commits


def test_one_turn_commits_everything_queued_once_and_sends_one_frame_per_room(monkeypatch):
    clock = [100.0]
    broker, commits = turning_broker(monkeypatch, clock)
    broker.intake = QueuedSocket([[PEER, publish_frame(rid=i, room="ab"[i % 2], cid="c%d" % i)]
                                  for i in range(40)])
    broker.turn(TurnPoller(broker))
    assert len(commits) == 1
    assert len(broker.intake.sent) == 40 * 2                  # 40 acks of two frames
    frames = published(broker)
    assert sorted(topic for topic, _ in frames) == [wire.room_topic("a"), wire.room_topic("b")]
    assert [len(wire.unbatch(body)) for _, body in frames] == [20, 20]


def test_at_any_rate_a_message_goes_out_in_the_turn_that_reads_it(monkeypatch):
    clock = [100.0]
    broker, commits = turning_broker(monkeypatch, clock)
    poller = TurnPoller(broker)
    for turn in range(1000):             # 5 messages a millisecond for 1 s: 5,000 msg/s
        clock[0] += 0.001
        broker.intake = QueuedSocket([[PEER, publish_frame(rid=i, cid="t%d-%d" % (turn, i))]
                                      for i in range(5)])
        poller.broker = broker
        broker.turn(poller)
        assert len(commits) == turn + 1 and not len(broker.outbox)
        assert len(broker.intake.sent) == 5 * 2
    assert len(published(broker)) == 1000                    # one frame per turn and room
    broker.intake = QueuedSocket([[PEER, publish_frame(rid="lone", cid="lone")]])
    broker.turn(poller)                                      # a lone one after the burst
    assert published(broker)[-1][1]["message"]["cid"] == "lone"
    # the wait is for the next request or heartbeat, never shortened to hold a batch
    assert min(poller.timeouts) > 1000
