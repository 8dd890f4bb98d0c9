"""PROTOCOL.md "People": direct conversations and private rooms over real processes.

Broker + node1 + node2 on one database with accounts alice, bob, carol, dave and the
staff account root; clients log in through the nodes.  A third account and a guest are
refused a dm and a private room (join, history, members, rooms); a removed member's
connections on the other node leave within 1 s; the owner and staff rules; the bounds.
"""
import re
import threading
import time
from html.parser import HTMLParser

import pytest

from harness.client import new_room
from harness.processes import wait_until
from harness.cluster import process_errors, start_cluster

from .postgres import PostgresServer
from .test_identity import PASSWORD, guest_session, logged_in

MAX_MEMBERS = 4
ROOMS_PER_ACCOUNT = 10    # alice owns fewer in this module's other tests
REMOVAL_S = 1.0      # the contract's "at once" for a removed member, on every node


def make_accounts(cluster, names, staff=()):
    made = cluster.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        "for name in %r:\n"
        "    User.objects.create_user(name, password=%r, is_staff=name in %r)\n")
        % (tuple(names), PASSWORD, tuple(staff)))
    assert made.returncode == 0, made.stdout + made.stderr


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request, tmp_path_factory):
    """Broker, node1, node2 and the archiver on one database: SQLite, or a PostgreSQL
    server the test starts (tests/integration/postgres.py)."""
    server = PostgresServer() if request.param == "postgresql" else None
    try:
        yield from private_rooms_cluster(tmp_path_factory, server)
    finally:
        if server is not None:
            server.stop()


def private_rooms_cluster(tmp_path_factory, server):
    env = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000",
           "CHAT_PRIVATE_ROOM_MAX_MEMBERS": str(MAX_MEMBERS),
           "CHAT_PRIVATE_ROOMS_PER_ACCOUNT": str(ROOMS_PER_ACCOUNT),
           "CHAT_REQUEST_RATES": "dm=1000/1000,create=1000/1000,invite=1000/1000,"
                                 "remove=1000/1000,join=1000/1000,history=1000/1000,"
                                 "members=1000/1000,rooms=1000/1000,private_rooms=0.1/3"}
    if server is not None:
        env["DATABASE_URL"] = server.url
    c = start_cluster(tmp_path_factory.mktemp("private-rooms"), env=env,
                      nodes=("node1", "node2"), balancer=False)
    try:
        c.start_archiver()      # search reads the archive
        make_accounts(c, ("alice", "bob", "carol", "dave", "erin", "root"), staff=("root",))
        yield c
    finally:
        c.stop()
    errors = process_errors(c, allow=[r"PermissionDenied"])    # the admin's 403, asserted
    assert not errors, "tracebacks or errors in process logs:\n%s" % errors


@pytest.fixture(scope="module")
def sessions(cluster):
    """username -> its login session cookie (logged in once per module)."""
    return {name: logged_in(cluster.url("node1"), name).cookies["sessionid"]
            for name in ("alice", "bob", "carol", "dave", "root")}


@pytest.fixture
def as_user(cluster, client, sessions):
    def connect(name, node="node1"):
        return client(cluster.url(node), name=name, cookies={"sessionid": sessions[name]})
    return connect


@pytest.fixture
def guest(cluster, client):
    http = guest_session(cluster.url("node2"))
    return client(cluster.url("node2"), name="guest",
                  cookies={"sessionid": http.cookies["sessionid"]})


def refused(ack, code):
    assert ack["ok"] is False and ack["error"] == code, ack
    assert ack["detail"]
    return ack


def listed(client, room):
    ack = client.call("rooms", {})
    assert ack["ok"], ack
    return room in [item["room"] for item in ack["rooms"]]


def found(client, q, room=None):
    ack = client.call("search", {"q": q} if room is None else {"q": q, "room": room})
    assert ack["ok"], ack
    return [(hit["room"], hit["text"]) for hit in ack["hits"]]


