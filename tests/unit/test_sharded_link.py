"""chat.link.sharded.ShardedLink: one link per broker pair (in-memory twins), each room's
requests to the pair that owns it, node-wide answers merged over the pairs."""
import gevent
import pytest

from chat.link import BrokerLink, BrokerUnavailable, LinkState
from chat.link.sharded import ShardedLink
from chatstream import shards
from harness.twins import MemoryBroker

from .link_twin import Recorder, wait_for

pytestmark = pytest.mark.timeout(20)

PAIRS = ("pair1", "pair2")
UID = "a" + "0" * 19 + "1"


def room_of(pair, start=0):
    """A room name that ``pair`` owns."""
    return next("room-%d" % i for i in range(start, start + 1000)
                if shards.owner("room-%d" % i, PAIRS) == pair)


def sharded(brokers, node="n1", ack_timeout_s=0.5):
    links = {pair: BrokerLink(broker.transport(), node=node, ack_timeout_s=ack_timeout_s,
                              heartbeat_ms=50, dead_after_ms=150)
             for pair, broker in zip(PAIRS, brokers)}
    link, recorder = ShardedLink(links), Recorder()
    link.start(recorder)
    return link, recorder


@pytest.fixture
def two_pairs():
    brokers = [MemoryBroker(), MemoryBroker()]
    nodes = [sharded(brokers, "n1"), sharded(brokers, "n2")]
    for broker in brokers:
        broker.heartbeat()
    for link, _ in nodes:
        assert all(link.links[pair].wait_synced(2.0) for pair in PAIRS)
    yield brokers, nodes
    for link, _ in nodes:
        link.close()


def test_each_room_is_sequenced_by_its_own_pair_and_reaches_every_node(two_pairs):
    brokers, [(a, rec_a), (b, rec_b)] = two_pairs
    rooms = {pair: room_of(pair) for pair in PAIRS}
    for room in rooms.values():
        a.follow(room)
        b.follow(room)
    for i in range(3):
        for room in rooms.values():
            message, duplicate = a.sequence(room, "ann", "%s %d" % (room, i))
            assert not duplicate and message["seq"] == i + 1
    for broker, pair in zip(brokers, PAIRS):
        assert broker.sequencer.peek(rooms[pair])["seq"] == 3
        other = rooms[PAIRS[1 - PAIRS.index(pair)]]
        assert broker.sequencer.peek(other) is None   # never seen by the other pair
    for room in rooms.values():
        wait_for(lambda: len(rec_b.texts(room)) == 3, what="node b to hear " + room)
        assert rec_b.texts(room) == rec_a.texts(room) == ["%s %d" % (room, i) for i in range(3)]
        assert a.view(room)["seq"] == b.view(room)["seq"] == 3
        assert a.view(room)["epoch"] == brokers[PAIRS.index(a.pair_of(room))].sequencer.epoch


def test_members_and_the_rooms_list_merge_over_the_pairs(two_pairs):
    brokers, [(a, _), (b, _)] = two_pairs
    rooms = [room_of("pair1"), room_of("pair2")]
    for room in rooms:
        a.follow(room)
        a.member_joined(room, "ann")
    b.follow(rooms[1])
    b.member_joined(rooms[1], "bob")
    wait_for(lambda: sorted(b.active_rooms()) == sorted([(rooms[0], 1), (rooms[1], 2)]),
             timeout=5.0, what="both pairs' presence on node b")
    assert sorted(a.members(rooms[1])) == ["ann", "bob"]
    assert a.active_rooms()[0] == (rooms[1], 2)    # most populated first, over both pairs
    # each pair hears only its own rooms' members
    assert brokers[0].presence.members(rooms[1]) == [] and brokers[1].presence.members(rooms[0]) == []


def test_a_pair_that_is_down_makes_only_its_own_rooms_unavailable():
    brokers = [MemoryBroker(), MemoryBroker()]
    link, recorder = sharded(brokers)
    brokers[0].heartbeat()             # pair2 never answers: its broker is away
    brokers[1].reachable = False
    assert link.wait_synced(2.0)       # a join need not wait for the pair that is away
    assert link.broker_up
    assert link.pair_states() == {"pair1": LinkState.LIVE, "pair2": LinkState.CONNECTING}
    assert link.state is LinkState.CONNECTING
    up, down = room_of("pair1"), room_of("pair2")
    link.follow(up)
    assert link.sequence(up, "ann", "still here")[0]["seq"] == 1
    with pytest.raises(BrokerUnavailable):
        link.follow(down)
    with pytest.raises(BrokerUnavailable):
        link.sequence(down, "ann", "lost")
    link.close()


def test_room_scoped_methods_added_to_brokerlink_are_routed_without_change(monkeypatch, two_pairs):
    _, [(a, _), _] = two_pairs
    calls = []
    monkeypatch.setattr(BrokerLink, "typing", lambda self, room, nick: calls.append(
        (self, room, nick)), raising=False)
    for pair in PAIRS:
        a.typing(room_of(pair), "ann")
        a.typing(room=room_of(pair, 500), nick="bob")
    assert [(link, room) for link, room, _ in calls] == [
        (a.links["pair1"], room_of("pair1")), (a.links["pair1"], room_of("pair1", 500)),
        (a.links["pair2"], room_of("pair2")), (a.links["pair2"], room_of("pair2", 500))]


def test_an_eviction_from_every_room_goes_through_one_live_pair(two_pairs):
    brokers, [(a, rec_a), (b, rec_b)] = two_pairs
    a.evict(None, UID, "banned")
    wait_for(lambda: rec_b.evicted == [(None, UID, "banned", None)], what="node b's eviction")
    gevent.sleep(0.05)
    assert rec_b.evicted == [(None, UID, "banned", None)]    # once, not once per pair
    assert [b'"evict"' in frame for broker in brokers for _, frame in broker.frames_seen].count(
        True) == 1


def test_a_part_of_the_link_routes_its_room_methods_and_keeps_its_state_per_pair(two_pairs):
    _, [(a, _), _] = two_pairs
    room = room_of("pair2")
    assert not a.following.is_live(room)
    a.follow(room)
    assert a.following.is_live(room) and a.links["pair2"].following.is_live(room)
    assert not a.links["pair1"].following.is_live(room)
    with pytest.raises(AttributeError):
        a.local.rooms       # per pair: ShardedLink.local_rooms() merges them


def test_fan_outs_go_through_the_room_s_pair_and_are_heard_from_every_pair(two_pairs):
    brokers, [(a, _), (b, _)] = two_pairs
    heard = []
    b.on_published("typing", heard.append)
    b.on_published("usage", heard.append)
    room = room_of("pair2")
    for link in (a, b):
        link.follow(room)
        link.member_joined(room, "ann" if link is a else "bob", UID if link is a else None)
    assert a.fanout("typing", room=room, nick="ann", uid=UID)
    wait_for(lambda: [body["type"] for body in heard] == ["typing"], what="typing on node b")
    assert [b'"typing"' in frame for _, frame in brokers[0].frames_seen].count(True) == 0
    assert a.fanout("usage", spent={UID: {"message": 1}})
    wait_for(lambda: [body["type"] for body in heard] == ["typing", "usage"], what="usage on node b")
