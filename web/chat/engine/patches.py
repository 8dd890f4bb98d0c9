"""Every place where the node replaces or reaches into python-engineio / gevent-websocket.

:data:`PATCHES` lists them: the library target, what replaces it (or, for
"relied on" rows, which of our code uses it), why, and how :func:`verify` sees
that it is in effect on the real server and library.  They are written against
the versions in :data:`PINNED_VERSIONS` (the pins of requirements.txt), and
:func:`install` refuses to start a node on any other version, or when a target
has gone: a patch that cannot apply fails loudly instead of silently leaving
the library's behaviour in place.  The server classes that apply most of them
are in :mod:`chat.engine.server`; library classes stay untouched except what has
no per-server seam (gevent-websocket's handler module, :mod:`chat.engine.frames`).
"""
import importlib
import importlib.metadata
import inspect
from types import SimpleNamespace
from typing import Callable, NamedTuple

from geventwebsocket import handler as geventwebsocket_handler

from .frames import NO_APP, BoundedWebSocket
from .room_index import IndexedRooms
from .server import ChatEngineServer, ChatServer, ChatSockets
from .socket import ChatSocket
from .websocket import WsConn

# Read from the installed distributions, compared with requirements.txt's pins.
PINNED_VERSIONS = {
    "python-engineio": "4.15.1",
    "python-socketio": "5.18.1",
    "gevent-websocket": "0.10.1",
}


class Patch(NamedTuple):
    target: str        # the library's name for what is replaced or relied on
    replacement: str   # ours
    why: str
    verify: Callable   # (sio) -> True while the patch is in effect on that server


def _calls(caller, name):
    """True while the library function ``caller`` still names ``name``: the seam
    through which the library reaches what we replace or rely on."""
    return name in resolve(caller).__code__.co_names


def _probe_socket(eio):
    """A socket as engineio makes one (by its module's name), stored in a table of the
    server's own class; an empty table, so that the probe opens no session."""
    socket = resolve("engineio.server.socket.Socket")(eio, "patches-verify")
    table = type(eio.sockets)()
    table[socket.sid] = socket
    return table[socket.sid]


def _socket_override(name, caller):
    """A socket of the server's table runs ChatSocket's ``name``, which takes what
    engineio's does, and engineio still calls it at ``caller``."""
    ours = getattr(ChatSocket, name)

    def in_effect(sio):
        return (getattr(type(_probe_socket(sio.eio)), name) is ours
                and inspect.signature(resolve("engineio.socket.Socket." + name)) == inspect.signature(ours)
                and _calls(caller, name))
    return in_effect


def _engine_override(name, caller):
    """The server runs ChatEngineServer's ``name``, which takes what engineio's does, and
    engineio still calls it at ``caller``."""
    ours = getattr(ChatEngineServer, name)

    def in_effect(sio):
        return (getattr(type(sio.eio), name) is ours
                and inspect.signature(resolve("engineio.server.Server." + name)) == inspect.signature(ours)
                and _calls(caller, name))
    return in_effect


def _binary_packets_capped(sio):
    """python-socketio still keeps a pending binary packet in ``_binary_packet`` with its
    claimed ``attachment_count`` and ``attachments``, and ChatServer's message handler runs."""
    header = resolve("socketio.packet.Packet")(encoded_packet='52-["x",{"_placeholder":true,"num":0}]')
    return (type(sio)._handle_eio_message is ChatServer._handle_eio_message
            and header.attachment_count == 2 and header.attachments == []
            and isinstance(sio._binary_packet, dict)
            and _calls("socketio.server.Server._handle_eio_message", "_binary_packet")
            and _calls("socketio.base_server.BaseServer.__init__", "_handle_eio_message"))


def _keeps_its_handler(sio):
    handler = object()
    ws = resolve("geventwebsocket.websocket.WebSocket")({}, SimpleNamespace(read=None, write=None), handler)
    return getattr(ws, "handler", None) is handler