def assert_kept_out(outsider, room, secret=None):
    """Every way the contract names refuses ``outsider`` or keeps ``room`` from it
    (``secret``: an archived text of the room, which search must not find)."""
    refused(outsider.call("join", {"room": room, "nick": "someone"}), "forbidden")
    refused(outsider.call("history", {"room": room}), "forbidden")
    refused(outsider.call("members", {"room": room}), "forbidden")
    assert not listed(outsider, room)
    if secret is not None:
        assert found(outsider, secret) == []
        refused(outsider.call("search", {"q": secret, "room": room}), "forbidden")


def test_a_dm_is_one_room_from_either_side_and_only_its_two_members_read_it(cluster, as_user, guest):
    alice, bob, carol = as_user("alice"), as_user("bob", "node2"), as_user("carol", "node2")
    started = alice.call("dm", {"to": "bob"})
    assert started["ok"] and started["with"] == "bob", started
    room = started["room"]
    assert bob.call("dm", {"to": "ALICE"})["room"] == room     # any spelling login accepts
    assert alice.join(room, nick=False)["ok"] and bob.join(room, nick=False)["ok"]
    sent = alice.send(room, "just us quietly")
    assert sent["ok"]
    bob.wait_messages(room, 1)
    bob.wait_presence(room, ["alice", "bob"])      # now in every node's list of rooms
    assert listed(alice, room) and listed(bob, room)
    wait_until(lambda: found(bob, "quietly") == [(room, "just us quietly")], 30,
               "the message archived and found", interval=0.6)    # search: 2/s per connection
    assert_kept_out(carol, room, "quietly")
    assert_kept_out(guest, room, "quietly")
    assert bob.call("history", {"room": room})["messages"][0]["text"] == "just us quietly"
    mine = alice.call("private_rooms", {})
    assert {"room": room, "direct": True, "with": "bob", "owner": None,
            "members": ["alice", "bob"], "unread": 0} in mine["rooms"], mine   # her own
    theirs = {entry["room"]: entry for entry in bob.call("private_rooms", {})["rooms"]}
    assert theirs[room]["with"] == "alice" and theirs[room]["unread"] == 1
    assert all(item["room"] != room for item in carol.call("private_rooms", {})["rooms"])


def test_private_room_requests_are_rate_limited(as_user):
    carol = as_user("carol", "node2")
    acks = [carol.call("private_rooms", {}) for _ in range(4)]
    assert [ack["ok"] for ack in acks[:3]] == [True] * 3
    assert "private_rooms" in refused(acks[3], "rate_limited")["detail"]


def test_a_dm_is_for_accounts_and_names_an_account(as_user, guest):
    alice = as_user("alice")
    refused(guest.call("dm", {"to": "alice"}), "forbidden")
    refused(guest.call("private_rooms", {}), "forbidden")
    assert "nobody" in refused(alice.call("dm", {"to": "nobody"}), "not_found")["detail"]
    refused(alice.call("dm", {"to": "alice"}), "invalid_payload")
    refused(alice.call("dm", {"to": ""}), "invalid_payload")
    refused(alice.call("dm", {"to": 5}), "invalid_payload")


def test_a_private_room_keeps_out_a_third_account_and_a_guest(as_user, guest):
    alice, bob, carol = as_user("alice"), as_user("bob", "node2"), as_user("carol", "node2")
    room = new_room("team")
    assert alice.call("create", {"room": room, "private": True, "members": ["bob"]})["ok"]
    assert bob.join(room, nick=False)["ok"] and alice.join(room, nick=False)["ok"]
    bob.wait_presence(room, ["alice", "bob"])
    assert listed(alice, room)
    assert_kept_out(carol, room)
    assert_kept_out(guest, room)
    refused(guest.call("create", {"room": new_room(), "private": True, "members": []}),
            "forbidden")


def test_an_invite_on_one_node_lets_the_member_in_on_the_other_at_once(as_user):
    alice, carol = as_user("alice"), as_user("carol", "node2")
    room = new_room("team")
    assert alice.call("create", {"room": room, "private": True, "members": []})["ok"]
    refused(carol.call("join", {"room": room}), "forbidden")     # node2 read it: refused
    assert alice.call("invite", {"room": room, "user": "carol"})["ok"]
    assert carol.join(room, nick=False)["ok"]


