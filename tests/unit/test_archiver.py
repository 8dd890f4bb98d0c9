"""The archiver (web/archive/archiver.py) over the broker's in-memory twin, its writes
recorded: every room's events written once and in order, batched, from a start after
them, after a lost tail (the heartbeat), and across a failing write."""
import itertools
from types import SimpleNamespace

import gevent
import gevent.event
import pytest

from archive import archiver as archiver_module
from archive.archiver import Archiver
from chatstream import wire
from harness.twins import MemoryBroker

from .link_twin import wait_for

pytestmark = pytest.mark.timeout(20)


class Recorded:
    """The writer's stand-in: keeps each batch; fails the first ``fail`` calls."""

    def __init__(self, fail=0):
        self.batches = []
        self.fail = fail

    def __call__(self, batch):
        if self.fail:
            self.fail -= 1
            raise OSError("database away")
        self.batches.append(list(batch))
        return SimpleNamespace(new=len(batch), watermarks={})

    def seqs(self, room):
        return [m["seq"] for batch in self.batches for _, m in batch if m["room"] == room]


@pytest.fixture
def broker():
    return MemoryBroker(history_size=50)


_rids = itertools.count(1)


def publish(broker, node, room, count):
    for _ in range(count):
        node.send("intake", wire.encode("publish", rid=next(_rids), room=room, nick="ann",
                                        text="hi", node="node1", cid=None))


def started(broker, write, positions=None, **kwargs):
    archiver = Archiver(broker.transport(), positions=positions, write=write,
                        request_timeout_s=1.0, **kwargs)
    archiver.start()
    broker.heartbeat()                                   # its first: the archiver syncs
    wait_for(lambda: archiver.broker_instance is not None, what="the first sync")
    return archiver


def test_every_rooms_events_are_written_once_in_order_from_before_the_start_and_live(broker):
    node, write = broker.transport(), Recorded()
    publish(broker, node, "early", 7)
    archiver = started(broker, write)
    publish(broker, node, "early", 3)
    publish(broker, node, "late", 4)
    wait_for(lambda: len(write.seqs("early")) == 10 and len(write.seqs("late")) == 4)
    assert write.seqs("early") == list(range(1, 11)) and write.seqs("late") == [1, 2, 3, 4]
    archiver.stop()


def test_a_start_takes_up_at_the_archives_watermark(broker):
    node, write = broker.transport(), Recorded()
    publish(broker, node, "r", 20)
    archiver = started(broker, write, positions={"r": (broker.sequencer.epoch, 15)})
    wait_for(lambda: len(write.seqs("r")) == 5)
    assert write.seqs("r") == [16, 17, 18, 19, 20]
    archiver.stop()


def test_a_tail_missed_on_pub_is_caught_up_when_the_heartbeat_shows_it(broker):
    node, write = broker.transport(), Recorded()
    archiver = started(broker, write)
    publish(broker, node, "r", 2)
    wait_for(lambda: len(write.seqs("r")) == 2)
    rooms = set(archiver.transport.topics) - {wire.HEARTBEAT_TOPIC}
    archiver.transport.topics -= rooms                  # PUB frames lost (a full queue, a blip)
    publish(broker, node, "r", 3)
    archiver.transport.topics |= rooms
    broker.heartbeat()                                   # says r is at 5
    wait_for(lambda: len(write.seqs("r")) == 5)
    assert write.seqs("r") == [1, 2, 3, 4, 5]
    archiver.stop()


def test_a_seq_jump_holds_the_room_and_its_history_fills_the_hole(broker):
    node, write = broker.transport(), Recorded()
    archiver = started(broker, write)
    publish(broker, node, "r", 1)
    wait_for(lambda: len(write.seqs("r")) == 1)
    rooms = set(archiver.transport.topics) - {wire.HEARTBEAT_TOPIC}
    archiver.transport.topics -= rooms
    publish(broker, node, "r", 3)
    archiver.transport.topics |= rooms
    publish(broker, node, "r", 2)                        # 5 arrives after a hole of 2..4
    wait_for(lambda: len(write.seqs("r")) == 6)
    assert write.seqs("r") == [1, 2, 3, 4, 5, 6]
    archiver.stop()


def test_a_failing_write_is_tried_again_whole_and_the_stream_goes_on(broker, monkeypatch):
    monkeypatch.setattr(archiver_module, "RETRY_PAUSE_S", 0.01)
    monkeypatch.setattr(archiver_module, "_reset_connections", lambda: None)
    node, write = broker.transport(), Recorded(fail=2)
    archiver = started(broker, write)
    publish(broker, node, "r", 4)
    wait_for(lambda: len(write.seqs("r")) == 4)
    assert write.seqs("r") == [1, 2, 3, 4]
    assert archiver.archived == 4
    archiver.stop()


def test_events_queued_meanwhile_are_written_in_batches_of_at_most_the_limit(broker):
    node, write = broker.transport(), Recorded()
    publish(broker, node, "r", 25)
    archiver = started(broker, write, batch_events=10)
    wait_for(lambda: len(write.seqs("r")) == 25)
    assert max(len(batch) for batch in write.batches) == 10
    assert len(write.batches) < 25                        # batched, not one by one
    archiver.stop()


def test_stopping_writes_what_was_received(broker):
    node, write = broker.transport(), Recorded()
    archiver = started(broker, write)
    publish(broker, node, "r", 3)
    wait_for(lambda: archiver.streams.position("r")[1] == 3, what="the three read")
    archiver.stop()
    assert write.seqs("r") == [1, 2, 3]


def test_the_lag_counts_and_ages_what_waits_for_the_writer(broker):
    gate, write = gevent.event.Event(), Recorded()
    archiver = started(broker, lambda batch: gate.wait() and write(batch))
    publish(broker, broker.transport(), "r", 5)
    wait_for(lambda: archiver.lag_events == 5, what="five waiting")
    gevent.sleep(0.05)
    assert archiver.lag_s() >= 0.05
    gate.set()
    wait_for(lambda: archiver.lag_events == 0, what="all written")
    assert archiver.lag_s() == 0.0 and write.seqs("r") == [1, 2, 3, 4, 5]
    archiver.stop()


def test_each_batch_reports_its_rooms_watermarks_to_the_broker(broker):
    def write(batch):
        last = {}
        for epoch, message in batch:
            last[message["room"]] = (epoch, message["seq"])
        return SimpleNamespace(new=len(batch), watermarks=last)
    archiver = started(broker, write)
    publish(broker, broker.transport(), "r", 3)

    def reports():
        return [wire.decode(data) for channel, data in broker.frames_seen
                if channel == "intake" and wire.decode(data)["type"] == "archived"]
    wait_for(lambda: any(r["rooms"].get("r", [None, 0])[1] == 3 for r in reports()))
    assert reports()[0]["rooms"] == {} and reports()[0]["node"] == "archiver"   # at start
    assert {tuple(r["rooms"]["r"]) for r in reports()[1:]} <= {
        (broker.sequencer.epoch, seq) for seq in (1, 2, 3)}
    archiver.stop()
