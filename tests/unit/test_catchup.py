"""broker/catchup.py: a passive's catch-up streamed from the active's store in
bounded parts -- the active's memory stays within its LRU bound, the parts stay
within the peer link's frame limit, and the passive ends identical to the
active, also for rooms published to while the catch-up streams."""
import random

import pytest
import zmq

from broker import catchup, replication
from broker.catchup import CatchupStream
from broker.peer_link import PeerLink
from broker.sequencer import Sequencer
from broker.store import SqliteStore
from chatstream import config
from harness.processes import free_port

from .test_broker_pair import Clock, Side, tick
from .test_broker_server import publish_frame

pytestmark = pytest.mark.timeout(60)
BOUND = 30          # the active's CHAT_BROKER_ROOMS_IN_MEMORY here
ROOMS = 1500


def fill(sequencer, rooms, messages=3, prefix="room-"):
    for r in range(rooms):
        for m in range(messages):
            sequencer.sequence("%s%04d" % (prefix, r), "ann", "m%d" % m, "node1", "c%d-%d" % (r, m))
        if r % 100 == 99:
            sequencer.commit()
    sequencer.commit()


def dump(store):
    """Everything a SQLite store holds, for comparing two of them."""
    db = store.db
    return (db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone(),
            db.execute("SELECT room, epoch, seq, last_ms FROM rooms ORDER BY room").fetchall(),
            db.execute("SELECT room, seq, body FROM messages ORDER BY room, seq").fetchall())


def active_with_rooms(tmp_path, rooms=ROOMS):
    """A serves alone (primary past its peer expiry) over a store of ``rooms`` rooms."""
    clock = Clock()
    a = Side("A-1", True, clock, None, SqliteStore(str(tmp_path / "a.sqlite3")))
    a.sequencer.rooms_in_memory = BOUND
    clock.now += 2.5
    a.request(publish_frame(rid=0, room="room-0000", cid="first"))
    fill(a.sequencer, rooms)
    return clock, a


def passive(tmp_path, clock, stale=()):
    """B, with a store that holds rooms the active never had (``stale``)."""
    store = SqliteStore(str(tmp_path / "b.sqlite3"))
    own = Sequencer(epoch="EB", store=store)
    for room in stale:
        own.sequence(room, "old", "gone", "node9")
    own.commit()
    b = Side("B-1", False, clock, "EB", store)
    b.sequencer.rooms_in_memory = BOUND
    return b


def stream(a, b, between=None, max_rounds=5000, bound=BOUND):
    """Deliver the peer frames both ways, a loop turn at a time, until B is in
    sync, checking that neither holds more than ``bound`` rooms in memory;
    ``between(turn)`` runs after each turn while A streams.  Returns A's parts."""
    parts = []
    tick(a, b)
    for turn in range(max_rounds):
        for src, dst in ((a, b), (b, a)):
            frames, src.to_peer[:] = list(src.to_peer), []
            for frame in frames:
                if src is a and b'"rooms"' in frame:
                    parts.append(frame)
                dst.pair.on_peer_frame(frame)
            dst.pair.flush()
            dst.broker._flush()
            if bound is not None:                       # memory, every turn
                assert len(a.sequencer.rooms) <= bound and len(b.sequencer.rooms) <= bound
        if between is not None and a.pair.replicator.stream is not None:
            between(turn)
        if (b.pair.replica.in_sync and a.pair.replicator.stream is None
                and not a.to_peer and not b.to_peer):
            return parts
    raise AssertionError("no catch-up in %d turns" % max_rounds)


def assert_identical(a, b):
    a.sequencer.commit()
    b.sequencer.commit()
    assert dump(a.sequencer.store) == dump(b.sequencer.store)
    for name in a.sequencer.names_after("", 10 ** 6):
        assert b.sequencer.peek(name) == a.sequencer.peek(name), name
    assert b.sequencer.epoch == a.sequencer.epoch


def test_catch_up_streams_the_store_in_parts_without_loading_rooms(tmp_path):
    clock, a = active_with_rooms(tmp_path)
    ttl_rooms = a.sequencer.store.expire(a.sequencer.clock_ms() - 1500)   # TTL: positions stay
    assert ttl_rooms > 100
    b = passive(tmp_path, clock, stale=("aaa-stale", "room-0100x", "zzz-stale"))
    loads = []
    real_load = a.sequencer.store.load_room
    a.sequencer.store.load_room = lambda *args: loads.append(args[0]) or real_load(*args)
    parts = stream(a, b)
    assert len(parts) >= ROOMS // catchup.ROOMS_PER_PART
    assert len(loads) == ROOMS - len(a.sequencer.rooms)   # each read once, none kept in memory
    assert_identical(a, b)                       # also: the stale rooms are gone
    assert b.sequencer.peek("room-0000")["history"] == []           # expired: position only
    assert b.sequencer.peek("room-0000")["seq"] == 4