def test_a_removed_member_leaves_on_the_other_node_within_a_second(as_user):
    alice, bob = as_user("alice"), as_user("bob", "node2")
    room = new_room("team")
    assert alice.call("create", {"room": room, "private": True, "members": ["bob"]})["ok"]
    bob.join(room, nick=False)
    alice.join(room, nick=False)
    evicted = threading.Event()
    bob.sio.on("evicted", lambda data: data == {"room": room, "reason": "removed"}
               and evicted.set())
    started = time.monotonic()
    assert alice.call("remove", {"room": room, "user": "bob"})["ok"]
    assert evicted.wait(5), "bob's connection on node2 was not evicted"
    assert time.monotonic() - started < REMOVAL_S
    alice.wait_announcement(room, "bob left")
    refused(bob.send(room, "still here?"), "not_joined")
    refused(bob.call("join", {"room": room}), "forbidden")
    refused(bob.call("history", {"room": room}), "forbidden")
    assert not listed(bob, room)


def test_only_the_owner_or_staff_invite_and_remove(as_user):
    alice, bob, root = as_user("alice"), as_user("bob", "node2"), as_user("root", "node2")
    room = new_room("team")
    assert alice.call("create", {"room": room, "private": True, "members": ["bob"]})["ok"]
    refused(bob.call("invite", {"room": room, "user": "carol"}), "forbidden")
    refused(bob.call("remove", {"room": room, "user": "alice"}), "forbidden")
    assert root.call("invite", {"room": room, "user": "carol"})["ok"]      # staff
    assert root.call("remove", {"room": room, "user": "carol"})["ok"]
    refused(alice.call("remove", {"room": room, "user": "alice"}), "forbidden")  # the owner stays
    refused(root.call("join", {"room": room}), "forbidden")    # staff moderate, do not read
    public = new_room("public")
    refused(alice.call("invite", {"room": public, "user": "bob"}), "forbidden")
    dm = alice.call("dm", {"to": "bob"})["room"]
    refused(root.call("invite", {"room": dm, "user": "carol"}), "forbidden")   # a dm stays two


def test_a_room_made_private_while_someone_was_in_it_evicts_them(as_user):
    """The broker's presence lists a room's members a moment late: a ``create`` in that
    moment goes through, and whoever is in the room without being a member leaves."""
    alice, bob = as_user("alice"), as_user("bob", "node2")
    room = new_room("quiet")
    bob.join(room, nick=False)
    evicted = threading.Event()
    bob.sio.on("evicted", lambda data: data["room"] == room and evicted.set())
    made = alice.call("create", {"room": room, "private": True, "members": []})
    if not made["ok"]:                              # presence was there in time: refused
        refused(made, "forbidden")
        return
    assert evicted.wait(5)
    refused(bob.call("history", {"room": room}), "forbidden")


def test_names_in_use_reserved_or_alike_are_refused(as_user):
    alice, bob = as_user("alice"), as_user("bob", "node2")
    public = new_room("public")
    bob.join(public, nick=False)
    assert bob.send(public, "mine")["ok"]        # sequenced: the broker knows the room
    refused(alice.call("create", {"room": public, "private": True, "members": []}), "forbidden")
    refused(alice.call("create", {"room": "dm-mine", "private": True, "members": []}),
            "forbidden")
    room = new_room("team") + "-l"
    assert alice.call("create", {"room": room, "private": True, "members": []})["ok"]
    refused(alice.call("create", {"room": room[:-1] + "1", "private": True, "members": []}),
            "forbidden")                                        # looks the same
    refused(alice.call("create", {"room": new_room(), "members": []}), "invalid_payload")
    refused(alice.call("create", {"room": "no room!", "private": True, "members": []}),
            "invalid_room")
    refused(alice.call("create", {"room": new_room(), "private": True, "members": ["nobody"]}),
            "not_found")


