"""chat.link.mirror.Mirror: snapshot + live merge by (epoch, seq), as the Clone pattern."""
import itertools
import random

import pytest

from broker.sequencer import Sequencer
from chat.link.mirror import Mirror, Outcome


def make_sequencer(history_size=50, epoch="E1"):
    clock = itertools.count(1_000)
    return Sequencer(epoch=epoch, history_size=history_size, clock_ms=lambda: next(clock))


def publish(sequencer, room, count=1):
    """Sequence ``count`` messages; returns those that went out live."""
    return [sequencer.sequence(room, "ann", "text", "node1")[0] for _ in range(count)]


def broker_view(sequencer, room, since=None, epoch=None):
    reply = sequencer.history(room, since, epoch)
    del reply["room"]
    return reply


def seqs(messages):
    return [m["seq"] for m in messages]


def test_snapshot_then_overlapping_live_messages_merge_without_gap_or_duplicate():
    broker = make_sequencer()
    publish(broker, "r", 3)                      # 1..3, before the node subscribed
    live = publish(broker, "r", 2)               # 4, 5 seen live and in the snapshot
    snapshot = broker.snapshot()                 # at seq 5
    live += publish(broker, "r", 2)              # 6, 7 only live
    mirror = Mirror()
    assert mirror.install("E1", snapshot) == ({}, set())
    outcomes = [mirror.apply(m, "E1") for m in live]
    assert seqs(live) == [4, 5, 6, 7]
    assert outcomes == [Outcome.DUPLICATE, Outcome.DUPLICATE, Outcome.APPLIED, Outcome.APPLIED]
    view = mirror.view("r")
    assert view == broker_view(broker, "r")
    assert seqs(view["history"]) == [1, 2, 3, 4, 5, 6, 7]
    assert view["gap"] is False
    assert mirror.view("r", 5, "E1") == broker_view(broker, "r", 5, "E1")
    assert seqs(mirror.view("r", 5, "E1")["history"]) == [6, 7]


def test_a_message_beyond_the_next_seq_is_a_gap_and_is_not_applied():
    broker = make_sequencer()
    messages = publish(broker, "r", 9)
    mirror = Mirror()
    mirror.install("E1", {"r": {"epoch": "E1", "seq": 7, "history": messages[:7]}})
    assert mirror.apply(messages[8], "E1") is Outcome.GAP
    assert mirror.position("r") == ("E1", 7)
    assert seqs(mirror.view("r")["history"]) == list(range(1, 8))
    # once the missing one arrives (repair), the stream continues
    assert mirror.apply(messages[7], "E1") is Outcome.APPLIED
    assert mirror.apply(messages[8], "E1") is Outcome.APPLIED
    assert mirror.view("r") == broker_view(broker, "r")


def test_unknown_room_starting_at_seq_1_is_applied():
    broker = make_sequencer(epoch="E2")
    [first] = publish(broker, "new")
    mirror = Mirror()
    mirror.install("E2", {})
    assert mirror.apply(first, "E2") is Outcome.APPLIED
    assert mirror.position("new") == ("E2", 1)
    assert mirror.view("new") == broker_view(broker, "new")


def test_unknown_room_starting_above_seq_1_is_a_gap_and_not_created():
    broker = make_sequencer()
    messages = publish(broker, "new", 3)
    mirror = Mirror()
    mirror.install("E1", {})
    assert mirror.apply(messages[2], "E1") is Outcome.GAP
    assert mirror.position("new") == ("E1", 0)
    assert mirror.view("new")["history"] == []
    assert "new" not in mirror.rooms


def test_a_message_of_another_epoch_is_a_gap():
    broker = make_sequencer(epoch="E1")
    messages = publish(broker, "r", 3)
    mirror = Mirror()
    mirror.install("E1", broker.snapshot())
    restarted = make_sequencer(epoch="E2")
    [fresh] = publish(restarted, "r")         # seq 1 of the new epoch
    [next_seq] = publish(make_sequencer(epoch="E2"), "r", 4)[3:]  # seq 4, new epoch
    assert mirror.apply(fresh, "E2") is Outcome.GAP
    assert mirror.apply(next_seq, "E2") is Outcome.GAP
    assert mirror.position("r") == ("E1", 3)
    assert mirror.view("r")["history"] == messages


