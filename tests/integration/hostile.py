"""What a hostile client does over raw sockets, for the edge tests: every loop bounded in
count and time, every socket from an explicit loopback source address."""
import os
import socket
import struct
import time
from urllib.parse import urlsplit

WS_UPGRADE = ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\n"
              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
HANDSHAKE = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n\r\n"


def rss_kb(pid, field="VmRSS"):
    """A process's resident memory (``VmHWM``: its peak since it started), KB."""
    with open("/proc/%d/status" % pid) as f:
        return int(next(line for line in f if line.startswith(field)).split()[1])


def connect(url, source="127.0.0.1", timeout=10):
    """A TCP connection to ``url``'s host and port from ``source``."""
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout,
                                    source_address=(source, 0))


def read_head(sock, limit=65536):
    """The HTTP response head (status line and headers) as text."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def open_websocket(url, source="127.0.0.1"):
    """A raw websocket upgraded on /socket.io/ (its Engine.IO open packet left unread)."""
    sock = connect(url, source)
    sock.sendall((WS_UPGRADE % urlsplit(url).netloc).encode())
    head = read_head(sock)
    assert head.startswith("HTTP/1.1 101"), head
    return sock


def stream(sock, chunks, max_bytes, max_s):
    """Send ``chunks`` (an iterable of bytes) until the peer refuses, ``max_bytes`` are
    sent or ``max_s`` pass.  Returns ``(bytes sent, seconds, refused)``."""
    sent, started = 0, time.monotonic()
    sock.settimeout(2)
    try:
        for chunk in chunks:
            if sent >= max_bytes or time.monotonic() - started > max_s:
                return sent, time.monotonic() - started, False
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:                     # reset, broken pipe, or a send that cannot finish
        return sent, time.monotonic() - started, True
    return sent, time.monotonic() - started, False


def close_code(sock, max_s=5):
    """The code of the close frame the server sent, None if it sent none."""
    data, deadline = b"", time.monotonic() + max_s
    sock.settimeout(1)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    data = data[data.find(b"\r\n\r\n") + 4:] if data.startswith(b"HTTP/") else data
    while len(data) >= 2:               # server frames: unmasked, short ones here
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        if opcode == 0x8:
            return struct.unpack("!H", data[2:4])[0] if length >= 2 else None
        data = data[2 + length:]
    return None


def handshakes(url, count, connections=20, batch=100, max_s=60):
    """``count`` Engine.IO polling handshakes, pipelined over ``connections`` keep-alive
    connections.  Returns ``{status: n}`` (e.g. ``{200: 10100, 503: 9900}``), seconds."""
    per_conn = count // connections
    request = (HANDSHAKE % urlsplit(url).netloc).encode()
    statuses, started = {}, time.monotonic()
    socks = [connect(url) for _ in range(connections)]
    try:
        for sock in socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for done in range(0, per_conn, batch):
            assert time.monotonic() - started < max_s, "handshakes took over %d s" % max_s
            n = min(batch, per_conn - done)
            for sock in socks:
                sock.sendall(request * n)
            for sock in socks:
                _count_responses(sock, n, statuses)
    finally:
        for sock in socks:
            sock.close()
    return statuses, time.monotonic() - started


def _count_responses(sock, n, statuses):
    """Read ``n`` pipelined responses (each with Content-Length) and count their statuses."""
    buf = b""
    for _ in range(n):
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(1 << 20)
            assert chunk, "the server closed a pipelined connection"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(buf) < length:
            buf += sock.recv(1 << 20)
        buf = buf[length:]
        statuses[status] = statuses.get(status, 0) + 1


def random_sid():
    return os.urandom(15).hex()[:20]
