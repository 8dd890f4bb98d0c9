"""chat.protocol.validation: every input rule of PROTOCOL.md "Errors" that a payload can break."""
import pytest

from chat.protocol import validation
from chat.protocol.validation import ContractError

JOIN = {"room": "lobby", "nick": "ann"}
MESSAGE = {"room": "lobby", "text": "hello"}
LEAVE = {"room": "lobby"}

REQUESTS = {
    "join": (validation.join_request, JOIN),
    "message": (validation.message_request, MESSAGE),
    "leave": (validation.leave_request, LEAVE),
}


def refused(request, payload):
    with pytest.raises(ContractError) as info:
        request(payload)
    return info.value


def with_(base, **changes):
    payload = dict(base)
    for key, value in changes.items():
        if value is MISSING:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


MISSING = object()


# --- invalid_payload: not an object ------------------------------------------

@pytest.mark.parametrize("kind", sorted(REQUESTS))
@pytest.mark.parametrize("payload", [None, [], ["lobby"], "lobby", 5, 1.5, True, b"{}"],
                         ids=repr)
def test_a_payload_that_is_not_an_object_is_invalid_payload(kind, payload):
    request, _ = REQUESTS[kind]
    assert refused(request, payload).code == "invalid_payload"


# --- invalid_payload: a field of the wrong type --------------------------------

WRONG_TYPES = [
    ("join", "room", 5), ("join", "room", True), ("join", "room", ["lobby"]),
    ("join", "room", {"n": "lobby"}), ("join", "room", 1.0),
    ("join", "nick", 5), ("join", "nick", False), ("join", "nick", ["ann"]),
    ("join", "since", "3"), ("join", "since", 1.5), ("join", "since", True),
    ("join", "since", False), ("join", "since", [3]), ("join", "since", {}),
    ("join", "epoch", 5), ("join", "epoch", True), ("join", "epoch", ["E"]),
    ("message", "room", 5), ("message", "room", False),
    ("message", "text", 5), ("message", "text", True), ("message", "text", ["hi"]),
    ("message", "text", {"t": "hi"}),
    ("message", "cid", 5), ("message", "cid", True), ("message", "cid", ["c"]),
    ("leave", "room", 7), ("leave", "room", True),
]


@pytest.mark.parametrize("kind,field,value", WRONG_TYPES, ids=lambda v: repr(v))
def test_a_field_of_the_wrong_type_is_invalid_payload(kind, field, value):
    request, base = REQUESTS[kind]
    error = refused(request, with_(base, **{field: value}))
    assert error.code == "invalid_payload"
    assert field in error.detail


@pytest.mark.parametrize("since", [-1, -100])
def test_a_negative_since_is_invalid_payload(since):
    assert refused(validation.join_request, with_(JOIN, since=since)).code == "invalid_payload"


@pytest.mark.parametrize("cid", ["", "x" * 65, "x" * 200])
def test_a_cid_outside_1_to_64_chars_is_invalid_payload(cid):
    assert refused(validation.message_request, with_(MESSAGE, cid=cid)).code == "invalid_payload"


# --- invalid_room ----------------------------------------------------------------

BAD_ROOMS = [
    MISSING, None, "", "a" * 65, "a b", " lobby", "lobby ", "a/b", "a.b", "a:b", "a#b",
    "é", "日本", "lobby\n", "\nlobby", "a\x00", "a+b", "%41", "lobby\u200b",
]


@pytest.mark.parametrize("kind", sorted(REQUESTS))
@pytest.mark.parametrize("room", BAD_ROOMS, ids=lambda r: "missing" if r is MISSING else repr(r))
def test_bad_rooms_are_invalid_room(kind, room):
    request, base = REQUESTS[kind]
    assert refused(request, with_(base, room=room)).code == "invalid_room"


