"""chatstream.history.RoomHistory: the replay buffer and its ``since`` answer."""
import pytest

from chatstream.history import RoomHistory, SequenceError


def msg(seq, room="r"):
    return {"id": "id%d" % seq, "seq": seq, "room": room, "nick": "n", "text": "t%d" % seq,
            "ts": 1000 + seq, "node": "node1"}


def seqs(messages):
    return [m["seq"] for m in messages]


def filled(last, size=5, epoch="E"):
    """A room of ``size`` buffered messages that has seen seqs 1..last."""
    history = RoomHistory("r", epoch, size=size)
    for seq in range(1, last + 1):
        history.append(msg(seq))
    return history


def test_a_new_room_is_at_seq_zero_with_nothing_buffered():
    history = RoomHistory("r", "E")
    assert history.seq == 0
    assert history.since() == ([], False)
    assert history.since(0, "E") == ([], False)


def test_append_advances_seq_and_keeps_order():
    history = filled(3, size=10)
    assert history.seq == 3
    assert seqs(history.since()[0]) == [1, 2, 3]


@pytest.mark.parametrize("bad_seq", [0, 1, 3, 5, -1])
def test_append_refuses_a_message_that_does_not_follow_seq(bad_seq):
    history = filled(1)
    with pytest.raises(SequenceError):
        history.append(msg(bad_seq))
    assert history.seq == 1
    assert seqs(history.since()[0]) == [1]


def test_append_returns_what_the_full_buffer_evicts():
    history = RoomHistory("r", "E", size=3)
    assert [history.append(msg(s)) for s in (1, 2, 3)] == [None, None, None]
    assert history.append(msg(4)) == msg(1)
    assert history.append(msg(5)) == msg(2)


def test_buffer_keeps_only_the_last_size_messages():
    history = filled(12, size=5)
    assert seqs(history.since()[0]) == [8, 9, 10, 11, 12]
    assert history.seq == 12


# Room that saw 1..8 with a buffer of 5: 4..8 buffered, 1..3 evicted.
@pytest.mark.parametrize("since,expected,gap", [
    (None, [4, 5, 6, 7, 8], False),   # no since: whole buffer
    (3, [4, 5, 6, 7, 8], False),      # exactly the oldest buffered is next: no gap
    (4, [5, 6, 7, 8], False),
    (5, [6, 7, 8], False),
    (7, [8], False),
    (8, [], False),                   # up to date
    (2, [4, 5, 6, 7, 8], True),       # 3 evicted
    (0, [4, 5, 6, 7, 8], True),       # 1..3 evicted
    (9, [4, 5, 6, 7, 8], True),       # ahead of the stream
    (100, [4, 5, 6, 7, 8], True),
])
def test_since_semantics(since, expected, gap):
    messages, got_gap = filled(8).since(since, "E")
    assert seqs(messages) == expected
    assert got_gap is gap


@pytest.mark.parametrize("since", [None, 0, 3, 5, 8, 9])
def test_since_from_another_epoch_is_a_gap_with_the_whole_buffer(since):
    messages, gap = filled(8).since(since, "OTHER")
    assert seqs(messages) == [4, 5, 6, 7, 8]
    assert gap is (since is not None)


def test_since_without_epoch_is_read_as_the_same_epoch():
    assert seqs(filled(8).since(5)[0]) == [6, 7, 8]
    assert filled(8).since(5)[1] is False


def test_since_in_a_room_that_never_evicted():
    history = filled(3, size=5)
    assert history.since(0, "E") == ([msg(1), msg(2), msg(3)], False)
    assert history.since(2, "E") == ([msg(3)], False)


def test_since_in_an_empty_room_ahead_is_a_gap():
    assert RoomHistory("r", "E").since(1, "E") == ([], True)


def test_since_returns_a_copy_of_the_buffer():
    history = filled(3)
    messages, _ = history.since()
    messages.clear()
    assert seqs(history.since()[0]) == [1, 2, 3]


def test_state_round_trips_through_from_state():
    original = filled(8)
    state = original.state()
    assert state == {"epoch": "E", "seq": 8, "history": [msg(s) for s in range(4, 9)]}
    copy = RoomHistory.from_state("r", state, 5)
    assert (copy.room, copy.epoch, copy.seq) == ("r", "E", 8)
    for since in (None, 0, 3, 5, 8, 9):
        assert copy.since(since, "E") == original.since(since, "E")
    copy.append(msg(9))
    assert seqs(copy.since()[0]) == [5, 6, 7, 8, 9]
    assert original.seq == 8  # the state was a copy


def test_state_is_not_changed_by_later_appends():
    history = filled(3)
    state = history.state()
    history.append(msg(4))
    assert seqs(state["history"]) == [1, 2, 3]
    assert state["seq"] == 3


def test_from_state_with_a_smaller_size_keeps_the_newest():
    state = filled(8, size=5).state()
    copy = RoomHistory.from_state("r", state, 2)
    assert seqs(copy.since()[0]) == [7, 8]
    assert copy.since(5, "E") == ([msg(7), msg(8)], True)


def test_constructor_refuses_a_history_that_does_not_end_at_seq():
    with pytest.raises(SequenceError):
        RoomHistory("r", "E", seq=5, history=[msg(3), msg(4)])


def test_a_room_with_seq_but_empty_buffer_reports_gaps_below_seq():
    # e.g. a snapshot of a room whose buffer was lost: seq known, nothing buffered
    history = RoomHistory("r", "E", seq=4)
    assert history.since(4, "E") == ([], False)
    assert history.since(2, "E") == ([], True)


def test_view_is_the_position_plus_since():
    history = filled(8, size=5)
    assert history.view(6, "E") == {"epoch": "E", "seq": 8, "history": [msg(7), msg(8)], "gap": False}


def test_view_without_since_is_the_whole_buffer_and_no_gap():
    view = filled(8, size=5).view()
    assert (view["seq"], seqs(view["history"]), view["gap"]) == (8, [4, 5, 6, 7, 8], False)


@pytest.mark.parametrize("since, epoch", [(1, "E"), (9, "E"), (6, "OTHER")])
def test_view_says_gap_with_the_whole_buffer_when_since_cannot_be_served(since, epoch):
    view = filled(8, size=5).view(since, epoch)
    assert view["epoch"] == "E" and view["seq"] == 8 and view["gap"] is True
    assert seqs(view["history"]) == [4, 5, 6, 7, 8]


def test_view_of_a_new_room():
    assert RoomHistory("r", "E").view(0, "E") == {"epoch": "E", "seq": 0, "history": [], "gap": False}
