"""Every place where the node replaces or reaches into python-engineio / gevent-websocket.

:data:`PATCHES` lists them: the library target, what replaces it (or, for
"relied on" rows, which of our code uses it) and why.  They are written against
the versions in :data:`PINNED_VERSIONS` (the pins of requirements.txt), and
:func:`install` refuses to start a node on any other version, or when a target
has gone: a patch that cannot apply fails loudly instead of silently leaving
the library's behaviour in place.

How they are applied: :class:`ChatServer` is python-socketio's ``Server`` whose
``_engineio_server_class()`` is :class:`ChatEngineServer`, and that server
carries our websocket class in its own ``_async`` table and our socket class.
python-engineio has no socket-class hook (``Server._handle_connect`` calls
``engineio.socket.Socket`` by module name), so the server's ``sockets`` table
turns each new ``Socket`` into a :class:`ChatSocket` as engineio stores it,
before its OPEN packet and its first ping.  Library classes stay untouched
except gevent-websocket's ``Header``, which has no per-server seam.
"""
import importlib
import importlib.metadata
import inspect
import time
from typing import NamedTuple

import engineio
import gevent
import socketio
from engineio import packet as engineio_packet
from engineio import socket as engineio_socket
from engineio.async_drivers import gevent as engineio_gevent
from engineio.exceptions import QueueEmpty, SocketIsClosedError
from geventwebsocket.websocket import Header
from wsaccel.xormask import createXorMasker

from .websocket import BatchingWebSocketWSGI

# Read from the installed distributions, compared with requirements.txt's pins.
PINNED_VERSIONS = {
    "python-engineio": "4.15.1",
    "python-socketio": "5.18.1",
    "gevent-websocket": "0.10.1",
    "wsaccel": "0.6.7",
}


class Patch(NamedTuple):
    target: str        # the library's name for what is replaced or relied on
    replacement: str   # ours
    why: str


PATCHES = (
    Patch("socketio.Server._engineio_server_class", "ChatServer._engineio_server_class",
          "the seam: the Engine.IO server below is ChatEngineServer"),
    Patch("engineio.async_drivers.gevent._async[websocket]",
          "ChatEngineServer._async[websocket] = websocket.BatchingWebSocketWSGI",
          "one send per batch of frames; direct writes to idle members (BENCHMARKS.md)"),
    Patch("engineio.server.socket.Socket", "ChatSocket, through ChatEngineServer.sockets",
          "engineio has no socket-class hook; the methods below"),
    Patch("engineio.socket.Socket._websocket_handler", "ChatSocket._websocket_handler",
          "hands the socket its websocket writer"),
    Patch("engineio.socket.Socket.poll", "ChatSocket.poll",
          "tells the writer the batch size; keeps an open websocket's writer waiting on an"
          " empty queue (pings and direct writes bypass it)"),
    Patch("engineio.socket.Socket.send", "ChatSocket.send",
          "a packet for an idle websocket is written at once, not queued"),
    Patch("engineio.socket.Socket.schedule_ping", "ChatSocket.schedule_ping",
          "a libev timer, not a sleeping greenlet per connection (idle RSS)"),
    Patch("geventwebsocket.websocket.Header.mask_payload", "wsaccel's XorMasker",
          "C instead of a Python loop per byte (~7 us -> 0.3 us per 125-byte frame)"),
    Patch("geventwebsocket.websocket.Header.unmask_payload", "wsaccel's XorMasker",
          "what WebSocket.read_frame calls for every client frame"),
    Patch("geventwebsocket.websocket.WebSocket.handler", "relied on by BatchingWebSocketWSGI",
          "frames go out through handler.socket._sock.send, non-blocking"),
    Patch("engineio.socket.Socket.close", "relied on by cut_off() (backpressure.py)",
          "abort a slow client and drain Socket.queue and Server.sockets; the queue is unbounded"),
)


class ChatSocket(engineio_socket.Socket):
    """engineio's Socket with the websocket writer's hooks and a libev ping timer."""

    writer = None    # the BatchingWebSocketWSGI, once upgraded to websocket

    def _websocket_handler(self, ws):
        if not isinstance(ws, BatchingWebSocketWSGI):
            raise RuntimeError("engineio.socket.Socket._websocket_handler got %r, not the"
                               " BatchingWebSocketWSGI that ChatEngineServer installs" % (ws,))
        self.writer = ws
        return super()._websocket_handler(ws)

    def poll(self):
        while True:
            try:
                packets = super().poll()
            except QueueEmpty:
                # engineio's writer gives up on a queue that stays empty for ping
                # interval + timeout, expecting at least the pings in it; pings and
                # direct writes never pass through it.  The ping check finds dead clients.
                if self.upgraded and not self.closed and not self.closing:
                    continue
                raise
            if self.upgraded and self.writer is not None:   # not a long-poll GET
                self.writer.batch(len(packets))
            return packets

    def send(self, pkt):
        writer = self.writer
        if (writer is None or pkt.binary or not self.upgraded or self.upgrading
                or self.closed or not writer.idle or not self.queue.empty()):
            return super().send(pkt)     # nothing may overtake what is queued
        if not self.check_ping_timeout():
            return                       # being closed: dropped, as engineio's send does
        if not writer.write_now(pkt):
            return super().send(pkt)     # the writer will find the error and close
        if writer.unfinished:            # wake the writer to finish the frame first
            self.queue.put(engineio_packet.Packet(engineio_packet.NOOP))

    def schedule_ping(self):
        """The next ping on a libev timer.

        engineio starts a greenlet per connection that sleeps through the ping
        interval; an idle connection then holds it (its stack and Thread object,
        ~6 KB) for good.  A timer holds a few hundred bytes, and the ping is sent
        from a short-lived greenlet when it is due.
        """
        if self.last_ping:               # only once the previous ping was answered
            self.last_ping = None
            timer = gevent.get_hub().loop.timer(self.server.ping_interval)
            timer.start(_ping_due, self, timer)


