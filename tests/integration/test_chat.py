"""The contract over real sockets: broker + three nodes, python-socketio clients."""
import pytest

from harness.client import new_room

NODES = ("node1", "node2", "node3")


def _keys(messages):
    return [(m["seq"], m["id"]) for m in messages]


def test_three_nodes_deliver_every_message_once_in_one_order(cluster, client):
    room = new_room()
    clients = [client(cluster.url(n), name="user-%s" % n) for n in NODES]
    for c in clients:
        c.join(room)
    acks = {c.name: [] for c in clients}
    for i in range(20):
        for c in clients:
            ack = c.send(room, "%s says %d" % (c.name, i))
            assert ack["ok"], ack
            acks[c.name].append(ack)
    views = [c.wait_messages(room, 60) for c in clients]
    for view in views:
        assert len(view) == 60
        assert [m["seq"] for m in view] == list(range(1, 61))
        assert len({m["id"] for m in view}) == 60
    assert _keys(views[0]) == _keys(views[1]) == _keys(views[2])
    # authors receive their own messages; ack ids/seqs are the delivered ones
    delivered = {m["id"]: m for m in views[0]}
    for c, node in zip(clients, NODES):
        for ack in acks[c.name]:
            m = delivered[ack["id"]]
            assert (m["seq"], m["nick"], m["node"]) == (ack["seq"], c.name, node)
    # each client's own messages keep the order it sent them in
    for c in clients:
        own = [m["text"] for m in views[0] if m["nick"] == c.name]
        assert own == ["%s says %d" % (c.name, i) for i in range(20)]


def test_message_fields_follow_the_contract(cluster, client):
    room = new_room()
    c = client(cluster.url("node2"))
    c.join(room, nick="  alice  ")
    ack = c.send(room, "hello", cid="cid-1")
    assert ack == {"ok": True, "id": ack["id"], "seq": 1}
    (m,) = c.wait_messages(room, 1)
    assert set(m) == {"id", "seq", "room", "kind", "nick", "text", "ts", "node", "cid", "uid"}
    assert (m["room"], m["nick"], m["text"], m["node"], m["cid"]) == (room, "alice", "hello", "node2", "cid-1")
    assert isinstance(m["ts"], int) and m["ts"] > 1_600_000_000_000


def test_join_is_announced_on_every_node(cluster, client):
    room = new_room()
    watchers = [client(cluster.url(n), name="w-%s" % n) for n in NODES]
    for w in watchers:
        w.join(room)
    newcomer = client(cluster.url("node1"), name="newcomer")
    newcomer.join(room)
    for w in watchers:
        w.wait_announcement(room, "newcomer joined")
    assert newcomer.call("leave", {"room": room}) == {"ok": True}
    for w in watchers:
        w.wait_announcement(room, "newcomer left")


def test_disconnect_announces_leave(cluster, client):
    room = new_room()
    watcher = client(cluster.url("node3"), name="watcher")
    watcher.join(room)
    leaver = client(cluster.url("node1"), name="leaver")
    leaver.join(room)
    leaver.close()
    watcher.wait_announcement(room, "leaver left")


def test_late_joiner_on_another_node_gets_the_same_history(cluster, client):
    room = new_room()
    a = client(cluster.url("node1"), name="a")
    a.join(room)
    for i in range(60):
        assert a.send(room, "m%d" % i)["ok"]
    live = a.wait_messages(room, 60)
    for node in ("node2", "node3", "node1"):
        ack = client(cluster.url(node), name="late").join(room)
        assert ack["seq"] == 60 and ack["gap"] is False
        assert _keys(ack["history"]) == _keys(live[-50:])   # CHAT_HISTORY_SIZE default 50
        assert ack["history"] == live[-50:]