PATCHES = (
    Patch("socketio.Server._engineio_server_class", "ChatServer._engineio_server_class",
          "the seam: the Engine.IO server below is ChatEngineServer",
          lambda sio: (isinstance(sio.eio, ChatEngineServer)
                       and _calls("socketio.base_server.BaseServer.__init__", "_engineio_server_class"))),
    Patch("engineio.server.socket.Socket", "ChatSocket, through ChatEngineServer.sockets",
          "engineio has no socket-class hook; the methods below",
          lambda sio: isinstance(sio.eio.sockets, ChatSockets) and type(_probe_socket(sio.eio)) is ChatSocket),
    Patch("engineio.socket.Socket._websocket_handler", "ChatSocket._websocket_handler",
          "the upgrade probe in the request's greenlet, then the connection leaves the request"
          " as a websocket.WsConn: no reader or writer greenlet per connection (idle RSS)",
          _socket_override("_websocket_handler", "engineio.socket.Socket._upgrade_websocket")),
    Patch("engineio.socket.Socket.send", "ChatSocket.send",
          "on websocket a packet goes to the WsConn (held to the tick's end, one send), not"
          " to engine.io's queue",
          _socket_override("send", "engineio.server.Server.send_packet")),
    Patch("engineio.socket.Socket.schedule_ping", "ChatSocket.schedule_ping",
          "a libev timer, not a sleeping greenlet per connection (idle RSS)",
          _socket_override("schedule_ping", "engineio.socket.Socket.receive")),
    Patch("geventwebsocket.websocket.WebSocket.handler", "relied on by WsConn.detach",
          "the request's socket (detached from pywsgi) and the bytes its rfile read past the"
          " handshake become the WsConn's",
          _keeps_its_handler),
    Patch("engineio.socket.Socket.handle_get_request", "ChatSocket.handle_get_request",
          "remembers the long-poll's TCP socket (runnode's handler puts it in environ), so"
          " cut_off() can shut down a polling client's response stuck in sendall; refuses"
          " (400) a session whose pong is overdue, at its deadline as engine.io does; a poll"
          " racing its session's upgrade waits for it and is 400 once upgraded, not 200 NOOP",
          _socket_override("handle_get_request", "engineio.server.Server.handle_request")),
    Patch("engineio.socket.Socket.close", "ChatSocket.close; relied on by sweeps.cut_off()",
          "a closed session stops counting as open at once (engineio removes it from"
          " Server.sockets up to ping_timeout later: a refused long-polling client's dead"
          " session kept a place); abort a slow client and drain Socket.queue and"
          " Server.sockets; the queue is unbounded",
          _socket_override("close", "engineio.server.Server.disconnect")),
    Patch("engineio.server.Server._service_task", "ChatEngineServer._service_task (sweeps.service_forever)",
          "every session looked at once per ping_timeout as engineio does, a slice every 0.25 s:"
          " engineio sleeps between any two sessions, hundreds of wake-ups a second on a full node",
          lambda sio: (type(sio.eio)._service_task is ChatEngineServer._service_task
                       and _calls("engineio.server.Server._handle_connect", "_service_task"))),
    Patch("engineio.server.Server._handle_connect", "ChatEngineServer._handle_connect",
          "when the node's ConnectionLimit opens no more sessions (half-open ones count), a"
          " handshake is refused (503) before a session exists",
          lambda sio: (type(sio.eio)._handle_connect is ChatEngineServer._handle_connect
                       and inspect.signature(resolve("engineio.server.Server._handle_connect"))
                       == inspect.signature(ChatEngineServer._handle_connect)
                       and _calls("engineio.server.Server.handle_request", "_handle_connect"))),
    Patch("geventwebsocket.handler.WebSocket", "frames.BoundedWebSocket",
          "a frame or message over max_http_buffer_size is refused at its header (close 1009),"
          " never buffered; the handler makes its WebSocket by this module name",
          lambda sio: (geventwebsocket_handler.WebSocket is BoundedWebSocket
                       and BoundedWebSocket.max_message_bytes == sio.eio.max_http_buffer_size
                       and _calls("geventwebsocket.handler.WebSocketHandler.upgrade_connection",
                                  "WebSocket"))),
    Patch("geventwebsocket.websocket.WebSocket.current_app", "frames.BoundedWebSocket.current_app",
          "the library defines a class per call, twice per connection: cyclic garbage per"
          " dropped connection, freed only by a full collection",
          lambda sio: (geventwebsocket_handler.WebSocket.current_app is NO_APP
                       and _calls("geventwebsocket.websocket.WebSocket.receive", "current_app"))),
    Patch("socketio.server.Server._handle_eio_connect", "ChatServer._handle_eio_connect",
          "keeps the strings of a session's environ, not the request's objects (idle RSS)",
          lambda sio: (type(sio)._handle_eio_connect is ChatServer._handle_eio_connect
                       and _calls("socketio.base_server.BaseServer.__init__", "_handle_eio_connect"))),
    Patch("socketio.server.Server._handle_eio_message", "relied on by WsConn._message",
          "a Socket.IO EVENT is decoded and its handler started in a greenlet (async_handlers),"
          " so the loop's read callback hands it over without a greenlet of its own",
          lambda sio: (WsConn.events_in_loop is (sio.async_handlers is True)
                       and _calls("socketio.server.Server._handle_eio_message", "_handle_event")
                       and _calls("socketio.server.Server._handle_event", "start_background_task"))),
    Patch("engineio.server.Server.handle_request", "ChatEngineServer.handle_request",
          "refuses JSONP polling (400) and a long-polling POST whose body it will not read (no"
          " or a bad Content-Length, chunked: 400; over max_http_buffer_size: 413) at once, the"
          " session closed and the rest of the request unread; other refused POSTs close too",
          _engine_override("handle_request", "engineio.middleware.WSGIApp.__call__")),
    Patch("engineio.server.Server.disconnect", "ChatEngineServer.disconnect",
          "closes a session without waiting for a long-polling client to fetch its last packets:"
          " a refused POST waited for a GET that never came (sockets in CLOSE-WAIT)",
          _engine_override("disconnect", "engineio.server.Server.handle_request")),
    Patch("engineio.socket.Socket.handle_post_request", "ChatSocket.handle_post_request",
          "an undecodable or short POST body is refused (400, session closed, one rate-limited"
          " line) where engineio logged a traceback and answered 200",
          _socket_override("handle_post_request", "engineio.server.Server.handle_request")),
    Patch("socketio.packet.Packet.add_attachment", "ChatServer._handle_eio_message (before it)",
          "binary attachments capped (MAX_ATTACHMENTS, one message's bytes) and a malformed"
          " packet refused; either closes the connection with one rate-limited log line",
          _binary_packets_capped),
    Patch("engineio.base_server.BaseServer._cors_allowed_origins", "relied on by edge.OriginPolicy",
          "a callable cors_allowed_origins is asked (origin, environ): one list for every node,"
          " and a node's own origin at that node",
          lambda sio: _calls("engineio.base_server.BaseServer._cors_allowed_origins", "callable")),
    Patch("gevent.pywsgi.WSGIHandler.handle_one_request", "relied on by runnode's handler",
          "its request-head deadline wraps handle_one_request and ends in read_request; a timeout"
          " mid-head goes to _handle_client_error, which closes quietly; after the answer pywsgi"
          " reads what is left of a body (_discard), nothing once the refusal shut reading down",
          lambda sio: (_calls("gevent.pywsgi.WSGIHandler.handle_one_request", "read_request")
                       and _calls("gevent.pywsgi.WSGIHandler.handle_one_request", "_handle_client_error")
                       and _calls("gevent.pywsgi.WSGIHandler.handle_one_response", "_discard"))),
    Patch("socketio.base_manager.BaseManager.basic_disconnect", "room_index.IndexedRooms (in LinkManager)",
          "the library scans every room (each sid is one) per disconnect: a storm is quadratic",
          lambda sio: (isinstance(sio.manager, IndexedRooms)
                       and type(sio.manager).basic_disconnect is IndexedRooms.basic_disconnect)),
)


def install(sio):
    """Check versions and targets, apply the process-wide patches, verify all of them.

    :param sio: a :class:`ChatServer`.
    :raises RuntimeError: naming the package or target that does not fit.
    """
    check_versions()
    for patch in PATCHES:
        resolve(patch.target)
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
    for patch in PATCHES:
        try:
            in_effect = patch.verify(sio)
        except Exception:                # noqa: BLE001 - a library that changed shape
            in_effect = False
        if not in_effect:
            raise RuntimeError("patch of %s (%s) is not in effect" % (patch.target, patch.replacement))
