"""chat.link.BrokerLink over its in-memory twin (the real broker handlers, no sockets)."""
import gevent
import pytest

from chat.link import BrokerUnavailable, LinkState
from chatstream import wire

from .link_twin import start_link, synced_links, wait_for

pytestmark = pytest.mark.timeout(20)


def test_link_goes_live_on_the_first_heartbeat_and_down_when_they_stop():
    from harness.twins import MemoryBroker
    broker = MemoryBroker()
    link, _ = start_link(broker)
    assert link.state is LinkState.CONNECTING and not link.broker_up
    assert not link.wait_synced(0.05)
    broker.heartbeat()
    assert link.wait_synced(2.0)
    assert link.state is LinkState.LIVE and link.broker_up
    wait_for(lambda: link.state is LinkState.DOWN, what="the watchdog to notice silence")
    broker.heartbeat()
    wait_for(lambda: link.state is LinkState.LIVE, what="the link to come back")


def test_a_busy_node_loop_is_not_taken_for_a_silent_broker():
    """A connection storm can keep a node's loop busy for seconds; the broker's heartbeats
    then wait unread.  That stall must not mark the link down (nor /healthz red)."""
    import time
    _, [(link, _)] = synced_links(1)
    downs = []
    set_state = link._set_state
    link._set_state = lambda state, why: (downs.append(why) if state is LinkState.DOWN
                                          else None, set_state(state, why))
    end = time.monotonic() + 0.5             # 0.5 s without yielding: dead_after is 0.15 s
    while time.monotonic() < end:
        pass
    gevent.sleep(0.03)                       # the watchdog wakes late, sees the stall
    assert link.state is LinkState.LIVE and downs == []
    wait_for(lambda: link.state is LinkState.DOWN, what="a real silence to count")

def test_every_node_delivers_a_room_in_the_brokers_order():
    broker, ((a, rec_a), (b, rec_b)) = synced_links()
    a.follow("r")
    b.follow("r")
    greenlets = [gevent.spawn(link.sequence, "r", "n", "%s%d" % (link.node, i))
                 for i in range(20) for link in (a, b)]
    gevent.joinall(greenlets, raise_error=True)
    wait_for(lambda: len(rec_a.messages()) == 40 and len(rec_b.messages()) == 40)
    assert [m["seq"] for m in rec_a.messages()] == list(range(1, 41))
    assert rec_a.messages() == rec_b.messages()
    assert a.view("r")["seq"] == b.view("r")["seq"] == 40


def test_a_repeated_cid_is_sequenced_once():
    broker, ((a, rec_a),) = synced_links(1)
    a.follow("r")
    first, duplicate = a.sequence("r", "alice", "hi", cid="c1")
    again, duplicate_again = a.sequence("r", "alice", "hi", cid="c1")
    assert (duplicate, duplicate_again) == (False, True)
    assert again["id"] == first["id"]
    wait_for(lambda: rec_a.messages())
    gevent.sleep(0.01)
    assert len(rec_a.messages()) == 1


def test_follow_fetches_the_room_and_merges_what_arrived_meanwhile():
    broker, ((a, rec_a), (b, _)) = synced_links()
    b.follow("r")
    for i in range(3):
        b.sequence("r", "bob", "before%d" % i)
    broker.hold_replies("snapshot")   # a's fetch is answered now (seq 3), but late
    fetch = gevent.spawn(a.follow, "r")
    wait_for(lambda: broker.held, what="a's fetch")
    gevent.spawn(b.sequence, "r", "bob", "during").join()
    wait_for(lambda: a.following.get("r").held, what="a to hold the live message")
    assert rec_a.messages() == []
    broker.release_replies()
    fetch.get(timeout=2)
    wait_for(lambda: rec_a.texts("r") == ["during"], what="the held message")
    view = a.view("r")
    assert [m["text"] for m in view["history"]] == ["before0", "before1", "before2", "during"]
    assert view["seq"] == 4 and not view["gap"]


