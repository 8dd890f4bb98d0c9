"""The node's Socket.IO and Engine.IO servers, and the Engine.IO session table.

:class:`ChatServer` is python-socketio's ``Server`` whose ``_engineio_server_class()``
is :class:`ChatEngineServer`.  python-engineio has no socket-class hook
(``Server._handle_connect`` calls ``engineio.socket.Socket`` by module name), so the
server's ``sockets`` table (:class:`ChatSockets`) turns each new ``Socket`` into a
:class:`~chat.engine.socket.ChatSocket` as engineio stores it, before its OPEN packet
and its first ping.  Every library internal relied on is a row of
:data:`chat.engine.patches.PATCHES`; call :func:`chat.engine.patches.install` on a new server.
"""
import time

import engineio
import orjson
import socketio
from engineio import socket as engineio_socket
from engineio.async_drivers import gevent as engineio_gevent

from . import frames
from .limit import ConnectionLimit
from .room_index import IndexedManager
from .socket import ChatSocket
from .sweeps import open_sessions, service_forever
from .websocket import WsConn


class ChatSockets(dict):
    """engineio's sid -> socket table, making every socket stored in it a ChatSocket.

    It also keeps what the periodic sweeps (sweeps.py) look at, so that a
    sweep costs what it finds, not one look at every connection each second:
    ``opened`` (sid -> when, oldest first) until the session is found connected,
    closed or stale by :func:`half_open`, and ``backlogged``, the sids that
    queued a packet (ChatSocket.send), until :func:`backlogs` finds them drained.
    """

    def __init__(self, sockets=()):
        super().__init__()
        self.opened = {}
        self.backlogged = set()
        self.gone = set()       # closed sessions engineio has not removed yet (ChatSocket.close)
        for sid, socket in dict(sockets).items():
            self[sid] = socket

    def __delitem__(self, sid):
        super().__delitem__(sid)
        self.gone.discard(sid)

    def pop(self, sid, *default):
        self.gone.discard(sid)
        return super().pop(sid, *default)

    def __setitem__(self, sid, socket):
        if type(socket) is engineio_socket.Socket:
            socket.__class__ = ChatSocket    # same layout: a subclass adding methods only
        elif not isinstance(socket, ChatSocket):
            raise RuntimeError("engineio.server.socket.Socket made a %s, not an"
                               " engineio.socket.Socket" % type(socket).__name__)
        self.opened[sid] = time.monotonic()  # for half_open()
        super().__setitem__(sid, socket)


class ChatEngineServer(engineio.Server):
    """engineio's Server (gevent mode, gevent-websocket) with our socket class.

    :param max_connections: the node's :class:`ConnectionLimit` (``limit``); None: no limit.
    """

    def __init__(self, *args, max_connections=None, **kwargs):
        super().__init__(*args, **kwargs)
        websocket = self._async.get("websocket")
        if websocket is not engineio_gevent.WebSocketWSGI or engineio_gevent.SimpleWebSocketWSGI:
            raise RuntimeError("engineio.async_drivers.gevent._async[websocket] is %r (async"
                               " mode %s): gevent mode with gevent-websocket is required"
                               % (websocket, self.async_mode))
        self.limit = ConnectionLimit(self.count_open_sessions, max_connections)

    def count_open_sessions(self):
        return open_sessions(self.sockets)

    def _handle_connect(self, environ, start_response, transport, jsonp_index=None):
        if self.limit.sessions_full():
            ws = environ.get("wsgi.websocket")
            if ws is not None:           # already upgraded (101) by gevent-websocket
                ws.refuse(frames.CLOSE_TRY_AGAIN_LATER, b"too many connections")
                return []
            detail = "this node holds %d sessions, its limit; try again" % self.limit.max_sessions
            return {"status": "503 Service Unavailable",
                    "headers": [("Content-Type", "application/json")],
                    "response": orjson.dumps({"error": "too_many_connections", "detail": detail})}
        return super()._handle_connect(environ, start_response, transport, jsonp_index)

    def _service_task(self):
        service_forever(self)

    def sessions_by_transport(self):
        """Open Engine.IO sessions by transport, from counts kept as they open and close:
        a metrics scrape never walks every connection."""
        websocket = WsConn.open
        return {"websocket": websocket, "polling": max(0, self.count_open_sessions() - websocket)}

    @property
    def sockets(self):
        return self._sockets

    @sockets.setter
    def sockets(self, sockets):          # engineio assigns {} in __init__ and disconnect()
        self._sockets = ChatSockets(sockets)


class ChatServer(socketio.Server):
    """python-socketio's Server on :class:`ChatEngineServer`; call ``patches.install`` next.

    Its client manager must mix in ``IndexedRooms`` (default: an :class:`IndexedManager`);
    ``max_connections`` and engineio's options go to the :class:`ChatEngineServer`.
    """

    def __init__(self, *args, client_manager=None, **kwargs):
        super().__init__(*args, client_manager=client_manager or IndexedManager(), **kwargs)

    def _engineio_server_class(self):
        return ChatEngineServer

    def _handle_eio_connect(self, eio_sid, environ):
        """python-socketio keeps each session's environ for the session's life; the
        request's objects in it (input stream, buffered reader, socket) with it."""
        return super()._handle_eio_connect(eio_sid, strings_of(environ))


def strings_of(environ):
    """The environ's CGI and header variables: what a Socket.IO connect handler reads."""
    return {key: value for key, value in environ.items() if type(value) is str}
