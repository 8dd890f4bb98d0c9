"""Rooms over two broker pairs (CHAT_BROKERS): each room sequenced by the pair that owns it,
chatting across nodes; one pair's failover or outage touches only its own rooms."""
import time

import pytest
import requests

from chatstream import shards
from harness.client import ChatClient, new_room
from harness.processes import wait_until

from .test_failover import FAST, Sender, check_stream

pytestmark = pytest.mark.timeout(180)
PAIRS = ("pair1", "pair2")


def room_on(pair, prefix="shard"):
    """A new room that ``pair`` owns."""
    while True:
        room = new_room(prefix)
        if shards.owner(room, PAIRS) == pair:
            return room


def sequenced(url):
    """Messages a broker has sequenced (its /metrics)."""
    text = requests.get(url + "/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("chat_broker_messages_sequenced_total"))


def two_pair_cluster(make_cluster, env=None):
    c = make_cluster({**FAST, **(env or {})})
    c.start_pair()
    c.start_second_pair()
    c.start_node("node1")
    c.start_node("node2")
    return c


def longest_wait(sender, after):
    """The longest time between two of the sender's acks (or ``after`` and its first one)."""
    times = sorted([after] + [t for _, t in sender.acked.values() if t > after])
    return max(b - a for a, b in zip(times, times[1:]))


def test_rooms_on_both_pairs_chat_across_nodes(make_cluster):
    c = two_pair_cluster(make_cluster)
    rooms = {pair: room_on(pair) for pair in PAIRS}
    a, b = ChatClient(c.url("node1"), name="ann"), ChatClient(c.url("node2"), name="bob")
    for room in rooms.values():
        a.join(room)
        b.join(room)
    before = {"pair1": sequenced(c.broker_metrics_url),
              "pair2": sequenced(c.pair2_metrics_url("broker3"))}
    for i in range(5):
        for room in rooms.values():
            for client in (a, b):
                assert client.send(room, "%s %d" % (client.name, i))["ok"]
    for room in rooms.values():
        for client in (a, b):
            seen = client.wait_messages(room, 10)
            assert [m["seq"] for m in seen] == list(range(1, 11))
        assert a.room_messages(room) == b.room_messages(room)
    # each pair sequenced its own room's ten, and nothing of the other's
    assert sequenced(c.broker_metrics_url) - before["pair1"] == 10
    assert sequenced(c.pair2_metrics_url("broker3")) - before["pair2"] == 10
    wait_until(lambda: a.call("members", {"room": rooms["pair2"]})["members"] == ["ann", "bob"],
               10, "both members of pair2's room, from node1")
    def listed():
        return {r["room"]: r["members"] for r in a.call("rooms", {})["rooms"]}
    wait_until(lambda: [listed().get(room) for room in rooms.values()] == [2, 2], 10,
               "the rooms list of both pairs' rooms: %s" % listed())
    health = requests.get(c.url("node2") + "/healthz", timeout=5).json()
    assert health["ok"] and health["pairs"] == {"pair1": "live", "pair2": "live"}
    a.close()
    b.close()


def test_killing_one_pairs_active_fails_it_over_and_the_other_pair_keeps_acking(make_cluster):
    c = two_pair_cluster(make_cluster)
    rooms = {pair: room_on(pair, "failover") for pair in PAIRS}
    senders = {pair: [Sender(c.url("node1"), rooms[pair], pair + "-a"),
                      Sender(c.url("node2"), rooms[pair], pair + "-b")] for pair in PAIRS}
    everyone = senders["pair1"] + senders["pair2"]
    for s in everyone:
        s.thread.start()
    wait_until(lambda: all(len(s.acked) >= 20 for s in everyone), 30, "a steady stream")
    fault_at = time.monotonic()
    c.broker3.kill()
    # pair2's rooms are acknowledged again within the contract's 5 s ...
    wait_until(lambda: any(t > fault_at for s in senders["pair2"] for _, t in s.acked.values()),
               10, "an ack in pair2's room after the kill")
    back_s = min(t for s in senders["pair2"] for _, t in s.acked.values() if t > fault_at) - fault_at
    count = {s.name: len(s.acked) for s in everyone}
    wait_until(lambda: all(len(s.acked) >= count[s.name] + 10 for s in everyone), 20,
               "both streams going on")
    # ... while pair1's never waited for an ack: a sender that waited on the failover
    # would show the 3 s it takes to notice the lost broker
    waits = [longest_wait(s, fault_at) for s in senders["pair1"]]
    for pair in PAIRS:
        check_stream(senders[pair], rooms[pair])
    assert back_s < 5.0
    assert max(waits) < 2.0, "pair1's stream held up %.2f s by pair2's failover" % max(waits)
    print("pair2 acks again %.2f s after kill -9 of broker3; pair1's longest wait %.2f s"
          % (back_s, max(waits)))
    for s in everyone:
        s.client.close()


def test_a_pair_that_is_down_makes_only_its_own_rooms_unavailable(make_cluster):
    c = two_pair_cluster(make_cluster, {"CHAT_ACK_TIMEOUT_MS": "2000"})
    rooms = {pair: room_on(pair, "outage") for pair in PAIRS}
    a = ChatClient(c.url("node1"), name="ann")
    for room in rooms.values():
        a.join(room)
    c.broker3.kill()
    c.broker4.kill()
    wait_until(lambda: requests.get(c.url("node1") + "/healthz", timeout=5).json().get(
        "pairs", {}).get("pair2") == "down", 15, "node1 to see pair2 down")
    health = requests.get(c.url("node1") + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["pairs"]["pair1"] == "live"
    refused = a.send(rooms["pair2"], "into the void")
    assert not refused["ok"] and refused["error"] == "unavailable"
    assert a.send(rooms["pair1"], "still here")["ok"]
    b = ChatClient(c.url("node2"), name="bob")
    assert b.join(rooms["pair1"])["ok"]
    assert b.call("join", {"room": room_on("pair2", "later"), "nick": "bob"})["error"] == "unavailable"
    metrics = requests.get(c.url("node1") + "/metrics", timeout=5).text
    assert 'chat_link_pair_state{pair="pair2",state="down"} 1.0' in metrics
    a.close()
    b.close()


def test_the_archiver_follows_every_pair(make_cluster):
    from .test_archiver import archived, metrics, send, wait_archived
    c = two_pair_cluster(make_cluster)
    rooms = {pair: room_on(pair, "archive") for pair in PAIRS}
    a = ChatClient(c.url("node1"), name="ann")
    for room in rooms.values():
        a.join(room)
    before = {pair: send(a, room, ["%s before %d" % (pair, i) for i in range(5)])
              for pair, room in rooms.items()}
    c.start_archiver()
    after = {pair: send(a, room, ["%s after %d" % (pair, i) for i in range(5)])
             for pair, room in rooms.items()}
    for pair, room in rooms.items():
        wait_archived(c, room, before[pair] + after[pair])
    wait_until(lambda: metrics(c).get("chat_archive_events_archived_total") == 20, 10,
               "the archiver's metrics over both pairs")
    assert archived(c, rooms["pair2"])[0] == (1, "pair2 before 0")
    # history reads the archive as with one pair: a late joiner pages back in pair2's room
    page = a.call("history", {"room": rooms["pair2"], "before": 6, "limit": 5})
    assert page["ok"] and [m["text"] for m in page["messages"]] == [
        "pair2 before %d" % i for i in range(5)]
    a.close()


def test_typing_reaches_the_other_node_in_a_room_of_either_pair(make_cluster):
    c = two_pair_cluster(make_cluster)
    b = ChatClient(c.url("node2"), name="bob")
    typing = []
    b.sio.on("typing", typing.append)
    for pair in PAIRS:    # a typist per room: one connection's notices pass once per 2 s
        room = room_on(pair, "typing")
        a = ChatClient(c.url("node1"), name="ann-" + pair)
        a.join(room)
        b.join(room)
        assert a.call("typing", {"room": room}) == {"ok": True}
        wait_until(lambda: [t["room"] for t in typing][-1:] == [room], 10,
                   "bob to hear ann typing in %s's room" % pair)
        a.close()
    b.close()


def test_a_room_moved_by_a_new_pair_resumes_with_one_gap_and_its_archive_kept(make_cluster):
    """What adding a pair does today (docs/SCALING.md, "Changing the list of pairs"): every
    node restarted with the new list, a room that now hashes to the new pair starts again
    there in its epoch; a resume hears gap once, and what the old pair acknowledged stays
    in the archive."""
    from .test_archiver import archived, send, wait_archived
    c = make_cluster(FAST)
    c.start_pair()
    c.start_node("node1")
    c.start_archiver()
    room = room_on("pair2", "moved")            # pair1's while it is the only pair
    a = ChatClient(c.url("node1"), name="ann")
    old_epoch = a.join(room)["epoch"]
    before = send(a, room, ["before %d" % i for i in range(3)])
    wait_archived(c, room, before)
    a.close()
    c.nodes["node1"][0].stop()
    c.archiver.stop()
    c.start_second_pair()                       # every reader restarted with both pairs
    c.start_node("node1")
    c.start_archiver()
    a = ChatClient(c.url("node1"), name="ann")
    resumed = a.join(room, since=3, epoch=old_epoch)
    assert resumed["gap"] and resumed["epoch"] != old_epoch and resumed["seq"] == 0
    again = a.join(room, since=0, epoch=resumed["epoch"])     # the page reloaded: no gap now
    assert not again["gap"]
    after = send(a, room, ["after %d" % i for i in range(2)])
    assert [seq for seq, _ in after] == [1, 2]
    wait_until(lambda: sorted(archived(c, room)) == sorted(before + after), 30,
               "both epochs' events in the archive")
    a.close()
