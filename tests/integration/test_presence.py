"""Cluster-wide presence: members, rooms, presence events, dead and stopping nodes."""
import signal

from harness.client import new_room
from harness.cluster import two_nodes_one_room
from harness.processes import wait_until

FAST = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"}


def _presence_has(c, room, members):
    with c.cond:
        return any(p["room"] == room and p["members"] == members for p in c.presence)


def test_members_and_presence_events_span_every_node(cluster, client):
    room = new_room()
    ann = client(cluster.url("node1"), name="ann")
    ann.join(room)
    assert ann.call("members", {"room": room}) == {"ok": True, "room": room, "members": ["ann"]}
    bob = client(cluster.url("node2"), name="bob")
    bob.join(room)
    cat = client(cluster.url("node3"), name="cat")
    cat.join(room)
    everyone = ["ann", "bob", "cat"]
    for c in (ann, bob, cat):
        wait_until(lambda: _presence_has(c, room, everyone), 10, "%s sees all three" % c.name)
        assert c.call("members", {"room": room})["members"] == everyone
    assert bob.call("leave", {"room": room}) == {"ok": True}
    for c in (ann, cat):
        wait_until(lambda: _presence_has(c, room, ["ann", "cat"]), 10, "bob gone for %s" % c.name)
    cat.close()
    wait_until(lambda: _presence_has(ann, room, ["ann"]), 10, "cat gone after disconnect")


def test_rooms_lists_active_rooms_with_cluster_wide_counts(cluster, client):
    busy, quiet = new_room("busy"), new_room("quiet")
    for i, node in enumerate(("node1", "node2", "node3")):
        client(cluster.url(node), name="u%d" % i).join(busy)
    client(cluster.url("node2"), name="solo").join(quiet)
    asker = client(cluster.url("node3"), name="asker")

    def listed():
        ack = asker.call("rooms", {})
        assert ack["ok"]
        counts = {r["room"]: r["members"] for r in ack["rooms"]}
        return counts.get(busy) == 3 and counts.get(quiet) == 1
    # One request per 0.5 s: `rooms` is rate limited at 2/s (burst 10) per connection.
    wait_until(listed, 10, "both rooms listed", interval=0.5)
    order = [r["room"] for r in asker.call("rooms", {})["rooms"]]
    assert order.index(busy) < order.index(quiet)       # most populated first
    assert asker.call("rooms")["ok"] is True            # the payload is optional


def test_members_request_is_validated(cluster, client):
    c = client(cluster.url("node1"))
    assert c.call("members", {"room": "no spaces"})["error"] == "invalid_room"
    assert c.call("members", "x")["error"] == "invalid_payload"
    assert c.call("rooms", "x")["error"] == "invalid_payload"


def test_members_of_a_killed_node_leave_within_the_ttl(make_cluster, client):
    c, room, stay, doomed = two_nodes_one_room(make_cluster, client, dict(FAST, CHAT_NODE_TTL_MS="2000"),
                                               names=("stay", "doomed"))
    wait_until(lambda: _presence_has(stay, room, ["doomed", "stay"]), 10, "both present")
    c.nodes["node2"][0].signal(signal.SIGKILL)
    stay.wait_announcement(room, "doomed left", timeout=10)
    wait_until(lambda: _presence_has(stay, room, ["stay"]), 10, "doomed removed")
    assert stay.call("members", {"room": room})["members"] == ["stay"]


def test_a_stopping_node_says_goodbye_at_once(make_cluster, client):
    # expiry cannot be what removes them
    c, room, stay, leaving = two_nodes_one_room(make_cluster, client, dict(FAST, CHAT_NODE_TTL_MS="60000"),
                                                names=("stay", "leaving"))
    wait_until(lambda: _presence_has(stay, room, ["leaving", "stay"]), 10, "both present")
    c.nodes["node2"][0].stop()
    stay.wait_announcement(room, "leaving left", timeout=10)
    wait_until(lambda: _presence_has(stay, room, ["stay"]), 10, "leaving removed")
