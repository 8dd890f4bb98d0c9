"""Engine.IO's websocket transport run from the event loop: no greenlet per connection.

engine.io gives every websocket two greenlets for its whole life: a reader blocked
in ``recv`` deep in pywsgi -> engine.io -> gevent-websocket (its saved stack ~6 KB)
and a writer waiting on a queue (~4 KB with its ``Thread``, plus a 2.5 KB queue).
An idle connection needs neither.  Once the handshake (and, for a client that
began with long-polling, the upgrade probe) is done in the request's greenlet,
:meth:`WsConn.detach` takes the TCP socket out of pywsgi's hands and the request
ends; from then on the connection is a :class:`WsConn`: a libev read watcher, an
input buffer and the frames waiting for the kernel.

- **Reading**: the read watcher's callback reads what the kernel has, parses the
  client's frames (masked, RFC 6455; each frame's size is checked at its header
  against the message limit, close 1009 as ``frames.BoundedWebSocket`` does) and
  hands each Engine.IO packet to the socket: a PONG schedules the next ping (a
  timer), a MESSAGE starts engine.io's handler greenlet (``async_handlers``);
  anything else runs in a greenlet of its own, and a lost connection is closed
  by the socket's ``close_soon`` (disconnect handlers may block).
- **Writing**: every frame is held until the end of the current loop iteration
  (:func:`flush_held`, one ``run_callback`` for all connections), so all frames
  due to one connection in one tick go out in one ``send``; a broadcast frame is
  built once per packet (:func:`text_frame`).  What the kernel does not take waits
  in order, with a write watcher, and counts as the connection's backlog
  (:meth:`WsConn.qsize`, which the slow-client sweep cuts off over its limit).
- **Engine.IO's queue**: the socket's ``queue`` becomes its WsConn: ``put(packet)``
  writes, ``put(None)`` (the socket closed) closes once the frames are out.
"""
import logging
import struct

import _socket
import gevent
from engineio import packet as engineio_packet

from .frames import (_BINARY, _CLOSE, _TEXT, CLOSE_INVALID_DATA, CLOSE_NORMAL,
                     CLOSE_PROTOCOL_ERROR, FrameParser, frame)

log = logging.getLogger(__name__)

READ_BYTES = 65536           # one recv per read event; libev calls again while more is there
CLOSE_FLUSH_S = 5.0          # a closing connection's frames get this long to go out


def text_frame(pkt):
    """The websocket frame of an Engine.IO packet, built once per packet."""
    data = getattr(pkt, "_ws_frame", None)
    if data is None:                # a broadcast packet is shared by every member
        if pkt.binary:
            data = frame(_BINARY, pkt.encode())
        else:
            data = frame(_TEXT, pkt.encode().encode("utf-8"))
        pkt._ws_frame = data
    return data


_held = []           # connections holding frames until the end of this loop tick


def flush_held():
    """Send every connection's held frames (the loop's callback; tests call it directly).
    One connection's failure never leaves another's frames held."""
    conns = list(_held)
    del _held[:]
    for conn in conns:
        try:
            conn.flush_tick()
        except Exception:              # noqa: BLE001 - logged; the connection is dropped
            conn._tick = []
            log.exception("websocket: held frames not sent")
            conn._lost()


