"""The broker's side of an archive that never misses (broker/store.py, handlers.py): once
the archiver reported, a room's events stay in the store beyond the buffer until they
are archived, and the archiver reads them back a page at a time."""
import itertools

from broker.sequencer import Sequencer
from broker.server import Broker
from broker.store import SqliteStore
from chatstream import wire
from chatstream.config import BrokerConfig

from .test_broker_server import FakeSocket, frame, intake, publish_frame, snapshots

BUFFER = 5


def stored_broker(tmp_path):
    clock = itertools.count(1_000)
    store = SqliteStore(str(tmp_path / "state.sqlite3"))
    broker = Broker(BrokerConfig(history_size=BUFFER), context=object(),
                    sequencer=Sequencer(epoch="E1", history_size=BUFFER,
                                        clock_ms=lambda: next(clock), store=store))
    broker.publisher = FakeSocket()
    broker.instance = "E1-1"
    return broker, store


def publish(broker, room, count):
    for i in range(count):
        intake(broker, publish_frame(rid=i, room=room, text="m%d" % i))


def report(broker, rooms, node="archiver"):
    return intake(broker, frame("archived", node=node, rooms=rooms))


def stored_seqs(store, room):
    return [seq for (seq,) in store.db.execute("SELECT seq FROM messages WHERE room=? ORDER BY seq",
                                               (room,))]


def test_without_an_archiver_the_store_keeps_the_buffer_only(tmp_path):
    broker, store = stored_broker(tmp_path)
    publish(broker, "r", 12)
    assert stored_seqs(store, "r") == list(range(8, 13))


def test_once_an_archiver_reported_events_wait_for_it_beyond_the_buffer(tmp_path):
    broker, store = stored_broker(tmp_path)
    publish(broker, "r", 3)
    assert report(broker, {"r": ["E1", 1]}) == []            # fire-and-forget: no reply
    publish(broker, "r", 17)                                   # seq 4..20
    assert stored_seqs(store, "r") == list(range(2, 21))       # 2..15 left the buffer, unarchived
    report(broker, {"r": ["E1", 12]})
    publish(broker, "r", 1)
    assert stored_seqs(store, "r") == list(range(13, 22))
    report(broker, {"r": ["E1", 21]})
    publish(broker, "r", 1)
    assert stored_seqs(store, "r") == list(range(18, 23))     # the buffer, as without one


def test_a_report_of_another_epoch_or_older_lets_nothing_go(tmp_path):
    broker, store = stored_broker(tmp_path)
    report(broker, {"other": ["E1", 0]})
    publish(broker, "r", 10)
    report(broker, {"r": ["E0", 10]})
    report(broker, {"r": ["E1", 3]})
    report(broker, {"r": ["E1", 2]})                           # older: the watermark stays 3
    publish(broker, "r", 1)
    assert stored_seqs(store, "r") == list(range(4, 12))


def test_the_archiver_lists_rooms_it_lacks_and_reads_their_events_in_pages(tmp_path):
    broker, store = stored_broker(tmp_path)
    report(broker, {"a": ["E1", 0]})
    publish(broker, "a", 30)
    publish(broker, "b", 2)
    report(broker, {"b": ["E1", 2]})
    [rooms] = snapshots(broker, frame("archive_rooms", rid=1))
    assert rooms["rooms"] == {"a": ["E1", 30, 0]} and rooms["more"] is False
    [page] = snapshots(broker, frame("archive_events", rid=2, room="a", since=0, epoch="E1",
                                     limit=10))
    assert [m["seq"] for m in page["events"]] == list(range(1, 11))
    assert (page["seq"], page["gap"]) == (30, False)
    [rest] = snapshots(broker, frame("archive_events", rid=3, room="a", since=25, epoch="E1"))
    assert [m["seq"] for m in rest["events"]] == [26, 27, 28, 29, 30]


def test_events_gone_before_archiving_began_are_a_gap(tmp_path):
    broker, store = stored_broker(tmp_path)
    publish(broker, "r", 12)                                   # no archiver yet: 8..12 kept
    [page] = snapshots(broker, frame("archive_events", rid=1, room="r", since=2, epoch="E1"))
    assert page["gap"] is True and [m["seq"] for m in page["events"]] == [8, 9, 10, 11, 12]
    [other] = snapshots(broker, frame("archive_events", rid=2, room="r", since=9, epoch="E0"))
    assert other["gap"] is True and other["events"][0]["seq"] == 8   # another stream: all of it


def test_a_malformed_report_is_refused_and_changes_nothing(tmp_path):
    broker, store = stored_broker(tmp_path)
    publish(broker, "r", 8)
    for rooms in ({"r": [1, "E1"]}, {"r": ["E1"]}, {"bad room": ["E1", 8]}, {"r": ["E1", True]}):
        assert report(broker, rooms) == []
    assert not store.archiving()
    [listed] = snapshots(broker, frame("archive_rooms", rid=1))
    assert listed["rooms"] == {"r": ["E1", 8, 0]}
    assert wire.decode(wire.encode("archived", node="archiver", rooms={}))["type"] == "archived"
