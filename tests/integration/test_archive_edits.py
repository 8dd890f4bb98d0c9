"""Edits and deletes in the archive on both databases, real servers: the message an
``edit`` or ``delete`` names is read in its current state (the node's check of a target
older than its mirror), pages apply the mirror's changes the archive has not written yet,
and a message read back from the broker's store already changed is archived as it is.

Django runs in this process on the archive's tables only (conftest's ``archive_databases``).
"""
import pytest

from .test_archive_search import write as _write
from .test_archive_writer import EPOCH, events, message, using  # noqa: F401 - a fixture

pytestmark = pytest.mark.timeout(120)


def _reader(using):
    from archive.reader import ArchiveReader
    return ArchiveReader(using=using)


def test_the_target_of_an_edit_or_delete_is_read_in_its_current_state(using):
    _write(using, message("t", 1, "helo"), message("t", 2, "keep"),
           message("t", 3, "hello", kind="edit", target=1))
    found = _reader(using).message("t", EPOCH, 1)
    assert (found["text"], found["edited"], found["kind"]) == ("hello", 1003, "message")
    assert _reader(using).message("t", EPOCH, 3) is None            # an edit is no message
    assert _reader(using).message("t", "another epoch", 1) is None
    _write(using, message("t", 4, kind="delete", target=1))
    assert _reader(using).message("t", EPOCH, 1) == {
        "id": "mt1", "seq": 1, "room": "t", "ts": 1001, "deleted": True, "kind": "message"}


def test_a_page_applies_the_mirror_s_changes_the_archive_has_not_written(using):
    _write(using, *(message("p", seq) for seq in range(1, 5)))
    mirror = {"epoch": EPOCH, "seq": 6, "history": [
        dict(message("p", 4)[1], kind="message"),
        dict(message("p", 5, "text 1, edited", kind="edit", target=1)[1]),
        dict(message("p", 6, kind="delete", target=2)[1])]}
    page = _reader(using).page("p", mirror, None, 10)["messages"]
    assert [(m["seq"], m.get("text"), m.get("edited"), m.get("deleted")) for m in page] == [
        (1, "text 1, edited", 1005, None), (2, None, None, True), (3, "text 3", None, None),
        (4, "text 4", None, None)]
    assert all(m["kind"] == "message" for m in page)               # the changes are applied, not listed


def test_a_message_read_back_from_the_broker_s_store_already_changed_is_archived_as_it_is(using):
    epoch, edited = message("s", 1, "latest")
    edited["edited"] = 1002
    tombstone = {"id": "ms2", "seq": 2, "room": "s", "kind": "message", "ts": 1002, "cid": "c2",
                 "deleted": True}
    _write(using, (epoch, edited), (epoch, tombstone),
           message("s", 3, "latest", kind="edit", target=1), message("s", 4, kind="delete", target=2))
    assert events(using, "s") == [(1, "message", "latest", 1003, False),
                                  (2, "message", "", None, True),
                                  (3, "edit", "latest", None, False),
                                  (4, "delete", "", None, False)]
