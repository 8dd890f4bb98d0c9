"""Retention on both databases (web/archive/retention.py) and in the ``archiver`` program:
events older than the cutoff leave the archive with their edit history and their search
entries, each room keeps its position, and history pages end at the oldest event kept; over
real processes, CHAT_RETENTION_DAYS prunes at the archiver's start and the broker's
position survives (a resume from before hears ``gap``)."""
import sqlite3

import pytest

from harness.client import new_room
from harness.processes import wait_until

from .test_archive_writer import message
from .test_archiver import RATES, archived, send, wait_archived

pytestmark = pytest.mark.timeout(180)

DAY_MS = 24 * 3600 * 1000


def aged(room, seq, text, ts, **kwargs):
    epoch, body = message(room, seq, text, **kwargs)
    return epoch, dict(body, ts=ts)


def test_old_events_leave_with_their_edits_and_index_and_the_room_keeps_its_position(archive_db):
    from archive.models import Edit, Room, RoomEvent
    from archive.reader import ArchiveReader
    from archive.retention import prune
    from archive.search import ArchiveSearch
    from archive.writer import write
    using = archive_db
    write([aged("a", 1, "old kettle", 1_000), aged("a", 2, "old kettle too", 2_000),
           aged("a", 3, "new kettle", 9_000, kind="edit", target=2),
           aged("a", 4, "recent kettle", 10_000), aged("b", 1, "old elsewhere", 1_500)], using=using)
    assert Edit.objects.using(using).count() == 1
    assert prune(5_000, using=using, batch=2) == 2
    assert prune(5_000, using=using, batch=2) == 1
    assert prune(5_000, using=using, batch=2) == 0
    assert sorted(RoomEvent.objects.using(using).values_list("room__name", "seq")) == [("a", 3), ("a", 4)]
    assert Edit.objects.using(using).count() == 0
    assert dict(Room.objects.using(using).values_list("name", "seq")) == {"a": 4, "b": 1}
    hits = ArchiveSearch(using).search("kettle", ["a", "b"])
    assert [(h["room"], h["seq"]) for h in hits] == [("a", 4)]
    epoch = message("a", 1)[0]
    page = ArchiveReader(using).page("a", {"epoch": epoch, "seq": 4, "history": []})
    assert ([m["seq"] for m in page["messages"]], page["first"]) == ([4], True)


def age(cluster, room, seqs, days):
    """Move ``room``'s events ``seqs`` ``days`` into the past (the broker's clock cannot)."""
    db = sqlite3.connect(cluster.log_dir / "web.sqlite3", timeout=10)
    try:
        with db:
            db.execute("UPDATE archive_roomevent SET ts = ts - ? WHERE seq IN (%s) AND room_id = "
                       "(SELECT id FROM archive_room WHERE name = ?)" % ",".join("?" * len(seqs)),
                       [days * DAY_MS, *seqs, room])
    finally:
        db.close()


def test_the_archiver_prunes_at_its_start_and_a_resume_from_before_hears_gap(make_cluster, client):
    c = make_cluster(env=RATES)
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    c.start_archiver()
    room = new_room()
    author = client(c.url("node1"), name="ann")
    joined = author.join(room)
    sent = send(author, room, ["findable %d" % i for i in range(80)])
    wait_archived(c, room, sent)
    c.archiver.kill()
    age(c, room, range(1, 21), days=3)          # older than the replay buffer (the last 50)
    c.start_archiver(env={"CHAT_RETENTION_DAYS": "2"})
    wait_until(lambda: archived(c, room) == sent[20:], 30, "the old half pruned", interval=0.1)
    reader = client(c.url("node2"), name="bob")
    resumed = reader.join(room, since=5, epoch=joined["epoch"])
    assert resumed["gap"] is True and resumed["seq"] == 80
    pages, before, seen = 0, None, []
    while True:
        page = reader.call("history", {"room": room, "limit": 30, **({"before": before} if before else {})})
        seen = page["messages"] + seen
        pages += 1
        if page["first"] or pages > 5:
            break
        before = page["messages"][0]["seq"]
    assert [m["seq"] for m in seen] == list(range(21, 81))
    hits = reader.call("search", {"q": "findable", "room": room, "limit": 50})["hits"]
    hits += reader.call("search", {"q": "findable", "room": room, "before": 31})["hits"]
    assert [h["seq"] for h in hits] == list(range(80, 20, -1))
    more = send(author, room, ["after pruning"])
    wait_archived(c, room, sent[20:] + more)
