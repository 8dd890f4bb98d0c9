"""The ``archiver`` program over real processes: every acknowledged room event in the
archive once, from a start after the messages, live, across a kill -9 of it and a
failover of the broker pair."""
import sqlite3
import time

import pytest
import requests

from harness.client import new_room
from harness.processes import wait_until

from .test_failover import FAST, Sender, _more

pytestmark = pytest.mark.timeout(180)

RATES = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"}


def archived(cluster, room):
    """[(seq, text)] of ``room`` in the archive, in seq order (read as the nodes read it)."""
    db = sqlite3.connect(cluster.log_dir / "web.sqlite3", timeout=10)
    try:
        return db.execute("SELECT e.seq, e.text FROM archive_roomevent e JOIN archive_room r "
                          "ON e.room_id = r.id WHERE r.name = ? ORDER BY e.seq", (room,)).fetchall()
    finally:
        db.close()


def send(client, room, texts):
    """Send each text; every one acknowledged: [(seq, text)]."""
    sent = []
    for text in texts:
        ack = client.send(room, text)
        assert ack["ok"], ack
        sent.append((ack["seq"], text))
    return sent


def wait_archived(cluster, room, expected, timeout=30):
    wait_until(lambda: archived(cluster, room) == expected, timeout,
               "%d events of %s in the archive" % (len(expected), room), interval=0.1)


@pytest.fixture
def started(make_cluster):
    c = make_cluster(env=RATES)
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    return c


def test_events_from_before_the_archiver_started_and_after_are_archived_once(started, client):
    room, other = new_room(), new_room()
    on1, on2 = client(started.url("node1"), name="ann"), client(started.url("node2"), name="bob")
    on1.join(room), on2.join(other)
    before = send(on1, room, ["before %d" % i for i in range(10)])
    started.start_archiver()
    wait_archived(started, room, before)
    live = send(on1, room, ["live %d" % i for i in range(30)])
    elsewhere = send(on2, other, ["other %d" % i for i in range(5)])
    wait_archived(started, room, before + live)
    wait_archived(started, other, elsewhere)


def test_a_kill_of_the_archiver_loses_nothing_the_broker_still_buffers(started, client):
    room = new_room()
    author = client(started.url("node1"), name="ann")
    author.join(room)
    started.start_archiver()
    first = send(author, room, ["one %d" % i for i in range(5)])
    wait_archived(started, room, first)
    started.archiver.kill()
    meanwhile = send(author, room, ["while down %d" % i for i in range(30)])
    started.start_archiver()
    after = send(author, room, ["after %d" % i for i in range(5)])
    wait_archived(started, room, first + meanwhile + after)


def test_a_quiet_room_behind_the_archive_is_caught_up_by_the_heartbeat(started, client):
    """The archiver misses a room's tail while it runs (its SUB lost them: here, the
    room's events were sent while it was stopped and it restarted after they stopped);
    the broker's snapshot or heartbeat brings them."""
    room = new_room()
    author = client(started.url("node1"), name="ann")
    author.join(room)
    started.start_archiver()
    first = send(author, room, ["a"])
    wait_archived(started, room, first)
    started.archiver.stop()
    rest = send(author, room, ["b", "c", "d"])
    started.start_archiver()
    wait_archived(started, room, first + rest)


def test_a_failover_of_the_pair_under_a_steady_stream_loses_nothing_in_the_archive(make_cluster):
    """kill -9 of the active broker while two clients send: afterwards every acknowledged
    message is in the archive once, at its seq, and nothing else is."""
    c = make_cluster(FAST)
    c.start_pair()
    c.start_nodes(("node1", "node2"))
    c.start_archiver()
    check_stream_archived(c, c.broker.kill)


def check_stream_archived(cluster, fault):
    """Two clients on node1 and node2 send a steady stream; ``fault()`` strikes in its
    middle; then every acknowledged message is in the archive once, and no hole."""
    room = new_room("archive-stream")
    senders = [Sender(cluster.url("node1"), room, "a"), Sender(cluster.url("node2"), room, "b")]
    try:
        for s in senders:
            s.thread.start()
        wait_until(lambda: all(len(s.acked) >= 20 for s in senders), 20, "a steady stream")
        fault()
        _more(senders, 20, "the stream to go on after the fault", timeout=40)
    finally:
        for s in senders:
            s.stop.set()
            s.thread.join(15)
            s.client.close()
    acked = sorted((seq, "m " + cid) for s in senders for cid, (seq, _) in s.acked.items())
    wait_until(lambda: [row for row in archived(cluster, room) if row in acked] == acked, 30,
               "every acknowledged message in the archive")
    rows = archived(cluster, room)
    assert len(rows) == len({seq for seq, _ in rows}) == rows[-1][0]   # once each, no hole


