"""Fewer ZeroMQ sends per chat message (issue 17): a room's messages of one broker
batch in one PUB frame, and a publish acknowledged by its own message on PUB
(``quiet``) instead of a reply.  The broker's side over fake sockets, the node's
over the link's in-memory twin (the real broker handlers)."""
import gevent
import pytest

from chat.link import acks
from chatstream import wire

from .link_twin import synced_links, wait_for
from .test_broker_server import PEER, frame, make_broker, publish_frame

pytestmark = pytest.mark.timeout(20)


def serve_batch(broker, *frames):
    """Serve several intake requests, then one group commit; returns
    (replies to PEER, [(topic, body)] published)."""
    for body in frames:
        broker._serve(broker.intake, broker.intake_handlers, [PEER, body])
    broker._flush()
    replies = [wire.decode(body) for _, body in broker.intake.sent]
    return replies, [(topic, wire.decode(body)) for topic, body in broker.publisher.sent]


def batch_broker():
    from .test_broker_server import FakeSocket
    broker = make_broker()
    broker.intake = FakeSocket()
    return broker


# --- the broker: one PUB frame per room per batch ------------------------------

def test_a_rooms_messages_of_one_batch_go_out_in_one_frame_in_seq_order():
    broker = batch_broker()
    replies, out = serve_batch(broker, *(publish_frame(rid=i, room=room, text="t%d" % i)
                                         for i, room in enumerate("aabab")))
    assert [r["message"]["seq"] for r in replies] == [1, 2, 1, 3, 2]
    assert [(topic, body["type"]) for topic, body in out] == [
        (wire.room_topic("a"), "messages"), (wire.room_topic("b"), "messages")]
    a, b = out[0][1], out[1][1]
    assert [m["text"] for m in a["messages"]] == ["t0", "t1", "t3"]
    assert [m["seq"] for m in b["messages"]] == [1, 2]
    assert a["epoch"] == b["epoch"] == "E1"
    assert a["messages"] == [r["message"] for r in replies if r["message"]["room"] == "a"]


def test_a_single_message_goes_out_as_a_message_body_and_batches_end_with_the_commit():
    broker = batch_broker()
    serve_batch(broker, publish_frame(rid=1, room="a"))
    serve_batch(broker, publish_frame(rid=2, room="a"))
    assert [(wire.decode(b)["type"], wire.decode(b)["message"]["seq"])
            for _, b in broker.publisher.sent] == [("message", 1), ("message", 2)]


def test_another_frame_on_the_room_topic_closes_the_batch_so_order_on_the_topic_holds():
    broker = batch_broker()
    announce = frame("announce", room="a", text="ann joined", node="node1")
    _, out = serve_batch(broker, publish_frame(rid=1, room="a", text="one"), announce,
                         publish_frame(rid=2, room="a", text="two"))
    assert [body["type"] for _, body in out] == ["message", "announcement", "message"]
    assert [out[0][1]["message"]["text"], out[2][1]["message"]["text"]] == ["one", "two"]


def test_a_frame_holds_at_most_messages_per_frame(monkeypatch):
    monkeypatch.setattr(wire, "MESSAGES_PER_FRAME", 3)
    broker = batch_broker()
    _, out = serve_batch(broker, *(publish_frame(rid=i, room="a") for i in range(7)))
    assert [len(body.get("messages", [body.get("message")])) for _, body in out] == [3, 3, 1]
    seqs = [m["seq"] for _, body in out for m in body.get("messages", [body.get("message")])]
    assert seqs == list(range(1, 8))


# --- the broker: quiet publishes ---------------------------------------------

def test_a_quiet_publish_gets_no_reply_but_its_duplicate_and_a_refusal_do():
    broker = batch_broker()
    replies, out = serve_batch(broker, frame("publish", rid=1, room="a", nick="ann", text="hi",
                                             node="node1", cid="c1", quiet=True))
    assert replies == []
    [(_, body)] = out
    assert (body["message"]["cid"], body["message"]["node"], body["message"]["seq"]) == (
        "c1", "node1", 1)
    replies, _ = serve_batch(broker, frame("publish", rid=2, room="a", nick="ann", text="hi",
                                           node="node1", cid="c1", quiet=True),
                             frame("publish", rid=3, room="a", nick="ann", text="",
                                   node="node1", cid="c2", quiet=True))
    assert [(r["type"], r["rid"]) for r in replies] == [("published", 2), ("error", 3)]
    assert replies[0]["duplicate"] is True and replies[0]["message"] == body["message"]
    assert replies[1]["error"] == "bad_request"