def test_concurrent_follows_fetch_once_and_a_failed_fetch_fails_both():
    broker, ((a, _),) = synced_links(1, ack_timeout_s=0.3)
    broker.answering = False
    first = gevent.spawn(a.follow, "r")
    second = gevent.spawn(a.follow, "r")
    gevent.joinall([first, second])
    assert isinstance(first.exception, BrokerUnavailable)
    assert isinstance(second.exception, BrokerUnavailable)
    fetches = [body for channel, body in broker.frames_seen if b'"history"' in body]
    assert len(fetches) == 1
    assert a.following.get("r") is None
    assert wire.room_topic("r") not in a.transport.topics
    broker.answering = True
    a.follow("r")
    assert a.following.is_live("r")


def test_a_lost_live_message_is_repaired_from_the_buffer():
    broker, ((a, rec_a), (b, _)) = synced_links()
    a.follow("r")
    b.follow("r")
    topic = wire.room_topic("r")
    a.transport.topics.discard(topic)      # a misses two messages
    b.sequence("r", "bob", "m1")
    b.sequence("r", "bob", "m2")
    a.transport.topics.add(topic)
    b.sequence("r", "bob", "m3")           # seq 3 after 0: a gap, repaired
    wait_for(lambda: rec_a.texts() == ["m1", "m2", "m3"], what="the repair")


def test_a_lost_tail_is_noticed_by_the_heartbeat():
    broker, ((a, rec_a), (b, _)) = synced_links()
    a.follow("r")
    a.transport.topics.discard(wire.room_topic("r"))
    b.sequence("r", "bob", "tail")
    a.transport.topics.add(wire.room_topic("r"))
    assert rec_a.messages() == []
    broker.heartbeat()                     # carries seqs {"r": 1}
    wait_for(lambda: rec_a.texts() == ["tail"], what="the heartbeat's repair")


def test_a_restarted_broker_with_its_state_is_followed_seamlessly():
    broker, ((a, rec_a),) = synced_links(1)
    a.follow("r")
    a.sequence("r", "alice", "one")
    wait_for(lambda: rec_a.texts() == ["one"])
    broker = broker.restart(keep_state=True)
    broker.heartbeat()
    wait_for(lambda: a.broker_instance == broker.broker.instance, what="the resync")
    a.sequence("r", "alice", "two")
    wait_for(lambda: rec_a.texts() == ["one", "two"])
    assert rec_a.restarted == []


def test_a_broker_with_a_new_epoch_restarts_the_rooms_readers():
    broker, ((a, rec_a),) = synced_links(1)
    a.follow("r")
    a.member_joined("r", "alice")
    a.sequence("r", "alice", "one")
    wait_for(lambda: rec_a.texts() == ["one"])
    broker = broker.restart(keep_state=False)
    broker.heartbeat()
    wait_for(lambda: rec_a.restarted == ["r"], what="the readers' restart")
    view = a.view("r")
    assert view["epoch"] == broker.sequencer.epoch and view["seq"] == 0


def test_an_unreachable_broker_refuses_at_once_and_a_hung_one_times_out():
    broker, ((a, _),) = synced_links(1, ack_timeout_s=0.2)
    broker.reachable = False
    with pytest.raises(BrokerUnavailable, match="not connected"):
        a.sequence("r", "alice", "hi")
    broker.reachable = True
    broker.answering = False
    with pytest.raises(BrokerUnavailable, match="no reply"):
        a.sequence("r", "alice", "hi")


def test_the_last_member_leaving_unfollows_and_release_undoes_an_unused_follow():
    broker, ((a, _),) = synced_links(1, follow_grace_s=0)
    a.follow("r")
    a.member_joined("r", "alice")
    a.member_joined("r", "alice")          # a second connection with the same nick
    a.member_left("r", "alice")
    assert a.following.is_live("r")
    a.member_left("r", "alice")
    assert a.following.get("r") is None and "r" not in a.mirror.rooms
    assert wire.room_topic("r") not in a.transport.topics
    a.follow("s")
    a.release("s")
    assert a.following.get("s") is None
    a.follow("t")
    a.member_joined("t", "bob")
    a.release("t")                         # has a member: still followed
    assert a.following.is_live("t")


