"""gevent-websocket's WebSocket reading frames within a size limit.

gevent-websocket reads every frame's whole payload (``raw_read(header.length)``)
and joins continuation frames into one message before anyone can look at its
size, so Engine.IO's ``max_http_buffer_size`` is only checked on a message the
node already holds: one frame announcing 64 MB, or 300 MB in continuation
frames, grew a node by the amount sent.  :class:`BoundedWebSocket` checks each
frame's announced length against what its message may still take before reading
its payload; a frame or message over ``max_message_bytes`` is answered with a
close frame 1009 (message too big, RFC 6455) and the connection ends, nothing of
the oversize payload read.

gevent-websocket's handler makes its WebSocket by module name
(``geventwebsocket.handler.WebSocket``) and the class has ``__slots__``, so
``patches.install`` puts :class:`BoundedWebSocket` in that name, with the
server's ``max_http_buffer_size`` as the limit; the row is in ``patches.PATCHES``.
"""
import struct

from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.websocket import Header, WebSocket

CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
# RFC 6455 5.5: a control frame (close, ping, pong) carries at most 125 bytes.
CONTROL_FRAME_MAX_BYTES = 125


class MessageTooBig(WebSocketError):
    """A frame or message over the limit (the connection was closed with 1009)."""


class BoundedWebSocket(WebSocket):
    """gevent-websocket's WebSocket refusing frames and messages over ``max_message_bytes``."""

    __slots__ = ("_received",)       # bytes of the current message so far
    max_message_bytes = 1_000_000    # the server's max_http_buffer_size (patches.install)

    def __init__(self, environ, stream, handler):
        super().__init__(environ, stream, handler)
        self._received = 0

    def read_frame(self):
        """gevent-websocket's ``read_frame``, with the limit checked at the header."""
        header = Header.decode_header(self.stream)
        if header.flags:
            raise ProtocolError
        limit = self._allowance(header)
        if header.length > limit:
            self.refuse(CLOSE_MESSAGE_TOO_BIG, b"message too big")
            raise MessageTooBig("frame of %d bytes; %d allowed" % (header.length, limit))
        if not header.length:
            return header, b""
        payload = self.raw_read(header.length)
        if len(payload) != header.length:
            raise WebSocketError("Unexpected EOF reading frame payload")
        if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY, self.OPCODE_CONTINUATION):
            self._received += header.length
        if header.mask:
            payload = header.unmask_payload(payload)
        return header, payload

    def refuse(self, code, reason=b""):
        """Close with ``code``.  gevent-websocket's ``close(code)`` never sends its code, so
        the close frame is written here, then the socket is marked closed as ``close`` does."""
        try:
            self.send_frame(struct.pack("!H", code) + reason, self.OPCODE_CLOSE)
        except WebSocketError:
            pass                                     # the client is gone already
        self.closed = True
        self.stream = self.raw_write = self.raw_read = self.environ = None

    def _allowance(self, header):
        """Bytes this frame may carry: what its message has left, or a control frame's 125."""
        if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY):
            self._received = 0                       # a new message begins
        elif header.opcode != self.OPCODE_CONTINUATION:
            return CONTROL_FRAME_MAX_BYTES
        return self.max_message_bytes - self._received

