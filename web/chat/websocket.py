"""Engine.IO's gevent websocket wrapper, writing each batch of frames at once.

Profiling a node under load (docs/BENCHMARKS.md) showed a third of its CPU in
sending websocket frames: one ``sendall`` per frame, each with a
``getsockopt`` and gevent's timeout bookkeeping.  Engine.IO's writer greenlet
already takes every queued packet at once (``Socket.poll``) and then sends
them one by one; this wrapper is told the size of that batch (:meth:`batch`)
and writes all its frames with one non-blocking ``send`` (falling back to
gevent's ``sendall`` for whatever the kernel did not take), so a client that
gets ten messages in one wake-up costs one syscall, not ten.

Direct writes: a room broadcast hands the same Engine.IO packet to every
member.  When a member's writer is :attr:`idle`, the packet's frame -- built
once per packet, not once per member -- is written to the member's socket
right away (:meth:`write_now`), skipping the queue, the writer greenlet's
wake-up and its bookkeeping.  Whatever the kernel does not take is kept as a
prefix that the writer sends before anything else, so
the order on the wire is always the queue's order.

Held for the loop tick: a direct write is not sent at once but held until the end
of the current gevent loop iteration (one ``run_callback`` for all writers), so all
the frames due to one connection in one tick -- several messages of one broker read,
a join's announcement and the room's presence -- go out in one ``send``.

This module knows gevent-websocket's side only.  Which Engine.IO socket calls
:meth:`batch` and :meth:`write_now`, and when, is ``patches.ChatSocket``;
every library internal both rely on is listed in ``patches.PATCHES``.
"""
import logging

import gevent
from engineio.async_drivers import gevent as engineio_gevent
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.websocket import Header, WebSocket

log = logging.getLogger(__name__)

_TEXT = WebSocket.OPCODE_TEXT
_BINARY = WebSocket.OPCODE_BINARY


def text_frame(pkt):
    """The websocket frame of an Engine.IO text packet, built once per packet."""
    data = getattr(pkt, "_ws_frame", None)
    if data is None:                # a broadcast packet is shared by every member
        payload = pkt.encode().encode("utf-8")
        data = pkt._ws_frame = Header.encode_header(True, _TEXT, b"", len(payload), 0) + payload
    return data


_held = []           # writers holding frames until the end of this loop tick


def flush_held():
    """Send every writer's held frames (the loop's callback; tests call it directly).
    One writer's failure never leaves another's frames held."""
    writers = list(_held)
    del _held[:]
    for writer in writers:
        try:
            writer.flush_tick()
        except Exception:              # noqa: BLE001 - logged; the writer finds the error
            writer._tick = []
            log.exception("websocket: held frames not sent")


class BatchingWebSocketWSGI(engineio_gevent.WebSocketWSGI):
    """Drop-in for engineio's gevent WebSocketWSGI (gevent-websocket based)."""

    def __init__(self, handler, server):
        super().__init__(handler, server)
        self._pending = []     # frames of the current batch, not yet written
        self._expected = 0     # packets of the current batch still to come
        self._prefix = b""     # bytes of a direct write the kernel did not take
        self._blocked = False  # the writer is waiting in sendall
        self._sock = None      # the gevent-websocket WebSocket, once called
        self._tick = []        # direct writes held until the end of this loop tick
        self.wake = None       # wakes the writer greenlet (set by patches.ChatSocket)

    def batch(self, count):
        """Engine.IO's writer took ``count`` packets; their frames go out in one write."""
        self._expected = count

    @property
    def idle(self):
        """Nothing half-written or being written: a frame may go straight out."""
        ws = self._sock
        return (ws is not None and not ws.closed and not self._blocked
                and not self._prefix and not self._pending)

    def write_now(self, pkt):
        """Hold an idle writer's text packet for this tick's one send (:func:`flush_held`)."""
        if not self._tick:
            if not _held:
                gevent.get_hub().loop.run_callback(flush_held)
            _held.append(self)
        self._tick.append(text_frame(pkt))

    def flush_tick(self):
        """Send the frames held this tick; what the kernel does not take the writer sends."""
        frames, self._tick = self._tick, []
        ws = self._sock
        # pywsgi drops the handler's socket once the request ends (a closing connection)
        tcp = getattr(getattr(ws, "handler", None), "socket", None)
        if not frames or ws.closed or tcp is None:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        try:
            sent = tcp._sock.send(data)
        except OSError:                # BlockingIOError included: the writer
            sent = 0                   # retries, and finds and closes a broken socket
        if sent < len(data):
            self._prefix = data[sent:]
            if self.wake is not None:
                self.wake()

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
        if self._tick:                 # then what was held this tick
            self._pending.extend(self._tick)
            self._tick = []
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
