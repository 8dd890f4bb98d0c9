"""broker.store: durable room state survives a restart; the fake keeps nothing."""
import sqlite3

from broker.sequencer import Sequencer
from broker.store import MemoryStore, SqliteStore


def _fill(sequencer, room, count, cid_prefix=None):
    out = []
    for i in range(count):
        cid = "%s-%d" % (cid_prefix, i) if cid_prefix else None
        out.append(sequencer.sequence(room, "ann", "m%d" % i, "node1", cid)[0])
    sequencer.commit()
    return out


def test_state_survives_a_restart_with_the_same_epoch(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    first = Sequencer(history_size=5, store=SqliteStore(path))
    _fill(first, "a", 8, cid_prefix="c")
    _fill(first, "b", 2)
    before = first.snapshot()
    first.store.close()

    again = Sequencer(history_size=5, store=SqliteStore(path))
    assert again.epoch == first.epoch
    assert again.snapshot() == before
    assert [m["seq"] for m in again.rooms["a"].buffer] == [4, 5, 6, 7, 8]
    # the cid window is the buffer: a retry of a buffered cid is recognised ...
    message, duplicate = again.sequence("a", "ann", "m7", "node1", "c-7")
    assert duplicate and message["seq"] == 8
    # ... and the next message continues the stream
    assert again.sequence("b", "ann", "x", "node1")[0]["seq"] == 3


def test_uncommitted_messages_are_not_durable(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    first = Sequencer(store=SqliteStore(path))
    _fill(first, "a", 2)
    first.sequence("a", "ann", "never committed", "node1")
    first.store.db.close()          # like kill -9: no commit, no clean close

    again = Sequencer(store=SqliteStore(path))
    assert again.rooms["a"].seq == 2


def test_pruning_keeps_only_the_buffer(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    seq = Sequencer(history_size=3, store=SqliteStore(path))
    _fill(seq, "a", 10)
    rows = sqlite3.connect(path).execute("SELECT seq FROM messages WHERE room='a' ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [8, 9, 10]


def test_a_larger_history_size_after_restart_loads_what_is_kept(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    _fill(Sequencer(history_size=3, store=SqliteStore(path)), "a", 6)
    again = Sequencer(history_size=10, store=SqliteStore(path))
    assert [m["seq"] for m in again.rooms["a"].buffer] == [4, 5, 6]
    assert again.sequence("a", "ann", "x", "n")[0]["seq"] == 7


def test_an_unreadable_state_file_is_moved_aside_and_a_new_epoch_starts(tmp_path):
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    seq = Sequencer(store=SqliteStore(str(path)))
    assert seq.rooms == {}
    assert len(list(tmp_path.glob("state.sqlite3.corrupt-*"))) == 1
    assert Sequencer(store=SqliteStore(str(path))).epoch == seq.epoch


def test_memory_store_starts_a_new_epoch_each_time():
    assert Sequencer(store=MemoryStore()).epoch != Sequencer(store=MemoryStore()).epoch
