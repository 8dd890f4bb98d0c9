"""broker.sequencer.Sequencer: seq, id, ts, cid de-duplication, snapshots."""
import itertools

import pytest

from broker.sequencer import Sequencer
from chatstream.clock import new_epoch


class FakeClock:
    """Unix milliseconds that advance by ``step`` on every reading."""

    def __init__(self, start=1_700_000_000_000, step=7):
        self.now = start
        self.step = step
        self.readings = []

    def __call__(self):
        self.now += self.step
        self.readings.append(self.now)
        return self.now


def make(history_size=50, epoch="E1", **window):
    return Sequencer(epoch=epoch, history_size=history_size, clock_ms=FakeClock(), **window)


def send(seq, room="r", cid=None, text="hello"):
    return seq.sequence(room, "ann", text, "node1", cid)


def test_seq_counts_up_by_one_per_room_from_one():
    s = make()
    assert [send(s)[0]["seq"] for _ in range(10)] == list(range(1, 11))


def test_rooms_are_sequenced_independently():
    s = make()
    rooms = ["a", "b", "a", "c", "a", "b", "c", "c", "c"]
    got = [(room, send(s, room)[0]["seq"]) for room in rooms]
    assert got == [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2),
                   ("c", 2), ("c", 3), ("c", 4)]


def test_ts_comes_from_the_injected_clock():
    clock = FakeClock(start=5_000, step=13)
    s = Sequencer(epoch="E", clock_ms=clock)
    stamps = [send(s, room)[0]["ts"] for room in ("a", "b", "a")]
    assert stamps == clock.readings == [5_013, 5_026, 5_039]


def test_message_carries_the_contract_fields():
    s = make()
    message, duplicate = s.sequence("lobby", "ann", "hi there", "node2", "c1")
    assert duplicate is False
    assert set(message) == {"id", "seq", "room", "kind", "nick", "text", "ts", "node", "cid"}
    assert (message["room"], message["nick"], message["text"], message["node"],
            message["cid"]) == ("lobby", "ann", "hi there", "node2", "c1")
    assert isinstance(message["id"], str) and message["id"]
    assert isinstance(message["ts"], int)


def test_message_without_cid_has_no_cid_field():
    message, _ = send(make(), cid=None)
    assert "cid" not in message


def test_ids_are_unique_across_rooms():
    s = make()
    ids = [send(s, room)[0]["id"] for room in itertools.islice(itertools.cycle("abc"), 300)]
    assert len(set(ids)) == 300


def test_same_cid_in_same_room_returns_the_first_message_as_duplicate():
    s = make()
    first, dup1 = send(s, cid="c1", text="first")
    again, dup2 = send(s, cid="c1", text="retry with other text")
    assert (dup1, dup2) == (False, True)
    assert again == first
    assert again["text"] == "first"
    assert s.rooms["r"].seq == 1
    assert len(s.history("r")["history"]) == 1
    assert send(s, cid="c2")[0]["seq"] == 2  # the duplicate did not use up seq 2


def test_duplicate_does_not_count_as_a_change():
    s = make()
    send(s, cid="c1")
    assert s.take_changes() == {"r": 1}
    assert send(s, cid="c1")[1] is True
    assert s.take_changes() == {}


def test_same_cid_in_another_room_is_a_new_message():
    s = make()
    send(s, "a", cid="c1")
    send(s, "a", cid="c2")
    message, duplicate = send(s, "b", cid="c1")
    assert duplicate is False
    assert (message["room"], message["seq"]) == ("b", 1)


def test_messages_without_cid_are_never_duplicates():
    s = make()
    results = [send(s, cid=None, text="same") for _ in range(3)]
    assert [d for _, d in results] == [False] * 3
    assert [m["seq"] for m, _ in results] == [1, 2, 3]


def test_cid_is_remembered_while_its_message_is_buffered():
    s = make(history_size=3)
    first, _ = send(s, cid="x")        # seq 1
    send(s)                             # seq 2
    send(s)                             # seq 3: buffer 1..3, still holds "x"
    again, duplicate = send(s, cid="x")
    assert duplicate is True and again == first


def test_cid_left_the_buffer_is_recognised_within_the_window_with_its_id_and_seq():
    s = make(history_size=3)
    first, _ = send(s, cid="x")        # seq 1
    for _ in range(100):                # seq 1 long out of the buffer, a busy room
        send(s)
    assert [m["seq"] for m in s.history("r")["history"]] == [99, 100, 101]
    again, duplicate = send(s, cid="x")
    assert duplicate is True            # a resend after a late ack: never sequenced twice
    assert (again["id"], again["seq"], again["cid"]) == (first["id"], 1, "x")
    assert "text" not in again          # an ack needs no more
    assert s.history("r")["seq"] == 101


