"""Who may author a room event: the broker sequences one only from a connection its
node registered in the room (broker/handlers.py ``own_member``, the presence
registry's ``speaker``), and the node registers before it sends (link/presence.py,
link/broker_link.py) -- across a broker restart and a failover too.  Over the
in-memory twins with each transport's requests coming as with its node's key."""
import logging

import gevent
import pytest

from broker import bstar
from chat.link import BrokerLink
from chat.link.channel import NotMember
from chatstream import wire
from harness.twins import MemoryBroker, MemoryPair

from .link_twin import Recorder, wait_for

pytestmark = pytest.mark.timeout(20)

ANN, BOB = "a" + "1" * 20, "a" + "2" * 20
HEARTBEAT_MS = 50


def ask(transport, type_, **fields):
    """One intake request over a raw twin transport; its reply body (None: no reply)."""
    transport.send("intake", wire.encode(type_, rid=1, **fields))
    queue = transport.queues["intake"]
    return wire.decode(queue.get()) if queue.qsize() else None


def publish(transport, uid, nick="ann", room="r", node="n1", text="hi"):
    return ask(transport, "publish", room=room, nick=nick, text=text, node=node,
               cid="c-%s-%s" % (uid, text), uid=uid)


def test_a_node_key_publishing_as_a_uid_it_did_not_register_is_refused():
    broker = MemoryBroker()
    node = broker.transport(peer="n1")
    ask(node, "presence", node="n1", rooms={"r": [["ann", ANN]]}, full=True)
    assert publish(node, ANN)["type"] == "published"
    for uid, nick, room in ((BOB, "ann", "r"), (ANN, "bob", "r"), (ANN, "ann", "s"),
                            (None, "ann", "r")):
        reply = publish(node, uid, nick, room)
        assert (reply["type"], reply["error"]) == ("error", "not_member"), (uid, nick, room)
    assert broker.sequencer.rooms["r"].seq == 1 and broker.sequencer.find("s") is None
    # plain sockets carry no node name to bind a uid to: nothing to check there
    assert publish(broker.transport(), BOB, "bob", text="plain")["type"] == "published"


def test_refusals_are_logged_at_most_once_per_interval(caplog):
    broker = MemoryBroker()
    node = broker.transport(peer="n1")
    ask(node, "presence", node="n1", rooms={"r": [["ann", ANN]]}, full=True)
    with caplog.at_level(logging.INFO, logger="broker"):
        for i in range(50):
            assert publish(node, BOB, "mallory", text="%d" % i)["error"] == "not_member"
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "uid %s" % BOB in lines[0].getMessage()


def test_a_presence_member_must_be_a_nick_or_a_nick_and_a_uid():
    node = MemoryBroker().transport(peer="n1")
    for bad in ([["ann"]], [["ann", "not-a-uid"]], [[1, ANN]], [{"nick": "ann"}]):
        reply = ask(node, "presence", node="n1", rooms={"r": bad}, full=True)
        assert reply["type"] == "error", bad


def start(transport, node="n1"):
    link = BrokerLink(transport, node=node, ack_timeout_s=2.0, heartbeat_ms=HEARTBEAT_MS,
                      dead_after_ms=3 * HEARTBEAT_MS)
    link.start(Recorder())
    return link


def joined(link, uid, nick, room="r"):
    link.follow(room)
    link.member_joined(room, nick, uid)


def ann_on(broker):
    """A synced link of node n1 on ``broker`` whose connection ``ann`` just joined r."""
    link = start(broker.transport(peer="n1"))
    broker.heartbeat()
    assert link.wait_synced(2.0)
    joined(link, ANN, "ann")
    return link


def test_a_connection_that_just_joined_is_registered_before_its_first_message():
    broker = MemoryBroker()
    link = ann_on(broker)
    message, _ = link.sequence("r", "ann", "at once", cid="c1", uid=ANN)
    assert message["uid"] == ANN
    kinds = [wire.decode(body)["type"] for channel, body in broker.frames_seen
             if channel == "intake"]
    assert kinds[-2:] == ["presence", "publish"]     # the room's change went first, in order
    with pytest.raises(NotMember):                   # a uid this node has no connection of
        link.sequence("r", "bob", "forged", cid="c2", uid=BOB)
    link.close()


def test_a_restarted_broker_hears_the_members_again_and_refuses_no_honest_message():
    broker = MemoryBroker()
    link = ann_on(broker)
    link.sequence("r", "ann", "before", cid="c1", uid=ANN)
    broker = broker.restart()            # an empty registry; the node has not noticed yet
    message, duplicate = link.sequence("r", "ann", "after", cid="c2", uid=ANN)
    assert (message["text"], duplicate) == ("after", False)
    assert broker.presence.speaker("n1", "r", ANN, "ann") is True
    link.close()


def test_a_failover_with_an_unacked_publish_refuses_no_honest_message():
    pair = MemoryPair(heartbeat_ms=HEARTBEAT_MS)
    wait_for(lambda: pair.state(0) == bstar.ACTIVE and pair.state(1) == bstar.PASSIVE
             and pair.brokers[1].broker.pair.replica.in_sync, what="the pair to form")
    link = start(pair.transport(peer="n1"))
    assert link.wait_synced(2.0)
    joined(link, ANN, "ann")
    link.sequence("r", "ann", "before", cid="c0", uid=ANN)
    pair.brokers[0].hold_replies("intake")          # sequenced and replicated, never acked
    pending = gevent.spawn(link.sequence, "r", "ann", "in flight", "c1", ANN)
    wait_for(lambda: pair.brokers[0].held, what="the held ack")
    pair.kill(0)
    message, duplicate = pending.get(timeout=5)      # asked again of broker2: registered first
    assert (message["seq"], duplicate) == (2, True)
    message, duplicate = link.sequence("r", "ann", "after", cid="c2", uid=ANN)
    assert (message["seq"], duplicate, pair.active()) == (3, False, [1])
    pair.close()
    link.close()
