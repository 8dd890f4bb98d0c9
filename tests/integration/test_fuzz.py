"""Property-based bad input over real sockets: arbitrary payloads at every event,
raw garbage at the broker's sockets.  Always a contract error or success, never a
crash, a traceback or a lost earlier message (the module's cluster fixture fails
the run on any Traceback or ERROR line in the process logs)."""
import pytest
import requests
import zmq
from hypothesis import HealthCheck, given, settings, strategies as st

from chatstream import wire

from harness.client import new_room

CODES = {"invalid_payload", "invalid_room", "invalid_nick", "invalid_text", "not_joined",
         "rate_limited", "unavailable", "payload_too_large", "too_many_rooms"}
EVENTS = ["join", "leave", "message", "members", "rooms"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
field_values = (json_values | st.sampled_from(["lobby", "fuzz-room", "a" * 64, "a" * 65, " ", ""])
                | st.text(alphabet="abc-_ \t\n\x00\x7f\u200b\ud800", max_size=70))
contract_like = st.fixed_dictionaries({}, optional={
    "room": field_values, "nick": field_values, "text": field_values, "cid": field_values,
    "since": field_values | st.integers(min_value=-5, max_value=10**6), "epoch": field_values})
payloads = json_values | contract_like
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def anchored(cluster):
    """A room with one accepted message that no bad input may disturb."""
    from harness.client import ChatClient
    room = new_room("anchor")
    c = ChatClient(cluster.url("node1"), name="anchor")
    c.join(room)
    first = c.send(room, "the anchor message")
    assert first["ok"]
    yield c, room, first
    c.close()


def _assert_anchor_intact(cluster, anchored):
    c, room, first = anchored
    assert c.sio.connected
    ack = c.call("members", {"room": room})
    assert ack["ok"]
    history = c.call("join", {"room": room, "nick": "anchor"})["history"]
    assert (history[0]["id"], history[0]["text"]) == (first["id"], "the anchor message")


@pytest.mark.timeout(600)
@FUZZ
@given(event=st.sampled_from(EVENTS), payload=payloads)
def test_any_payload_at_any_event_gets_success_or_a_contract_error(cluster, client, anchored, event, payload):
    c = anchored[0]
    ack = c.call(event, payload)
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
    if not ack["ok"]:
        assert ack["error"] in CODES and isinstance(ack["detail"], str) and ack["detail"], ack
    # the connection stays usable and what was accepted stays
    _assert_anchor_intact(cluster, anchored)


frames = st.lists(st.binary(max_size=300) | st.builds(
    lambda t, fields: wire.encode(t, **fields), st.sampled_from(sorted(wire.TYPES)),
    st.dictionaries(st.sampled_from(["rid", "room", "nick", "text", "node", "cid", "since", "epoch",
                                     "topic", "data", "rooms", "full", "bye", "part", "more",
                                     "uid"]), json_values, max_size=7)),
    min_size=1, max_size=4)


@pytest.mark.timeout(600)
@FUZZ
@given(socket_name=st.sampled_from(["intake", "snapshot"]), parts=frames)
def test_garbage_frames_at_the_broker_never_break_it(cluster, anchored, socket_name, parts):
    # As a peer holding the node key: a peer without one never reaches the handlers.
    sock = cluster.broker_socket(zmq.Context.instance(), zmq.DEALER, socket_name)
    try:
        sock.send_multipart(parts)
        if sock.poll(2000):                         # a reply, if any, is a valid body
            reply = sock.recv_multipart()
            assert len(reply) == 1
            wire.decode(reply[0])
    finally:
        sock.close()
    assert cluster.broker.alive()
    assert requests.get(cluster.url("node2") + "/healthz", timeout=5).status_code == 200
    _assert_anchor_intact(cluster, anchored)