def test_cid_is_forgotten_once_its_message_is_out_of_the_buffer_and_the_window():
    s = make(history_size=3, cid_window_ms=1000)
    first, _ = send(s, cid="x")        # seq 1
    for _ in range(3):                  # seqs 2..4 evict seq 1
        send(s)
    s.clock_ms.now += 1001              # past the window
    again, duplicate = send(s, cid="x")
    assert duplicate is False
    assert again["seq"] == 5 and again["id"] != first["id"]
    # and the new message now owns the cid
    assert send(s, cid="x") == (again, True)


def test_the_window_beyond_the_buffer_keeps_at_most_cid_window_max_cids_per_room():
    s = make(history_size=2, cid_window_max=10)
    sent = [send(s, cid="c%d" % i)[0] for i in range(30)]
    assert len(s.left_cids["r"]) == 10
    assert send(s, cid="c20")[0]["seq"] == sent[20]["seq"]   # among the newest 10 that left (c18..c27)
    assert send(s, cid="c5")[1] is False                      # beyond them: a new message


def test_eviction_forgets_only_the_evicted_cid():
    s = make(history_size=3, cid_window_ms=0)
    send(s, cid="a")   # 1
    b, _ = send(s, cid="b")   # 2
    send(s, cid="c")   # 3
    send(s)            # 4 evicts "a"
    assert send(s, cid="b") == (b, True)
    assert send(s, cid="a")[1] is False


def test_buffer_keeps_the_last_history_size_messages():
    s = make(history_size=4)
    sent = [send(s)[0] for _ in range(10)]
    assert s.history("r")["history"] == sent[-4:]
    assert s.snapshot()["r"]["history"] == sent[-4:]


def test_snapshot_lists_every_room_state():
    s = make(history_size=2, epoch="EP")
    a = [send(s, "a")[0] for _ in range(3)]
    b = [send(s, "b")[0]]
    assert s.snapshot() == {
        "a": {"epoch": "EP", "seq": 3, "history": a[-2:]},
        "b": {"epoch": "EP", "seq": 1, "history": b},
    }


def test_snapshot_of_a_new_sequencer_is_empty():
    assert make().snapshot() == {}


def test_snapshot_is_not_changed_by_later_messages():
    s = make()
    send(s)
    snap = s.snapshot()
    send(s)
    send(s, "other")
    assert snap["r"]["seq"] == 1 and len(snap["r"]["history"]) == 1
    assert "other" not in snap


def test_history_of_an_unknown_room_is_empty_and_does_not_create_it():
    s = make(epoch="EP")
    assert s.history("nowhere") == {"room": "nowhere", "epoch": "EP", "seq": 0,
                                    "history": [], "gap": False}
    assert s.history("nowhere", since=0, epoch="EP")["gap"] is False
    assert s.history("nowhere", since=3, epoch="EP")["gap"] is True
    assert "nowhere" not in s.snapshot()


@pytest.mark.parametrize("since,epoch,expected,gap", [
    (None, None, [3, 4, 5, 6], False),
    (4, "E1", [5, 6], False),
    (2, "E1", [3, 4, 5, 6], False),
    (6, "E1", [], False),
    (1, "E1", [3, 4, 5, 6], True),
    (7, "E1", [3, 4, 5, 6], True),
    (4, "E0", [3, 4, 5, 6], True),
])
def test_history_answers_since_like_the_room(since, epoch, expected, gap):
    s = make(history_size=4)
    for _ in range(6):
        send(s)
    reply = s.history("r", since, epoch)
    assert [m["seq"] for m in reply["history"]] == expected
    assert reply["gap"] is gap
    assert (reply["room"], reply["epoch"], reply["seq"]) == ("r", "E1", 6)
    assert reply == {"room": "r", **s.rooms["r"].view(since, epoch)}


def test_take_changes_returns_latest_seq_per_room_and_resets():
    s = make()
    send(s, "a")
    send(s, "a")
    send(s, "b")
    assert s.take_changes() == {"a": 2, "b": 1}
    assert s.take_changes() == {}
    send(s, "b")
    assert s.take_changes() == {"b": 2}


def test_every_room_uses_the_sequencer_epoch():
    s = make(epoch="EPOCH-X")
    send(s, "a")
    send(s, "b")
    assert {state["epoch"] for state in s.snapshot().values()} == {"EPOCH-X"}


def test_default_epochs_are_fresh_per_sequencer():
    a, b = Sequencer(), Sequencer()
    assert a.epoch and b.epoch and a.epoch != b.epoch
    assert new_epoch() != new_epoch()


def test_message_ids_are_random_version_4_uuids():
    import uuid
    from broker.sequencer import new_id
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in list(ids)[:50]:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