def _ping_due(socket, timer):
    timer.close()
    if not socket.closing and not socket.closed:
        socket.last_ping = time.time()
        gevent.spawn(_send_ping, socket)


def _send_ping(socket):
    try:
        socket.send(engineio_packet.Packet(engineio_packet.PING))
    except SocketIsClosedError:
        pass                             # closed since the timer fired


class _ChatSockets(dict):
    """engineio's sid -> socket table, making every socket stored in it a ChatSocket."""

    def __init__(self, sockets=()):
        super().__init__()
        for sid, socket in dict(sockets).items():
            self[sid] = socket

    def __setitem__(self, sid, socket):
        if type(socket) is engineio_socket.Socket:
            socket.__class__ = ChatSocket    # same layout: a subclass adding methods only
        elif not isinstance(socket, ChatSocket):
            raise RuntimeError("engineio.server.socket.Socket made a %s, not an"
                               " engineio.socket.Socket" % type(socket).__name__)
        super().__setitem__(sid, socket)


class ChatEngineServer(engineio.Server):
    """engineio's Server (gevent mode) with our websocket and socket classes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        websocket = self._async.get("websocket")
        if websocket is not engineio_gevent.WebSocketWSGI or engineio_gevent.SimpleWebSocketWSGI:
            raise RuntimeError("engineio.async_drivers.gevent._async[websocket] is %r (async"
                               " mode %s): gevent mode with gevent-websocket is required"
                               % (websocket, self.async_mode))
        self._async = dict(self._async, websocket=BatchingWebSocketWSGI)

    @property
    def sockets(self):
        return self._sockets

    @sockets.setter
    def sockets(self, sockets):          # engineio assigns {} in __init__ and disconnect()
        self._sockets = _ChatSockets(sockets)


class ChatServer(socketio.Server):
    """python-socketio's Server on :class:`ChatEngineServer`; call :func:`install` next."""

    def _engineio_server_class(self):
        return ChatEngineServer


def _unmask(header, payload):
    return createXorMasker(header.mask).process(payload)


def install(sio):
    """Check versions and targets, apply the process-wide patches, verify all of them.

    :param sio: a :class:`ChatServer`.
    :raises RuntimeError: naming the package or target that does not fit.
    """
    check_versions()
    for patch in PATCHES:
        resolve(patch.target)
    Header.mask_payload = Header.unmask_payload = _unmask
    verify(sio)


def check_versions():
    for dist, pinned in PINNED_VERSIONS.items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = "none"
        if installed != pinned:
            raise RuntimeError("%s %s is installed; chat/patches.py is written against %s"
                               " (requirements.txt): review PATCHES before changing the pin"
                               % (dist, installed, pinned))


def resolve(target):
    """The object a PATCHES target names: ``module.attr.attr`` or ``module.attr[key]``."""
    path, _, key = target.partition("[")
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
            return obj[key.rstrip("]")] if key else obj
        except (AttributeError, KeyError, TypeError):
            break
    raise RuntimeError("patched library target %s is missing: the library changed under"
                       " chat/patches.py" % target)


def verify(sio):
    """Raise RuntimeError naming the first target of PATCHES not in effect on ``sio``."""
    eio = getattr(sio, "eio", None)
    checks = {
        "socketio.Server._engineio_server_class": isinstance(eio, ChatEngineServer),
        "engineio.async_drivers.gevent._async[websocket]":
            eio is not None and eio._async["websocket"] is BatchingWebSocketWSGI,
        "engineio.server.socket.Socket":
            eio is not None and isinstance(eio.sockets, _ChatSockets)
            and resolve("engineio.server.socket.Socket") is engineio_socket.Socket,
        "geventwebsocket.websocket.Header.mask_payload": Header.mask_payload is _unmask,
        "geventwebsocket.websocket.Header.unmask_payload": Header.unmask_payload is _unmask,
        "engineio.socket.Socket.close":
            {"wait", "abort"} <= set(inspect.signature(engineio_socket.Socket.close).parameters),
    }
    for name in ("_websocket_handler", "poll", "send", "schedule_ping"):
        checks["engineio.socket.Socket." + name] = (
            getattr(ChatSocket, name) is not getattr(engineio_socket.Socket, name))
    checks["geventwebsocket.websocket.WebSocket.handler"] = True   # resolved by install
    for patch in PATCHES:
        if not checks[patch.target]:
            raise RuntimeError("patch of %s (%s) is not in effect" % (patch.target, patch.replacement))


def backlogs(sio):
    """``(eio_sid, packets queued)`` for every open connection of ``sio``."""
    return [(eio_sid, socket.queue.qsize())
            for eio_sid, socket in list(sio.eio.sockets.items()) if not socket.closed]


def cut_off(sio, eio_sid):
    """Abort a connection at once and drop what was queued for it.

    A CLOSE packet would only queue behind the backlog, so the socket is
    aborted, its queue emptied and its writer let go (``None``) once its
    blocked send returns.
    """
    socket = sio.eio.sockets.get(eio_sid)
    if socket is None or socket.closed:
        return False
    socket.close(wait=False, abort=True)
    while not socket.queue.empty():
        socket.queue.get_nowait()
        socket.queue.task_done()
    socket.queue.put(None)
    sio.eio.sockets.pop(eio_sid, None)
    return True
