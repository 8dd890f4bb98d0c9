"""Engine.IO's gevent websocket wrapper, writing each batch of frames at once.

Profiling a node under load (docs/BENCHMARKS.md) showed a third of its CPU in
sending websocket frames: one ``sendall`` per frame, each with a
``getsockopt`` and gevent's timeout bookkeeping.  Engine.IO's writer greenlet
already takes every queued packet at once (``Socket.poll``) and then sends
them one by one; this wrapper counts that batch and writes all its frames with
one non-blocking ``send`` (falling back to gevent's ``sendall`` for whatever
the kernel did not take), so a client that gets ten messages in one wake-up
costs one syscall, not ten.

It relies on python-engineio's writer calling ``poll()`` and then ``send()``
per packet (true in 4.x, pinned in requirements.txt); the integration tests
exercise it on every delivery.
"""
from engineio.async_drivers import gevent as engineio_gevent
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.websocket import Header, WebSocket

_TEXT = WebSocket.OPCODE_TEXT
_BINARY = WebSocket.OPCODE_BINARY


class BatchingWebSocketWSGI(engineio_gevent.WebSocketWSGI):
    """Drop-in for engineio's gevent WebSocketWSGI (gevent-websocket based)."""

    def __init__(self, handler, server):
        super().__init__(handler, server)
        self._pending = []     # frames of the current batch, not yet written
        self._expected = 0     # packets of the current batch still to come
        socket = getattr(handler, "__self__", None)   # the engineio Socket
        if socket is not None:
            poll = socket.poll

            def counting_poll():
                packets = poll()
                if socket.upgraded:     # the websocket writer's poll, not a long-poll GET
                    self._expected = len(packets)
                return packets
            socket.poll = counting_poll

    def send(self, message):
        ws = self._sock
        if ws.closed:
            raise WebSocketError("socket is already closed")
        if isinstance(message, str):
            payload, opcode = message.encode("utf-8"), _TEXT
        else:
            payload, opcode = bytes(message), _BINARY
        self._pending.append(Header.encode_header(True, opcode, b"", len(payload), 0))
        self._pending.append(payload)
        if self._expected > 1:
            self._expected -= 1
            return                      # more of this batch to come
        self._expected = 0
        data, self._pending = b"".join(self._pending), []
        self._write(ws, data)

    @staticmethod
    def _write(ws, data):
        sock = ws.handler.socket        # gevent socket; its _sock is non-blocking
        try:
            sent = sock._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise WebSocketError(str(exc)) from None
        if sent < len(data):            # the kernel buffer is full: wait cooperatively
            try:
                sock.sendall(memoryview(data)[sent:])
            except OSError as exc:
                raise WebSocketError(str(exc)) from None


def install(sio):
    """Make this process's Engine.IO server use the batching wrapper."""
    if engineio_gevent.SimpleWebSocketWSGI is not None:
        raise RuntimeError("gevent-websocket is required for websocket support")
    sio.eio._async = dict(sio.eio._async, websocket=BatchingWebSocketWSGI)
