"""Websocket client frames as the edge tests send them (unit and integration)."""
import struct


def frame_header(opcode, length, fin=True):
    """A masked client frame's header (mask zero: the payload goes as it is)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return head + b"\0\0\0\0"