def test_the_bounds_members_per_room_and_rooms_per_account(as_user):
    dave = as_user("dave")
    refused(dave.call("create", {"room": new_room(), "private": True,
                                  "members": ["alice", "bob", "carol", "erin"]}), "forbidden")
    room = new_room("full")
    assert dave.call("create", {"room": room, "private": True,
                                 "members": ["alice", "bob", "carol"]})["ok"]
    refused(dave.call("invite", {"room": room, "user": "erin"}), "forbidden")
    for _ in range(ROOMS_PER_ACCOUNT - 1):
        assert dave.call("create", {"room": new_room(), "private": True, "members": []})["ok"]
    refused(dave.call("create", {"room": new_room(), "private": True, "members": []}),
            "too_many_rooms")


def test_a_node_away_from_the_broker_during_a_removal_evicts_on_its_return(make_cluster, client):
    """The broker is down when alice removes bob: nothing reaches node2 then; once the
    broker is back, node2's link resyncs and bob's connection there leaves the room."""
    c = make_cluster({"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"})
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    make_accounts(c, ("alice", "bob"))
    cookies = {name: {"sessionid": logged_in(c.url("node1"), name).cookies["sessionid"]}
               for name in ("alice", "bob")}
    alice = client(c.url("node1"), name="alice", cookies=cookies["alice"])
    bob = client(c.url("node2"), name="bob", cookies=cookies["bob"])
    room = new_room("team")
    assert alice.call("create", {"room": room, "private": True, "members": ["bob"]})["ok"]
    bob.join(room, nick=False)
    evicted = threading.Event()
    bob.sio.on("evicted", lambda data: data["room"] == room and evicted.set())
    c.broker.kill()
    wait_until(lambda: c.health(c.url("node2")) == 503, 15, "node2 sees the broker down")
    assert alice.call("remove", {"room": room, "user": "bob"})["ok"]   # the database changes
    assert not evicted.is_set()
    c.start_broker()
    assert evicted.wait(20), "bob's connection on node2 stayed in the room after the resync"
    assert not bob.disconnected.is_set()
    refused(bob.call("join", {"room": room}), "forbidden")


class FormFields(HTMLParser):
    """The fields a browser would post from a page's forms: inputs (checked boxes only),
    selects (their selected option)."""

    def __init__(self):
        super().__init__()
        self.fields, self.select = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") != "checkbox" or "checked" in attrs:
                self.fields[attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self.select = attrs.get("name")
        elif tag == "option" and self.select and "selected" in attrs:
            self.fields[self.select] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None


def test_staff_remove_a_member_in_the_admin_and_it_takes_effect_on_every_node(cluster, as_user,
                                                                               sessions):
    alice, bob = as_user("alice"), as_user("bob", "node2")
    room = new_room("team")
    assert alice.call("create", {"room": room, "private": True, "members": ["bob"]})["ok"]
    bob.join(room, nick=False)
    evicted = threading.Event()
    bob.sio.on("evicted", lambda data: data["room"] == room and evicted.set())
    staff = logged_in(cluster.url("node1"), "root")
    base = cluster.url("node1") + "/admin/rooms/privateroom/"
    listing = staff.get(base, params={"q": room}, timeout=10)
    assert listing.status_code == 200 and room in listing.text
    change = base + re.search(r"/admin/rooms/privateroom/(\d+)/change/", listing.text).group(1) \
        + "/change/"
    page = staff.get(change, timeout=10)
    parser = FormFields()
    parser.feed(page.text)
    fields = parser.fields
    bob_row = next(name[:-len("-user")] for name, value in fields.items()
                   if re.fullmatch(r"memberships-\d+-user", name) and value and
                   value == bob_id(cluster))
    fields[bob_row + "-DELETE"] = "on"
    fields["_save"] = "Save"
    saved = staff.post(change, data=fields, headers={"Referer": change}, allow_redirects=False,
                       timeout=10)
    assert saved.status_code == 302, saved.text[:3000]
    assert evicted.wait(REMOVAL_S + 4), "bob's connection on node2 stayed in the room"
    refused(bob.call("join", {"room": room}), "forbidden")
    assert staff.get(base + "add/", timeout=10).status_code == 403     # rooms are made by events


def bob_id(cluster):
    found = cluster.manage("shell", "-c", "from django.contrib.auth import get_user_model\n"
                           "print(get_user_model().objects.get(username='bob').pk)")
    return found.stdout.split()[-1]     # after what the shell says it imported