def test_a_room_stays_followed_for_the_grace_period_after_its_last_member_left():
    broker, ((a, _), (b, _)) = synced_links(follow_grace_s=0.3, follow_grace_rooms=2)
    a.follow("r")
    a.member_joined("r", "alice")
    b.follow("r")
    a.member_left("r", "alice")
    assert a.following.is_live("r") and list(a.following.idle) == ["r"]
    b.sequence("r", "bob", "while away", cid="c1")
    wait_for(lambda: a.view("r")["seq"] == 1, what="the idle room to stay live")
    seen = len(broker.frames_seen)
    a.follow("r")                                    # back within the grace: no fetch
    a.member_joined("r", "alice")
    assert [channel for channel, _ in broker.frames_seen[seen:]] == []
    assert a.following.idle == {}
    a.member_left("r", "alice")
    for room in ("s", "t"):                          # over 2 idle rooms: the oldest stops
        a.follow(room)
        a.member_joined(room, "x")
        a.member_left(room, "x")
    assert list(a.following.idle) == ["s", "t"] and a.following.get("r") is None
    assert "r" not in a.mirror.rooms and wire.room_topic("r") not in a.transport.topics
    wait_for(lambda: not a.following.idle, what="the grace period to end")
    assert a.following.get("s") is None and wire.room_topic("t") not in a.transport.topics


def test_announcements_reach_every_node_following_the_room_the_author_s_too():
    broker, ((a, rec_a), (b, rec_b)) = synced_links()
    a.follow("r")
    b.follow("r")
    a.announce("r", "ann joined")
    a.announce("elsewhere", "ann left")                                     # not followed
    a.announce("r", "ann left")
    wait_for(lambda: len(rec_b.announcements()) == 2, what="two announcements")
    assert rec_b.announcements() == ["ann joined", "ann left"] == rec_a.announcements()
    assert [body["type"] for channel, body in map(lambda f: (f[0], wire.decode(f[1])),
                                                  broker.frames_seen)
            if body["type"] == "announce"] == ["announce"] * 3


def test_a_burst_of_frames_is_read_in_turns_that_let_the_rest_of_the_node_run():
    """zmq.green's recv and a gevent Queue's get do not switch while frames wait: without
    turns, 500 queued announcements were handled in one go, every other greenlet waiting.
    (A turn lasts ``turn_s``, 20 ms; here 0, so that 500 cheap frames make many turns.)"""
    broker, ((a, _), (b, rec_b)) = synced_links()
    b.turn_s = b.notices.turn_s = 0      # a turn per frame: each is seen to yield
    b.follow("r")
    for n in range(500):                 # all queued for b before its reader runs
        a.announce("r", "u%d joined" % n)
    seen = []

    def read():                          # emitted, or waiting in the notice lane
        return len(rec_b.announcements()) + len(b.notices)

    def ticker():
        while len(rec_b.announcements()) < 500:
            seen.append(read())
            gevent.sleep(0)

    ticking = gevent.spawn(ticker)
    wait_for(lambda: len(rec_b.announcements()) == 500, what="500 announcements")
    ticking.join(1)
    assert rec_b.announcements() == ["u%d joined" % n for n in range(500)]
    between = {count for count in seen if 0 < count < 500}   # the ticker ran amid the burst
    assert len(between) >= 400, len(between)


