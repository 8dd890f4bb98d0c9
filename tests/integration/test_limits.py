"""Configured limits give clear errors; a client that stops reading is cut off."""
import json
import time
import socket

import pytest
import requests
import socketio
import websocket
from prometheus_client.parser import text_string_to_metric_families

from harness.client import new_room
from harness.cluster import two_nodes_one_room
from harness.processes import wait_until

FAST = {"CHAT_RATE_PER_S": "100000", "CHAT_RATE_BURST": "100000"}


@pytest.fixture
def limited(make_cluster):
    c = make_cluster(dict(FAST, CHAT_MAX_PAYLOAD_BYTES="3000", CHAT_MAX_ROOMS_PER_CONNECTION="3",
                          CHAT_MAX_CONNECTIONS="4"))
    c.start_broker()
    c.start_node("node1")
    return c


def test_payload_over_the_limit_is_refused_and_the_connection_stays_usable(limited, client):
    room = new_room()
    c = client(limited.url("node1"))
    c.join(room)
    ack = c.call("message", {"room": room, "text": "ok", "padding": "x" * 4000})
    assert (ack["ok"], ack["error"]) == (False, "payload_too_large") and "3000" in ack["detail"]
    assert c.send(room, "é" * 1400)["ok"]          # 2800 bytes of UTF-8: under the limit
    assert [m["seq"] for m in c.wait_messages(room, 1)] == [1]


def test_rooms_per_connection_are_limited(limited, client):
    c = client(limited.url("node1"))
    rooms = [new_room() for _ in range(4)]
    for room in rooms[:3]:
        c.join(room)
    ack = c.call("join", {"room": rooms[3], "nick": "x"})
    assert (ack["ok"], ack["error"]) == (False, "too_many_rooms")
    assert c.call("join", {"room": rooms[0], "nick": "renamed"})["ok"]   # re-joining is fine
    assert c.call("leave", {"room": rooms[0]}) == {"ok": True}
    assert c.call("join", {"room": rooms[3], "nick": "x"})["ok"]


def test_connections_per_node_are_limited(limited, client):
    for i in range(4):
        client(limited.url("node1"), name="c%d" % i)
    refused = socketio.Client(reconnection=False)
    errors = []
    refused.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(limited.url("node1"), transports=["websocket"], wait_timeout=5)
    assert errors and errors[0]["message"] == "too_many_connections", errors
    assert errors[0]["data"]["error"] == "too_many_connections" and "4" in errors[0]["data"]["detail"]


def test_a_refused_long_polling_client_frees_its_place_at_once(limited, client):
    """A refused client closes its session with a CLOSE packet over long-polling (no
    GET pending that would end it); that closed session must not hold a place
    (engineio's sweep removes it only up to ping_timeout, 20 s, later).

    The refused client is raw Engine.IO over HTTP: python-socketio's own client, refused,
    sometimes never sends its CLOSE (its write loop may end before it, then the node's
    half-open sweep closes the session ~5 s later), and this test is about the CLOSE."""
    url = limited.url("node1")
    held = [client(url, name="c%d" % i) for i in range(4)]
    for attempt in range(3):
        assert "too_many_connections" in _refused_over_polling(url), attempt
    assert _sessions(url) == 4           # at once: engineio's sweep has not come by yet
    held.pop().close()                   # one place is free ...
    wait_until(lambda: _sessions(url) == 3, 5,
               "the node to hold 3 sessions (not 3 + the refused ones, closed but kept)")
    client(url, transports=("polling",), name="next")   # ... and it is given


def _refused_over_polling(url):
    """Open an Engine.IO session over long-polling, ask for the Socket.IO connection,
    read the answer (a CONNECT_ERROR here), close the session with a CLOSE packet;
    returns the answer's payload."""
    endpoint = url + "/socket.io/?EIO=4&transport=polling"
    with requests.Session() as http:
        opened = http.get(endpoint, timeout=5)
        assert opened.status_code == 200 and opened.text.startswith("0"), opened.text
        sid_url = endpoint + "&sid=" + json.loads(opened.text[1:])["sid"]
        assert http.post(sid_url, data="40", timeout=5).text == "OK"
        answer = http.get(sid_url, timeout=10).text
        assert answer.startswith("44"), answer                 # CONNECT_ERROR
        assert http.post(sid_url, data="1", timeout=5).text == "OK"   # CLOSE
    return answer