def metrics(cluster):
    """The archiver's /metrics samples without labels: {name: value}."""
    text = requests.get("http://127.0.0.1:%d/metrics" % cluster.archiver_metrics_port,
                        timeout=10).text
    return {name: float(value) for name, value in
            (line.split() for line in text.splitlines() if line and not line.startswith("#"))
            if "{" not in name}


def broker_stored(cluster, room):
    db = sqlite3.connect(cluster.log_dir / "broker.sqlite3", timeout=10)
    try:
        return db.execute("SELECT count(*) FROM messages WHERE room = ?", (room,)).fetchone()[0]
    finally:
        db.close()


def test_a_kill_of_the_archiver_for_twenty_buffers_of_one_room_loses_nothing(started, client):
    """kill -9 of the archiver, 1,000 messages in one room (the buffer holds 50), a
    restart: every acknowledged message in the archive exactly once; the broker kept
    them meanwhile and lets them go once archived."""
    room = new_room()
    author = client(started.url("node1"), name="ann")
    author.join(room)
    started.start_archiver()
    first = send(author, room, ["first %d" % i for i in range(5)])
    wait_archived(started, room, first)
    started.archiver.kill()
    meanwhile = send(author, room, ["m %d" % i for i in range(1000)])
    assert broker_stored(started, room) == 1000           # all of it waits for the archive
    restarted = time.monotonic()
    started.start_archiver()
    wait_archived(started, room, first + meanwhile, timeout=60)
    print("1,000 events archived %.2f s after the archiver's restart"
          % (time.monotonic() - restarted))
    wait_until(lambda: broker_stored(started, room) <= 50, 30,
               "the broker's store back to the buffer")
    figures = metrics(started)
    assert figures["chat_archive_events_archived_total"] == 1000
    assert figures["chat_archive_events_lost_total"] == 0
    assert figures["chat_archive_lag_events"] == figures["chat_archive_lag_seconds"] == 0


def test_events_waiting_for_a_stopped_archiver_survive_a_failover_of_the_pair(make_cluster, client):
    """kill -9 of the archiver, four buffers' worth of messages, kill -9 of the active
    broker: the passive kept them too (the archiver's watermarks are replicated), and
    the restarted archiver has every one, once."""
    c = make_cluster(RATES)
    c.start_pair()
    c.start_nodes(("node1",))
    c.start_archiver()
    room = new_room()
    author = client(c.url("node1"), name="ann")
    author.join(room)
    first = send(author, room, ["first %d" % i for i in range(5)])
    wait_archived(c, room, first)
    c.archiver.kill()
    meanwhile = send(author, room, ["m %d" % i for i in range(200)])
    c.broker.kill()
    after = []
    wait_until(lambda: after.append(author.send(room, "after", cid="after")) or after[-1]["ok"],
               30, "an ack from broker2")
    c.start_archiver()
    wait_archived(c, room, first + meanwhile + [(after[-1]["seq"], "after")], timeout=60)


def test_a_late_joiner_pages_back_to_the_first_message_of_a_300_message_room(started, client):
    """history from the database: node2 never had the room before; its pages, joined with
    its mirror, walk back from the newest to the first message, each once, in order."""
    room = new_room()
    author = client(started.url("node1"), name="ann")
    author.join(room)
    started.start_archiver()
    sent = send(author, room, ["line %d" % i for i in range(300)])
    wait_archived(started, room, sent, timeout=60)
    late = client(started.url("node2"), name="bob")
    assert len(late.join(room)["history"]) == 50                 # the buffer only
    seen, before, pages = [], None, 0
    while True:
        page = late.call("history", {"room": room, "limit": 64}
                         if before is None else {"room": room, "before": before, "limit": 64})
        assert page["ok"], page
        assert [m["seq"] for m in page["messages"]] == sorted(m["seq"] for m in page["messages"])
        seen = page["messages"] + seen
        pages += 1
        if page["first"]:
            break
        before = page["messages"][0]["seq"]
        assert pages < 10
    assert [(m["seq"], m["text"]) for m in seen] == sent
    assert all(m["kind"] == "message" and m["nick"] == "ann" for m in seen)
    assert late.call("history", {"room": new_room()})["error"] == "not_joined"
    assert late.call("history", {"room": room, "limit": 101})["error"] == "invalid_payload"


def test_a_kill_of_the_broker_under_a_steady_stream_loses_nothing_in_the_archive(make_cluster):
    """kill -9 of a broker alone and its restart (as supervisor does) while two clients
    send: every acknowledged message ends in the archive once."""
    c = make_cluster(FAST)
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    c.start_archiver()

    def restart():
        c.broker.kill()
        c.start_broker()
    check_stream_archived(c, restart)
