"""engineio's Socket as a chat node uses it: a websocket without greenlets, a libev ping timer.

Every engineio internal this relies on is a row of ``patches.PATCHES``; the
server turns each new engineio ``Socket`` into a :class:`ChatSocket`
(``server.ChatSockets``).
"""
import collections
import logging
import time

import gevent
from engineio import packet as engineio_packet
from engineio import socket as engineio_socket
from engineio.exceptions import SocketIsClosedError, UnknownPacketError

from .websocket import WsConn

log = logging.getLogger(__name__)

# The WSGI environ key under which a node's request handler puts the request's TCP
# socket (runnode's handler, through TcpSocketInEnviron).
TCP_SOCKET_KEY = "chat.tcp_socket"
# A long-poll that arrives while its session upgrades waits this long for the client's
# UPGRADE packet (sent right after the probe), then gets 400 as engine.io answers any poll
# of an upgraded session; engineio answered 200 NOOP in that window.
UPGRADE_WAIT_S = 1.0
UPGRADE_WAIT_STEP_S = 0.005
UPGRADED_POLL = {"status": "400 BAD REQUEST", "headers": [("Content-Type", "text/plain")],
                 "response": b"Unexpected HTTP request"}
# A second websocket for a session another websocket is upgrading (engine.io closes it).
SECOND_UPGRADE = {"status": "400 BAD REQUEST", "headers": [("Content-Type", "text/plain")],
                  "response": b"Session is upgrading already"}


class TcpSocketInEnviron:
    """A gevent pywsgi handler mixin: each request's TCP socket in its environ
    (``TCP_SOCKET_KEY``), so that a long-poll stuck writing to a client that
    stopped reading can be shut down (``sweeps.cut_off``)."""

    def get_environ(self):
        environ = super().get_environ()
        environ[TCP_SOCKET_KEY] = self.socket
        return environ


