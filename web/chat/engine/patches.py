"""Every place where the node replaces or reaches into python-engineio / gevent-websocket.

:data:`PATCHES` lists them: the library target, what replaces it (or, for
"relied on" rows, which of our code uses it) and why.  They are written against
the versions in :data:`PINNED_VERSIONS` (the pins of requirements.txt), and
:func:`install` refuses to start a node on any other version, or when a target
has gone: a patch that cannot apply fails loudly instead of silently leaving
the library's behaviour in place.  The server classes that apply most of them
are in :mod:`chat.engine.server`; library classes stay untouched except what has
no per-server seam (gevent-websocket's names, :mod:`chat.engine.frames`).
"""
import importlib
import importlib.metadata
import inspect
from typing import NamedTuple

import engineio
from engineio import socket as engineio_socket
from geventwebsocket import handler as geventwebsocket_handler
from geventwebsocket.websocket import Header
from wsaccel.xormask import createXorMasker

from .frames import BoundedWebSocket
from .room_index import IndexedRooms
from .server import ChatEngineServer, ChatServer, ChatSockets
from .socket import ChatSocket
from .websocket import WsConn

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
    Patch("engineio.server.socket.Socket", "ChatSocket, through ChatEngineServer.sockets",
          "engineio has no socket-class hook; the methods below"),
    Patch("engineio.socket.Socket._websocket_handler", "ChatSocket._websocket_handler",
          "the upgrade probe in the request's greenlet, then the connection leaves the request"
          " as a websocket.WsConn: no reader or writer greenlet per connection (idle RSS)"),
    Patch("engineio.socket.Socket.send", "ChatSocket.send",
          "on websocket a packet goes to the WsConn (held to the tick's end, one send), not"
          " to engine.io's queue"),
    Patch("engineio.socket.Socket.schedule_ping", "ChatSocket.schedule_ping",
          "a libev timer, not a sleeping greenlet per connection (idle RSS)"),
    Patch("geventwebsocket.websocket.Header.mask_payload", "wsaccel's XorMasker",
          "C instead of a Python loop per byte (~7 us -> 0.3 us per 125-byte frame)"),
    Patch("geventwebsocket.websocket.Header.unmask_payload", "wsaccel's XorMasker",
          "what WebSocket.read_frame calls for every client frame"),
    Patch("geventwebsocket.websocket.WebSocket.handler", "relied on by WsConn.detach",
          "the request's socket (detached from pywsgi) and the bytes its rfile read past the"
          " handshake become the WsConn's"),
    Patch("engineio.socket.Socket.handle_get_request", "ChatSocket.handle_get_request",
          "remembers the long-poll's TCP socket (runnode's handler puts it in environ), so"
          " cut_off() can shut down a polling client's response stuck in sendall; refuses"
          " (400) a session whose pong is overdue, at its deadline as engine.io does"),
    Patch("engineio.socket.Socket.close", "ChatSocket.close; relied on by sweeps.cut_off()",
          "a closed session stops counting as open at once (engineio removes it from"
          " Server.sockets up to ping_timeout later: a refused long-polling client's dead"
          " session kept a place); abort a slow client and drain Socket.queue and"
          " Server.sockets; the queue is unbounded"),
    Patch("engineio.server.Server._service_task", "ChatEngineServer._service_task (sweeps.service_forever)",
          "every session looked at once per ping_timeout as engineio does, a slice every 0.25 s:"
          " engineio slept between any two (16,667 sessions: ~830 wake-ups a second)"),
    Patch("engineio.server.Server._handle_connect", "ChatEngineServer._handle_connect",
          "when the node's ConnectionLimit opens no more sessions (half-open ones count), a handshake is refused"
          " (503) before a session exists"),
    Patch("geventwebsocket.handler.WebSocket", "frames.BoundedWebSocket",
          "a frame or message over max_http_buffer_size is refused at its header (close 1009),"
          " never buffered; the handler makes its WebSocket by this module name"),
    Patch("socketio.server.Server._handle_eio_connect", "ChatServer._handle_eio_connect",
          "keeps the strings of a session's environ, not the request's objects (idle RSS)"),
    Patch("socketio.server.Server._handle_eio_message", "relied on by WsConn._message",
          "a Socket.IO EVENT is decoded and its handler started in a greenlet (async_handlers),"
          " so the loop's read callback hands it over without a greenlet of its own"),
    Patch("socketio.base_manager.BaseManager.basic_disconnect", "room_index.IndexedRooms (in ZmqManager)",
          "the library scans every room (each sid is one) per disconnect: a storm is quadratic"),
)


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
    geventwebsocket_handler.WebSocket = BoundedWebSocket
    BoundedWebSocket.max_message_bytes = sio.eio.max_http_buffer_size
    WsConn.max_message_bytes = sio.eio.max_http_buffer_size
    WsConn.events_in_loop = sio.async_handlers is True
    verify(sio)


def check_versions():
    for dist, pinned in PINNED_VERSIONS.items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = "none"
        if installed != pinned:
            raise RuntimeError("%s %s is installed; chat/engine/patches.py is written against %s"
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
                       " chat/engine/patches.py" % target)


def verify(sio):
    """Raise RuntimeError naming the first target of PATCHES not in effect on ``sio``."""
    eio = getattr(sio, "eio", None)
    checks = {
        "socketio.Server._engineio_server_class": isinstance(eio, ChatEngineServer),
        "engineio.server.socket.Socket":
            eio is not None and isinstance(eio.sockets, ChatSockets)
            and resolve("engineio.server.socket.Socket") is engineio_socket.Socket,
        "geventwebsocket.websocket.Header.mask_payload": Header.mask_payload is _unmask,
        "geventwebsocket.websocket.Header.unmask_payload": Header.unmask_payload is _unmask,
        "geventwebsocket.handler.WebSocket": geventwebsocket_handler.WebSocket is BoundedWebSocket,
        "engineio.server.Server._handle_connect":
            isinstance(eio, ChatEngineServer)
            and ChatEngineServer._handle_connect is not engineio.Server._handle_connect,
        "engineio.server.Server._service_task":
            isinstance(eio, ChatEngineServer)
            and ChatEngineServer._service_task is not engineio.Server._service_task,
        "engineio.socket.Socket.close":
            {"wait", "abort", "reason"} <= set(inspect.signature(engineio_socket.Socket.close).parameters)
            and ChatSocket.close is not engineio_socket.Socket.close,
        "socketio.base_manager.BaseManager.basic_disconnect": isinstance(sio.manager, IndexedRooms),
        "socketio.server.Server._handle_eio_connect": isinstance(sio, ChatServer),
        "socketio.server.Server._handle_eio_message": True,    # resolved by install
    }
    for name in ("_websocket_handler", "send", "schedule_ping", "handle_get_request"):
        checks["engineio.socket.Socket." + name] = (
            getattr(ChatSocket, name) is not getattr(engineio_socket.Socket, name))
    checks["geventwebsocket.websocket.WebSocket.handler"] = True   # resolved by install
    for patch in PATCHES:
        if not checks[patch.target]:
            raise RuntimeError("patch of %s (%s) is not in effect" % (patch.target, patch.replacement))
