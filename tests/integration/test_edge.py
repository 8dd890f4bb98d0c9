"""A hostile client against a real node and the real HAProxy in front of it: oversize
websocket frames, 20,000 half-open handshakes, request floods, a foreign Host
(docs/FAULTS.md "Hostile client" prints these figures)."""
import time

import pytest
import requests
import socketio

from harness.client import new_room
from harness.cluster import start_cluster
from harness.processes import wait_until

from tests.wsframes import frame_header

from .hostile import close_code, handshakes, open_websocket, rss_kb, stream

CHUNK = b"x" * 65536
MB = 2**20


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """Broker, three nodes and HAProxy with the default limits (the attacks aim at node1)."""
    c = start_cluster(tmp_path_factory.mktemp("edge"))
    try:
        yield c
    finally:
        c.stop()


def _node_pid(cluster):
    return cluster.nodes["node1"][0].pid


@pytest.mark.parametrize("via", ["node", "balancer"])
@pytest.mark.parametrize("attack", ["one-64MB-frame", "300MB-of-continuations"])
def test_an_oversize_frame_or_message_is_refused_1009_with_node_rss_flat(edge, via, attack):
    url = edge.url("node1") if via == "node" else edge.balancer_url
    pid = _node_pid(edge)
    before = rss_kb(pid)
    sock = open_websocket(url)
    try:
        if attack == "one-64MB-frame":
            chunks = [frame_header(1, 64 * MB)] + [CHUNK] * (64 * MB // len(CHUNK))
            budget = 64 * MB + 16
        else:       # a text frame that never ends: 64 KB continuation frames up to 300 MB
            chunks = ([frame_header(1, len(CHUNK), fin=False) + b"4" + CHUNK[1:]]
                      + [frame_header(0, len(CHUNK), fin=False) + CHUNK] * (300 * MB // len(CHUNK)))
            budget = 300 * MB
        sent, seconds, refused = stream(sock, chunks, budget, max_s=30)
        code = close_code(sock) if refused or sent < budget else None
    finally:
        sock.close()
    after = rss_kb(pid)
    print("\n%s via %s: sent %.1f MB in %.2f s before the node refused (close %s); node RSS %d -> %d KB"
          % (attack, via, sent / MB, seconds, code, before, after))
    assert refused and sent < 32 * MB, (sent, seconds)
    assert code in (1009, None)       # None: the reset overtook the close frame
    assert after - before < 8 * 1024, (before, after)
    assert edge.health(edge.url("node1")) == 200


def test_a_frame_with_its_close_frame_says_1009(edge):
    sock = open_websocket(edge.url("node1"))
    try:
        sock.sendall(frame_header(1, 64 * MB))   # the header only: nothing more to push
        assert close_code(sock) == 1009
    finally:
        sock.close()


@pytest.mark.timeout(180)
def test_20000_half_open_handshakes_are_capped_and_expire(edge):
    pid = _node_pid(edge)
    before = rss_kb(pid)
    statuses, seconds = handshakes(edge.url("node1"), 20_000)
    peak = rss_kb(pid)
    print("\n20,000 handshakes in %.1f s: %s; node RSS %d -> %d KB"
          % (seconds, statuses, before, peak))
    assert set(statuses) <= {200, 503} and statuses.get(503, 0) > 0, statuses
    assert 10_000 <= statuses[200] <= 20_000 - statuses[503]
    # they count toward CHAT_MAX_CONNECTIONS, so a real client is refused now ...
    with pytest.raises(socketio.exceptions.ConnectionError):
        socketio.Client(reconnection=False).connect(edge.url("node1"), transports=["polling"],
                                                    wait_timeout=5)
    # ... and within a few seconds (CHAT_HALF_OPEN_TIMEOUT_S = 5, swept every second) welcome
    started = time.monotonic()

    def welcome():
        sio = socketio.Client(reconnection=False)
        try:
            sio.connect(edge.url("node1"), transports=["websocket"], wait_timeout=5)
        except (socketio.exceptions.ConnectionError, ValueError):
            return False         # ValueError: engineio's client on the refusing close frame
        sio.disconnect()
        return True
    wait_until(welcome, 15, "the half-open sessions expired", interval=0.5)
    print("a real client connected again %.1f s after the flood; node RSS %d KB"
          % (time.monotonic() - started, rss_kb(pid)))
    assert peak - before < 120 * 1024, (before, peak)


def test_join_rooms_and_members_floods_are_rate_limited(edge, client):
    c = client(edge.url("node1"))
    room = new_room()
    acks = [c.call("join", {"room": room, "nick": "flood"}) for _ in range(60)]
    oks = sum(a["ok"] for a in acks)
    assert 50 <= oks <= 55 and all(a["error"] == "rate_limited" and "join" in a["detail"]
                             for a in acks if not a["ok"]), acks[-1]
    acks = [c.call("rooms", {}) for _ in range(20)]
    assert 10 <= sum(a["ok"] for a in acks) <= 12 and acks[-1]["error"] == "rate_limited"
    acks = [c.call("members", {"room": room}) for _ in range(30)]
    assert 20 <= sum(a["ok"] for a in acks) <= 25 and acks[-1]["error"] == "rate_limited"
    assert c.send(room, "still here")["ok"]           # messages have their own bucket
    print("\njoin: %d of 60 accepted; rooms, members refused rate_limited past their bursts" % oks)


def test_a_page_that_asks_rooms_every_3_s_and_members_per_join_is_never_limited(edge, client):
    c = client(edge.url("node1"))
    for i in range(4):                                   # the room page: join, then members
        room = new_room()
        assert c.call("join", {"room": room, "nick": "page"})["ok"]
        assert c.call("members", {"room": room})["ok"]
        assert c.call("rooms", {})["ok"]                 # and the lobby, every 3 s
        time.sleep(0.2 if i < 3 else 0)


def test_socketio_refuses_a_host_outside_allowed_hosts(edge):
    for url in (edge.url("node1"), edge.balancer_url):
        r = requests.get(url + "/socket.io/?EIO=4&transport=polling",
                         headers={"Host": "rebound.example:%d" % edge.balancer_port}, timeout=5)
        assert r.status_code == 400 and "Host" in r.text
        assert requests.get(url + "/socket.io/?EIO=4&transport=polling", timeout=5).status_code == 200