# --- the node: acks from PUB ---------------------------------------------------

def intake_replies(broker):
    """Count the broker's replies on intake (a list that grows)."""
    seen = []
    reply = broker._reply
    broker._reply = lambda channel, identity, body: (
        seen.append(wire.decode(body)["type"]) if channel == "intake" else None,
        reply(channel, identity, body))
    return seen


def test_a_publish_in_a_room_heard_on_pub_is_acked_by_its_message_with_no_reply():
    broker, ((a, rec_a), (b, rec_b)) = synced_links()
    a.follow("r")
    b.follow("r")
    replies = intake_replies(broker)
    first, duplicate = a.sequence("r", "ann", "one", cid="c1")   # room not heard yet
    assert (first["seq"], duplicate, replies) == (1, False, ["published"])
    wait_for(lambda: rec_a.texts() == ["one"], what="the first message on PUB")
    second, duplicate = a.sequence("r", "ann", "two", cid="c2")
    assert (second["seq"], second["cid"], duplicate) == (2, "c2", False)
    assert replies == ["published"]                            # no reply for the second
    nocid, _ = a.sequence("r", "ann", "three")                  # no cid to match: answered
    assert nocid["seq"] == 3 and replies == ["published", "published"]
    wait_for(lambda: rec_b.texts() == rec_a.texts() == ["one", "two", "three"])
    assert a.acks.awaiting == set()


def test_a_quiet_publish_whose_message_never_comes_is_asked_again_and_sequenced_once(
        monkeypatch):
    monkeypatch.setattr(acks, "QUIET_S", 0.2)
    broker, ((a, rec_a),) = synced_links(1)
    a.follow("r")
    a.sequence("r", "ann", "one", cid="c1")
    wait_for(lambda: rec_a.texts() == ["one"], what="the room to be heard")
    replies = intake_replies(broker)
    a.transport.topics.discard(wire.room_topic("r"))   # e.g. a full PUB queue: lost
    message, duplicate = a.sequence("r", "ann", "two", cid="c2")
    assert (message["seq"], message["text"], duplicate) == (2, "two", True)
    assert replies == ["published"]                     # the second asking only
    assert broker.sequencer.rooms["r"].seq == 2


def test_a_messages_frame_is_delivered_as_its_messages_in_order():
    broker, ((a, rec_a),) = synced_links(1)
    a.follow("r")
    a.sequence("r", "ann", "one", cid="c1")
    wait_for(lambda: rec_a.texts() == ["one"])
    epoch = a.view("r")["epoch"]
    batch = [dict(rec_a.messages()[0], seq=seq, id="m%d" % seq, text="t%d" % seq, cid="x%d" % seq)
             for seq in (2, 3, 4)]
    a.handle_frames([wire.room_topic("r"), wire.encode_messages(epoch, batch)])
    assert rec_a.texts() == ["one", "t2", "t3", "t4"]
    assert a.view("r")["seq"] == 4


def test_concurrent_quiet_publishes_are_each_settled_by_their_own_message():
    broker, ((a, rec_a), (b, _)) = synced_links()
    for link in (a, b):
        link.follow("r")
    a.sequence("r", "ann", "zero", cid="c0")
    wait_for(lambda: rec_a.texts() == ["zero"])
    replies = intake_replies(broker)
    greenlets = [gevent.spawn(link.sequence, "r", "n", "%s-%d" % (link.node, i),
                              "%s-c%d" % (link.node, i)) for i in range(10) for link in (a, b)]
    gevent.joinall(greenlets, raise_error=True)
    for g in greenlets:
        message, duplicate = g.value
        assert not duplicate and message["cid"] == "%s-c%s" % (message["node"],
                                                               message["text"].split("-")[1])
    assert sorted(g.value[0]["seq"] for g in greenlets) == list(range(2, 22))
    assert replies == []          # both nodes heard "zero": every publish was quiet


def test_a_presences_frame_updates_and_delivers_each_room_in_order():
    broker, ((a, rec_a),) = synced_links(1)
    a.handle_frames([wire.PRESENCE_TOPIC,
                     wire.encode("presences", rooms={"r": ["ann"], "s": ["bob", "cy"]})])
    assert a.members("r") == ["ann"] and a.members("s") == ["bob", "cy"]
    assert [(data["room"], data["members"]) for event, data, _ in rec_a.delivered
            if event == "presence"] == [("r", ["ann"]), ("s", ["bob", "cy"])]
    a.handle_frames([wire.PRESENCE_TOPIC, wire.encode("presences", rooms=["r"])])   # refused
    assert a.members("r") == ["ann"]
