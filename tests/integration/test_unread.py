"""Unread and typing (PROTOCOL.md "People") over real processes: a broker, three nodes,
the archiver and two accounts, each account on several nodes at once; on SQLite and on a
real PostgreSQL server (tests/integration/postgres.py)."""
import threading
import time

import pytest

from harness.client import ChatClient, new_room
from harness.cluster import process_errors, start_cluster
from harness.processes import wait_until

from .postgres import PostgresServer
from .test_identity import PASSWORD, logged_in

pytestmark = pytest.mark.timeout(120)


class PersonClient(ChatClient):
    """A chat client that also keeps the ``read`` and ``typing`` events it gets."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.got = {"read": [], "typing": []}
        for event in self.got:
            self.sio.on(event, lambda data, event=event: self._got(event, data))

    def _got(self, event, data):
        with self.cond:
            self.got[event].append(data)
            self.cond.notify_all()

    def wait_got(self, event, match, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(match(data) for data in self.got[event]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no %s like that in %r" % (self.name, event,
                                                                         self.got[event]))
                self.cond.wait(left)


def create_accounts(cluster, *names):
    """Accounts made with Django's own command, password PASSWORD."""
    for name in names:
        made = cluster.manage("createsuperuser", "--noinput", env={
            "DJANGO_SUPERUSER_USERNAME": name, "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            "DJANGO_SUPERUSER_EMAIL": "%s@example.com" % name})
        assert made.returncode == 0, made.stdout + made.stderr


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request, tmp_path_factory):
    """Three nodes and the archiver, with accounts alice and bob, on each database."""
    server = PostgresServer() if request.param == "postgresql" else None
    env = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000", "CHAT_READ_FLUSH_MS": "200"}
    if server is not None:
        env["DATABASE_URL"] = server.url
    try:
        c = start_cluster(tmp_path_factory.mktemp("unread-" + request.param), balancer=False,
                          env=env)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    try:
        c.start_archiver()
        create_accounts(c, "alice", "bob")
        c.cookies = {name: {"sessionid": logged_in(c.url("node1"), name).cookies["sessionid"]}
                     for name in ("alice", "bob")}
        yield c
    finally:
        c.stop()
        if server is not None:
            server.stop()
    errors = process_errors(c)
    assert not errors, "tracebacks or errors in process logs:\n%s" % errors


@pytest.fixture
def person(cluster):
    made = []

    def connect(node, who=None):
        c = PersonClient(cluster.url(node), name=who or "guest%d" % len(made),
                         cookies=cluster.cookies.get(who))
        made.append(c)
        return c
    yield connect
    for c in made:
        c.close()


def test_a_read_position_is_shared_by_one_accounts_connections_on_two_nodes(cluster, person):
    room = new_room()
    alice1, alice2, bob = person("node1", "alice"), person("node2", "alice"), person("node3", "bob")
    assert alice1.join(room, nick=False)["read"] == 0
    alice2.join(room, nick=False)
    bob.join(room, nick=False)
    seqs = [bob.send(room, "m%d" % i)["seq"] for i in range(5)]
    alice1.wait_messages(room, 5)
    assert alice1.call("read", {"room": room, "seq": seqs[2]}) == {"ok": True, "read": seqs[2]}
    alice2.wait_got("read", lambda r: r == {"room": room, "seq": seqs[2]})
    assert alice1.call("read", {"room": room, "seq": seqs[0]})["read"] == seqs[2]   # forward only
    assert alice2.call("read", {"room": room, "seq": 10**6})["read"] == seqs[4]     # the latest
    alice1.wait_got("read", lambda r: r == {"room": room, "seq": seqs[4]})
    assert not any(r["seq"] < seqs[2] for r in alice2.got["read"] + alice1.got["read"])
    # a new device on the third node, before and after the batch is written
    assert person("node3", "alice").join(room, nick=False)["read"] == seqs[4]
    wait_until(lambda: _stored(cluster, "alice", room) == seqs[4], 10, "the position written")
    assert bob.join(room, nick=False)["read"] == 0           # bob's own position
    guest = person("node1")
    assert "read" not in guest.join(room, nick="gus")
    assert guest.call("read", {"room": room, "seq": 1})["error"] == "forbidden"


def _stored(cluster, username, room):
    done = cluster.manage("shell", "-c", (
        "from reading.models import ReadPosition as R; "
        "print(R.objects.filter(user__username=%r, room=%r).values_list('seq', flat=True).first())"
        % (username, room)))
    out = done.stdout.strip().splitlines()[-1:]     # after Django's "objects imported"
    return int(out[0]) if out and out[0].isdigit() else None


def _unread(client, room):
    ack = client.call("rooms", {})
    assert ack["ok"], ack
    return {entry["room"]: entry.get("unread") for entry in ack["rooms"]}.get(room)


def test_rooms_counts_unread_messages_of_others_capped_and_for_rooms_left(cluster, person):
    room = new_room()
    alice, bob = person("node1", "alice"), person("node2", "bob")
    alice.join(room, nick=False)
    bob.join(room, nick=False)
    first = bob.send(room, "before")["seq"]
    alice.wait_messages(room, 1)
    assert alice.call("read", {"room": room, "seq": first})["ok"]
    for i in range(3):
        bob.send(room, "b%d" % i)
    for i in range(2):
        alice.send(room, "mine %d" % i)                 # one's own never count
    wait_until(lambda: _unread(alice, room) == 3, 10, "3 unread in rooms")
    assert _unread(person("node3", "alice"), room) == 3  # the same on another node
    assert _unread(bob, room) == 2                       # bob read nothing: alice's two
    assert _unread(person("node1"), room) is None        # guests: no counts
    alice.call("leave", {"room": room})                  # the lobby lists a room left, too
    for i in range(120):
        bob.send(room, "flood %d" % i)
    wait_until(lambda: _unread(alice, room) == 100, 20, "the count capped at 99+ (100)")
    bob.call("leave", {"room": room})
    wait_until(lambda: _unread(alice, room) == 100, 20, "the room listed without members")


def test_typing_reaches_other_nodes_at_most_once_per_2_s_per_connection(cluster, person):
    room = new_room()
    alice, alice_too = person("node1", "alice"), person("node2", "alice")
    bob, guest = person("node2", "bob"), person("node3")
    for c in (alice, alice_too, bob):
        c.join(room, nick=False)
    guest.join(room, nick="gus")
    typed = {"room": room, "nick": "alice", "uid": alice.join(room, nick=False)["uid"]}
    started = time.monotonic()
    for _ in range(5):
        assert alice.call("typing", {"room": room}) == {"ok": True}
    alice.send(room, "sent after the notices")           # the same path, so after them
    for c in (bob, guest):
        c.wait_messages(room, 1)
        assert c.got["typing"] == [typed]
    assert alice_too.got["typing"] == [] and alice.got["typing"] == []   # not to oneself
    wait_until(lambda: time.monotonic() - started > 2.1, 5, "the 2 s to pass")
    assert alice.call("typing", {"room": room}) == {"ok": True}
    guest.wait_got("typing", lambda t: len(guest.got["typing"]) == 2)
    assert bob.call("typing", {"room": room}) == {"ok": True}          # another person's own 2 s
    guest.wait_got("typing", lambda t: t["nick"] == "bob")
    assert alice.call("typing", {"room": "not-" + room})["error"] == "not_joined"


def test_the_read_fanout_keeps_up_with_a_burst_of_reads(cluster, person):
    """A page sends a read per message seen: 200 of them cost one row per flush."""
    room = new_room()
    alice1, alice2, bob = person("node1", "alice"), person("node2", "alice"), person("node3", "bob")
    for c in (alice1, alice2, bob):
        c.join(room, nick=False)
    for i in range(50):
        bob.send(room, "m%d" % i)
    alice1.wait_messages(room, 50)
    done = []
    threads = [threading.Thread(target=lambda s=s: done.append(
        alice1.call("read", {"room": room, "seq": s})["ok"])) for s in range(1, 51)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert done == [True] * 50
    alice2.wait_got("read", lambda r: r == {"room": room, "seq": 50})
    wait_until(lambda: _stored(cluster, "alice", room) == 50, 10, "the last position written")


def test_a_direct_conversation_lists_its_unread_messages(cluster, person):
    alice, bob = person("node1", "alice"), person("node2", "bob")
    room = bob.call("dm", {"to": "alice"})["room"]
    bob.join(room, nick=False)
    for i in range(2):
        bob.send(room, "psst %d" % i)

    def listed():
        ack = alice.call("private_rooms", {})
        assert ack["ok"], ack
        return {r["room"]: r.get("unread") for r in ack["rooms"]}.get(room)
    wait_until(lambda: listed() == 2, 10, "2 unread in alice's direct conversation")
    alice.join(room, nick=False)
    assert alice.call("read", {"room": room, "seq": 2})["read"] == 2
    assert listed() == 0
