"""Engine.IO's gevent websocket wrapper, writing each batch of frames at once.

Profiling a node under load (docs/BENCHMARKS.md) showed a third of its CPU in
sending websocket frames: one ``sendall`` per frame, each with a
``getsockopt`` and gevent's timeout bookkeeping.  Engine.IO's writer greenlet
already takes every queued packet at once (``Socket.poll``) and then sends
them one by one; this wrapper counts that batch and writes all its frames with
one non-blocking ``send`` (falling back to gevent's ``sendall`` for whatever
the kernel did not take), so a client that gets ten messages in one wake-up
costs one syscall, not ten.

Direct writes: a room broadcast hands the same Engine.IO packet to every
member.  When a member's websocket writer is idle (nothing queued, nothing
half-written), the packet's frame -- built once per packet, not once per
member -- is written to the member's socket right away, skipping the queue,
the writer greenlet's wake-up and its bookkeeping.  Whatever the kernel does
not take is kept as a prefix that the writer sends before anything else (a
NOOP packet wakes it), so the order on the wire is always the queue's order.

It relies on python-engineio's writer calling ``poll()`` and then ``send()``
per packet, and on ``Socket.send(pkt)`` being how packets reach a client
(true in 4.x, pinned in requirements.txt); the integration tests exercise it
on every delivery.

Receiving: gevent-websocket unmasks client frames and validates their UTF-8
with a Python loop per byte unless wsaccel (C) is installed; wsaccel is pinned
in requirements.txt, its validator is picked up by gevent-websocket itself and
:func:`install` points frame unmasking at its masker too (about 7 us -> 0.3 us
for a 125-byte message).

Idle connections: :func:`install` also moves Engine.IO's ping schedule from a
sleeping greenlet per connection to a libev timer (see :func:`_schedule_ping`).
"""
import time

import gevent
from engineio import packet as engineio_packet
from engineio import socket as engineio_socket
from engineio.async_drivers import gevent as engineio_gevent
from engineio.exceptions import QueueEmpty, SocketIsClosedError
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.websocket import Header, WebSocket
from wsaccel.xormask import createXorMasker

_TEXT = WebSocket.OPCODE_TEXT
_BINARY = WebSocket.OPCODE_BINARY


class BatchingWebSocketWSGI(engineio_gevent.WebSocketWSGI):
    """Drop-in for engineio's gevent WebSocketWSGI (gevent-websocket based)."""

    def __init__(self, handler, server):
        super().__init__(handler, server)
        self._pending = []     # frames of the current batch, not yet written
        self._expected = 0     # packets of the current batch still to come
        self._prefix = b""     # bytes of a direct write the kernel did not take
        self._blocked = False  # the writer is waiting in sendall
        socket = getattr(handler, "__self__", None)   # the engineio Socket
        if socket is not None:
            poll, send = socket.poll, socket.send

            def counting_poll():
                while True:
                    try:
                        packets = poll()
                    except QueueEmpty:
                        # Engine.IO's writer gives up on a queue that stays empty for
                        # ping interval + timeout, expecting at least the pings in it;
                        # pings and broadcasts written directly never pass through it.
                        # A dead client is found by the ping check instead.
                        if socket.upgraded and not socket.closed and not socket.closing:
                            continue
                        raise
                    if socket.upgraded:     # the websocket writer's poll, not a long-poll GET
                        self._expected = len(packets)
                    return packets

            def direct_send(pkt):
                if not self._write_directly(socket, pkt):
                    send(pkt)
            socket.poll = counting_poll
            socket.send = direct_send

    def _write_directly(self, socket, pkt):
        """Write ``pkt`` now if the writer is idle; False means: queue it."""
        ws = self._sock
        if (ws is None or ws.closed or not socket.upgraded or socket.upgrading
                or socket.closed or self._blocked or self._prefix or self._pending
                or not socket.queue.empty() or pkt.binary):
            return False
        if not socket.check_ping_timeout():
            return True                 # the socket is being closed: drop, as send() does
        data = getattr(pkt, "_ws_frame", None)
        if data is None:                # once per packet, shared by every member
            payload = pkt.encode().encode("utf-8")
            data = pkt._ws_frame = Header.encode_header(True, _TEXT, b"", len(payload), 0) + payload
        try:
            sent = ws.handler.socket._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return False                # let the writer find out and close
        if sent < len(data):
            self._prefix = data[sent:]
            socket.queue.put(engineio_packet.Packet(engineio_packet.NOOP))  # wake the writer
        return True

    def send(self, message):
        ws = self._sock
        if ws.closed:
            raise WebSocketError("socket is already closed")
        if isinstance(message, str):
            payload, opcode = message.encode("utf-8"), _TEXT
        else:
            payload, opcode = bytes(message), _BINARY
        if self._prefix:               # the rest of a direct write goes first
            self._pending.append(self._prefix)
            self._prefix = b""
        self._pending.append(Header.encode_header(True, opcode, b"", len(payload), 0))
        self._pending.append(payload)
        if self._expected > 1:
            self._expected -= 1
            return                      # more of this batch to come
        self._expected = 0
        data = b"".join(self._pending)
        self._write(ws, data)
        self._pending = []

    def _write(self, ws, data):
        sock = ws.handler.socket        # gevent socket; its _sock is non-blocking
        try:
            sent = sock._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise WebSocketError(str(exc)) from None
        if sent < len(data):            # the kernel buffer is full: wait cooperatively
            self._blocked = True
            try:
                sock.sendall(memoryview(data)[sent:])
            except OSError as exc:
                raise WebSocketError(str(exc)) from None
            finally:
                self._blocked = False


def _unmask(header, payload):
    return createXorMasker(header.mask).process(payload)


def _schedule_ping(socket):
    """Engine.IO's ``Socket.schedule_ping`` on a libev timer.

    python-engineio starts a greenlet per connection that sleeps through the
    ping interval; an idle connection then holds it (its saved stack and
    Thread object, ~6 KB) for good.  A timer holds a few hundred bytes, and the
    ping itself is sent from a short-lived greenlet when it is due.
    """
    if socket.last_ping:
        socket.last_ping = None
        timer = gevent.get_hub().loop.timer(socket.server.ping_interval)
        timer.start(_ping_due, socket, timer)


def _ping_due(socket, timer):
    timer.close()
    if not socket.closing and not socket.closed:
        socket.last_ping = time.time()
        gevent.spawn(_send_ping, socket)


def _send_ping(socket):
    try:
        socket.send(engineio_packet.Packet(engineio_packet.PING))
    except SocketIsClosedError:
        pass                            # closed since the timer fired


def install(sio):
    """Make this process's Engine.IO server use the batching wrapper."""
    if engineio_gevent.SimpleWebSocketWSGI is not None:
        raise RuntimeError("gevent-websocket is required for websocket support")
    Header.mask_payload = Header.unmask_payload = _unmask
    engineio_socket.Socket.schedule_ping = _schedule_ping
    sio.eio._async = dict(sio.eio._async, websocket=BatchingWebSocketWSGI)
