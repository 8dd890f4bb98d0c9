"""Edits and deletes over real processes: sequenced room events every member on every node
hears, in ``join``'s history (current state; after ``since``, the changes themselves), in
``history`` and ``search`` from the archive, with the author and window rules and the moderator's right,
across a failover of the broker pair."""
import re
import sqlite3
import threading
import time

import pytest
import requests

from harness.client import ChatClient, new_room
from harness.cluster import process_errors, start_cluster
from harness.processes import wait_until

from .test_archiver import archived
from .test_failover import FAST
from .test_identity import form_post, logged_in
from .test_unread import create_accounts

pytestmark = pytest.mark.timeout(180)

# Short enough for a test to outwait, long enough for an edit right after sending.
EDIT_WINDOW_S = 6
HISTORY_SIZE = 8          # a small buffer: edits of messages only the archive still holds


class Watcher(ChatClient):
    """A client that also records ``edit`` and ``delete`` events."""

    def __init__(self, url, name="client", cookies=None):
        super().__init__(url, name=name, cookies=cookies)
        self.changes = []
        self.sio.on("edit", lambda data: self._on_change("edit", data))
        self.sio.on("delete", lambda data: self._on_change("delete", data))

    def _on_change(self, kind, data):
        with self.cond:
            self.changes.append((kind, data))
            self.cond.notify_all()

    def wait_change(self, kind, room, seq, timeout=15):
        """The ``kind`` event of ``room`` with ``seq`` (waited for, not slept for)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for got, data in self.changes:
                    if got == kind and data["room"] == room and data["seq"] == seq:
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no %s #%d in %s" % (self.name, kind, seq, room))
                self.cond.wait(left)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("edits"), nodes=("node1", "node2"), balancer=False,
                      env={"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000",
                           "CHAT_EDIT_WINDOW_S": str(EDIT_WINDOW_S),
                           "CHAT_HISTORY_SIZE": str(HISTORY_SIZE)})
    try:
        create_accounts(c, "staff")
        c.start_archiver()
        yield c
    finally:
        c.stop()
    errors = process_errors(c)
    assert not errors, "tracebacks or errors in process logs:\n%s" % errors


@pytest.fixture
def watcher():
    made = []

    def connect(url, name="client", cookies=None):
        made.append(Watcher(url, name=name, cookies=cookies))
        return made[-1]
    yield connect
    for c in made:
        c.close()


def _sent(client, room, text):
    ack = client.send(room, text)
    assert ack["ok"], ack
    return ack["seq"]


def test_an_edit_and_a_delete_reach_every_member_on_every_node_and_every_history(cluster, watcher):
    room = new_room()
    ann, bob = watcher(cluster.url("node1"), "ann"), watcher(cluster.url("node2"), "bob")
    ann.join(room)
    resumed = bob.join(room)
    first, second = _sent(ann, room, "helo"), _sent(ann, room, "a secret")
    bob.wait_messages(room, 2)

    edit = ann.call("edit", {"room": room, "seq": first, "text": "hello"})
    assert edit == {"ok": True, "seq": second + 1}
    delete = ann.call("delete", {"room": room, "seq": second})
    assert delete == {"ok": True, "seq": second + 2}
    for member in (ann, bob):
        seen = member.wait_change("edit", room, edit["seq"])
        assert (seen["target"], seen["text"], seen["uid"], seen["nick"]) == (
            first, "hello", ann.join(room)["uid"], "ann")
        gone = member.wait_change("delete", room, delete["seq"])
        assert gone["target"] == second and gone["uid"] and "text" not in gone

    # a new reader, on either node: the messages in their current state, no changes
    for node in ("node1", "node2"):
        fresh = watcher(cluster.url(node), "cat").join(room)["history"]
        assert [(m["seq"], m["kind"]) for m in fresh] == [(first, "message"), (second, "message")]
        assert fresh[0]["text"] == "hello" and fresh[0]["edited"] == seen["ts"]
        assert fresh[1]["deleted"] is True and "text" not in fresh[1] and "nick" not in fresh[1]
    # a reader resuming after the messages: the changes, in seq order
    again = watcher(cluster.url("node1"), "bob").join(
        room, since=second, epoch=resumed["epoch"])
    assert not again["gap"]
    assert [(m["seq"], m["kind"], m["target"]) for m in again["history"]] == [
        (edit["seq"], "edit", first), (delete["seq"], "delete", second)]
    assert "secret" not in repr(again)
    # history pages (archive joined with the mirror), before and after the archiver wrote them
    wait_until(lambda: len(archived(cluster, room)) == 4, 30, "the room archived")
    page = bob.call("history", {"room": room})
    assert [(m["seq"], m.get("text"), m.get("deleted")) for m in page["messages"]] == [
        (first, "hello", None), (second, None, True)]
    rows = archived(cluster, room)
    assert rows[0] == (first, "hello") and rows[1] == (second, "")
    # search: an edited message by its current text only, a deleted one never
    found = {q: [hit["seq"] for hit in bob.call("search", {"q": q, "room": room})["hits"]]
             for q in ("hello", "helo", "secret")}
    assert found == {"hello": [first], "helo": [], "secret": []}
    counted = requests.get(cluster.url("node1") + "/metrics", timeout=10).text
    assert re.search(r'^chat_changes_accepted_total\{kind="delete"\} [1-9]', counted, re.M)


def test_a_message_only_the_archive_still_holds_is_edited_and_deleted(cluster, watcher):
    room = new_room()
    ann = watcher(cluster.url("node1"), "ann")
    ann.join(room)
    old = [_sent(ann, room, "old %d" % i) for i in range(2)]
    for i in range(HISTORY_SIZE + 2):
        _sent(ann, room, "filler %d" % i)
    wait_until(lambda: len(archived(cluster, room)) == HISTORY_SIZE + 4, 30, "the room archived")
    assert ann.call("edit", {"room": room, "seq": old[0], "text": "old, edited"})["ok"]
    assert ann.call("delete", {"room": room, "seq": old[1]})["ok"]
    late = watcher(cluster.url("node2"), "dan")
    late.join(room)
    page = late.call("history", {"room": room, "limit": 2, "before": old[1] + 1})
    assert [m.get("text") for m in page["messages"]] == ["old, edited", None]
    assert page["messages"][1]["deleted"] and page["first"]
    assert late.call("delete", {"room": room, "seq": old[1]})["error"] == "not_found"


def test_only_the_author_edits_and_deletes_and_edits_only_within_the_window(cluster, watcher):
    room = new_room()
    ann, bob = watcher(cluster.url("node1"), "ann"), watcher(cluster.url("node2"), "bob")
    ann.join(room), bob.join(room)
    seq = _sent(ann, room, "mine")
    sent_at = time.monotonic()
    edited = ann.call("edit", {"room": room, "seq": seq, "text": "mine, edited"})
    assert edited["ok"]
    assert bob.call("edit", {"room": room, "seq": seq, "text": "yours"})["error"] == "forbidden"
    assert bob.call("delete", {"room": room, "seq": seq})["error"] == "forbidden"
    for refused, payload in (
            ("not_found", {"room": room, "seq": seq + 1, "text": "nothing there"}),
            ("invalid_text", {"room": room, "seq": seq, "text": " "}),
            ("invalid_payload", {"room": room, "seq": "1", "text": "x"}),
            ("not_joined", {"room": new_room(), "seq": 1, "text": "x"})):
        assert ann.call("edit", payload)["error"] == refused, payload
    assert ann.call("edit", {"room": room, "seq": edited["seq"], "text": "an edit is no "
                             "message"})["error"] == "not_found"
    # the window: outwaited, not synchronised on
    time.sleep(max(0.0, EDIT_WINDOW_S + 0.5 - (time.monotonic() - sent_at)))
    late = ann.call("edit", {"room": room, "seq": seq, "text": "too late"})
    assert late["error"] == "edit_window_expired" and late["detail"]
    assert ann.call("delete", {"room": room, "seq": seq})["ok"]     # a delete has no window
    assert ann.call("delete", {"room": room, "seq": seq})["error"] == "not_found"
    assert ann.call("edit", {"room": room, "seq": seq, "text": "back"})["error"] == "not_found"


def test_a_moderator_edits_and_deletes_anyone_s_message_any_time(cluster, watcher):
    room = new_room()
    staff_cookies = logged_in(cluster.url("node2"), "staff").cookies.get_dict()
    ann = watcher(cluster.url("node1"), "ann")
    staff = watcher(cluster.url("node2"), "staff", cookies=staff_cookies)
    ann.join(room), staff.join(room)
    seqs = [_sent(ann, room, "spam %d" % i) for i in range(2)]
    edit = staff.call("edit", {"room": room, "seq": seqs[0], "text": "[removed link]"})
    assert edit["ok"]
    assert ann.wait_change("edit", room, edit["seq"])["nick"] == "staff"
    delete = staff.call("delete", {"room": room, "seq": seqs[1]})
    assert ann.wait_change("delete", room, delete["seq"])["target"] == seqs[1]


def test_two_deletes_of_one_message_from_two_nodes_at_once_sequence_one(cluster, watcher):
    """The nodes' mirrors cannot see each other's delete in flight: the broker's re-check
    lets one through and refuses the other not_found."""
    room = new_room()
    staff_cookies = logged_in(cluster.url("node1"), "staff").cookies.get_dict()
    ann = watcher(cluster.url("node1"), "ann")
    staff = watcher(cluster.url("node2"), "staff", cookies=staff_cookies)
    ann.join(room), staff.join(room)
    seq = _sent(ann, room, "twice deleted")
    staff.wait_messages(room, 1)
    acks = {}
    callers = [threading.Thread(target=lambda who=who: acks.__setitem__(
        who.name, who.call("delete", {"room": room, "seq": seq}))) for who in (ann, staff)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(15)
    assert sorted(str(a.get("error")) for a in acks.values()) == ["None", "not_found"], acks
    events = ann.join(room, since=seq, epoch=ann.join(room)["epoch"])["history"]
    assert [m["kind"] for m in events] == ["delete"]


def test_a_failover_of_the_pair_keeps_edits_and_deletes(make_cluster, tmp_path):
    c = make_cluster(env=FAST)
    c.start_pair()
    c.start_nodes(("node1", "node2"))
    room = new_room()
    ann = Watcher(c.url("node1"), "ann")
    try:
        ann.join(room)
        first, second = _sent(ann, room, "draft"), _sent(ann, room, "private")
        assert ann.call("edit", {"room": room, "seq": first, "text": "final"})["ok"]
        assert ann.call("delete", {"room": room, "seq": second})["ok"]
        c.broker.kill()
        late = Watcher(c.url("node2"), "bob")
        try:
            def joined():
                ack = late.call("join", {"room": room, "nick": "bob"})
                return ack if ack.get("ok") and ack["seq"] == second + 2 else None
            wait_until(joined, 30, "node2 following the backup broker")
            history = joined()["history"]
            assert history[0]["text"] == "final" and history[1]["deleted"]
            assert "private" not in repr(history)
            third = ann.call("edit", {"room": room, "seq": first, "text": "final, really"},
                             timeout=15)
            assert third["ok"] and third["seq"] == second + 3   # seq goes on in the same epoch
        finally:
            late.close()
    finally:
        ann.close()
    stored = sqlite3.connect(c.log_dir / "broker2.sqlite3", timeout=10)
    try:
        bodies = [body for (body,) in stored.execute("SELECT body FROM messages WHERE room=?",
                                                      (room,))]
    finally:
        stored.close()
    assert len(bodies) == 5 and "private" not in repr(bodies)   # the replica's store too


def _row_id(cluster, room, seq):
    db = sqlite3.connect(cluster.log_dir / "web.sqlite3", timeout=10)
    try:
        return db.execute("SELECT e.id FROM archive_roomevent e JOIN archive_room r ON "
                          "e.room_id = r.id WHERE r.name = ? AND e.seq = ?", (room, seq)).fetchone()[0]
    finally:
        db.close()


def test_staff_delete_a_message_from_the_admin_for_every_member_on_every_node(cluster, watcher):
    room = new_room()
    ann = watcher(cluster.url("node1"), "ann")
    ann.join(room)
    seq = _sent(ann, room, "a leaked password")
    wait_until(lambda: archived(cluster, room) == [(seq, "a leaked password")], 30,
               "the message archived")
    staff = logged_in(cluster.url("node2"), "staff")
    changelist = cluster.url("node2") + "/admin/archive/roomevent/"
    done = form_post(staff, changelist, {"action": "delete_for_everyone", "index": "0",
                                         "select_across": "0",
                                         "_selected_action": _row_id(cluster, room, seq)})
    assert done.status_code == 302, done.text[:2000]
    gone = ann.wait_change("delete", room, seq + 1)
    assert gone["target"] == seq and gone["uid"].startswith("a")
    assert ann.join(room)["history"][0]["deleted"]
    wait_until(lambda: archived(cluster, room) == [(seq, ""), (seq + 1, "")], 30,
               "the delete archived")
    listing = staff.get(changelist, params={"q": room}, timeout=10).text
    assert "a leaked password" not in listing