def test_duplicate_of_the_latest_message_is_dropped():
    broker = make_sequencer()
    messages = publish(broker, "r", 2)
    mirror = Mirror()
    for m in messages:
        assert mirror.apply(m, "E1") is Outcome.APPLIED
    assert mirror.apply(messages[1], "E1") is Outcome.DUPLICATE
    assert mirror.apply(messages[0], "E1") is Outcome.DUPLICATE
    assert seqs(mirror.view("r")["history"]) == [1, 2]


def test_install_returns_the_rooms_this_node_can_no_longer_continue():
    mirror = Mirror()
    old = make_sequencer(epoch="E1")
    for room, count in {"same": 5, "ahead": 3, "epoch": 3, "back": 4, "gone": 2,
                        "equal": 2}.items():
        publish(old, room, count)
    assert mirror.install("E1", old.snapshot()) == ({}, set())

    new_rooms = old.snapshot()
    publish(old, "ahead", 2)                     # seq went forward: fine
    new_rooms["ahead"] = old.snapshot()["ahead"]
    other = make_sequencer(epoch="E2")
    publish(other, "epoch", 3)                   # same seq, other epoch
    new_rooms["epoch"] = other.snapshot()["epoch"]
    new_rooms["back"] = {"epoch": "E1", "seq": 2,
                         "history": new_rooms["back"]["history"][:2]}  # went backwards
    del new_rooms["gone"]                        # vanished
    publish(other, "fresh", 1)
    new_rooms["fresh"] = other.snapshot()["fresh"]  # new room: nothing to continue

    missed, broken = mirror.install("E1", new_rooms)
    assert broken == {"epoch", "back", "gone"}
    assert missed == {"ahead": new_rooms["ahead"]["history"][3:]}   # seq 4 and 5 to deliver
    assert seqs(missed["ahead"]) == [4, 5]
    for room, state in new_rooms.items():
        assert mirror.view(room) == {"epoch": state["epoch"], "seq": state["seq"],
                                     "history": state["history"], "gap": False}
    assert mirror.position("gone") == ("E1", 0)


def test_install_of_a_new_epoch_breaks_every_room_and_sets_the_default_epoch():
    old = make_sequencer(epoch="E1")
    publish(old, "a", 2)
    publish(old, "b", 1)
    mirror = Mirror()
    mirror.install("E1", old.snapshot())
    assert mirror.install("E2", {}) == ({}, {"a", "b"})
    assert mirror.position("a") == ("E2", 0)
    assert mirror.view("a") == {"epoch": "E2", "seq": 0, "history": [], "gap": False}


def test_first_install_breaks_nothing():
    broker = make_sequencer()
    publish(broker, "a", 3)
    mirror = Mirror()
    assert mirror.position("a") == (None, 0)
    assert mirror.install("E1", broker.snapshot()) == ({}, set())
    assert mirror.position("a") == ("E1", 3)


def test_install_keeps_only_history_size_messages():
    broker = make_sequencer(history_size=10)
    publish(broker, "a", 10)
    mirror = Mirror(history_size=4)
    mirror.install("E1", broker.snapshot())
    assert seqs(mirror.view("a")["history"]) == [7, 8, 9, 10]


def test_install_room_replaces_one_room_only():
    broker = make_sequencer(history_size=3)
    publish(broker, "a", 2)
    publish(broker, "b", 2)
    mirror = Mirror(history_size=3)
    mirror.install("E1", broker.snapshot())
    publish(broker, "a", 5)
    reply = broker.history("a", since=2, epoch="E1")
    assert reply["gap"] is True
    mirror.install_room("a", reply)
    assert mirror.view("a") == broker_view(broker, "a")
    assert mirror.view("b") == broker_view(broker, "b")


@pytest.mark.parametrize("since,epoch", [
    (None, None), (0, "E1"), (3, "E1"), (4, "E1"), (6, "E1"), (7, "E1"), (9, "E1"),
    (5, "E0"),
])
def test_view_answers_like_the_broker(since, epoch):
    broker = make_sequencer(history_size=4)
    publish(broker, "r", 7)
    mirror = Mirror(history_size=4)
    mirror.install("E1", broker.snapshot())
    assert mirror.view("r", since, epoch) == broker_view(broker, "r", since, epoch)


def test_view_of_an_unknown_room():
    mirror = Mirror()
    mirror.install("E1", {})
    assert mirror.view("x") == {"epoch": "E1", "seq": 0, "history": [], "gap": False}
    assert mirror.view("x", 0, "E1")["gap"] is False
    assert mirror.view("x", 2, "E1")["gap"] is True


