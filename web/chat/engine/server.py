"""The node's Socket.IO and Engine.IO servers, and the Engine.IO session table.

:class:`ChatServer` is python-socketio's ``Server`` whose ``_engineio_server_class()``
is :class:`ChatEngineServer`.  python-engineio has no socket-class hook
(``Server._handle_connect`` calls ``engineio.socket.Socket`` by module name), so the
server's ``sockets`` table (:class:`ChatSockets`) turns each new ``Socket`` into a
:class:`~chat.engine.socket.ChatSocket` as engineio stores it, before its OPEN packet
and its first ping.  Every library internal relied on is a row of
:data:`chat.engine.patches.PATCHES`; call :func:`chat.engine.patches.install` on a new server.
"""
import socket as stdlib_socket
import time
import urllib.parse

import engineio
import orjson
import socketio
from engineio import socket as engineio_socket
from engineio.async_drivers import gevent as engineio_gevent

from . import frames
from .bad_input import BadInputLog
from .handshake_rate import HandshakeRate
from .limit import ConnectionLimit
from .room_index import IndexedManager
from .socket import TCP_SOCKET_KEY, ChatSocket
from .sweeps import open_sessions, service_forever
from .websocket import WsConn


# Attachments of one binary packet at most (the official Socket.IO suite sends two).
MAX_ATTACHMENTS = 10


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
    :param handshake_rate: ``(per second, burst)`` of new sessions per client address
        (:class:`HandshakeRate`); None: no limit.
    """

    def __init__(self, *args, max_connections=None, handshake_rate=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_input = BadInputLog()
        self.handshakes = HandshakeRate(*handshake_rate) if handshake_rate else None
        websocket = self._async.get("websocket")
        if websocket is not engineio_gevent.WebSocketWSGI or engineio_gevent.SimpleWebSocketWSGI:
            raise RuntimeError("engineio.async_drivers.gevent._async[websocket] is %r (async"
                               " mode %s): gevent mode with gevent-websocket is required"
                               % (websocket, self.async_mode))
        self.limit = ConnectionLimit(self.count_open_sessions, max_connections)

    def count_open_sessions(self):
        return open_sessions(self.sockets)

    def handle_request(self, environ, start_response):
        """engineio's, after the refusals it does not make: JSONP polling, and a long-polling
        POST whose body is not read (no or a bad ``Content-Length``, chunked, or over
        ``max_http_buffer_size``).  engineio answered an oversized POST never (its session's
        close waited for a GET), and read a chunked one to its end whatever its size."""
        refusal = self._refusal(environ)
        if refusal is None:
            if environ.get("REQUEST_METHOD") == "POST":
                start_response = _closing_unless_ok(start_response)
            return super().handle_request(environ, start_response)
        status, error, detail = refusal
        headers = [("Content-Type", "application/json")]
        if environ.get("REQUEST_METHOD") == "POST":
            self._refuse_body(environ)
            headers.append(("Connection", "close"))
        start_response(status, headers)
        return [orjson.dumps({"error": error, "detail": detail})]

    def _refusal(self, environ):
        """``(status, error, detail)`` for a request refused before engineio sees it, or None."""
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if "j" in query:                 # served as script text: the contract has XHR polling only
            return "400 Bad Request", "invalid_transport", "JSONP polling is not served"
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        length = environ.get("CONTENT_LENGTH") or ""
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or not length.isdigit():
            return "400 Bad Request", "invalid_payload", "a POST needs a Content-Length"
        if int(length) > self.max_http_buffer_size:
            return ("413 Payload Too Large", "payload_too_large",
                    "a POST carries at most %d bytes" % self.max_http_buffer_size)
        return None

    def _refuse_body(self, environ):
        """Close the POST's session (as engineio does for an oversized one, without waiting
        for a GET) and read no more of the request: pywsgi would read the rest of its body
        after the answer, however long, to keep the connection alive."""
        sid = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("sid", [None])[0]
        socket = self.sockets.get(sid) if sid else None
        if socket is not None and not socket.upgraded:
            socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
        self.bad_input.refused(environ.get("REMOTE_ADDR"), "a long-polling POST",
                               "Content-Length %r" % environ.get("CONTENT_LENGTH"))
        tcp = environ.get(TCP_SOCKET_KEY)
        if tcp is not None:
            try:
                tcp.shutdown(stdlib_socket.SHUT_RD)
            except OSError:
                pass                     # the client is gone already

    def disconnect(self, sid=None):
        """engineio's, without waiting: engineio's ``Socket.close`` waits until a long-polling
        client has fetched its last packets, and a request refusing a session (an oversized or
        malformed POST) then waited for a GET that may never come.  The CLOSE packet stays
        queued for the client's next poll."""
        if sid is None:
            return super().disconnect()
        socket = self.sockets.get(sid)
        if socket is not None:
            socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
            if self.sockets.get(sid) is socket and socket.closed:
                del self.sockets[sid]

    def _handle_connect(self, environ, start_response, transport, jsonp_index=None):
        if self.limit.sessions_full():
            detail = "this node holds %d sessions, its limit; try again" % self.limit.max_sessions
            return self._refuse_handshake(environ, "503 Service Unavailable", "too_many_connections",
                                          detail, b"too many connections")
        if self.handshakes is not None and not self.handshakes.allow(environ.get("REMOTE_ADDR")):
            retry_s = self.handshakes.retry_after_s()
            return self._refuse_handshake(
                environ, "429 Too Many Requests", "rate_limited",
                "too many new connections from your address; try again in %d s" % retry_s,
                b"too many new connections", [("Retry-After", str(retry_s))])
        return super()._handle_connect(environ, start_response, transport, jsonp_index)

    @staticmethod
    def _refuse_handshake(environ, status, error, detail, reason, headers=()):
        """A handshake refused before a session exists: HTTP ``status`` with the contract's
        error shape, or close 1013 on a websocket gevent-websocket has upgraded already."""
        ws = environ.get("wsgi.websocket")
        if ws is not None:
            ws.refuse(frames.CLOSE_TRY_AGAIN_LATER, reason)
            return []
        return {"status": status, "headers": [("Content-Type", "application/json"), *headers],
                "response": orjson.dumps({"error": error, "detail": detail})}

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


