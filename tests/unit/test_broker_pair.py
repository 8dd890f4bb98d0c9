"""broker.pair + broker.replication: two in-process brokers (real handlers and
sequencers, fake sockets, a hand-pumped peer link and a fake clock)."""
import itertools

from broker import bstar
from chatstream.config import BrokerConfig
from broker.pair import BrokerPair
from broker.sequencer import Sequencer
from broker.server import Broker
from broker.store import SqliteStore
from chatstream import wire

from .test_broker_server import PEER, FakeSocket, publish_frame

HEARTBEAT_MS = 1000


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


class Side:
    """One broker of the pair plus its outgoing peer frames."""

    def __init__(self, name, primary, clock, epoch, store=None):
        ms = itertools.count(10_000)
        self.sequencer = Sequencer(epoch=epoch, clock_ms=lambda: next(ms), store=store)
        self.broker = Broker(BrokerConfig(), context=object(), sequencer=self.sequencer)
        self.broker.publisher = FakeSocket()
        self.broker.instance = name
        self.to_peer = []
        self.broker.pair = self.pair = BrokerPair(primary, self.to_peer.append, self.sequencer,
                                                  name, HEARTBEAT_MS, clock)
        self.intake_sock = FakeSocket()

    def request(self, *frames):
        """Serve one node request and end the batch; returns the replies sent so far."""
        self.broker._serve(self.intake_sock, self.broker.intake_handlers, [PEER, *frames])
        self.broker._flush()
        return self.replies()

    def replies(self):
        return [wire.decode(body) for _, body in self.intake_sock.sent]

    def published(self):
        return [wire.decode(body) for _, body in self.broker.publisher.sent]


def pump(a, b, rounds=5):
    """Deliver the peer frames both ways until quiet, as the server loop would."""
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            frames, src.to_peer[:] = list(src.to_peer), []
            for frame in frames:
                dst.pair.on_peer_frame(frame)
                moved = True
            dst.pair.flush()
            dst.broker._flush()
        if not moved:
            return


def tick(*sides):
    for side in sides:
        side.pair.tick()


def started_pair(store_a=None, store_b=None):
    clock = Clock()
    a = Side("A-1", True, clock, "EA", store_a)
    b = Side("B-1", False, clock, "EB", store_b)
    tick(a, b)
    pump(a, b)
    tick(a, b)
    pump(a, b)
    return clock, a, b


def test_pair_starts_primary_active_backup_passive_in_sync_with_the_primarys_epoch():
    _, a, b = started_pair()
    assert (a.pair.state, b.pair.state) == (bstar.ACTIVE, bstar.PASSIVE)
    assert b.pair.replica.in_sync and b.sequencer.epoch == "EA"


def test_publish_is_acked_only_once_the_passive_stored_it():
    _, a, b = started_pair()
    assert a.request(publish_frame(rid=1, cid="c1")) == []   # held
    assert a.published() == []
    pump(a, b)
    [reply] = a.replies()
    assert reply["type"] == "published" and reply["message"]["seq"] == 1
    assert [m["type"] for m in a.published()] == ["message"]
    assert b.sequencer.rooms["lobby"].state() == a.sequencer.rooms["lobby"].state()
    assert b.sequencer.cids["lobby"]["c1"] == reply["message"]


def test_passive_refuses_node_requests_not_active():
    _, a, b = started_pair()
    [reply] = b.request(publish_frame(rid=9))
    assert (reply["type"], reply["error"], reply["rid"]) == ("error", "not_active", 9)
    assert "lobby" not in b.sequencer.rooms


def test_a_dead_passive_releases_held_acks_after_its_expiry():
    clock, a, b = started_pair()
    a.request(publish_frame(rid=1))
    a.to_peer.clear()                       # the passive died: nothing arrives
    clock.now += 1.0
    a.pair.tick()
    a.broker._flush()
    assert a.replies() == []                # still within the expiry
    clock.now += 1.5
    a.pair.tick()
    a.broker._flush()
    [reply] = a.replies()
    assert reply["message"]["seq"] == 1
    assert a.request(publish_frame(rid=2))[-1]["message"]["seq"] == 2   # runs on alone