@pytest.mark.parametrize("room", ["a", "Z", "0", "_", "-", "a" * 64, "Lobby_2-x",
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"])
def test_good_rooms_are_accepted(room):
    assert validation.join_request(with_(JOIN, room=room))["room"] == room
    assert validation.message_request(with_(MESSAGE, room=room))["room"] == room
    assert validation.leave_request({"room": room}) == {"room": room}


# --- invalid_nick ----------------------------------------------------------------

BAD_NICKS = [
    MISSING, None, "", " ", "   ", "\t\n ", "\u3000", "a" * 33, "  " + "a" * 33 + "  ",
    "a\x00b", "a\x01b", "a\x1bb", "a\x7fb", "a\x80b", "a\x9fb", "line1\nline2",
    "tab\there", "bell\x07", "ann\u202e", "a\u200bdmin", "a\u2028b", "a\u2029b",
]


@pytest.mark.parametrize("nick", BAD_NICKS, ids=lambda n: "missing" if n is MISSING else repr(n))
def test_bad_nicks_are_invalid_nick(nick):
    assert refused(validation.join_request, with_(JOIN, nick=nick)).code == "invalid_nick"


@pytest.mark.parametrize("nick,clean", [
    ("ann", "ann"), ("  ann  ", "ann"), ("a" * 32, "a" * 32),
    ("  " + "a" * 32 + "  ", "a" * 32), ("Zoë 日本", "Zoë 日本"), ("ann smith", "ann smith"),
    ("x", "x"), ("\uff41\uff4e\uff4e", "ann"), (" \uff21dmin ", "Admin"),
])
def test_nicks_are_normalised_trimmed_and_accepted(nick, clean):
    assert validation.join_request(with_(JOIN, nick=nick))["nick"] == clean


# --- invalid_text ----------------------------------------------------------------

@pytest.mark.parametrize("text", [MISSING, None, "", " ", "\n\t  ", "\u3000", "a" * 2001,
                                  " " * 1999 + "ab", "a" * 5000, "a\x00b", "bell\x07",
                                  "cr\r\n", "esc\x1b[0m"],
                         ids=lambda t: "missing" if t is MISSING else repr(t)[:20])
def test_bad_texts_are_invalid_text(text):
    assert refused(validation.message_request, with_(MESSAGE, text=text)).code == "invalid_text"


@pytest.mark.parametrize("text", ["a", "a" * 2000, " hi ", "<b>x</b>", "line1\nline2", "é" * 2000,
                                  "tab\there", "\uff41 stays fullwidth in a text"])
def test_good_texts_are_accepted_unchanged(text):
    assert validation.message_request(with_(MESSAGE, text=text))["text"] == text


# --- accepted requests --------------------------------------------------------------

def test_join_request_returns_the_clean_values():
    assert validation.join_request({"room": "r", "nick": " ann ", "since": 4, "epoch": "E1"}) \
        == {"room": "r", "nick": "ann", "since": 4, "epoch": "E1"}


def test_join_request_optional_fields_default_to_none():
    assert validation.join_request(JOIN) == {"room": "lobby", "nick": "ann",
                                             "since": None, "epoch": None}
    assert validation.join_request(with_(JOIN, since=None, epoch=None))["since"] is None


def test_join_request_since_zero_is_accepted():
    assert validation.join_request(with_(JOIN, since=0))["since"] == 0


def test_message_request_returns_the_clean_values():
    assert validation.message_request({"room": "r", "text": "hi", "cid": "c" * 64}) == \
        {"room": "r", "text": "hi", "cid": "c" * 64}
    assert validation.message_request(MESSAGE)["cid"] is None
    assert validation.message_request(with_(MESSAGE, cid="x"))["cid"] == "x"


def test_unknown_extra_fields_are_ignored():
    assert validation.leave_request({"room": "r", "extra": [1, 2]}) == {"room": "r"}


# --- the individual rules -----------------------------------------------------------

@pytest.mark.parametrize("rule,payload,code", [
    (validation.room, {}, "invalid_room"),
    (validation.nick, {}, "invalid_nick"),
    (validation.text, {}, "invalid_text"),
    (validation.since, {"since": -1}, "invalid_payload"),
    (validation.cid, {"cid": ""}, "invalid_payload"),
    (validation.epoch, {"epoch": 1}, "invalid_payload"),
    (validation.payload_object, [], "invalid_payload"),
])
def test_each_rule_raises_its_contract_code(rule, payload, code):
    with pytest.raises(ContractError) as info:
        rule(payload)
    assert info.value.code == code


@pytest.mark.parametrize("rule,field", [
    (validation.since, "since"), (validation.cid, "cid"), (validation.epoch, "epoch"),
])
def test_optional_rules_return_none_when_absent(rule, field):
    assert rule({}) is None
    assert rule({field: None}) is None


def test_contract_error_acks_with_code_and_detail():
    error = refused(validation.join_request, with_(JOIN, room=""))
    assert error.ack() == {"ok": False, "error": "invalid_room", "detail": error.detail}
    assert isinstance(error.detail, str) and error.detail
    assert str(error) == error.detail


# --- payload_too_large ---------------------------------------------------------

def test_payload_size_counts_the_compact_utf8_json():
    payload = {"room": "lobby", "text": "é" * 10}      # {"room":"lobby","text":"éé..."}
    size = len('{"room":"lobby","text":""}') + 20
    validation.payload_size(payload, size)
    assert refused(lambda p: validation.payload_size(p, size - 1), payload).code == "payload_too_large"


def test_payload_size_of_a_lone_surrogate_is_measured_not_refused():
    payload = {"text": "\ud800" * 100}                  # orjson refuses it; the stdlib escapes it
    validation.payload_size(payload, 1000)
    assert refused(lambda p: validation.payload_size(p, 100), payload).code == "payload_too_large"


def test_payload_size_of_something_that_is_not_json_is_invalid_payload():
    assert refused(lambda p: validation.payload_size(p, 1000), {"x": {1, 2}}).code == "invalid_payload"