class WsConn(FrameParser):
    """One websocket connection of an Engine.IO socket, driven by loop callbacks.

    Also the socket's ``queue`` (the part of a queue engine.io uses on a websocket)."""

    __slots__ = ("socket", "_sock", "_reader", "_writer", "_in", "_parts", "_received",
                 "_tick", "_out", "backlog", "closing", "closed", "_timer")
    max_message_bytes = 1_000_000    # the server's max_http_buffer_size (patches.install)
    open = 0                         # connections of this process not yet closed (metrics)
    events_in_loop = False           # python-socketio starts event handlers in greenlets

    def __init__(self, eio_socket, sock, buffered=b""):
        """:param sock: a connected non-blocking ``_socket.socket``, ours from now on.
        :param buffered: bytes of the connection already read (past the handshake)."""
        self.socket = eio_socket
        self._sock = sock
        self._in = bytearray(buffered)
        self._parts = None           # a message in continuation frames: its payloads
        self._received = 0           # ... and their size so far
        self._tick = []              # frames held until the end of this loop tick
        self._out = []               # bytes the kernel has not taken yet, in order
        self.backlog = 0             # frames in _out
        self.closing = self.closed = False
        self._writer = self._timer = None
        loop = gevent.get_hub().loop
        self._reader = loop.io(sock.fileno(), 1)
        self._reader.start(self._readable)
        WsConn.open += 1
        if self._in:
            loop.run_callback(self._parse)

    @classmethod
    def detach(cls, eio_socket, ws):
        """Take a gevent-websocket connection out of its pywsgi request: the request
        ends (without closing the socket) once its handler returns."""
        handler = ws.handler
        gsock = handler.socket
        gsock.settimeout(0.0)        # what the request's reader holds past the handshake
        buffered = handler.rfile.read1(READ_BYTES) if handler.rfile is not None else b""
        ws.closed = True             # gevent-websocket sends no close frame when the request ends
        sock = _socket.socket(fileno=gsock.detach())
        sock.setblocking(False)
        return cls(eio_socket, sock, buffered or b"")

    # -- Engine.IO's queue -------------------------------------------------------------

    def put(self, pkt):
        """Write an Engine.IO packet; None (engine.io closed the socket): close once sent."""
        if pkt is None:
            self._close_when_sent()
        elif not self.closing:
            self.write(text_frame(pkt))

    def qsize(self):
        return self.backlog

    def empty(self):
        return not self.backlog

    def join(self):
        """engine.io's ``close(wait=True)``: the frames go out on their own."""

    def task_done(self):
        pass

    # -- writing -----------------------------------------------------------------------

    def write(self, data):
        """Hold a frame for this tick's one send (:func:`flush_held`)."""
        if self.closed:
            return
        if not self._tick:
            if not _held:
                gevent.get_hub().loop.run_callback(flush_held)
            _held.append(self)
        self._tick.append(data)

    def flush_tick(self):
        """Send the frames held this tick; what the kernel does not take waits in order."""
        frames, self._tick = self._tick, []
        if self.closed or not frames:
            return
        if self._out:
            self._out.extend(frames)
            self.backlog += len(frames)
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.backlog = len(frames)
        self._out = [data]
        self._writable()

    def _writable(self):
        out = self._out
        data = out[0] if len(out) == 1 else b"".join(out)
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._lost()
            return
        if sent == len(data):
            self._out = []
            self.backlog = 0
            if self._writer is not None:
                self._writer.stop()
            if self.closing:
                self._finish_close()
            return
        self._out = [data[sent:]]
        if self._writer is None:
            self._writer = gevent.get_hub().loop.io(self._sock.fileno(), 2)
        if not self._writer.active:
            self._writer.start(self._writable)
            self.socket.server.sockets.backlogged.add(self.socket.sid)  # for sweeps.backlogs

    # -- reading -----------------------------------------------------------------------

    def _readable(self):
        try:
            data = self._sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._in += data
        self._parse()

    def _message(self, opcode, payload):
        if opcode == _TEXT:
            try:
                payload = payload.decode("utf-8")
            except UnicodeDecodeError:
                return self._refuse(CLOSE_INVALID_DATA, b"invalid UTF-8")
        try:
            pkt = engineio_packet.Packet(encoded_packet=payload)
        except Exception:            # noqa: BLE001 - any undecodable packet
            return self._refuse(CLOSE_PROTOCOL_ERROR, b"bad Engine.IO packet")
        socket = self.socket
        if pkt.packet_type == engineio_packet.PONG:
            socket.schedule_ping()   # a timer: fine from the loop
        elif pkt.packet_type == engineio_packet.MESSAGE and (
                socket.server.async_handlers
                or (self.events_in_loop and type(pkt.data) is str and pkt.data[:1] == "2")):
            socket.receive(pkt)      # a Socket.IO EVENT: python-socketio decodes it and
                                     # starts its handler's greenlet (patches.PATCHES)
        else:
            gevent.spawn(_receive, socket, pkt)

    # -- closing -----------------------------------------------------------------------

    def _refuse(self, code, reason=b""):
        """Close with ``code`` (RFC 6455 7.4) after what is already due, then tell engine.io."""
        if not self.closing:
            self._close_when_sent(code, reason)
            if not self.socket.closed:
                self.socket.close_soon()

    def _close_when_sent(self, code=CLOSE_NORMAL, reason=b""):
        """Send what is due and a close frame, then close; nothing more is read."""
        if self.closing:
            return
        self.write(frame(_CLOSE, struct.pack("!H", code) + reason))
        self.closing = True
        self._reader.stop()
        self._timer = gevent.get_hub().loop.timer(CLOSE_FLUSH_S)
        self._timer.start(self.abort)

    def _finish_close(self):
        self._stop()
        sockets = self.socket.server.sockets
        if sockets.get(self.socket.sid) is self.socket:
            del sockets[self.socket.sid]

    def abort(self):
        """Close at once, dropping what was not sent (a cut-off slow client)."""
        self._tick = []
        self._out = []
        self.backlog = 0
        self._finish_close()

    def _lost(self):
        """The connection ended: engine.io's close (disconnect handlers) runs in a greenlet."""
        if self.closed:
            return
        self._stop()
        if not self.socket.closed:
            self.socket.close_soon()

    def _stop(self):
        if self.closed:
            return
        self.closed = self.closing = True
        WsConn.open -= 1
        for watcher in (self._reader, self._writer, self._timer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self._reader = self._writer = self._timer = None
        self._in = bytearray()
        self._parts = None
        try:
            self._sock.close()
        except OSError:
            pass


def _receive(socket, pkt):
    try:
        socket.receive(pkt)
    except Exception:                # noqa: BLE001 - as engine.io's reader loop
        log.debug("websocket %s: receive failed", socket.sid, exc_info=True)