def test_since_returns_exactly_the_missed_messages(cluster, client):
    room = new_room()
    sender = client(cluster.url("node1"), name="sender")
    first = sender.join(room)
    assert (first["seq"], first["history"], first["gap"]) == (0, [], False)
    for i in range(5):
        sender.send(room, "before %d" % i)
    seen = sender.wait_messages(room, 5)
    for i in range(7):
        sender.send(room, "after %d" % i)
    everything = sender.wait_messages(room, 12)
    resumed = client(cluster.url("node3"), name="resumer").join(
        room, since=seen[-1]["seq"], epoch=first["epoch"])
    assert resumed["gap"] is False
    assert resumed["history"] == everything[5:]
    assert resumed["seq"] == 12 and resumed["epoch"] == first["epoch"]
    up_to_date = client(cluster.url("node2")).join(room, since=12, epoch=first["epoch"])
    assert (up_to_date["history"], up_to_date["gap"]) == ([], False)


def test_since_reports_gap_for_evicted_messages_and_other_epochs(cluster, client):
    room = new_room()
    c = client(cluster.url("node2"))
    epoch = c.join(room)["epoch"]
    for i in range(55):
        c.send(room, "m%d" % i)
    live = c.wait_messages(room, 55)
    evicted = client(cluster.url("node1")).join(room, since=2, epoch=epoch)
    assert evicted["gap"] is True and evicted["history"] == live[-50:]
    in_window = client(cluster.url("node1")).join(room, since=5, epoch=epoch)
    assert in_window["gap"] is False and in_window["history"] == live[5:]
    other_epoch = client(cluster.url("node3")).join(room, since=50, epoch="not-" + epoch)
    assert other_epoch["gap"] is True and other_epoch["history"] == live[-50:]


def test_repeated_cid_is_delivered_once(cluster, client):
    room = new_room()
    a = client(cluster.url("node1"), name="a")
    b = client(cluster.url("node3"), name="b")
    a.join(room)
    b.join(room)
    first = a.send(room, "only once", cid="retry-me")
    again = a.send(room, "only once", cid="retry-me")
    assert first["ok"] and again == first
    other = a.send(room, "next", cid="another")
    assert other["seq"] == first["seq"] + 1
    view = b.wait_messages(room, 2)
    assert [m["text"] for m in view] == ["only once", "next"]
    assert [m["seq"] for m in b.wait_messages(room, 2)] == [1, 2]


BAD_REQUESTS = [
    ("join", "not an object", "invalid_payload"),
    ("join", ["room"], "invalid_payload"),
    ("join", {"room": 5, "nick": "x"}, "invalid_payload"),
    ("join", {"room": "ok", "nick": "x", "since": "3"}, "invalid_payload"),
    ("join", {"room": "ok", "nick": "x", "since": True}, "invalid_payload"),
    ("join", {"room": "ok", "nick": "x", "since": -1}, "invalid_payload"),
    ("join", {"room": "ok", "nick": "x", "epoch": 7}, "invalid_payload"),
    ("join", {"room": "", "nick": "x"}, "invalid_room"),
    ("join", {"room": "a" * 65, "nick": "x"}, "invalid_room"),
    ("join", {"room": "bad room!", "nick": "x"}, "invalid_room"),
    ("join", {"nick": "x"}, "invalid_room"),
    ("join", {"room": "ok", "nick": "   "}, "invalid_nick"),
    ("join", {"room": "ok", "nick": "n" * 33}, "invalid_nick"),
    ("join", {"room": "ok", "nick": "bell\x07"}, "invalid_nick"),
    ("join", {"room": "ok"}, "invalid_nick"),
    ("message", 42, "invalid_payload"),
    ("message", {"room": "ROOM", "text": 5}, "invalid_payload"),
    ("message", {"room": "ROOM", "text": "x", "cid": 5}, "invalid_payload"),
    ("message", {"room": "ROOM", "text": "x", "cid": ""}, "invalid_payload"),
    ("message", {"room": "ROOM", "text": "x", "cid": "c" * 65}, "invalid_payload"),
    ("message", {"room": "no/slash", "text": "x"}, "invalid_room"),
    ("message", {"room": "ROOM", "text": ""}, "invalid_text"),
    ("message", {"room": "ROOM", "text": " \n\t "}, "invalid_text"),
    ("message", {"room": "ROOM", "text": "t" * 2001}, "invalid_text"),
    ("message", {"room": "ROOM"}, "invalid_text"),
    ("message", {"room": "never-joined", "text": "x"}, "not_joined"),
    ("leave", None, "invalid_payload"),
    ("leave", {"room": "!!"}, "invalid_room"),
    ("leave", {"room": "never-joined"}, "not_joined"),
]