def test_a_resync_asks_for_the_followed_rooms_in_small_batches():
    broker, ((a, rec_a), (b, _)) = synced_links(rooms_per_request=2)
    rooms = ["r%d" % i for i in range(5)]
    for room in rooms:
        a.follow(room)
        b.follow(room)
        b.sequence(room, "bob", "before " + room)
    wait_for(lambda: len(rec_a.messages()) == 5)
    broker = broker.restart(keep_state=True)
    broker.frames_seen.clear()
    broker.heartbeat()
    wait_for(lambda: a.broker_instance == broker.broker.instance, what="the resync")
    asked = [wire.decode(body)["rooms"] for channel, body in broker.frames_seen
             if channel == "snapshot" and wire.decode(body)["type"] == "snapshot"]
    assert sorted(len(batch) for batch in asked) == [1, 1, 2, 2, 2, 2]   # 2 nodes x 3
    assert sorted(room for batch in asked for room in batch) == sorted(rooms * 2)
    for room in rooms:
        b.sequence(room, "bob", "after " + room)
    wait_for(lambda: len(rec_a.messages()) == 10)
    assert rec_a.restarted == []


def test_a_message_behind_a_storm_of_announcements_and_lists_is_delivered_before_them():
    """A reconnect storm puts thousands of announcements and member lists in the PUB
    stream ahead of a message.  Once the reader has handled BEHIND_AFTER_FRAMES frames in
    one turn it only queues them in the notice lane, so the message reaches members before
    all but those first few (counts, not times; the reader's turn is made endless, so
    nothing else runs amid the burst).  Then the lane emits every announcement in order
    and each room's newest list once."""
    from chat.link.broker_link import BEHIND_AFTER_FRAMES
    broker, ((a, _), (b, rec_b)) = synced_links()
    b.follow("r")
    b.turn_s, b.turn_frames = 3600, 0    # its reader waits on an empty stream meanwhile
    for n in range(5000):                # queued for b's reader, which has not run yet
        b.transport.queues["publish"].put([wire.room_topic("r"), wire.encode(
            "announcement", room="r", text="u%d joined" % n, ts=n)])
        b.transport.queues["publish"].put([wire.PRESENCE_TOPIC, wire.encode(
            "presences", rooms={"r%d" % (n % 10): ["u%d" % n]})])
    waiting, deliver = [], rec_b.deliver   # the reader's calls; the lane holds its own

    def deliver_room_event(event, data, room):
        if event == "message":
            waiting.append(len(b.notices))
        deliver(event, data, room)

    rec_b.deliver = deliver_room_event
    a.sequence("r", "ann", "through the storm")
    wait_for(lambda: rec_b.messages(), what="the message on b")
    first = [event for event, _, _ in rec_b.delivered].index("message")
    assert first == BEHIND_AFTER_FRAMES == 32   # half announcements, half lists, at once
    assert waiting == [5000 - 16 + 10]   # the other announcements waited; one list per room
    wait_for(lambda: len(rec_b.announcements()) == 5000, what="the storm's announcements")
    assert rec_b.announcements() == ["u%d joined" % n for n in range(5000)]
    lists = [(data["room"], data["members"]) for event, data, _ in rec_b.delivered[first + 1:]
             if event == "presence"]
    assert sorted(lists) == sorted(("r%d" % k, ["u%d" % (4990 + k)]) for k in range(10))


def test_announcements_beyond_the_lanes_bound_are_dropped_and_counted():
    from chat.link.notices import NoticeLane
    emitted = []
    lane = NoticeLane(lambda event, data, room: emitted.append(data.get("text", event)),
                      max_announcements=3)
    for n in range(5):
        lane.announce("r", {"room": "r", "text": "u%d joined" % n, "ts": n})
    lane.presence("r", ["u0"], at_once=True)   # a list is state, never dropped; in order
    assert lane.emit_waiting() == 4 and lane.dropped == 2
    assert emitted == ["u0 joined", "u1 joined", "u2 joined", "presence"]
    lane.announce("r", {"room": "r", "text": "u5 joined", "ts": 5})   # room again
    assert lane.emit_waiting() == 1 and emitted[-1] == "u5 joined"
    lane.announce("r", {"room": "r", "text": "u6 joined", "ts": 6}, at_once=True)
    assert emitted[-1] == "u6 joined" and not lane.waiting   # nothing waited: emitted now
