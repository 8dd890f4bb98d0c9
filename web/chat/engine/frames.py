"""gevent-websocket's WebSocket reading frames within a size limit.

gevent-websocket reads every frame's whole payload (``raw_read(header.length)``)
and joins continuation frames into one message before anyone can look at its
size, so Engine.IO's ``max_http_buffer_size`` is only checked on a message the
node already holds: one frame announcing 64 MB, or 300 MB in continuation
frames, grew a node by the amount sent.  :class:`BoundedWebSocket` checks each
frame's announced length against what its message may still take before reading
its payload; a frame or message over ``max_message_bytes`` is answered with a
close frame 1009 (message too big, RFC 6455) and the connection ends, nothing of
the oversize payload read.  gevent-websocket reads a connection only until its
handshake is done (``websocket.WsConn`` takes over); :class:`FrameParser` is
the same rule for the frames that arrive later, parsed as they come in.

gevent-websocket's handler makes its WebSocket by module name
(``geventwebsocket.handler.WebSocket``) and the class has ``__slots__``, so
``patches.install`` puts :class:`BoundedWebSocket` in that name, with the
server's ``max_http_buffer_size`` as the limit; the row is in ``patches.PATCHES``.
"""
import struct

from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.websocket import Header, WebSocket
from wsaccel.xormask import createXorMasker

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
# RFC 6455 5.5: a control frame (close, ping, pong) carries at most 125 bytes.
CONTROL_FRAME_MAX_BYTES = 125


class MessageTooBig(WebSocketError):
    """A frame or message over the limit (the connection was closed with 1009)."""


class NoApp:
    """The application gevent-websocket tells of a closing websocket: nobody listens.

    The library's own answer defines a new class at every call (``current_app``'s
    ``MockApp``), twice per connection: a class is a reference cycle, so every dropped
    connection left garbage that only a collection of the oldest generation frees."""

    __slots__ = ()

    def on_close(self, *reason):
        pass


NO_APP = NoApp()


class BoundedWebSocket(WebSocket):
    """gevent-websocket's WebSocket refusing frames and messages over ``max_message_bytes``."""

    __slots__ = ("_received",)       # bytes of the current message so far
    max_message_bytes = 1_000_000    # the server's max_http_buffer_size (patches.install)
    current_app = NO_APP             # one for every connection (see NoApp)

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
        if header.mask:              # wsaccel's C loop, not gevent-websocket's per-byte Python
            payload = createXorMasker(header.mask).process(payload)
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



def frame(opcode, payload):
    """A server frame (unmasked, whole)."""
    return Header.encode_header(True, opcode, b"", len(payload), 0) + payload


class FrameParser:
    """Client frames parsed from an input buffer as they arrive (RFC 6455 5.2), each
    bounded at its header like :class:`BoundedWebSocket`; whole messages go to
    ``_message``, pings are answered through ``write``, anything wrong to ``_refuse``.

    The class mixing it in holds ``_in`` (a bytearray), ``_parts``, ``_received``,
    ``closing`` and ``max_message_bytes``."""

    __slots__ = ()

    def _parse(self):
        """Every whole frame in the input buffer (RFC 6455 5.2), each bounded at its header."""
        buf = self._in
        pos = 0
        try:
            while not self.closing and len(buf) - pos >= 2:
                first, second = buf[pos], buf[pos + 1]
                opcode, length, head = first & 0x0F, second & 0x7F, pos + 2
                if length == 126:
                    if len(buf) - pos < 4:
                        break
                    length, head = struct.unpack_from("!H", buf, head)[0], head + 2
                elif length == 127:
                    if len(buf) - pos < 10:
                        break
                    length, head = struct.unpack_from("!Q", buf, head)[0], head + 8
                if first & 0x70 or not second & 0x80:
                    return self._refuse(CLOSE_PROTOCOL_ERROR, b"unmasked or reserved bits")
                allowed = self._allowance(opcode, first & 0x80)
                if allowed is None:
                    return self._refuse(CLOSE_PROTOCOL_ERROR, b"unexpected opcode")
                if length > allowed:
                    return self._refuse(CLOSE_MESSAGE_TOO_BIG, b"message too big")
                end = head + 4 + length
                if len(buf) < end:
                    break
                payload = createXorMasker(bytes(buf[head:head + 4])).process(bytes(buf[head + 4:end]))
                pos = end
                self._frame(opcode, first & 0x80, payload)
        finally:
            del buf[:pos]

    def _allowance(self, opcode, fin):
        """Bytes a frame may carry; None for a frame that may not come now."""
        if opcode >= _CLOSE:
            return CONTROL_FRAME_MAX_BYTES if fin and opcode in (_CLOSE, _PING, _PONG) else None
        if opcode == _CONTINUATION:
            return None if self._parts is None else self.max_message_bytes - self._received
        if opcode in (_TEXT, _BINARY) and self._parts is None:
            return self.max_message_bytes
        return None

    def _frame(self, opcode, fin, payload):
        """One whole frame: a control frame, or a message or part of one."""
        if opcode == _PING:
            self.write(frame(_PONG, payload))
        elif opcode == _CLOSE:
            self._refuse(CLOSE_NORMAL if len(payload) < 2 else struct.unpack("!H", payload[:2])[0])
        elif opcode == _PONG:
            pass
        elif not fin:                # the first or a middle part of a message
            if self._parts is None:   # [opcode, the payloads so far in one buffer]: a
                self._parts, self._received = [opcode, bytearray()], 0   # million tiny
            self._parts[1] += payload  # frames hold their bytes, not a million objects
            self._received += len(payload)
        else:
            if self._parts is not None:
                opcode, payload = self._parts[0], bytes(self._parts[1]) + payload
                self._parts = None
            self._message(opcode, payload)

