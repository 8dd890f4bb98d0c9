"""Edits and deletes in the broker's buffer and store, and in a replica's: each is a
sequenced room event, and its target is kept in its current state (a deleted text
leaves the buffer, the store and the replica)."""
import pytest

from broker.sequencer import Sequencer, TargetNotFound
from broker.store import MemoryStore, SqliteStore
from chatstream import room_events
from chatstream.history import RoomHistory

ANN = "a" + "1" * 20
BOB = "a" + "2" * 20


def _sequencer(tmp_path=None, history_size=50, name="state"):
    store = SqliteStore(str(tmp_path / ("%s.sqlite3" % name))) if tmp_path else MemoryStore()
    return Sequencer(epoch="E1", history_size=history_size, store=store)


def _say(sequencer, text, room="r", cid=None):
    return sequencer.sequence(room, "ann", text, "node1", cid, uid=ANN)[0]


def _edit(sequencer, target, text, room="r", cid=None):
    return sequencer.sequence_change(room, "E1", "edit", target, "node1", BOB, nick="bob",
                                     text=text, cid=cid)


def _delete(sequencer, target, room="r", cid=None):
    return sequencer.sequence_change(room, "E1", "delete", target, "node1", BOB, cid=cid)


def _stored(sequencer, room="r"):
    return {body["seq"]: body for body in sequencer.store.events_after(room, 0, 1000)}


def test_an_edit_is_a_room_event_of_its_own_and_edits_its_target_in_the_buffer():
    s = _sequencer()
    _say(s, "helo")
    event, duplicate = _edit(s, 1, "hello")
    assert not duplicate
    assert (event["seq"], event["kind"], event["target"], event["text"], event["uid"],
            event["nick"]) == (2, "edit", 1, "hello", BOB, "bob")
    history = s.history("r")["history"]
    assert [m["seq"] for m in history] == [1, 2]
    assert history[0]["text"] == "hello" and history[0]["edited"] == event["ts"]
    assert history[0]["nick"] == "ann"           # the author stays the author


def test_a_delete_leaves_a_tombstone_and_takes_the_text_of_earlier_edits_with_it():
    s = _sequencer()
    _say(s, "secret", cid="c1")
    _edit(s, 1, "still secret")
    event, _ = _delete(s, 1)
    assert event["kind"] == "delete" and event["target"] == 1 and "text" not in event
    tombstone, edit, delete = s.history("r")["history"]
    assert tombstone == {"id": tombstone["id"], "seq": 1, "room": "r", "kind": "message",
                         "ts": tombstone["ts"], "cid": "c1", "deleted": True}
    assert "text" not in edit and edit["kind"] == "edit"
    assert "secret" not in repr(s.history("r")) and "secret" not in repr(s.snapshot())


def test_a_resent_publish_of_a_deleted_message_gets_its_tombstone_never_its_text():
    s = _sequencer()
    _say(s, "oops", cid="c1")
    _delete(s, 1)
    again, duplicate = s.sequence("r", "ann", "oops", "node1", "c1", uid=ANN)
    assert duplicate and again["deleted"] and "text" not in again


def test_a_resent_change_is_sequenced_once():
    s = _sequencer()
    _say(s, "hi")
    first, _ = _edit(s, 1, "hi!", cid="e-1")
    again, duplicate = _edit(s, 1, "hi!", cid="e-1")
    assert duplicate and again == first and s.room("r").seq == 2


@pytest.mark.parametrize("target", [0, 2, 3, 99])
def test_a_change_of_what_is_not_a_message_of_the_room_is_not_found(target):
    s = _sequencer()
    _say(s, "hi")
    _edit(s, 1, "hi!")          # seq 2 is an edit, not a message
    with pytest.raises(TargetNotFound):
        _delete(s, target)
    assert s.room("r").seq == 2


def test_a_deleted_message_cannot_be_edited_or_deleted_again():
    s = _sequencer()
    _say(s, "hi")
    _delete(s, 1)
    with pytest.raises(TargetNotFound):
        _edit(s, 1, "back")
    with pytest.raises(TargetNotFound):
        _delete(s, 1)


