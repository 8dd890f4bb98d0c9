"""chatstream.wire: the version-1 body format and room topics."""
import json

import pytest

from chatstream import wire

MESSAGE = {"id": "m1", "seq": 3, "room": "lobby", "nick": "ann", "text": "hi",
           "ts": 1700000000000, "node": "node1", "cid": "c-1"}

# One representative body per type, with the fields wire.py's docstring lists.
BODIES = {
    "publish": {"rid": 1, "room": "lobby", "nick": "ann", "text": "hi", "node": "node1",
                "cid": None},
    "change": {"rid": 4, "room": "lobby", "kind": "edit", "target": 3, "epoch": "e1",
               "node": "node1", "uid": "a" + "0" * 20, "cid": "e-1", "nick": "ann",
               "text": "hi again"},
    "published": {"rid": 1, "message": MESSAGE, "duplicate": False},
    "announce": {"room": "lobby", "text": "ann joined", "node": "node1"},
    "message": {"message": MESSAGE, "epoch": "e1"},
    "messages": {"messages": [MESSAGE, dict(MESSAGE, seq=4, id="m2")], "epoch": "e1"},
    "heartbeat": {"broker": "e1-1", "epoch": "e1", "ts": 1, "seqs": {"lobby": 3}},
    "snapshot": {"rid": "r2", "broker": "e1-1", "epoch": "e1",
                 "rooms": {"lobby": {"epoch": "e1", "seq": 3, "history": [MESSAGE]}},
                 "presence": {"lobby": ["ann"]}},
    "history": {"rid": 7, "room": "lobby", "epoch": "e1", "seq": 3,
                "history": [MESSAGE], "gap": True},
    "error": {"rid": None, "error": "bad_request", "detail": "nope"},
    "presence": {"node": "node1", "rooms": {"lobby": ["ann", "bob"]}, "full": True, "bye": False},
    "announcement": {"room": "lobby", "text": "ann left", "ts": 1},
    "presences": {"rooms": {"lobby": ["ann", "bob"], "b": []}},
    "revoke": {"session": "s0123456789abcdef0123", "node": "node1"},
    "evict": {"room": "lobby", "uid": "a0123456789abcdef0123", "reason": "banned",
              "until": None, "node": "node1"},
    "access": {"room": "lobby", "node": "node1"},
    "archived": {"node": "archiver", "rooms": {"lobby": ["e1", 3]}},
    "archive_rooms": {"rid": 2, "rooms": {"lobby": ["e1", 3, 1]}, "more": False},
    "archive_events": {"rid": 3, "room": "lobby", "epoch": "e1", "seq": 3, "events": [MESSAGE],
                       "gap": False},
    "typing": {"room": "lobby", "nick": "ann", "uid": "a0123456789abcdef0123", "node": "node1"},
    "read": {"uid": "a0123456789abcdef0123", "room": "lobby", "epoch": "e1", "seq": 3,
             "node": "node1"},
    "usage": {"node": "node1", "spent": {"a0123456789abcdef0123": {"message": 2}}},
}


def test_every_type_has_a_round_trip_case():
    assert set(BODIES) == set(wire.TYPES)


def test_one_message_of_a_batch_is_a_message_body_and_more_a_messages_body():
    second = dict(MESSAGE, seq=4, id="m2")
    assert wire.decode(wire.encode_messages("e1", [MESSAGE])) == dict(
        BODIES["message"], v=wire.VERSION, type="message")
    assert wire.decode(wire.encode_messages("e1", [MESSAGE, second])) == dict(
        messages=[MESSAGE, second], epoch="e1", v=wire.VERSION, type="messages")


@pytest.mark.parametrize("type_", sorted(BODIES))
def test_encode_then_decode_returns_the_fields_with_version_and_type(type_):
    frame = wire.encode(type_, **BODIES[type_])
    assert isinstance(frame, bytes)
    body = wire.decode(frame)
    assert body == dict(BODIES[type_], v=wire.VERSION, type=type_)


def test_encode_writes_json_that_round_trips_any_text():
    for text in ("héllo ✓ 日本 😀", "lone \ud800 surrogate", "\udfff\ud800 reversed pair"):
        frame = wire.encode("error", rid=None, error="x", detail=text)
        assert json.loads(frame)["detail"] == text
        assert wire.decode(frame)["detail"] == text


def test_a_lone_surrogate_falls_back_to_ascii_json():
    frame = wire.encode("error", rid=None, error="x", detail="a \ud800 b")
    frame.decode("ascii")                          # the stdlib's escaped form
    assert wire.decode(frame)["detail"] == "a \ud800 b"


def test_non_str_keys_and_big_ints_still_encode():
    body = wire.decode(wire.encode("presence", node="n", rooms={1: "one", "n": 2 ** 70}))
    assert body["rooms"] == {"1": "one", "n": 2 ** 70}


@pytest.mark.parametrize("frame", [b"\xff\xfe", b"[1,", b"{\"v\":1,", "text".encode("utf-16")])
def test_undecodable_frames_are_wire_errors(frame):
    with pytest.raises(wire.WireError):
        wire.decode(frame)


@pytest.mark.parametrize("room,ok", [("a", True), ("A-z_09", True), ("r" * 64, True),
                                     ("", False), ("r" * 65, False), ("a b", False),
                                     ("é", False), ("a\x00", False)])
def test_room_rule(room, ok):
    assert bool(wire.ROOM_RE.fullmatch(room)) is ok


