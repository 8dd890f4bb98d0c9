"""The archive's writer (web/archive/writer.py) on both databases, real servers: a batch
per transaction, each room event once whatever is written twice, edits and deletes
applied to their message's current state once.

Django runs in this process on the archive's tables only: the default SQLite file and
a PostgreSQL server (conftest's ``archive_databases``).
"""
import pytest

pytestmark = pytest.mark.timeout(120)

EPOCH = "e" * 32


@pytest.fixture
def using(archive_db):
    return archive_db


def message(room, seq, text=None, kind="message", target=None, epoch=EPOCH):
    body = {"id": "m%s%d" % (room, seq), "seq": seq, "room": room, "nick": "ann",
            "text": text if text is not None else "text %d" % seq, "ts": 1_000 + seq,
            "node": "node1", "cid": "c%d" % seq, "uid": "a" + "0" * 20}
    if kind != "message":
        body.update(kind=kind, target=target)
    return epoch, body


def events(using, room):
    from archive.models import RoomEvent
    return list(RoomEvent.objects.using(using).filter(room__name=room).order_by("seq")
                .values_list("seq", "kind", "text", "edited_at", "deleted"))


def test_a_batch_of_many_rooms_is_written_once_and_moves_each_watermark(using):
    from archive.writer import write
    batch = [message(room, seq) for seq in range(1, 6) for room in ("a", "b")]
    done = write(batch, using=using)
    assert done.new == 10
    assert done.watermarks == {"a": (EPOCH, 5), "b": (EPOCH, 5)}
    assert [row[0] for row in events(using, "a")] == [1, 2, 3, 4, 5]


def test_events_written_again_are_not_duplicated(using):
    from archive.models import RoomEvent
    from archive.writer import write
    write([message("r", seq) for seq in range(1, 4)], using=using)
    overlap = write([message("r", seq) for seq in range(2, 7)], using=using)   # a catch-up overlapping
    assert overlap.new == 3
    assert write([message("r", 6)], using=using).new == 0
    assert [row[0] for row in events(using, "r")] == [1, 2, 3, 4, 5, 6]
    assert RoomEvent.objects.using(using).filter(room__name="r", seq=4).get().cid == "c4"


def test_a_row_already_there_beyond_the_watermark_is_kept_once(using):
    """The unique position holds even when the watermark does not know of a row
    (a second writer's copy): the batch goes through, the row stays single."""
    from archive.models import Room
    from archive.writer import write
    write([message("w", seq) for seq in range(1, 4)], using=using)
    Room.objects.using(using).filter(name="w").update(seq=1)
    assert write([message("w", seq) for seq in range(2, 5)], using=using).new == 3
    assert [row[0] for row in events(using, "w")] == [1, 2, 3, 4]


def test_an_edit_changes_the_current_text_and_keeps_the_old_one_once(using):
    from archive.models import Edit
    from archive.writer import write
    write([message("e", 1, "first"), message("e", 2, "second", kind="edit", target=1)], using=using)
    write([message("e", 2, "second", kind="edit", target=1),          # again: no second history row
           message("e", 3, "third", kind="edit", target=1)], using=using)
    assert events(using, "e")[0] == (1, "message", "third", 1003, False)
    assert list(Edit.objects.using(using).order_by("edit_seq").values_list("edit_seq", "text")) \
        == [(2, "first"), (3, "second")]


def test_a_delete_empties_the_text_and_an_edit_after_it_changes_nothing(using):
    from archive.writer import write
    write([message("d", 1, "secret"), message("d", 2, kind="delete", target=1, text="")],
          using=using)
    write([message("d", 3, "back", kind="edit", target=1)], using=using)
    rows = events(using, "d")
    assert rows[0] == (1, "message", "", None, True)
    assert [row[1] for row in rows] == ["message", "delete", "edit"]


def test_a_change_to_a_message_the_archive_never_had_is_kept_and_breaks_nothing(using):
    from archive.writer import write
    done = write([message("g", 7, kind="delete", target=3, text=""), message("g", 8)], using=using)
    assert done.new == 2
    assert [row[:2] for row in events(using, "g")] == [(7, "delete"), (8, "message")]


def test_a_new_epoch_is_new_even_below_the_old_seq(using):
    from archive.writer import write
    write([message("n", seq) for seq in range(1, 6)], using=using)
    done = write([message("n", 1, epoch="f" * 32)], using=using)
    assert done.new == 1 and done.watermarks == {"n": ("f" * 32, 1)}


def test_a_failing_batch_writes_nothing(using):
    from archive.models import RoomEvent
    from archive.writer import write
    broken = [message("x", 1), message("x", 2)]
    del broken[1][1]["ts"]                                   # not a Message
    with pytest.raises(KeyError):
        write(broken, using=using)
    assert not RoomEvent.objects.using(using).filter(room__name="x").exists()


# --- pages for the history event (web/archive/reader.py) ---------------------------

def mirror(seqs, newest=None):
    """A node's view of room "p": its buffer holds ``seqs``."""
    return {"epoch": EPOCH, "seq": newest or seqs[-1], "history": [message("p", s)[1] for s in seqs]}


def test_pages_join_the_archive_and_the_mirror_and_never_cross_a_hole(using):
    from archive.reader import ArchiveReader
    from archive.writer import write
    from chat.protocol.history import HistoryUnavailable
    reader = ArchiveReader(using=using)
    write([message("p", seq) for seq in range(1, 101)], using=using)
    view = mirror(list(range(151, 201)))                   # the archiver is 50 behind the node
    newest = reader.page("p", view, None, 50)
    assert [m["seq"] for m in newest["messages"]] == list(range(151, 201))
    assert not newest["first"]
    with pytest.raises(HistoryUnavailable):
        reader.page("p", view, 151, 50)
    write([message("p", seq) for seq in range(101, 201)], using=using)
    page = reader.page("p", view, 151, 50)
    assert [m["seq"] for m in page["messages"]] == list(range(101, 151))
    last = reader.page("p", view, 31, 50)
    assert [m["seq"] for m in last["messages"]] == list(range(1, 31)) and last["first"]
    assert last["messages"][0] == {"id": "mp1", "seq": 1, "room": "p", "nick": "ann",
                                   "text": "text 1", "ts": 1001, "node": "node1",
                                   "uid": "a" + "0" * 20, "cid": "c1", "kind": "message"}


def test_a_page_shows_messages_in_their_current_state(using):
    from archive.reader import ArchiveReader
    from archive.writer import write
    write([message("p", 1, "old"), message("p", 2, "gone"),
           message("p", 3, "new", kind="edit", target=1),
           message("p", 4, "", kind="delete", target=2)], using=using)
    page = ArchiveReader(using=using).page("p", {"epoch": EPOCH, "seq": 4, "history": []}, None, 10)
    edited, deleted = page["messages"]
    assert (edited["text"], edited["edited"]) == ("new", 1003)
    assert deleted == {"id": "mp2", "seq": 2, "room": "p", "ts": 1002, "deleted": True,
                       "kind": "message"}
    assert page["first"]
