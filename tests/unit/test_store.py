"""broker.store: durable room state survives a restart; the fake keeps nothing."""
import sqlite3

import pytest

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
    assert again.rooms == {}                       # nothing loaded before it is used
    assert again.snapshot(["a", "b", "never"]) == before
    assert [m["seq"] for m in again.room("a").buffer] == [4, 5, 6, 7, 8]
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
    assert again.room("a").seq == 2


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
    assert [m["seq"] for m in again.room("a").buffer] == [4, 5, 6]
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


def test_rooms_beyond_the_memory_bound_leave_memory_and_come_back_whole(tmp_path):
    seq = Sequencer(history_size=3, store=SqliteStore(str(tmp_path / "s.sqlite3")),
                    rooms_in_memory=2)
    for room in ("a", "b", "c"):
        _fill(seq, room, 4, cid_prefix=room)
    assert list(seq.rooms) == ["b", "c"]           # "a" was used least recently
    message, duplicate = seq.sequence("a", "ann", "again", "node1", "a-3")
    assert duplicate and message["seq"] == 4       # its cid window came back with it
    assert seq.sequence("a", "ann", "next", "node1")[0]["seq"] == 5
    seq.commit()
    assert list(seq.rooms) == ["c", "a"]
    assert seq.history("b", since=2)["history"][0]["seq"] == 3


def test_a_memory_store_keeps_every_room_in_memory():
    seq = Sequencer(store=MemoryStore(), rooms_in_memory=1)
    _fill(seq, "a", 1)
    _fill(seq, "b", 1)
    assert sorted(seq.rooms) == ["a", "b"]         # nowhere else to load them from


def _expiring(tmp_path, store_class):
    clock = [1_000_000_000]
    store = store_class(str(tmp_path / "s.sqlite3")) if store_class is SqliteStore else MemoryStore()
    seq = Sequencer(history_size=5, store=store, clock_ms=lambda: clock[0], room_ttl_ms=1000)
    return seq, clock


@pytest.mark.parametrize("store_class", [SqliteStore, MemoryStore])
def test_idle_rooms_lose_their_messages_but_keep_their_position(tmp_path, store_class):
    seq, clock = _expiring(tmp_path, store_class)
    _fill(seq, "idle", 3)
    clock[0] += 900
    _fill(seq, "busy", 1)
    clock[0] += 200                                # idle: 1100 ms silent, busy: 200 ms
    assert seq.expire() == 1
    idle = seq.history("idle", since=1, epoch=seq.epoch)
    assert (idle["seq"], idle["history"], idle["gap"]) == (3, [], True)
    assert seq.history("busy")["seq"] == 1 and len(seq.history("busy")["history"]) == 1
    assert seq.sequence("idle", "ann", "back", "node1")[0]["seq"] == 4
    seq.commit()
    assert seq.expire() == 0


def test_expired_rooms_are_gone_from_the_state_file(tmp_path):
    seq, clock = _expiring(tmp_path, SqliteStore)
    _fill(seq, "idle", 3)
    clock[0] += 5000
    seq.expire()
    seq.store.close()
    db = sqlite3.connect(str(tmp_path / "s.sqlite3"))
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    again = Sequencer(history_size=5, store=SqliteStore(str(tmp_path / "s.sqlite3")))
    assert again.history("idle", since=1, epoch=again.epoch)["gap"]


def test_a_state_file_from_before_the_ttl_counts_its_rooms_from_now(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE rooms (room TEXT PRIMARY KEY, epoch TEXT NOT NULL, seq INTEGER NOT NULL);
        CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
                               PRIMARY KEY (room, seq)) WITHOUT ROWID;
        INSERT INTO meta VALUES ('epoch', 'E0');
        INSERT INTO rooms VALUES ('a', 'E0', 1);
        INSERT INTO messages VALUES ('a', 1, '{"id":"x","seq":1,"room":"a","nick":"n","text":"t","ts":1,"node":"n"}');
    """)
    db.commit()
    db.close()
    seq = Sequencer(store=SqliteStore(path), room_ttl_ms=86_400_000)
    assert seq.epoch == "E0"
    assert seq.expire() == 0                       # not expired by a ts of 1970
    assert seq.history("a")["history"][0]["text"] == "t"


class CountingStore(SqliteStore):
    """Counts the rooms it is asked for."""

    asked = 0

    def load_room(self, name, history_size):
        self.asked += 1
        return super().load_room(name, history_size)


def test_a_room_never_written_is_looked_up_in_the_store_once_until_written(tmp_path):
    store = CountingStore(str(tmp_path / "state.sqlite3"))
    seq = Sequencer(history_size=5, store=store)
    for _ in range(3):                                   # joins asking for its history
        assert seq.history("quiet")["history"] == []
    assert seq.snapshot(["quiet"]) == {} and store.asked == 1
    _fill(seq, "quiet", 2)                               # now written: found again
    seq.commit()
    again = Sequencer(history_size=5, store=store)       # and after a restart
    assert again.history("quiet")["seq"] == 2


def test_a_replica_s_applied_and_restored_rooms_are_not_taken_for_absent(tmp_path):
    active = Sequencer(history_size=5, store=SqliteStore(str(tmp_path / "a.sqlite3")))
    replica = Sequencer(epoch=active.epoch, history_size=5, rooms_in_memory=1,
                        store=SqliteStore(str(tmp_path / "b.sqlite3")))
    assert replica.find("r") is None and replica.find("s") is None   # remembered absent
    message, _ = active.sequence("r", "ann", "hi", "node1")
    assert replica.apply("r", active.epoch, message)
    replica.commit()
    replica.room("other")
    replica.commit()                                    # "r" leaves memory: in the store only
    assert "r" not in replica.rooms and replica.find("r").seq == 1
    _fill(active, "s", 1)
    active.commit()
    replica.restore_part({"s": active.peek("s")}, after="")          # a catch-up part
    assert replica.find("s").seq == 1