def test_a_change_of_another_epoch_or_of_an_unknown_room_is_not_found():
    s = _sequencer()
    _say(s, "hi")
    with pytest.raises(TargetNotFound):
        s.sequence_change("r", "E0", "delete", 1, "node1", BOB)
    with pytest.raises(TargetNotFound):
        _delete(s, 1, room="elsewhere")


def test_the_store_holds_the_current_state_across_a_restart(tmp_path):
    s = _sequencer(tmp_path)
    _say(s, "first")
    _say(s, "second")
    _edit(s, 1, "first, edited")
    _delete(s, 2)
    s.commit()
    s.store.close()
    again = _sequencer(tmp_path)
    history = again.history("r")["history"]
    assert history[0]["text"] == "first, edited" and "edited" in history[0]
    assert history[1]["deleted"] and "text" not in history[1] and "nick" not in history[1]
    assert [m.get("kind") for m in history] == ["message", "message", "edit", "delete"]


def test_a_change_beyond_the_buffer_rewrites_the_stored_target_the_archive_still_lacks(tmp_path):
    s = _sequencer(tmp_path, history_size=3)
    s.store.record_archived({}, 3)                 # an archiver runs: nothing archived yet
    _say(s, "old secret")
    _edit(s, 1, "old secret, edited")
    for i in range(4):
        _say(s, "filler %d" % i)
    s.commit()
    assert s.history("r")["history"][0]["seq"] == 4     # 1 and its edit left the buffer
    _delete(s, 1)
    s.commit()
    stored = _stored(s)
    assert stored[1]["deleted"] and "old secret" not in repr(stored)
    assert stored[2]["kind"] == "edit" and "text" not in stored[2]
    with pytest.raises(TargetNotFound):       # the store's state is checked too
        _edit(s, 1, "again")


def test_a_change_of_a_target_staged_in_the_same_batch_is_checked_against_it(tmp_path):
    s = _sequencer(tmp_path, history_size=2)
    s.store.record_archived({}, 2)
    _say(s, "a")
    _say(s, "b")
    _say(s, "c")                                   # 1 left the buffer, not yet committed
    _delete(s, 1)
    with pytest.raises(TargetNotFound):
        _delete(s, 1)
    s.commit()
    assert _stored(s)[1]["deleted"]


def test_a_replica_applies_the_active_s_changes_to_its_buffer_and_store(tmp_path):
    active, passive = _sequencer(), _sequencer(tmp_path, name="passive")
    events = [_say(active, "secret", cid="c1"), _edit(active, 1, "more secret")[0],
              _say(active, "kept"), _delete(active, 1)[0]]
    for event in events:
        assert passive.apply("r", "E1", event)
    passive.commit()
    assert passive.history("r") == active.history("r")
    assert "secret" not in repr(_stored(passive))
    assert passive.sequence("r", "ann", "secret", "node1", "c1")[0]["deleted"]


def test_a_mirror_applies_changes_as_the_broker_does():
    s = _sequencer()
    _say(s, "one")
    mirror = RoomHistory("r", "E1")
    mirror.append(s.history("r")["history"][0])
    for event in (_edit(s, 1, "uno")[0], _say(s, "two"), _delete(s, 1)[0]):
        mirror.append(event)
    assert mirror.state() == s.room("r").state()


def test_join_replays_messages_without_since_and_every_event_after_since():
    s = _sequencer()
    _say(s, "one")
    _say(s, "two")
    _edit(s, 1, "uno")
    _delete(s, 2)
    fresh = room_events.replay(s.history("r"), None)
    assert [(m["seq"], m["kind"]) for m in fresh["history"]] == [(1, "message"), (2, "message")]
    assert fresh["history"][0]["text"] == "uno" and fresh["history"][1]["deleted"]
    resumed = room_events.replay(s.history("r", since=2, epoch="E1"), 2)
    assert [(m["seq"], m["kind"], m["target"]) for m in resumed["history"]] == [
        (3, "edit", 1), (4, "delete", 2)]
    gap = room_events.replay(s.history("r", since=2, epoch="E0"), 2)
    assert gap["gap"] and [m["kind"] for m in gap["history"]] == ["message", "message"]
