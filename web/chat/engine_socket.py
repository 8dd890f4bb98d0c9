"""engineio's Socket as a chat node uses it: the batching writer's hooks, a libev ping timer.

Every engineio internal this relies on is a row of ``patches.PATCHES``; the
server turns each new engineio ``Socket`` into a :class:`ChatSocket`
(``patches._ChatSockets``).
"""
import time

import gevent
from engineio import packet as engineio_packet
from engineio import socket as engineio_socket
from engineio.exceptions import QueueEmpty, SocketIsClosedError

from .websocket import BatchingWebSocketWSGI


# The WSGI environ key under which a node's request handler puts the request's TCP
# socket (runnode's handler, through TcpSocketInEnviron).
TCP_SOCKET_KEY = "chat.tcp_socket"


class TcpSocketInEnviron:
    """A gevent pywsgi handler mixin: each request's TCP socket in its environ
    (``TCP_SOCKET_KEY``), so that a long-poll stuck writing to a client that
    stopped reading can be shut down (``patches.cut_off``)."""

    def get_environ(self):
        environ = super().get_environ()
        environ[TCP_SOCKET_KEY] = self.socket
        return environ


class ChatSocket(engineio_socket.Socket):
    """engineio's Socket with the websocket writer's hooks and a libev ping timer."""

    writer = None         # the BatchingWebSocketWSGI, once upgraded to websocket
    poll_connection = None  # the TCP socket of the latest long-poll GET

    def handle_get_request(self, environ, start_response):
        self.poll_connection = environ.get(TCP_SOCKET_KEY)
        return super().handle_get_request(environ, start_response)

    def _websocket_handler(self, ws):
        if not isinstance(ws, BatchingWebSocketWSGI):
            raise RuntimeError("engineio.socket.Socket._websocket_handler got %r, not the"
                               " BatchingWebSocketWSGI that ChatEngineServer installs" % (ws,))
        self.writer = ws
        ws.wake = self._wake_writer
        return super()._websocket_handler(ws)

    def _wake_writer(self):
        """The writer finishes a held frame the kernel did not take, before anything else."""
        self.queue.put(engineio_packet.Packet(engineio_packet.NOOP))

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
            self.server.sockets.backlogged.add(self.sid)   # for patches.backlogs
            return super().send(pkt)     # nothing may overtake what is queued
        if not self.check_ping_timeout():
            return                       # being closed: dropped, as engineio's send does
        writer.write_now(pkt)            # held to the tick's end; the writer is woken
                                         # (wake) if the kernel does not take it all

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
