"""The archiver's view of each room's stream (web/archive/streams.py): events taken once
and in order, a hole held until the broker's history fills it, losses counted."""
from archive.streams import RoomStreams

E, F = "e" * 32, "f" * 32


def msg(seq, room="r"):
    return {"id": "m%d" % seq, "seq": seq, "room": room, "nick": "n", "text": "t", "ts": seq}


def seqs(events):
    return [message["seq"] for _, message in events]


def state(seqs_, epoch=E, seq=None):
    return {"epoch": epoch, "seq": seq if seq is not None else seqs_[-1],
            "history": [msg(s) for s in seqs_]}


def test_events_in_order_are_taken_and_repeats_dropped():
    streams = RoomStreams()
    assert seqs(streams.offer(E, msg(1))[0]) == [1]
    assert seqs(streams.offer(E, msg(2))[0]) == [2]
    assert streams.offer(E, msg(2)) == ([], False)
    assert streams.position("r") == (E, 2)


def test_a_room_continues_from_the_archives_watermark():
    streams = RoomStreams({"r": (E, 40)})
    assert streams.offer(E, msg(40)) == ([], False)
    assert seqs(streams.offer(E, msg(41))[0]) == [41]


def test_a_hole_holds_the_room_until_its_history_fills_it():
    streams = RoomStreams({"r": (E, 3)})
    assert streams.offer(E, msg(6)) == ([], True)            # 4 and 5 missed
    assert streams.offer(E, msg(7)) == ([], False)           # held behind the catch-up
    events, again = streams.fill("r", state([2, 3, 4, 5, 6]))
    assert (seqs(events), again) == ([4, 5, 6, 7], False)
    assert streams.catching_up() == [] and streams.lost == 0
    assert streams.position("r") == (E, 7)


def test_events_gone_from_the_broker_are_counted_lost_and_the_stream_goes_on():
    streams = RoomStreams({"r": (E, 3)})
    streams.offer(E, msg(60))
    events, _ = streams.fill("r", state(list(range(11, 61))))
    assert seqs(events) == list(range(11, 61))
    assert streams.lost == 7


def test_a_new_hole_among_the_held_events_asks_again():
    streams = RoomStreams({"r": (E, 1)})
    streams.offer(E, msg(3))
    streams.offer(E, msg(9))                                  # held; 4..8 not yet published
    events, again = streams.fill("r", state([2, 3]))
    assert (seqs(events), again) == ([2, 3], True)
    assert streams.catching_up() == ["r"]
    events, again = streams.fill("r", state([4, 5, 6, 7, 8, 9]))
    assert (seqs(events), again) == ([4, 5, 6, 7, 8, 9], False)


def test_a_heartbeat_ahead_of_the_archive_holds_the_room_once():
    streams = RoomStreams({"r": (E, 5)})
    assert not streams.behind("r", E, 5)
    assert not streams.behind("new", E, 0)
    assert streams.behind("r", E, 8)
    assert not streams.behind("r", E, 9)                     # its catch-up is under way
    assert seqs(streams.fill("r", state([6, 7, 8]))[0]) == [6, 7, 8]


def test_a_new_epoch_starts_at_one():
    streams = RoomStreams({"r": (E, 5)})
    assert streams.offer(F, msg(3)) == ([], True)             # the new stream's 1 and 2 missed
    assert seqs(streams.fill("r", state([1, 2, 3], epoch=F))[0]) == [1, 2, 3]
    assert seqs(streams.offer(F, msg(4))[0]) == [4]
    assert streams.position("r") == (F, 4) and streams.lost == 0


def test_a_room_read_a_page_at_a_time_stays_held_until_filled():
    streams = RoomStreams({"r": (E, 2)})
    assert streams.behind("r", E, 450)
    streams.offer(E, msg(451))                                 # live, behind the catch-up
    assert seqs(streams.take("r", state(list(range(3, 203))))) == list(range(3, 203))
    assert streams.catching_up() == ["r"]
    events, again = streams.fill("r", state(list(range(203, 451))))
    assert seqs(events) == list(range(203, 452)) and not again
    assert streams.catching_up() == [] and streams.lost == 0