def _closing_unless_ok(start_response):
    """``start_response`` adding ``Connection: close`` to a refusal: the rest of a refused
    POST's connection is not worth reading."""
    def start(status, headers, *exc_info):
        if not status.startswith("2"):
            headers = [*headers, ("Connection", "close")]
        return start_response(status, headers, *exc_info)
    return start


class ChatServer(socketio.Server):
    """python-socketio's Server on :class:`ChatEngineServer`; call ``patches.install`` next.

    Its client manager must mix in ``IndexedRooms`` (default: an :class:`IndexedManager`);
    ``max_connections`` and engineio's options go to the :class:`ChatEngineServer`.
    """

    def __init__(self, *args, client_manager=None, **kwargs):
        super().__init__(*args, client_manager=client_manager or IndexedManager(), **kwargs)

    def _engineio_server_class(self):
        return ChatEngineServer

    def _handle_eio_message(self, eio_sid, data):
        """python-socketio's, refusing what would grow the node or its log without bound.

        A BINARY_EVENT / BINARY_ACK header makes python-socketio take every later message of
        the connection as one of its attachments, as many as the header claims (10^12 was
        accepted).  The contract has no binary; the official protocol suite has a few small
        attachments, so they are allowed up to ``MAX_ATTACHMENTS``, binary only, together no
        more than one message (``max_http_buffer_size``).  A packet python-socketio cannot
        decode is refused as the reference server does.  Either closes the connection, with
        one rate-limited log line (:class:`BadInputLog`), no traceback."""
        pending = self._binary_packet.get(eio_sid)
        if pending is not None and not self._attachment_fits(pending, data):
            return self._refuse_packet(eio_sid, "a binary attachment over the limit")
        try:
            super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            return self._refuse_packet(eio_sid, "a malformed Socket.IO packet", exc)
        header = self._binary_packet.get(eio_sid)
        if header is not None and header is not pending and header.attachment_count > MAX_ATTACHMENTS:
            self._refuse_packet(eio_sid, "a binary packet of %d attachments" % header.attachment_count)

    def _attachment_fits(self, header, data):
        return (type(data) is bytes
                and sum(map(len, header.attachments)) + len(data) <= self.eio.max_http_buffer_size)

    def _refuse_packet(self, eio_sid, what, error=None):
        self._binary_packet.pop(eio_sid, None)
        self.eio.bad_input.refused(self.environ.get(eio_sid, {}).get("REMOTE_ADDR"), what, error)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.closed:
            socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)

    def _handle_eio_connect(self, eio_sid, environ):
        """python-socketio keeps each session's environ for the session's life; the
        request's objects in it (input stream, buffered reader, socket) with it."""
        return super()._handle_eio_connect(eio_sid, strings_of(environ))


def strings_of(environ):
    """The environ's CGI and header variables: what a Socket.IO connect handler reads."""
    return {key: value for key, value in environ.items() if type(value) is str}