# --- property: random traffic, snapshot at a random point, live overlap --------

ROOMS = ["a", "b", "c", "d"]


def drive(rng, sequencer, count, cids, out):
    """Sequence ``count`` random messages; append what the broker PUBs to ``out``."""
    for _ in range(count):
        room = rng.choice(ROOMS)
        cid = None
        if rng.random() < 0.5:
            # reuse a recent cid sometimes: a retry, de-duplicated while buffered
            cid = rng.choice(cids[room]) if cids[room] and rng.random() < 0.3 \
                else "c%d" % rng.randrange(10**9)
            cids[room] = (cids[room] + [cid])[-5:]
        message, duplicate = sequencer.sequence(room, "nick", "t", "node%d" % rng.randint(1, 3), cid)
        if not duplicate:
            out.append(message)


@pytest.mark.parametrize("seed", range(40))
def test_snapshot_plus_live_overlap_equals_the_broker(seed):
    rng = random.Random(seed)
    size = rng.randint(2, 8)
    broker = make_sequencer(history_size=size, epoch="EP%d" % seed)
    cids = {room: [] for room in ROOMS}
    live = []
    drive(rng, broker, rng.randint(0, 60), cids, live)
    subscribed_at = rng.randint(0, len(live))     # SUB connects before the snapshot
    drive(rng, broker, rng.randint(0, 30), cids, live)
    snapshot_at = len(live)
    snapshot = broker.snapshot()
    drive(rng, broker, rng.randint(0, 60), cids, live)

    mirror = Mirror(history_size=size)
    assert mirror.install(broker.epoch, snapshot) == ({}, set())
    outcomes = [mirror.apply(m, broker.epoch) for m in live[subscribed_at:]]

    assert Outcome.GAP not in outcomes
    applied = [m["id"] for m, o in zip(live[subscribed_at:], outcomes) if o is Outcome.APPLIED]
    assert applied == [m["id"] for m in live[snapshot_at:]]    # each delivered once, in order
    for room in ROOMS:
        assert mirror.view(room) == broker_view(broker, room)
        seq = broker.rooms[room].seq if room in broker.rooms else 0
        for since in range(0, seq + 2):
            assert mirror.view(room, since, broker.epoch) == \
                broker_view(broker, room, since, broker.epoch)


@pytest.mark.parametrize("seed", range(20))
def test_lost_live_messages_are_repaired_from_broker_history(seed):
    """A dropped PUB frame shows as GAP; a history request (as the node's repair
    does) brings the room back to the broker's state."""
    rng = random.Random(1000 + seed)
    size = rng.randint(2, 6)
    broker = make_sequencer(history_size=size)
    cids = {room: [] for room in ROOMS}
    live = []
    drive(rng, broker, rng.randint(1, 80), cids, live)
    mirror = Mirror(history_size=size)
    mirror.install(broker.epoch, {})
    for message in live:
        if rng.random() < 0.2:
            continue  # dropped by PUB
        if mirror.apply(message, broker.epoch) is Outcome.GAP:
            room = message["room"]
            epoch, seq = mirror.position(room)
            reply = broker.history(room, since=seq, epoch=epoch)
            if reply["gap"]:
                mirror.install_room(room, reply)
            else:
                for repaired in reply["history"]:
                    assert mirror.apply(repaired, reply["epoch"]) is not Outcome.GAP
    for room in ROOMS:
        epoch, seq = mirror.position(room)
        reply = broker.history(room, since=seq, epoch=epoch)   # a final heartbeat repair
        assert reply["gap"] is (reply["seq"] - seq > size)  # only if too far behind
        if reply["gap"]:
            mirror.install_room(room, reply)
        else:
            for repaired in reply["history"]:
                mirror.apply(repaired, reply["epoch"])
        assert mirror.view(room) == broker_view(broker, room)


def test_install_after_an_outage_longer_than_the_buffer_breaks_the_room():
    broker = make_sequencer(history_size=3)
    publish(broker, "r", 2)
    mirror = Mirror(history_size=3)
    mirror.install("E1", broker.snapshot())
    publish(broker, "r", 5)                      # seq 3..7 while not listening; 3 and 4 evicted
    missed, broken = mirror.install("E1", broker.snapshot())
    assert (missed, broken) == ({}, {"r"})
    assert mirror.position("r") == ("E1", 7)