def test_an_active_waiting_for_its_passive_still_heartbeats_to_the_nodes():
    """Its output (acks, messages, the usual heartbeat) waits for the passive; a heartbeat
    without seqs does not, so nodes do not take it for gone and ask the backup."""
    clock, a, b = started_pair()
    a.request(publish_frame(rid=1))
    in_flight = list(a.to_peer)             # the peer link is slow: no replication ack yet
    a.to_peer.clear()
    a.broker.publisher.sent.clear()
    clock.now += 1.0
    a.broker.beat()
    [alive] = a.published()
    assert (alive["type"], alive["seqs"], alive["term"]) == ("heartbeat", {}, a.pair.star.term)
    assert a.pair.star.term >= 1 and a.replies() == []       # the message and its ack wait
    a.to_peer[:0] = in_flight
    pump(a, b)                               # acked: the held output follows, in order
    assert [(m["type"], m.get("seqs")) for m in a.published()[1:]] == [
        ("message", None), ("heartbeat", {"lobby": 1})]
    a.broker.publisher.sent.clear()
    a.broker.beat()                          # nothing held: only the usual heartbeat
    assert [m["type"] for m in a.published()] == ["heartbeat"]

def test_failover_resend_with_same_cid_is_delivered_once_with_same_epoch_and_seq():
    clock, a, b = started_pair()
    a.request(publish_frame(rid=1, cid="c1", text="one"))
    pump(a, b)
    a.request(publish_frame(rid=2, cid="c2", text="two"))
    pump(a, b)                              # acked to the node ... then the active dies
    first = a.replies()[-1]["message"]
    a.request(publish_frame(rid=3, cid="c3", text="three"))   # replicated, never acked
    pump_one_way(a, b)
    [early] = b.request(publish_frame(rid=3, cid="c3", text="three"))
    assert early["error"] == "not_active"   # peer expiry not reached: no split brain
    clock.now += 2.5
    replies = b.request(publish_frame(rid=4, cid="c3", text="three"))
    assert b.pair.state == bstar.ACTIVE
    assert replies[-1]["duplicate"] is True and replies[-1]["message"]["seq"] == 3
    again = b.request(publish_frame(rid=5, cid="c2", text="two"))[-1]
    assert again["duplicate"] and again["message"] == first
    new = b.request(publish_frame(rid=6, cid="c4", text="four"))[-1]
    assert (new["duplicate"], new["message"]["seq"]) == (False, 4)
    assert b.sequencer.rooms["lobby"].epoch == "EA" == b.sequencer.epoch
    assert [m["message"]["seq"] for m in b.published() if m["type"] == "message"] == [4]


def pump_one_way(src, dst):
    for frame in src.to_peer:
        dst.pair.on_peer_frame(frame)
    src.to_peer.clear()
    dst.pair.flush()


def test_restarted_former_active_comes_back_passive_and_catches_up(tmp_path):
    clock, a, b = started_pair()
    for i in range(3):
        a.request(publish_frame(rid=i, cid="c%d" % i, room="r%d" % i))
        pump(a, b)
    clock.now += 2.5
    b.request(publish_frame(rid=9, cid="c9", room="r0"))       # b takes over
    assert b.pair.state == bstar.ACTIVE
    a2 = Side("A-2", True, clock, "EX", SqliteStore(str(tmp_path / "a.sqlite3")))
    assert a2.request(publish_frame(rid=1))[-1]["error"] == "not_active"   # before expiry
    tick(a2, b)
    pump(a2, b)
    assert a2.pair.state == bstar.PASSIVE and a2.pair.replica.in_sync
    assert a2.sequencer.epoch == "EA"
    for room in ("r0", "r1", "r2"):
        assert a2.sequencer.find(room).state() == b.sequencer.rooms[room].state()
    assert a2.sequencer.store.load_room("r0", 50)["seq"] == 2
    assert a2.sequencer.store.epoch() == "EA"
    b.request(publish_frame(rid=10, cid="c10", room="r1"))
    pump(a2, b)
    assert b.replies()[-1]["message"]["seq"] == 2
    assert a2.sequencer.store.load_room("r1", 50)["seq"] == 2


def test_catch_up_includes_rooms_only_in_the_actives_store(tmp_path):
    store = SqliteStore(str(tmp_path / "a.sqlite3"))
    clock = Clock()
    a = Side("A-1", True, clock, None, store)
    a.sequencer.rooms_in_memory = 1
    clock.now += 2.5
    for room in ("x", "y", "z"):
        a.request(publish_frame(room=room))
    assert list(a.sequencer.rooms) == ["z"]
    b = Side("B-1", False, clock, "EB")
    tick(a, b)
    pump(a, b)
    tick(a, b)
    pump(a, b)
    assert b.pair.replica.in_sync
    assert sorted(b.sequencer.rooms) == ["x", "y", "z"]
    assert b.sequencer.epoch == a.sequencer.epoch


