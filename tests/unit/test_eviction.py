"""Evictions (chat/protocol/eviction.py): a uid's connections leave a room on every node,
through the broker's ``evict`` (the link's twin, the real broker handlers)."""
import pytest

from chat.protocol.identity import GuestIdentities, Identity
from harness.twins import MemoryBroker

from .link_twin import Recorder, start_link, synced_links, wait_for
from .test_events import Node

pytestmark = pytest.mark.timeout(20)

ALICE = Identity("a" + "1" * 20, "alice", session="s" + "1" * 20)
BERT = Identity("a" + "3" * 20, "bert", session="s" + "3" * 20)
SESSIONS = {"alice-1": ALICE, "alice-2": Identity(ALICE.uid, "alice", session="s" + "2" * 20),
            "bert-1": BERT}


class EmitRecorder:
    """What a node's server emitted to single connections (``to=sid``)."""

    def __init__(self, sio):
        self.sent = []   # (sid, event, data)
        original = sio.emit

        def emit(event, data=None, to=None, **kwargs):
            if to is not None:
                self.sent.append((to, event, data))
            return original(event, data, to=to, **kwargs)
        sio.emit = emit


def wired_nodes(broker, count=2):
    nodes = [Node(broker, "n%d" % (i + 1), identities=GuestIdentities(sessions=SESSIONS))
             for i in range(count)]
    for node in nodes:
        node.emitted = EmitRecorder(node.sio)
    broker.heartbeat()
    for node in nodes:
        assert node.link.wait_synced(2.0)
    return nodes


def connect(node, cookie):
    return node.connect({"HTTP_COOKIE": "sessionid=%s" % cookie})


def test_a_ban_makes_the_uid_leave_the_room_on_every_node_and_tells_each_connection():
    broker = MemoryBroker()
    a, b = wired_nodes(broker)
    alice_a, alice_b, bert = connect(a, "alice-1"), connect(b, "alice-2"), connect(b, "bert-1")
    for node, sid in ((a, alice_a), (b, alice_b), (b, bert)):
        assert node.events.on_join(sid, {"room": "r"})["ok"]
    assert b.events.on_join(alice_b, {"room": "other"})["ok"]
    wait_for(lambda: sorted(a.link.members("r")) == ["alice", "bert"])

    a.link.evict("r", ALICE.uid, "banned", until=1_700_000_000_000)

    assert "r" not in a.events.connections[alice_a].rooms                  # here: at once
    wait_for(lambda: "r" not in b.events.connections[alice_b].rooms)       # there: the broker
    assert b.events.connections[alice_b].rooms == {"other": "alice"}       # its other room stays
    assert b.events.connections[bert].rooms == {"r": "bert"}                # nobody else leaves
    wait_for(lambda: a.link.members("r") == ["bert"])
    assert a.emitted.sent == [(alice_a, "banned", {"room": "r", "until": 1_700_000_000_000})]
    assert b.emitted.sent == [(alice_b, "banned", {"room": "r", "until": 1_700_000_000_000})]
    assert "r" not in a.sio.manager.rooms["/"] or alice_a not in a.sio.manager.rooms["/"]["r"]
    wait_for(lambda: ("announcement", "alice left") in [
        (e, d["text"]) for e, d, r in b.manager.delivered if e == "announcement" and r == "r"])


def test_an_eviction_from_every_room_with_another_reason_says_evicted():
    broker = MemoryBroker()
    a, b = wired_nodes(broker)
    alice = connect(b, "alice-1")
    for room in ("r1", "r2"):
        assert b.events.on_join(alice, {"room": room})["ok"]
    a.link.evict(None, ALICE.uid, "removed")
    wait_for(lambda: b.events.connections[alice].rooms == {})
    assert sorted(b.emitted.sent, key=lambda sent: sent[2]["room"]) == [
        (alice, "evicted", {"room": "r1", "reason": "removed"}),
        (alice, "evicted", {"room": "r2", "reason": "removed"})]


def test_an_evict_comes_to_every_link_and_a_resync_is_told():
    broker, links = synced_links(3)
    (origin, here), others = links[0], links[1:]
    assert here.resyncs == 1 and all(r.resyncs == 1 for _, r in others)
    origin.evict("r", ALICE.uid, "banned", until=5)
    assert here.evicted == [("r", ALICE.uid, "banned", 5)]            # at once, before the broker
    for _, recorder in others:
        wait_for(lambda: recorder.evicted == [("r", ALICE.uid, "banned", 5)])
    wait_for(lambda: len(here.evicted) == 2)                          # and once more from it


def test_a_link_that_starts_anew_is_told_it_resynced():
    broker = MemoryBroker()
    link, recorder = start_link(broker)
    assert isinstance(recorder, Recorder) and recorder.resyncs == 0
    broker.heartbeat()
    assert link.wait_synced(2.0)
    wait_for(lambda: recorder.resyncs == 1)
