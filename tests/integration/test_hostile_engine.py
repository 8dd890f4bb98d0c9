"""Hostile clients at a node's Engine.IO / Socket.IO transport, over raw sockets: binary
attachments without end, oversized and malformed long-polling POSTs, slowloris and idle
connections, handshake floods from one address, malformed packets, JSONP and foreign origins."""
import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.cluster import start_cluster
from harness.processes import wait_until
from tests.wsframes import frame_header

from .hostile import WS_UPGRADE, connect, open_websocket, read_head, rss_kb, stream

BALANCER_SOURCE = "127.0.0.254"      # chatstream.config.BALANCER_SOURCE: the nodes' trusted proxy
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Broker and node1 (no handshake rate), node2 with a small one."""
    c = start_cluster(tmp_path_factory.mktemp("engine"), nodes=("node1",), balancer=False)
    try:
        c.start_node("node2", env={"CHAT_HANDSHAKE_RATE": "5/10"})
        yield c
    finally:
        c.stop()


def request(url, head, body=b"", source="127.0.0.1", timeout=10):
    """One raw HTTP request; returns ``(status, the response head, socket)``."""
    sock = connect(url, source, timeout=timeout)
    sock.sendall(head.encode() + body)
    text = read_head(sock)
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else None
    return status, text, sock


def read_to_end(sock):
    """What the server sends until it closes ``sock``, as text."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data.decode("latin-1")


def polling_handshake(url, headers="", source="127.0.0.1"):
    """``(status, sid or None)`` of an Engine.IO polling handshake."""
    sock = connect(url, source)
    sock.sendall(("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n%s"
                  "Connection: close\r\n\r\n" % (urlsplit(url).netloc, headers)).encode())
    head, _, body = read_to_end(sock).partition("\r\n\r\n")
    status = int(head.split(" ", 2)[1])
    return status, json.loads(body[1:])["sid"] if status == 200 else None