def test_rooms_published_to_while_the_catch_up_streams_end_up_identical(tmp_path):
    clock, a = active_with_rooms(tmp_path)
    b = passive(tmp_path, clock)
    rng = random.Random(7)
    rid = iter(range(1, 10 ** 6))
    kinds = set()      # True: a room whose part is still to come; False: one already sent

    def publish(turn):
        cursor = a.pair.replicator.stream.cursor
        rooms = ["room-%04d" % rng.randrange(ROOMS) for _ in range(4)]
        rooms += ["new-%d" % turn, "zz-new-%d" % turn]            # before and after any cursor
        if cursor and cursor.startswith("room-"):
            rooms.append(cursor)                                   # the part just sent
            rooms.append("room-%04d" % min(ROOMS - 1, int(cursor[5:]) + 1))   # the next one
        for room in sorted(set(rooms)):
            kinds.add(a.pair.replicator.stream.pending(room))
            a.broker._serve(a.intake_sock, a.broker.intake_handlers,
                            [b"\x00peer-1", publish_frame(rid=next(rid), room=room,
                                                          cid="t%d-%s" % (turn, room))])
        a.broker._flush()
    stream(a, b, between=publish)
    published = [r for r in a.replies() if r["type"] == "published"]
    assert len(published) > 20 and all(not r["duplicate"] for r in published[1:])
    assert kinds == {True, False}
    assert_identical(a, b)
    for room in ("new-3", "zz-new-3", "room-0001"):
        assert b.sequencer.find(room).state() == a.sequencer.find(room).state()
        assert b.sequencer.cids[room] == a.sequencer.cids[room]
    # after the catch-up the live stream goes on, acknowledged once the passive has it
    a.request(publish_frame(rid=next(rid), room="zz-new-3", cid="after"))
    stream(a, b)
    assert a.replies()[-1]["message"]["seq"] == 2
    assert_identical(a, b)


def test_a_lost_part_makes_the_passive_ask_again_and_stale_answers_are_ignored(tmp_path):
    clock, a = active_with_rooms(tmp_path, rooms=700)
    b = passive(tmp_path, clock)
    dropped = []

    def lose_the_second_part(turn):
        if not dropped:
            parts = [f for f in a.to_peer if b'"rooms"' in f and b'"after":""' not in f]
            if parts:
                dropped.append(parts[0])
                a.to_peer.remove(parts[0])
    stream(a, b, between=lose_the_second_part)
    assert dropped and b.pair.replica.ask == 2
    assert_identical(a, b)
    b.pair.on_peer_frame(dropped[0])             # an answer to the first request: ignored
    assert b.pair.replica.in_sync
    assert_identical(a, b)


def big_room(sequencer, room, count, text_chars):
    for i in range(count):
        sequencer.sequence(room, "ann", ("%d" % i) * text_chars, "node1", "c%d" % i)
    sequencer.commit()


def test_parts_stay_within_their_bound_and_a_room_larger_than_a_part_goes_alone(tmp_path):
    seq = Sequencer(history_size=50, store=SqliteStore(str(tmp_path / "a.sqlite3")))
    seq.rooms_in_memory = 2
    for r in range(40):
        big_room(seq, "r%02d" % r, 5, 900)
    big_room(seq, "r20-huge", 50, 2000)          # ~100 KB: more than a part of 40 KB
    frames = []
    part = CatchupStream(seq, frames.append, replication.encode, 1, max_bytes=40_000)
    while not part.step():
        pass
    bodies = [replication.decode(f) for f in frames]
    assert max(len(f) for f in frames) <= 40_000 and len(frames) > 5
    rooms = {name: state for body in bodies for name, state in body["rooms"].items()}
    assert sorted(rooms) == seq.names_after("", 1000)
    [alone] = [b for b in bodies if "r20-huge" in b["rooms"]]
    assert list(alone["rooms"]) == ["r20-huge"]
    huge = alone["rooms"]["r20-huge"]
    assert huge["seq"] == 50 and 0 < len(huge["history"]) < 50
    assert huge["history"][-1] == seq.peek("r20-huge")["history"][-1]   # the newest kept
    assert [b["after"] for b in bodies[1:]] == [max(b["rooms"]) for b in bodies[:-1]]
    assert [b["more"] for b in bodies] == [True] * (len(bodies) - 1) + [False]