def test_out_of_step_replica_catches_up_again():
    _, a, b = started_pair()
    a.request(publish_frame(rid=1))
    a.to_peer.clear()                       # a replicate frame lost
    a.request(publish_frame(rid=2))
    pump(a, b)
    assert b.pair.replica.in_sync
    assert b.sequencer.rooms["lobby"].seq == 2
    assert [r["message"]["seq"] for r in a.replies()] == [1, 2]


def test_a_woken_hung_active_meets_the_new_active_and_exits():
    clock, a, b = started_pair()
    clock.now += 2.5
    b.request(publish_frame(rid=1))                 # a hung: b took over (term 2)
    assert b.pair.state == bstar.ACTIVE
    b.pair.tick()
    try:
        pump_one_way(b, a)
    except bstar.DualActive:
        a.pair.tick()
        pump_one_way(a, b)                          # b hears a's older term: stays
        assert b.pair.state == bstar.ACTIVE
        return
    raise AssertionError("two actives were accepted")


def test_metrics_show_the_role_and_how_long_output_waits_for_the_passive():
    from broker.metrics import BrokerState
    clock, a, b = started_pair()

    def figures(side):
        got = {}
        for family in BrokerState(side.broker).collect():
            for sample in family.samples:
                got[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return got
    assert figures(a)[("chat_broker_role", (("role", "active"),))] == 1
    assert figures(b)[("chat_broker_role", (("role", "passive"),))] == 1
    a.request(publish_frame(rid=1))                  # held until b acks
    clock.now += 0.25
    assert figures(a)[("chat_broker_replication_lag_seconds", ())] == 0.25
    pump(a, b)
    assert figures(a)[("chat_broker_replication_lag_seconds", ())] == 0


def test_a_lost_catch_up_request_is_asked_again():
    clock = Clock()
    a = Side("A-1", True, clock, "EA")
    b = Side("B-1", False, clock, "EB")
    a.pair.star.peer_heartbeat(bstar.BACKUP)           # a is active
    a.request(publish_frame(rid=1))
    tick(a)
    pump_one_way(a, b)                                # b goes passive and asks ...
    assert b.pair.state == bstar.PASSIVE and b.to_peer
    b.to_peer.clear()                                 # ... but the request is lost
    clock.now += 1.0
    tick(b)
    b.to_peer[:] = [f for f in b.to_peer if b'"catchup"' not in f]
    assert not b.pair.replica.in_sync
    clock.now += 4.5
    tick(a, b)
    pump(a, b)
    assert b.pair.replica.in_sync and b.sequencer.rooms["lobby"].seq == 1


def test_overdue_acks_release_the_output_and_the_passive_catches_up_again():
    clock, a, b = started_pair()
    a.request(publish_frame(rid=1, cid="c1"))
    a.to_peer.clear()                                 # the replicate frame is lost ...
    clock.now += 1.0
    tick(b)
    pump_one_way(b, a)                                # ... while b's heartbeats still arrive
    clock.now += 1.5
    a.pair.tick()                                     # acks overdue: released, b detached
    a.broker._flush()
    assert a.replies()[-1]["message"]["seq"] == 1
    assert a.pair.replicator.attached is None
    pump(a, b)                                        # b hears feeding != itself: catches up
    tick(a, b)
    pump(a, b)
    assert b.pair.replica.in_sync and b.sequencer.cids["lobby"]["c1"]["seq"] == 1
    assert a.pair.replicator.attached == "B-1"


class Link:
    """A peer link whose frames wait until the broker's loop drains them."""

    def __init__(self):
        self.waiting = []

    def drain(self, callback):
        frames, self.waiting[:] = list(self.waiting), []
        for frame in frames:
            callback(frame)


def test_a_broker_busy_past_the_expiry_reads_what_its_peer_sent_before_judging_it_silent():
    clock, a, b = started_pair()
    b.broker.peer_link = link = Link()
    for _ in range(3):                      # the active beats on; the passive's loop is busy
        clock.now += 1.0
        a.pair.tick()
        link.waiting.extend(a.to_peer)
        a.to_peer.clear()
    b.broker.beat()                         # its first turn after the stall
    assert not link.waiting and b.pair.state == bstar.PASSIVE
    assert b.pair.star.peer_alive()         # heard, so a node's ask would not fail over
    a.broker.peer_link = Link()             # and the active, busy as long, keeps its passive
    clock.now += 3.0
    a.broker.peer_link.waiting.extend(b.to_peer)
    b.to_peer.clear()
    a.broker.beat()
    assert a.pair.replicator.attached