def closed_by_server(sock, max_s=10):
    """True once the server closed ``sock`` (EOF or reset) within ``max_s``."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def text_frame(data):
    return frame_header(0x1, len(data)) + data


def binary_frame(data):
    return frame_header(0x2, len(data)) + data


def test_binary_attachments_are_bounded_and_the_sender_is_closed(node):
    proc, _ = node.nodes["node1"]
    for header, size in ((b'451000000000-["message",{"_placeholder":true,"num":0}]', 65536),
                         (b'452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
                          600_000)):                 # two attachments, over one message together
        chunk = binary_frame(b"\xAB" * size)
        sock = open_websocket(node.url("node1"))
        sock.sendall(text_frame(b"40") + text_frame(header))
        before = rss_kb(proc.pid)
        sent, seconds, refused = stream(sock, iter(lambda: chunk, None), 120 << 20, 60)
        grown_mb = (rss_kb(proc.pid) - before) / 1024
        print("\n%s: %.1f MB sent in %.1f s, refused %s, node RSS +%.1f MB"
              % (header[:16], sent / 1e6, seconds, refused, grown_mb))
        assert refused or closed_by_server(sock), "the node still reads after %d MB" % (sent >> 20)
        assert grown_mb < 20
        sock.close()
    assert "Traceback" not in proc.log()


def test_oversized_and_malformed_long_polling_posts_are_answered_at_once_and_released(node):
    proc, _ = node.nodes["node1"]
    url, host = node.url("node1"), urlsplit(node.url("node1")).netloc
    post = "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
    cases = (("Content-Length: 1000000000\r\n", b"4" * 1000, 413),            # over the limit
             ("Transfer-Encoding: chunked\r\n", b"ffff\r\n" + b"4" * 1000, 400),
             ("Content-Length: x\r\n", b"", 400),
             ("Content-Length: 6\r\n", b"\xff\xfe\x00bad", 400))                # not a payload
    polling_handshake(url)
    before = fds(proc.pid)
    started = time.monotonic()
    for i in range(100):
        headers, body, expected = cases[i % len(cases)]
        _, sid = polling_handshake(url)
        status, text, sock = request(url, post % (sid, host, headers), body, timeout=5)
        assert status == expected, text
        assert closed_by_server(sock, 5), headers
        sock.close()
    print("\n100 refused POSTs in %.1f s; node fds %d -> %d" % (time.monotonic() - started,
                                                               before, fds(proc.pid)))
    wait_until(lambda: fds(proc.pid) <= before + 3, 10, "the node's fds back to %d" % before)
    assert "Traceback" not in proc.log() and " ERROR " not in proc.log()


def test_slowloris_and_idle_connections_are_closed_after_the_head_timeout(node):
    url = node.url("node1")
    idle = [connect(url) for _ in range(10)]
    trickling = [connect(url) for _ in range(10)]
    started = time.monotonic()
    for sock in trickling:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    open_socks = set(idle + trickling)
    while open_socks and time.monotonic() - started < 20:
        for sock in list(open_socks):
            try:
                if sock in trickling:
                    sock.sendall(b"X")              # a byte of a header, every 0.5 s
                sock.settimeout(0.01)
                if sock.recv(1024) == b"":
                    open_socks.discard(sock)
            except socket.timeout:
                pass
            except OSError:
                open_socks.discard(sock)
        time.sleep(0.5)
    closed_s = time.monotonic() - started
    for sock in idle + trickling:
        sock.close()
    print("\n20 idle and trickling connections closed after %.1f s" % closed_s)
    assert not open_socks, "%d connections still open after %.0f s" % (len(open_socks), closed_s)
    assert closed_s >= 8                            # the head timeout, not sooner


def test_handshakes_are_rate_limited_per_client_address_after_the_edge(node):
    url = node.url("node2")          # CHAT_HANDSHAKE_RATE 5/s, bursts of 10
    statuses = [polling_handshake(url)[0] for _ in range(30)]
    assert statuses.count(200) <= 20 and statuses[-1] == 429, statuses
    sock = connect(url)
    sock.sendall(("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n"
                  "Connection: close\r\n\r\n" % urlsplit(url).netloc).encode())
    text = read_to_end(sock)
    assert " 429 " in text and "Retry-After" in text and '"error":"rate_limited"' in text, text
    # Behind the balancer every peer is the balancer: each client has a bucket of its own.
    client_a = "X-Forwarded-For: 203.0.113.1\r\n"
    from_a = [polling_handshake(url, client_a, BALANCER_SOURCE)[0] for _ in range(30)]
    assert from_a.count(429) >= 5, from_a
    assert polling_handshake(url, "X-Forwarded-For: 203.0.113.2\r\n", BALANCER_SOURCE)[0] == 200


def test_malformed_socketio_packets_log_one_short_line_and_close_the_sender(node):
    proc, _ = node.nodes["node1"]
    log = Path(proc.log_path)
    before = log.stat().st_size
    bad = [b"4abc", b"42{}", b'42abc["message",1]', b"4" + b"9" * 200, b"45-[]"]
    senders = []
    for _ in range(100):             # 500 malformed packets, five per connection
        sock = open_websocket(node.url("node1"))
        sock.sendall(text_frame(b"40") + b"".join(text_frame(packet) for packet in bad))
        senders.append(sock)
    deadline = time.monotonic() + 10
    closed = sum(closed_by_server(sock, max(0.1, deadline - time.monotonic())) for sock in senders)
    for sock in senders:
        sock.close()
    grown = log.stat().st_size - before
    print("\n500 malformed packets: %d of 100 senders closed, log +%d bytes" % (closed, grown))
    assert grown < 8192
    assert closed == 100
    assert "Traceback" not in proc.log()


def test_jsonp_polling_is_refused_and_an_origin_gets_one_answer_from_every_node(node):
    url, host = node.url("node1"), urlsplit(node.url("node1")).netloc
    status, text, sock = request(url, "GET /socket.io/?EIO=4&transport=polling&j=0 HTTP/1.1\r\n"
                                      "Host: %s\r\nConnection: close\r\n\r\n" % host)
    sock.close()
    assert status == 400, text
    balancer_host = "127.0.0.1:%d" % node.balancer_port
    for origin, host_header, expected in (
            ("http://%s" % balancer_host, host, 200),          # the balancer's page
            ("http://%s" % host, host, 200),                   # the node's own page, at the node
            ("http://%s" % host, balancer_host, 400),          # a node's origin through the balancer
            ("http://evil.example", host, 400)):
        status, _ = polling_handshake_at(url, host_header, origin)
        assert status == expected, (origin, host_header, status)


def polling_handshake_at(url, host, origin):
    status, text, sock = request(url, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                                      "Host: %s\r\nOrigin: %s\r\nConnection: close\r\n\r\n"
                                      % (host, origin))
    sock.close()
    return status, text


def read_text_frame(sock):
    """One unmasked server text frame's payload (short frames only)."""
    head = b""
    while len(head) < 2:
        head += sock.recv(2 - len(head))
    assert head[0] & 0x0F == 0x1 and head[1] < 126, head
    data = b""
    while len(data) < head[1]:
        data += sock.recv(head[1] - len(data))
    return data


def test_a_second_websocket_while_a_session_upgrades_is_refused_and_the_upgrade_completes(node):
    url, host = node.url("node1"), urlsplit(node.url("node1")).netloc
    _, sid = polling_handshake(url)
    upgrade = WS_UPGRADE.replace("transport=websocket", "transport=websocket&sid=" + sid)
    first = connect(url)
    first.sendall((upgrade % host).encode())
    assert read_head(first).startswith("HTTP/1.1 101")
    first.sendall(text_frame(b"2probe"))
    assert read_text_frame(first) == b"3probe"      # probing now; its UPGRADE packet held back
    _, _, second = request(url, upgrade % host, timeout=5)   # 101: the handshake goes first
    assert closed_by_server(second, 5)               # engineio let it probe too, for a ping period
    first.sendall(text_frame(b"5") + text_frame(b"40"))
    answer = read_text_frame(first)                  # not the probe's NOOP: no poll was pending
    assert answer.startswith(b"40{"), answer         # upgraded: the Socket.IO connect answered
    first.close()