def _sessions(url):
    """Engine.IO sessions a node holds, by its /metrics."""
    text = requests.get(url + "/metrics", timeout=5).text
    return sum(s.value for family in text_string_to_metric_families(text) if family.name == "chat_connections"
               for s in family.samples)


class SilentClient:
    """A raw Engine.IO/Socket.IO websocket client that joins a room, then never reads."""

    def __init__(self, url, room, nick):
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            ws_url, timeout=10, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
        assert self.ws.recv().startswith("0")                 # Engine.IO open
        self.ws.send("40")
        assert self.ws.recv().startswith("40")                # Socket.IO connect
        self.ws.send("420" + json.dumps(["join", {"room": room, "nick": nick}]))
        while not self.ws.recv().startswith("430"):           # the join ack; from now on: silence
            pass

    def close(self):
        self.ws.sock.close() if self.ws.sock else None


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


@pytest.mark.timeout(180)
def test_a_client_that_never_reads_is_disconnected_and_nobody_else_suffers(make_cluster, client):
    # the neighbour is on node1, like the silent client; the sender on node2
    c, room, neighbour, sender = two_nodes_one_room(make_cluster, client, dict(FAST, CHAT_MAX_SEND_QUEUE="200"),
                                                    names=("neighbour", "sender"))
    silent = SilentClient(c.url("node1"), room, "silent")
    try:
        wait_until(lambda: sender.call("members", {"room": room})["members"]
                   == ["neighbour", "sender", "silent"], 10, "silent is a member")
        node1_pid = c.nodes["node1"][0].pid
        rss_before = _rss_kb(node1_pid)
        acked = []
        text = "x" * 1990
        for i in range(6000):                                # bounded: ~12 MB of text at most
            ack = sender.send(room, text + str(i))
            assert ack["ok"], ack
            acked.append(ack["seq"])
            if i % 100 == 99 and "silent" not in sender.call("members", {"room": room})["members"]:
                break
        else:
            pytest.fail("the silent client was never disconnected")
        neighbour.wait_announcement(room, "silent left")
        # the node shut its TCP connection down: what was in flight drains, then EOF
        cut_at, drained = time.monotonic(), 0
        silent.ws.sock.settimeout(2)
        while time.monotonic() - cut_at < 15:             # bounded; a few MB at most
            try:
                chunk = silent.ws.sock.recv(1 << 20)
            except socket.timeout:
                continue                                  # still open: wait on
            except ConnectionResetError:
                break                                     # reset: closed as well
            if not chunk:
                break
            drained += len(chunk)
        else:
            pytest.fail("the cut-off client's connection is still open")
        print("cut-off connection closed by the node: %d bytes drained, EOF after %.1f s"
              % (drained, time.monotonic() - cut_at))
        # the others got every acknowledged message, once, in order
        for other in (sender, neighbour):
            assert [m["seq"] for m in other.wait_messages(room, len(acked), timeout=60)] == acked
        rss_after = _rss_kb(node1_pid)
        print("node1 RSS before %d KB, after %d KB, messages %d" % (rss_before, rss_after, len(acked)))
        assert rss_after - rss_before < 100_000, (rss_before, rss_after)
    finally:
        silent.close()
    log = c.nodes["node1"][0].log()
    assert "stopped reading" in log


@pytest.mark.timeout(60)
def test_a_node_listens_with_a_backlog_for_a_reconnect_storm(cluster):
    """gevent's default accept backlog (128) overflowed when thousands reconnected at once
    (each overflow a ~1 s SYN retry); a node asks 4096, which the kernel caps at somaxconn."""
    import subprocess
    from pathlib import Path
    port = cluster.nodes["node1"][1]
    listening = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                               text=True, timeout=10, check=True).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert listening[0] == "LISTEN" and int(listening[2]) == min(4096, somaxconn)
