"""Engine.IO heartbeat on a node: pings keep idle clients connected and find
clients that are gone (the node schedules pings on timers, chat/engine/websocket.py)."""
import threading
import time

from engineio import packet as eio_packet

from harness.client import new_room

PINGS = {"CHAT_PING_INTERVAL_S": "1", "CHAT_PING_TIMEOUT_S": "1"}


def _record_pings(c, answer=True):
    """Note when the server's pings reach client ``c``; optionally never answer."""
    eio = c.sio.eio
    seen, cond = [], threading.Condition()
    receive = eio._receive_packet

    def receive_packet(pkt):
        if pkt.packet_type == eio_packet.PING:
            with cond:
                seen.append(time.monotonic())
                cond.notify_all()
            if not answer:
                return
        receive(pkt)
    eio._receive_packet = receive_packet
    return seen, cond


def _wait_pings(seen, cond, count, timeout):
    with cond:
        assert cond.wait_for(lambda: len(seen) >= count, timeout), \
            "%d of %d pings in %.0f s" % (len(seen), count, timeout)
        return list(seen)


def test_an_idle_client_is_pinged_every_interval_and_stays_connected(make_cluster, client):
    c = make_cluster(PINGS)
    c.start_broker()
    c.start_node("node1")
    idle = client(c.url("node1"), name="idle")
    seen, cond = _record_pings(idle)
    room = new_room()
    idle.join(room)
    times = _wait_pings(seen, cond, 4, timeout=15)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.8 < gap < 2.0 for gap in gaps), gaps    # one ping per 1 s interval
    assert idle.sio.connected
    assert idle.call("members", {"room": room})["members"] == ["idle"]


def test_a_client_that_stops_answering_pings_is_disconnected(make_cluster, client):
    c = make_cluster(PINGS)
    c.start_broker()
    c.start_node("node1")
    room = new_room()
    watcher = client(c.url("node1"), name="watcher")
    watcher.join(room)
    mute = client(c.url("node1"), name="mute")
    seen, cond = _record_pings(mute, answer=False)
    mute.join(room)
    both = watcher.wait_presence(room, ["mute", "watcher"], timeout=10)
    _wait_pings(seen, cond, 1, timeout=10)
    # interval 1 s + timeout 1 s, plus the server's check period: well under 10 s
    watcher.wait_announcement(room, "mute left", timeout=10)
    watcher.wait_presence(room, ["watcher"], timeout=10, after=both)   # the broker's list follows
    assert watcher.call("members", {"room": room})["members"] == ["watcher"]