@pytest.mark.parametrize("event,payload,code", BAD_REQUESTS)
def test_bad_request_gets_its_error_and_the_connection_stays_usable(cluster, client, event, payload, code):
    room = new_room()
    c = client(cluster.url("node2"))
    c.join(room)
    accepted = c.send(room, "before")
    assert accepted["ok"]
    if isinstance(payload, dict) and payload.get("room") == "ROOM":
        payload = dict(payload, room=room)
    ack = c.call(event, payload)
    assert ack["ok"] is False and ack["error"] == code, ack
    assert isinstance(ack["detail"], str) and ack["detail"]
    after = c.send(room, "after")
    assert after == {"ok": True, "id": after["id"], "seq": accepted["seq"] + 1}
    assert [m["text"] for m in c.wait_messages(room, 2)] == ["before", "after"]
    # the refused request changed nothing: history holds exactly the accepted messages
    assert [m["text"] for m in client(cluster.url("node1")).join(room)["history"]] == ["before", "after"]


def test_text_of_2000_chars_is_accepted(cluster, client):
    room = new_room()
    c = client(cluster.url("node1"))
    c.join(room)
    assert c.send(room, "x" * 2000)["ok"]
    assert c.wait_messages(room, 1)[0]["text"] == "x" * 2000


def test_healthz_reports_node_and_broker(cluster):
    import requests
    for name in NODES:
        r = requests.get(cluster.url(name) + "/healthz", timeout=5)
        assert r.status_code == 200
        assert r.json() == {"ok": True, "node": name, "broker": "up"}


def test_pages_exist(cluster):
    import requests
    lobby = requests.get(cluster.url("node1") + "/", timeout=5)
    assert lobby.status_code == 200 and "<html" in lobby.text
    page = requests.get(cluster.url("node2") + "/r/some_room-1/", timeout=5)
    assert page.status_code == 200
    for hook in ('id="nick"', 'id="join"', 'id="text"', 'id="send"', 'id="messages"', 'id="status"'):
        assert hook in page.text
    script = requests.get(cluster.url("node2") + "/static/vendor/socket.io.min.js", timeout=5)
    assert script.status_code == 200 and len(script.content) > 10_000
    assert requests.get(cluster.url("node2") + "/r/bad%20room/", timeout=5).status_code == 404


def test_a_node_follows_a_room_again_after_its_last_member_left(cluster, client):
    room = new_room()
    talker = client(cluster.url("node1"), name="talker")
    talker.join(room)
    visitor = client(cluster.url("node3"), name="visitor")
    visitor.join(room)
    talker.send(room, "one")
    visitor.wait_messages(room, 1)
    assert visitor.call("leave", {"room": room}) == {"ok": True}   # node3 has nobody in it now
    for text in ("two", "three"):
        talker.send(room, text)
    back = visitor.join(room)
    assert [m["text"] for m in back["history"]] == ["one", "two", "three"]
    talker.send(room, "four")
    assert [m["text"] for m in visitor.wait_messages(room, 2)] == ["one", "four"]


def test_simultaneous_first_joins_on_one_node_while_messages_flow(cluster, client):
    import threading
    room = new_room()
    talker = client(cluster.url("node1"), name="talker")
    talker.join(room)
    joiners = [client(cluster.url("node2"), name="j%d" % i) for i in range(5)]
    acks = {}
    threads = [threading.Thread(target=lambda j=j: acks.__setitem__(j.name, j.join(room))) for j in joiners]
    for t in threads:
        t.start()
    for i in range(20):
        assert talker.send(room, "m%d" % i)["ok"]
    for t in threads:
        t.join(10)
    for j in joiners:
        # history at join + live after it = every message, once, in order
        seen = {m["seq"]: m["id"] for m in acks[j.name]["history"]}
        for m in j.wait_messages(room, 20 - len(seen)):
            assert m["seq"] not in seen
            seen[m["seq"]] = m["id"]
        assert sorted(seen) == list(range(1, 21))
        assert seen == {m["seq"]: m["id"] for m in talker.wait_messages(room, 20)}
