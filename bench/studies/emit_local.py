"""Micro-benchmark: one room broadcast to a node's local members, three ways.

- ``bypass_fwdm``: the broadcast loop zmq_manager.py had until the broker-link rewrite
  (``ZmqManager._emit_local``): encode once with fastjson, then walk bidict's private
  ``_fwdm`` and ``server.eio.sockets`` and call each socket's ``send``;
- ``manager_emit``: python-socketio's ``Manager.emit(..., ignore_queue=True)``
  (5.18 also encodes once per room, then ``server._send_eio_packet`` per member);
- ``fanout``: ``chat.engine.fanout.emit_local``, what the node uses.

The objects are the node's: ``ChatServer`` with ``patches.install``, fastjson
as its JSON module, real Engine.IO sockets in websocket mode behind gevent-websocket's
own handler, each over a socketpair (no network at all), so every delivery is a direct
write to an idle websocket as in a node.  Each round is one emit to the whole room;
the client ends are drained (and every frame counted) between timed batches.

Run: ``.venv/bin/python -m bench.studies.emit_local [--members 100 1000] [--repeats 5]``.
Bounded: ``--rounds`` emits per timed batch, ``--repeats`` batches per way and room
size, interleaved, and ``--max-seconds`` for everything.
"""
import argparse
import statistics
import time

import gevent
import gevent.socket
from engineio import packet as eio_packet
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler

from chat.engine import fanout, patches
from chat.engine.server import ChatServer
from chatstream import fastjson

ROOM = "bench"
UPGRADE = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: node\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
CONNECT_FRAME = b"\x81\x82\x00\x00\x00\x0040"   # "40" masked with zeros: Socket.IO CONNECT
PING_INTERVAL_S = 3600   # no Engine.IO pings during a run: nothing answers them
SETUP_TIMEOUT_S = 5.0


def bypass_fwdm(server, event, data, room, namespace="/"):
    """zmq_manager.py's ``_emit_local`` as it was (default namespace only)."""
    members = server.manager.rooms.get("/", {}).get(room)
    if not members:
        return
    payload = fastjson.dumps([event, data], separators=fastjson.COMPACT)
    pkt = eio_packet.Packet(eio_packet.MESSAGE, "2" + payload)
    sockets = server.eio.sockets
    for eio_sid in list(members._fwdm.values()):
        socket = sockets.get(eio_sid)
        if socket is not None and not socket.closed:
            socket.send(pkt)


def manager_emit(server, event, data, room, namespace="/"):
    server.manager.emit(event, data, namespace=namespace, room=room, ignore_queue=True)


WAYS = {"bypass_fwdm": bypass_fwdm, "manager_emit": manager_emit, "fanout": fanout.emit_local}


class Member:
    """The client end of one member's socketpair; counts the frames it is sent."""

    def __init__(self, wsgi, number):
        server_end, self.sock = gevent.socket.socketpair()
        address = ("127.0.0.1", number)     # gevent-websocket keys its clients by address
        gevent.spawn(WebSocketHandler(server_end, address, wsgi).handle)
        self.sock.sendall(UPGRADE)
        self.buffer = b""
        with gevent.Timeout(SETUP_TIMEOUT_S):
            while self.frames() < 1:          # 101 response, then the Engine.IO OPEN
                self.buffer += self.sock.recv(65536)
            self.sock.sendall(CONNECT_FRAME)
            while self.frames() < 1:          # Socket.IO CONNECT ack
                self.buffer += self.sock.recv(65536)

    def frames(self):
        """Take the complete frames (and a leading HTTP response) off the buffer."""
        count = 0
        if self.buffer.startswith(b"HTTP/"):
            if b"\r\n\r\n" not in self.buffer:
                return 0
            self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]
        while len(self.buffer) >= 2:
            length, start = self.buffer[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(self.buffer[2:4], "big"), 4
            if len(self.buffer) < start + length:
                break
            self.buffer = self.buffer[start + length:]
            count += 1
        return count

    def drain(self):
        """Frames received since the last drain (non-blocking)."""
        while True:
            try:
                chunk = self.sock._sock.recv(1 << 20)
            except BlockingIOError:
                return self.frames()
            self.buffer += chunk


def build_room(members):
    sio = ChatServer(async_mode="gevent", logger=False, engineio_logger=False,
                             json=fastjson, ping_interval=PING_INTERVAL_S)
    patches.install(sio)
    sio.on("connect", lambda sid, environ, auth=None: sio.enter_room(sid, ROOM))
    wsgi = pywsgi.WSGIServer(("127.0.0.1", 0), sio.handle_request,
                             handler_class=WebSocketHandler, log=None)
    room = [Member(wsgi, number) for number in range(1, members + 1)]
    gevent.sleep(0.05)                        # let every writer greenlet start waiting
    assert len(sio.manager.rooms["/"][ROOM]) == members
    return sio, room


def timed_batch(way, sio, room, rounds, first_seq):
    """Emit ``rounds`` messages to the room; (wall, cpu) seconds and frames delivered."""
    message = {"room": ROOM, "id": "m-0123456789ab", "nick": "alice", "epoch": "e1",
               "text": "hello, this is a chat message of ordinary length", "ts": 1764650000.123}
    wall, cpu = time.perf_counter(), time.process_time()
    for seq in range(first_seq, first_seq + rounds):
        way(sio, "message", dict(message, seq=seq), ROOM)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gevent.sleep(0)                           # a writer finishing a partial write, if any
    return wall, cpu, sum(member.drain() for member in room)


def run(members_list, rounds, repeats, max_seconds):
    deadline = time.monotonic() + max_seconds
    results = {}
    for members in members_list:
        sio, room = build_room(members)
        samples = {name: [] for name in WAYS}
        seq = 0
        timed_batch(manager_emit, sio, room, rounds, seq)      # warm-up, not counted
        for _ in range(repeats):
            for name, way in WAYS.items():                     # interleaved
                if time.monotonic() > deadline:
                    break
                seq += rounds
                wall, cpu, delivered = timed_batch(way, sio, room, rounds, seq)
                if delivered != rounds * members:
                    raise RuntimeError("%s delivered %d frames, expected %d"
                                       % (name, delivered, rounds * members))
                deliveries = rounds * members
                samples[name].append((wall / deliveries * 1e6, cpu / deliveries * 1e6))
        results[members] = samples
        for member in room:
            member.sock.close()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=100, help="emits per timed batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed batches per way and size")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    if max(args.members) > 2000 or args.rounds * args.repeats > 10_000:
        parser.error("bounded: at most 2000 members and 10,000 emits per way")
    results = run(args.members, args.rounds, args.repeats, args.max_seconds)
    print("us per delivery: wall median [min-max] / cpu median of %d batches of %d emits;"
          " change of the wall median and of the wall min vs manager_emit"
          % (args.repeats, args.rounds))
    for members, samples in results.items():
        base = [w for w, _ in samples["manager_emit"]]
        for name, values in samples.items():
            walls, cpus = [w for w, _ in values], [c for _, c in values]
            if not walls or not base:
                continue
            print("%5d members  %-13s %6.3f [%6.3f-%6.3f] / %6.3f   %+6.1f %%  %+6.1f %%"
                  % (members, name, statistics.median(walls), min(walls), max(walls),
                     statistics.median(cpus),
                     (statistics.median(walls) / statistics.median(base) - 1) * 100,
                     (min(walls) / min(base) - 1) * 100))


if __name__ == "__main__":
    main()