def test_encode_cannot_be_tricked_into_another_version_or_type():
    body = wire.decode(wire.encode("error", v=99, type="publish", detail="d"))
    assert body["v"] == wire.VERSION
    assert body["type"] == "error"


@pytest.mark.parametrize("type_", ["", "nope", "Message", "Announcement"])
def test_encode_refuses_unknown_types(type_):
    with pytest.raises(wire.WireError):
        wire.encode(type_, rid=1)


def test_wire_error_is_a_value_error():
    assert issubclass(wire.WireError, ValueError)


@pytest.mark.parametrize("frame", [
    b"", b"not json", b"{", b"{'v': 1}", b"\xff\xfe\x00garbage", b"\x80\x81",
], ids=["empty", "text", "truncated", "single-quotes", "bom-garbage", "bad-utf8"])
def test_decode_refuses_non_json(frame):
    with pytest.raises(wire.WireError):
        wire.decode(frame)


@pytest.mark.parametrize("frame", [
    b"[]", b'[{"v":1,"type":"error"}]', b'"error"', b"1", b"null", b"true",
], ids=["list", "list-of-body", "string", "number", "null", "bool"])
def test_decode_refuses_json_that_is_not_an_object(frame):
    with pytest.raises(wire.WireError):
        wire.decode(frame)


@pytest.mark.parametrize("version", [None, 0, 2, "1", [1], {"v": 1}, 1.5],
                         ids=repr)
def test_decode_refuses_other_versions(version):
    body = {"type": "error", "error": "x", "detail": "y"}
    if version is not None:
        body["v"] = version
    with pytest.raises(wire.WireError):
        wire.decode(json.dumps(body).encode())


def test_decode_refuses_boolean_true_as_version():
    with pytest.raises(wire.WireError):
        wire.decode(b'{"v":true,"type":"error"}')


@pytest.mark.parametrize("type_", [None, "", "nope", 5, "PUBLISH", "notice"],
                         ids=repr)
def test_decode_refuses_unknown_types(type_):
    body = {"v": wire.VERSION}
    if type_ is not None:
        body["type"] = type_
    with pytest.raises(wire.WireError):
        wire.decode(json.dumps(body).encode())


@pytest.mark.parametrize("frame", [b'{"v":1,"type":[]}', b'{"v":1,"type":{"a":1}}'],
                         ids=["list", "object"])
def test_decode_refuses_unhashable_type_with_wire_error(frame):
    with pytest.raises(wire.WireError):
        wire.decode(frame)


def test_decode_accepts_extra_fields():
    body = wire.decode(b'{"v":1,"type":"heartbeat","future":"field"}')
    assert body["future"] == "field"


def test_room_topic_of_a_is_not_a_prefix_of_room_topic_of_ab():
    assert not wire.room_topic("ab").startswith(wire.room_topic("a"))
    assert not wire.room_topic("a").startswith(wire.room_topic("ab"))
    assert wire.room_topic("a") != wire.room_topic("ab")


@pytest.mark.parametrize("room,other", [
    ("a", "ab"), ("room", "room_2"), ("x-1", "x-10"), ("lobby", "lobby-"),
])
def test_no_room_topic_prefixes_another_rooms_topic(room, other):
    # ZeroMQ SUB matches by prefix: a subscriber of `room` must not get `other`.
    assert not wire.room_topic(other).startswith(wire.room_topic(room))
    assert not wire.room_topic(room).startswith(wire.room_topic(other))


@pytest.mark.parametrize("room", ["a", "all", "heartbeat", "lobby", "A-z_09"])
def test_room_topics_never_collide_with_the_cluster_topics(room):
    topic = wire.room_topic(room)
    for special in wire.CLUSTER_TOPICS:
        assert not topic.startswith(special)
        assert not special.startswith(topic)


def test_room_topic_is_the_utf8_room_name_terminated():
    assert wire.room_topic("lobby") == b"lobby\x00"
    assert wire.room_topic("é").startswith("é".encode("utf-8"))


def test_changed_room_lists_go_out_in_frames_bounded_by_rooms_and_nicks(monkeypatch):
    monkeypatch.setattr(wire, "PRESENCE_ROOMS_PER_FRAME", 3)
    monkeypatch.setattr(wire, "PRESENCE_NICKS_PER_FRAME", 10)
    changes = {"r%d" % i: ["n%d" % j for j in range(size)]
               for i, size in enumerate([1, 1, 1, 1, 12, 4, 4, 3])}
    frames = [wire.decode(f) for f in wire.encode_presences(changes)]
    assert [(f["type"], list(f.get("rooms", [f.get("room")]))) for f in frames] == [
        ("presences", ["r0", "r1", "r2"]),     # 3 rooms at most
        ("presence", ["r3"]),                  # r4's 12 nicks would pass 10: a new frame
        ("presence", ["r4"]),                  # a room over the bound goes alone
        ("presences", ["r5", "r6"]),           # 4 + 4 nicks; r7's 3 would make 11
        ("presence", ["r7"])]
    unpacked = [one for f in frames for one in wire.unbatch(f)]
    assert {one["room"]: one["members"] for one in unpacked} == changes
    assert all(one["type"] == "presence" for one in unpacked)
    assert wire.encode_presences({}) == []


@pytest.mark.parametrize("body", [{"type": "messages", "messages": {"a": 1}, "epoch": "e"},
                                  {"type": "presences", "rooms": ["a"]}])
def test_a_malformed_batch_is_a_wire_error(body):
    with pytest.raises(wire.WireError):
        wire.unbatch(body)