def test_the_default_bounds_fit_a_room_of_the_largest_messages_in_one_part():
    size = catchup.part_bytes(config.HISTORY_SIZE, config.BROKER_MAX_FRAME_BYTES)
    limit = catchup.peer_max_frame_bytes(config.HISTORY_SIZE, config.BROKER_MAX_FRAME_BYTES)
    assert size >= config.HISTORY_SIZE * config.BROKER_MAX_FRAME_BYTES and limit == 2 * size
    seq = Sequencer(history_size=config.HISTORY_SIZE)
    text = '"' * (config.MAX_PAYLOAD_BYTES // 2 - 8)   # every character escaped: 2 bytes each
    for name in ("a", "b"):
        big_room(seq, name, config.HISTORY_SIZE, 1)
        for i in range(config.HISTORY_SIZE):
            seq.sequence(name, "ann", text, "node1")
    frames = []
    part = CatchupStream(seq, frames.append, replication.encode, 1, size)
    while not part.step():
        pass
    bodies = [replication.decode(f) for f in frames]
    assert [list(b["rooms"]) for b in bodies] == [["a"], ["b"]]     # each whole, alone
    assert all(len(b["rooms"][n]["history"]) == config.HISTORY_SIZE for b, n in
               zip(bodies, "ab"))
    assert max(len(f) for f in frames) <= size < limit


def test_the_peer_link_reads_parts_and_drops_a_frame_over_its_limit(tmp_path):
    """Real sockets (loopback TCP): ZMQ_MAXMSGSIZE is twice a part; parts pass, more does not."""
    seq = Sequencer(history_size=50, store=SqliteStore(str(tmp_path / "a.sqlite3")))
    for r in range(30):
        big_room(seq, "r%02d" % r, 10, 500)
    max_bytes = 30_000
    ctx = zmq.Context()
    ports = (free_port(), free_port())
    links = [PeerLink(ctx, "tcp://127.0.0.1:%d" % ports[i], "tcp://127.0.0.1:%d" % ports[1 - i],
                      max_frame_bytes=2 * max_bytes) for i in (0, 1)]
    try:
        received = []

        def collect(count, timeout_ms):
            while len(received) < count and links[1].inbox.poll(timeout_ms):
                links[1].drain(received.append)
        while True:                                    # connected: a probe arrives
            links[0].send(replication.encode("peer_state", state="BACKUP"))
            if links[1].inbox.poll(100):
                break
        links[1].drain(lambda frame: None)
        sent = []
        part = CatchupStream(seq, sent.append, replication.encode, 1, max_bytes)
        while not part.step():
            pass
        for frame in sent:
            links[0].send(frame)
        collect(len(sent), 5000)
        assert received == sent and len(sent) > 3
        links[0].send(replication.encode("rooms", epoch="E", rooms={}, after="",
                                         more=True, ask=1, pad="x" * (2 * max_bytes)))
        collect(len(sent) + 1, 500)
        assert len(received) == len(sent)                      # dropped, never buffered
    finally:
        for link in links:
            link.close()
        ctx.term()


def test_the_memory_store_streams_from_memory(tmp_path):
    clock = Clock()
    a = Side("A-1", True, clock, "EA")
    clock.now += 2.5
    a.request(publish_frame(rid=0))
    fill(a.sequencer, 450)
    b = Side("B-1", False, clock, "EB")
    parts = stream(a, b, bound=None)           # a memory store keeps every room in memory
    assert len(parts) == 3
    assert {n: b.sequencer.rooms[n].state() for n in b.sequencer.rooms} == \
        {n: a.sequencer.rooms[n].state() for n in a.sequencer.rooms}
    assert b.sequencer.cids == a.sequencer.cids


def test_the_active_keeps_at_most_a_window_of_parts_unacknowledged(tmp_path):
    clock, a = active_with_rooms(tmp_path, rooms=2000)
    b = passive(tmp_path, clock)
    tick(a, b)
    for frame in a.to_peer:
        b.pair.on_peer_frame(frame)              # b goes passive and asks
    a.to_peer.clear()
    for frame in b.to_peer:
        a.pair.on_peer_frame(frame)
    b.to_peer.clear()
    for _ in range(20):                          # b stores nothing: no acks come back
        a.broker._flush()
    assert sum(b'"rooms"' in f for f in a.to_peer) == catchup.PARTS_IN_FLIGHT
    assert not a.pair.streaming                  # the loop waits on its sockets meanwhile
    parts = [f for f in a.to_peer if b'"rooms"' in f]
    a.to_peer.clear()
    for frame in parts[:2]:
        b.pair.on_peer_frame(frame)
    assert b.to_peer == []                       # acknowledged at the end of b's loop turn
    b.pair.flush()
    [ack] = b.to_peer
    assert (replication.decode(ack)["parts"], replication.decode(ack)["ask"]) == (2, 1)
    for frame in b.to_peer:                      # two parts acknowledged: two more go
        a.pair.on_peer_frame(frame)
    a.broker._flush()
    a.broker._flush()
    a.broker._flush()
    assert sum(b'"rooms"' in f for f in a.to_peer) == 2