class ChatSocket(engineio_socket.Socket):
    """engineio's Socket on a :class:`WsConn` once on websocket, with a libev ping timer."""

    conn = None             # the WsConn, once on websocket (also the socket's queue)
    poll_connection = None  # the TCP socket of the latest long-poll GET

    def handle_get_request(self, environ, start_response):
        """A long-poll, or the upgrade, of a session that is still alive.

        A session whose pong is overdue is gone at its deadline, as engine.io's own
        ping-timeout timer has it; engineio's sweep would only find it on its next
        round (up to ``ping_timeout`` later) and answer the poll meanwhile.  Closed
        here, the request gets 400 (engineio's answer to ``EngineIOError``).  A poll that
        races its session's upgrade waits for it (``UPGRADE_WAIT_S``): upgraded, it is 400.
        A second websocket while one probes is 400, as engine.io closes it, once the probe is
        done (or ``UPGRADE_WAIT_S``): engineio let it probe too, holding the session's upgrade
        state for up to a ping period, and refused at once its close could reach the client
        before the first one's ``3probe``."""
        if not self.check_ping_timeout():
            raise SocketIsClosedError()
        upgrade = "upgrade" in environ.get("HTTP_CONNECTION", "").lower()
        if self.upgrading:
            deadline = time.monotonic() + UPGRADE_WAIT_S
            while self.upgrading and time.monotonic() < deadline:
                gevent.sleep(UPGRADE_WAIT_STEP_S)
            if upgrade:
                return SECOND_UPGRADE
            if self.upgraded:
                return UPGRADED_POLL
        self.poll_connection = environ.get(TCP_SOCKET_KEY)
        return super().handle_get_request(environ, start_response)

    def handle_post_request(self, environ):
        """engineio's, refusing a body it cannot decode (400, the session closed, one rate-limited
        log line) where engineio logged a traceback and answered 200 with the session kept.
        The Content-Length was checked before (``ChatEngineServer._refusal``)."""
        try:
            return super().handle_post_request(environ)
        except (ValueError, TypeError, KeyError, IndexError, OSError) as exc:
            # UnicodeDecodeError is a ValueError; OSError: a body short of its Content-Length
            # (the client gone, or the read timed out)
            self.server.bad_input.refused(environ.get("REMOTE_ADDR"), "a malformed long-polling POST", exc)
            raise UnknownPacketError() from exc

    def close(self, wait=True, abort=False, reason=None):
        """engineio's close, and the closed session stops counting as open at once.

        engineio leaves a closed long-polling session in ``Server.sockets`` until a
        pending GET returns or its sweep comes by (one look at each session per
        ``ping_timeout``, 20 s); a refused client closes with a CLOSE packet and no GET
        pending, and its dead session kept a place of the node's connection limit.
        It stays in the table (a late request for it is answered "Session is
        disconnected", as before) but in ``sockets.gone`` (``sweeps.open_sessions``)."""
        super().close(wait=wait, abort=abort, reason=reason)
        sockets = self.server.sockets
        if self.closed and sockets.get(self.sid) is self and hasattr(sockets, "gone"):
            sockets.gone.add(self.sid)

    def _websocket_handler(self, ws):
        """engine.io's handler up to the loop it would run for the connection's life: the
        upgrade probe of a long-polling client, then the connection leaves the request."""
        gws = getattr(ws, "_sock", None)
        if getattr(getattr(gws, "handler", None), "socket", None) is None:
            raise RuntimeError("engineio.socket.Socket._websocket_handler got %r, not"
                               " engineio's gevent-websocket WebSocketWSGI" % (ws,))
        if self.connected:
            if not self._upgrade_probe(ws):
                return []
        else:
            self.connected = True
            self.upgraded = True
        conn = WsConn.detach(self, gws)
        queued, self.queue = self.queue, conn
        while not queued.empty():        # the OPEN packet, what the upgrade held back
            pkt = queued.get_nowait()
            # but the probe's NOOP, there when no poll was pending to take it: it means
            # "end this poll", nothing on a websocket (engine.io sends it to a pending poll only)
            if pkt is not None and pkt.packet_type != engineio_packet.NOOP:
                conn.put(pkt)
        self.conn = conn
        self.poll_connection = None
        if self.closed:                  # closed while the handshake ran
            conn.put(None)
        return []

    def _upgrade_probe(self, ws):
        """engine.io's upgrade exchange (``2probe``, ``3probe``, ``5``); False if it fails."""
        self.upgrading = True            # hold packet sends during the upgrade
        ws._sock.handler.socket.settimeout(self.server.ping_interval + self.server.ping_timeout)
        try:
            pkt = engineio_packet.Packet(encoded_packet=ws.wait())
            if pkt.packet_type != engineio_packet.PING or pkt.data != "probe":
                return False
            ws.send(engineio_packet.Packet(engineio_packet.PONG, data="probe").encode())
            self.queue.put(engineio_packet.Packet(engineio_packet.NOOP))  # ends the poll
            pkt = engineio_packet.Packet(encoded_packet=ws.wait())
            if pkt.packet_type != engineio_packet.UPGRADE:
                self.upgraded = False
                return False
            self.upgraded = True
            return True
        except Exception:                # noqa: BLE001 - a client gone or talking nonsense
            return False
        finally:
            self.upgrading = False

    def close_soon(self):
        """Close this socket, whose connection ended, from the node's one closer (below)."""
        _close_soon(self)

    def send(self, pkt):
        conn = self.conn
        if conn is None:                 # long-polling, or before the websocket is ours
            self.server.sockets.backlogged.add(self.sid)   # for sweeps.backlogs
            return super().send(pkt)
        if self.check_ping_timeout():    # False: being closed, dropped as engineio's send does
            conn.put(pkt)

    def schedule_ping(self):
        """The next ping on a libev timer.

        engineio starts a greenlet per connection that sleeps through the ping
        interval; an idle connection then holds it (its stack and Thread object,
        ~6 KB) for good.  A timer holds a few hundred bytes; on websocket the ping
        is written from the timer's callback, on long-polling from a short-lived greenlet.
        The pong's deadline runs from the ping's due time, as engine.io's timers have it, not
        from when a busy node got round to the timer: a client that waited out the interval
        and the timeout finds its session gone, however late the timer fired.
        """
        if self.last_ping:               # only once the previous ping was answered
            self.last_ping = None
            timer = gevent.get_hub().loop.timer(self.server.ping_interval)
            timer.start(_ping_due, self, timer, time.time() + self.server.ping_interval)


_PING = engineio_packet.Packet(engineio_packet.PING)   # its frame is built once


def _ping_due(socket, timer, due):
    timer.close()
    if not socket.closing and not socket.closed:
        socket.last_ping = min(time.time(), due)   # libev's clock may run a little behind
        if socket.conn is not None:
            socket.conn.put(_PING)
        else:
            gevent.spawn(_send_ping, socket)


def _send_ping(socket):
    try:
        socket.send(engineio_packet.Packet(engineio_packet.PING))
    except SocketIsClosedError:
        pass                             # closed since the timer fired


_to_close = collections.deque()  # Engine.IO sockets whose connection ended
_closer = []                     # the greenlet closing them, while there is one
CLOSE_BATCH = 50                 # closes between two yields to the rest of the node


def _close_soon(socket):
    """Close an Engine.IO socket whose connection ended (its disconnect handlers run).

    One greenlet closes them all, yielding after every ``CLOSE_BATCH``: when thousands
    of clients drop at once, a greenlet each would all run ahead of the broker link's
    presence keepalive, which would come late enough for the broker to take the node
    for gone; this way the rest of the node runs between batches."""
    _to_close.append(socket)
    if not _closer:
        _closer.append(gevent.spawn(_close_queued))


def _close_queued():
    try:
        done = 0
        while _to_close:
            socket = _to_close.popleft()
            try:
                socket.close(wait=False, abort=True, reason=socket.server.reason.TRANSPORT_CLOSE)
            except Exception:        # noqa: BLE001 - one handler's failure stops no other close
                log.exception("websocket %s: close failed", socket.sid)
            sockets = socket.server.sockets
            if sockets.get(socket.sid) is socket:
                del sockets[socket.sid]
            done += 1
            if done % CLOSE_BATCH == 0:
                gevent.sleep(0)
    finally:
        del _closer[:]
