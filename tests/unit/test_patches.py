"""web/chat/engine/patches.py: every entry of PATCHES is in effect on real python-engineio and
gevent-websocket objects, and install() refuses a missing target or another version.

The connections are real: gevent-websocket's WebSocketHandler serves the server end of a
socketpair, Engine.IO and Socket.IO run unchanged above it, and the client end speaks
websocket frames (masked, as browsers send them)."""
import io
import os
import struct
import time
from types import SimpleNamespace

import engineio
import gevent
import gevent.event
import gevent.socket
import pytest
import socketio
from engineio import packet as eio_packet
from engineio import socket as engineio_socket
from engineio.async_drivers import gevent as engineio_gevent
from gevent import pywsgi
from geventwebsocket import handler as geventwebsocket_handler
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Header

from chat.engine import fanout, patches, server, sweeps
from tests.unit import test_room_index
from tests.wsframes import frame_header
from chat.engine.frames import BoundedWebSocket
from chat.engine.limit import ConnectionLimit
from chat.engine.sweeps import SlowClientReaper
from chat.engine.socket import ChatSocket, TcpSocketInEnviron
from chat.engine.websocket import WsConn

UPGRADE = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: node\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
WAIT_S = 10.0   # bound on any single wait for the server (a deadline: generous for a busy machine)


class WireClient:
    """The client end of a socketpair whose server end runs gevent-websocket's handler."""

    def __init__(self, sio, wsgi=None):
        """:param wsgi: the pywsgi server its handler serves for (a new one by default)."""
        server_end, self.sock = gevent.socket.socketpair()
        wsgi = wsgi or pywsgi.WSGIServer(("127.0.0.1", 0), sio.handle_request,
                                         handler_class=WebSocketHandler, log=None)
        self.serving = gevent.spawn(WebSocketHandler(server_end, ("127.0.0.1", 1), wsgi).handle)
        self.sock.sendall(UPGRADE)
        self.buffer = b""
        self.pings = 0
        self._read_until(lambda: b"\r\n\r\n" in self.buffer)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101")
        opened = self.receive()
        assert opened.startswith("0")
        self.sid = eio_packet.Packet(encoded_packet=opened).data["sid"]

    def send(self, text):
        """One masked text frame, as a browser sends it."""
        payload, mask = text.encode(), os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def receive(self, timeout=WAIT_S):
        """The next text frame that is not a ping (pings are answered and counted)."""
        with gevent.Timeout(timeout):
            while True:
                self._read_until(lambda: self._frame_length() is not None)
                start, length = self._frame_length()
                text = self.buffer[start:start + length].decode()
                self.buffer = self.buffer[start + length:]
                if text != "2":
                    return text
                self.pings += 1
                self.send("3")

    def close(self):
        self.sock.close()
        self.serving.join(WAIT_S)

    def _frame_length(self):
        if len(self.buffer) < 2:
            return None
        length, start = self.buffer[1] & 0x7F, 2
        if length == 126:
            if len(self.buffer) < 4:
                return None
            length, start = struct.unpack("!H", self.buffer[2:4])[0], 4
        return (start, length) if len(self.buffer) >= start + length else None

    def _read_until(self, done):
        with gevent.Timeout(WAIT_S):
            while not done():
                chunk = self.sock.recv(65536)
                assert chunk, "server closed the connection"
                self.buffer += chunk


def build_server(**options):
    sio = server.ChatServer(async_mode="gevent", logger=False, engineio_logger=False, **options)
    sio.on("connect", lambda sid, environ, auth=None: sio.enter_room(sid, "room"))
    patches.install(sio)
    return sio


@pytest.fixture(autouse=True)
def restore_handler_websocket(monkeypatch):
    """install() sets gevent-websocket's handler module's WebSocket; undo it after each test."""
    monkeypatch.setattr(geventwebsocket_handler, "WebSocket", geventwebsocket_handler.WebSocket)


@pytest.fixture
def sio():
    return build_server()


@pytest.fixture
def client(sio):
    client = WireClient(sio)
    client.send("40")                          # Socket.IO CONNECT, default namespace
    assert client.receive().startswith("40")
    yield client
    client.close()


def test_the_node_server_runs_engineio_on_the_chat_engine_server(sio):
    assert isinstance(sio.eio, server.ChatEngineServer)
    assert sio.eio._async["websocket"] is engineio_gevent.WebSocketWSGI  # gevent-websocket's


def test_a_real_connection_gets_a_chat_socket_and_leaves_its_request_as_a_wsconn(sio, client):
    socket = sio.eio.sockets[client.sid]
    assert type(socket) is ChatSocket
    assert isinstance(socket.conn, WsConn) and socket.queue is socket.conn
    client.serving.join(WAIT_S)               # the request's greenlet is done: no greenlet
    assert client.serving.dead                # holds the connection, and it still works
    client.send('42["ping-me"]')
    sio.emit("pong", {"n": 1}, to=sio.manager.sid_from_eio_sid(client.sid, "/"))
    assert client.receive() == '42["pong",{"n":1}]'


def test_a_session_keeps_the_strings_of_its_environ_not_the_request_s_objects(sio, client):
    environ = sio.environ[client.sid]
    assert environ["REQUEST_METHOD"] == "GET" and environ["HTTP_UPGRADE"] == "websocket"
    assert "wsgi.input" not in environ and "wsgi.websocket" not in environ
    assert all(type(value) is str for value in environ.values())


def test_an_event_is_handed_over_from_the_read_callback_and_handled_in_a_greenlet(
        sio, client, monkeypatch):
    from chat.engine import websocket
    spawned, handled = [], []
    monkeypatch.setattr(websocket, "_receive", lambda *args: spawned.append(args))
    sio.on("hello", lambda sid, data: handled.append((data, gevent.getcurrent())))
    client.send('42["hello",1]')
    with gevent.Timeout(WAIT_S):
        while not handled:
            gevent.sleep(0.01)
    assert handled[0][0] == 1 and handled[0][1] is not gevent.get_hub()
    assert spawned == []                      # no greenlet of the connection's own


def test_a_packet_for_a_websocket_goes_to_its_conn_not_to_engineio_s_queue(sio, client):
    socket = sio.eio.sockets[client.sid]
    pkt = eio_packet.Packet(eio_packet.MESSAGE, '2["message",{"seq":1}]')
    sio.eio.send_packet(client.sid, pkt)
    assert socket.queue.empty() and pkt._ws_frame     # the frame is built once per packet
    assert client.receive() == '42["message",{"seq":1}]'


class CountingSocket:
    """A WsConn's socket that counts its sends."""

    def __init__(self, sock):
        self.sock, self.sends = sock, []

    def send(self, data):
        self.sends.append(bytes(data))
        return self.sock.send(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_the_packets_of_one_tick_go_out_in_one_send_in_order(sio, client):
    conn = sio.eio.sockets[client.sid].conn
    conn._sock = counting = CountingSocket(conn._sock)
    for n in range(3):                        # in one tick
        sio.eio.send_packet(client.sid, eio_packet.Packet(eio_packet.MESSAGE, "2[%d]" % n))
    assert [client.receive() for _ in range(3)] == ["42[0]", "42[1]", "42[2]"]
    assert len(counting.sends) == 1


def test_pings_come_from_a_timer_and_an_idle_websocket_outlives_interval_plus_timeout(monkeypatch):
    started = []
    monkeypatch.setattr(server.ChatEngineServer, "start_background_task",
                        lambda self, target, *a, **kw: started.append(target)
                        or engineio.Server.start_background_task(self, target, *a, **kw))
    sio = build_server(ping_interval=0.1, ping_timeout=0.1)
    client = WireClient(sio)
    try:
        client.send("40")
        assert client.receive().startswith("40")
        with pytest.raises(gevent.Timeout):
            client.receive(timeout=1.0)       # idle for 5x interval + timeout, pings answered
        socket = sio.eio.sockets[client.sid]
        assert client.pings >= 3 and not socket.closed
        assert not any(getattr(t, "__name__", "") == "_send_ping" for t in started)
    finally:
        client.close()


def test_client_frames_are_unmasked_by_wsaccel_not_by_gevent_websocket(sio, client, monkeypatch):
    """The upgrade probe's frames are read by BoundedWebSocket, the later ones by WsConn."""
    def per_byte_python(header, payload):
        raise AssertionError("gevent-websocket's Header unmasked a frame")
    monkeypatch.setattr(Header, "unmask_payload", per_byte_python)
    mask = b"\x01\x02\x03\x04"
    stream = io.BytesIO(bytes([0x81, 0x85]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello")))
    ws = BoundedWebSocket({}, SimpleNamespace(read=stream.read, write=None), handler=None)
    assert ws.read_frame()[1] == b"hello"
    received = []
    sio.on("hello", lambda sid: received.append(sid))
    client.send('42["hello"]')                # a real masked frame reaches the event handler
    with gevent.Timeout(WAIT_S):
        while not received:
            gevent.sleep(0.01)


def test_the_reaper_cuts_off_a_backlogged_connection_through_cut_off(sio, client):
    left = []
    sio.on("disconnect", lambda sid, reason=None: left.append(sid))
    socket = sio.eio.sockets[client.sid]
    for n in range(40):                       # far more than the pair's buffers: a client
        socket.send(eio_packet.Packet(eio_packet.MESSAGE, "2[%d,\"%s\"]" % (n, "x" * 100_000)))
    gevent.sleep(0)                           # the tick ends: what the kernel took is sent
    queued = dict(sweeps.backlogs(sio))[client.sid]   # that stopped reading
    assert 3 < queued <= 40 and socket.conn.backlog == queued
    assert SlowClientReaper(sio, max_queue=3).sweep() == 1
    assert socket.closed and client.sid not in sio.eio.sockets and left
    assert socket.conn.closed and socket.conn.backlog == 0        # dropped, not sent
    with gevent.Timeout(WAIT_S):              # and its TCP connection is closed
        while client.sock.recv(1 << 20):
            pass


POLL = b"GET /socket.io/?EIO=4&transport=polling%s HTTP/1.1\r\nHost: node\r\n\r\n"


def _polling_session(sio):
    """(client end, serving greenlet, sid) of a long-polling session opened over a
    socketpair whose server end runs runnode's handler."""
    class Handler(TcpSocketInEnviron, WebSocketHandler):   # as runnode's handler
        pass
    server_end, client = gevent.socket.socketpair()
    wsgi = pywsgi.WSGIServer(("127.0.0.1", 0), sio.handle_request, handler_class=Handler,
                             log=None)
    serving = gevent.spawn(Handler(server_end, ("127.0.0.1", 1), wsgi).handle)
    client.sendall(POLL % b"")
    with gevent.Timeout(WAIT_S):
        opened = b""
        while b"}" not in opened:
            opened += client.recv(65536)
    return client, serving, opened.split(b'"sid":"')[1].split(b'"')[0]


def test_the_reaper_shuts_down_a_long_poll_stuck_writing_to_a_client_that_stopped_reading(sio):
    client, serving, sid = _polling_session(sio)
    socket = sio.eio.sockets[sid.decode()]
    for n in range(40):                       # a long-poll answer far larger than the pair's buffers
        socket.queue.put(eio_packet.Packet(eio_packet.MESSAGE, "2[%d,\"%s\"]" % (n, "x" * 100_000)))
    client.sendall(POLL % (b"&sid=" + sid))    # ... which the client never reads
    with gevent.Timeout(WAIT_S):
        while not socket.queue.empty():       # the answer is being written, stuck in sendall
            gevent.sleep(0.01)
    assert socket.poll_connection is not None
    for n in range(5):                        # and the backlog grows behind it
        socket.queue.put(eio_packet.Packet(eio_packet.MESSAGE, "2[%d]" % n))
    gevent.sleep(0.1)
    assert not serving.dead                   # still stuck
    assert SlowClientReaper(sio, max_queue=3).sweep() == 1
    with gevent.Timeout(WAIT_S):              # its TCP connection is shut down: the client
        while client.recv(1 << 20):           # reaches EOF once it drains what was sent
            pass
        serving.join()
    client.close()


def test_a_long_poll_after_the_pong_deadline_is_refused_400_at_once():
    sio = build_server(ping_interval=0.1, ping_timeout=0.1, monitor_clients=False)  # no engineio sweep
    client, serving, sid = _polling_session(sio)
    socket = sio.eio.sockets[sid.decode()]
    with gevent.Timeout(WAIT_S):
        while not socket.last_ping:           # the ping is due and queued, its pong awaited
            gevent.sleep(0.01)
    socket.last_ping -= 1                     # ... and now a second overdue
    client.sendall(POLL % (b"&sid=" + sid))
    with gevent.Timeout(WAIT_S):
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400"), answer   # not 200 with the queued ping
    assert socket.closed and sweeps.open_sessions(sio.eio.sockets) == 0   # closed: not counted
    client.close()
    serving.kill()


def test_a_long_polling_session_closed_by_its_client_stops_counting_at_once():
    sio = build_server(monitor_clients=False)      # no engineio sweep to remove it meanwhile
    client, serving, sid = _polling_session(sio)
    sockets = sio.eio.sockets
    assert sweeps.open_sessions(sockets) == 1
    client.sendall(b"POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: node\r\n"
                   b"Content-Type: text/plain\r\nContent-Length: 1\r\n\r\n1" % sid)   # CLOSE, no GET pending
    with gevent.Timeout(WAIT_S):
        answer = b""
        while b"ok" not in answer.lower():
            answer += client.recv(65536)
    assert sid.decode() in sockets and sockets[sid.decode()].closed   # engineio keeps it ...
    assert sweeps.open_sessions(sockets) == 0                        # ... but it is not open
    del sockets[sid.decode()]                                         # as engineio's sweep does
    assert not sockets.gone and sweeps.open_sessions(sockets) == 0
    client.close()
    serving.kill()


def _answer(client):
    """A whole answer of a connection the server closes after it: (head, body)."""
    with gevent.Timeout(WAIT_S):
        answer = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def _post(sid, headers, body=b""):
    return (b"POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: node\r\n%s\r\n%s"
            % (sid, headers, body))


@pytest.mark.parametrize("headers, body, status", [
    (b"Content-Length: 2000000\r\n", b"4hello", b"413"),       # over max_http_buffer_size
    (b"Transfer-Encoding: chunked\r\n", b"5\r\n4hell\r\n", b"400"),
    (b"Content-Length: 3\r\n", b"\xff\xfe\xfd", b"400"),         # not a payload
])
def test_a_refused_post_is_answered_at_once_its_session_closed_and_its_connection_too(
        headers, body, status):
    sio = build_server(monitor_clients=False)
    client, serving, sid = _polling_session(sio)
    socket = sio.eio.sockets[sid.decode()]
    client.sendall(_post(sid, headers, body))       # the rest of a long body never comes
    head, answer = _answer(client)
    assert head.split(b" ")[1] == status and b"Connection: close" in head, head
    assert socket.closed and sweeps.open_sessions(sio.eio.sockets) == 0
    with gevent.Timeout(WAIT_S):
        serving.join()                              # the request's greenlet is done
    client.close()


def test_jsonp_polling_is_refused_before_engineio():
    sio = build_server(monitor_clients=False)
    status = []
    body = sio.handle_request({"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/",
                               "QUERY_STRING": "EIO=4&transport=polling&j=0"},
                              lambda code, headers: status.append(code))
    assert status[0].startswith("400") and b"JSONP" in b"".join(body)
    assert not sio.eio.sockets


def test_disconnect_does_not_wait_for_a_long_polling_client_to_fetch_its_close():
    sio = build_server(monitor_clients=False)
    client, serving, sid = _polling_session(sio)
    socket = sio.eio.sockets[sid.decode()]
    with gevent.Timeout(WAIT_S):                    # engineio's would wait for a GET
        sio.eio.disconnect(sid.decode())
    assert socket.closed and sid.decode() not in sio.eio.sockets
    client.close()
    serving.kill()


def _wait_closed(sio, sid):
    with gevent.Timeout(WAIT_S):
        while sid in sio.eio.sockets and not sio.eio.sockets[sid].closed:
            gevent.sleep(0.01)


def test_binary_attachments_are_capped_and_a_malformed_packet_closes_the_connection(sio, client):
    refused = []
    sio.eio.bad_input.refused = lambda peer, what, error=None: refused.append(what)
    client.send('452-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    gevent.sleep(0.05)
    assert client.sid in sio._binary_packet             # the library keeps it pending
    with gevent.Timeout(WAIT_S):
        sio._handle_eio_message(client.sid, "a text frame as an attachment")
    assert client.sid not in sio._binary_packet
    _wait_closed(sio, client.sid)
    other = build_server()
    wire = WireClient(other)
    other.eio.bad_input.refused = lambda peer, what, error=None: refused.append(what)
    wire.send("40")
    assert wire.receive().startswith("40")
    wire.send('45%d-["x"]' % (server.MAX_ATTACHMENTS + 1))
    _wait_closed(other, wire.sid)
    assert wire.sid not in other._binary_packet
    third = WireClient(other)
    third.send("4abc")
    _wait_closed(other, third.sid)
    assert refused == ["a binary attachment over the limit",
                       "a binary packet of %d attachments" % (server.MAX_ATTACHMENTS + 1),
                       "a malformed Socket.IO packet"]
    wire.close()
    third.close()


def test_a_callable_origin_policy_is_asked_with_the_environ():
    sio = build_server(cors_allowed_origins=lambda origin, environ: origin == "http://" + environ["HTTP_HOST"])
    status = []
    for origin in ("http://node", "http://other"):
        sio.handle_request({"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/", "HTTP_HOST": "node",
                            "HTTP_ORIGIN": origin, "QUERY_STRING": "EIO=4&transport=polling"},
                           lambda code, headers: status.append(code[:3]))
    assert status == ["200", "400"]


def test_a_request_head_must_come_in_time_and_a_timeout_closes_quietly(monkeypatch, capsys):
    from chat.management.commands import runnode
    monkeypatch.setattr(runnode, "REQUEST_HEAD_TIMEOUT_S", 0.2)
    sio = build_server(monitor_clients=False)
    handler = runnode._require_websocket_handler()
    server_end, client = gevent.socket.socketpair()
    wsgi = pywsgi.WSGIServer(("127.0.0.1", 0), sio.handle_request, handler_class=handler, log=None)
    serving = gevent.spawn(handler(server_end, ("127.0.0.1", 1), wsgi).handle)
    client.sendall(b"GET / HTTP/1.1\r\nHost: node\r\nX-Slow: ")   # and then nothing more
    with gevent.Timeout(WAIT_S):
        assert client.recv(1024) == b""             # closed, no answer
        serving.join()
    assert "Traceback" not in capsys.readouterr().err
    client.close()


def test_the_service_task_looks_at_every_session_once_per_ping_timeout_in_a_few_wakeups():
    sio = build_server(ping_interval=0.1, ping_timeout=0.5)
    eio = sio.eio
    for n in range(2000):
        eio.sockets["s%d" % n] = engineio_socket.Socket(eio, "s%d" % n)
    overdue, closed = eio.sockets["s10"], eio.sockets["s1990"]
    overdue.last_ping = time.time() - 10          # its pong is 10 s overdue
    closed.closed = True                          # closed, and still in the table
    looked = []
    checking = ChatSocket.check_ping_timeout
    wakeups = []

    class CountingEvent(gevent.event.Event):
        def wait(self, timeout=None):
            wakeups.append(timeout)
            return super().wait(timeout)

    eio.create_event = CountingEvent
    ChatSocket.check_ping_timeout = lambda self: looked.append(self.sid) or checking(self)
    try:
        started = time.monotonic()
        task = gevent.spawn(eio._service_task)
        with gevent.Timeout(WAIT_S):
            while len(set(looked)) < 1999 or "s1990" in eio.sockets:
                gevent.sleep(0.02)
        took = time.monotonic() - started
        eio.service_task_event.set()
        task.join(WAIT_S)
    finally:
        ChatSocket.check_ping_timeout = checking
    assert overdue.closed and "s1990" not in eio.sockets   # found: closed, and removed
    assert took >= 0.4                            # one round in about ping_timeout, not all at once
    assert len(wakeups) < 100                     # a wakeup per tick (~4 a round), engineio 2,000
    assert task.dead


def _frame(opcode, payload, fin=True, length=None):
    """A masked client frame; ``length`` announces another size than the payload's."""
    return frame_header(opcode, len(payload) if length is None else length, fin) + payload


def _closed_with(client):
    """The close code the server sent before ending the connection (other frames skipped)."""
    with gevent.Timeout(WAIT_S):
        while True:
            while client._frame_length() is not None:
                start, length = client._frame_length()
                frame, client.buffer = client.buffer[:start + length], client.buffer[start + length:]
                if frame[0] & 0x0F == 0x8:
                    return struct.unpack("!H", frame[start:start + 2])[0]
            chunk = client.sock.recv(65536)
            assert chunk, "connection ended without a close frame: %r" % client.buffer
            client.buffer += chunk


@pytest.mark.parametrize("frames", [
    [_frame(1, b"", length=64 * 2**20)],                                  # announces 64 MB
    [_frame(1, b"4" + b"x" * 599, fin=False), _frame(0, b"x" * 600, fin=False)],  # 1,200 > 1,000
], ids=["one-64MB-frame", "continuations-over-the-limit"])
def test_a_frame_or_message_over_the_limit_is_refused_1009_at_its_header(frames):
    sio = build_server(max_http_buffer_size=1000)
    received = []
    sio.on("hello", lambda sid, data: received.append(data))
    client = WireClient(sio)
    try:
        client.send("40")
        assert client.receive().startswith("40")
        assert isinstance(sio.eio.sockets[client.sid].conn, WsConn)
        client.sock.sendall(_frame(1, b'42["hello",', fin=False) + _frame(0, b"1]"))  # two frames pass
        with gevent.Timeout(WAIT_S):
            while not received:
                gevent.sleep(0.01)
        for frame in frames:
            client.sock.sendall(frame)
        assert _closed_with(client) == 1009
    finally:
        client.close()


def test_a_node_at_max_sessions_refuses_the_handshake_and_half_open_sessions_expire(sio, client):
    def handshake():
        status = []
        body = sio.handle_request({"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/",
                                   "QUERY_STRING": "EIO=4&transport=polling"},
                                  lambda code, headers: status.append(code))
        return status[0], b"".join(body)
    sio.eio.limit = ConnectionLimit(sio.eio.count_open_sessions, max_connections=2, headroom=0)
    assert handshake()[0].startswith("200")      # a second session, never connected
    code, body = handshake()
    assert code.startswith("503") and b"too_many_connections" in body
    assert len(sio.eio.sockets) == 2
    assert sweeps.half_open(sio, 0) != [client.sid] and client.sid not in sweeps.half_open(sio, 0)
    assert SlowClientReaper(sio, half_open_timeout_s=0).sweep_half_open() == 1
    assert list(sio.eio.sockets) == [client.sid]  # the connected client stays
    assert handshake()[0].startswith("200")


def test_a_websocket_tells_one_shared_app_of_its_close_not_a_new_class_each_time(sio):
    """gevent-websocket's own current_app defines a class per call: cyclic garbage per
    dropped connection (test_connection_garbage counts it)."""
    from geventwebsocket.websocket import WebSocket
    from chat.engine.frames import NO_APP
    stream = SimpleNamespace(read=None, write=None)
    handler = SimpleNamespace(server=SimpleNamespace(application=sio.handle_request))
    theirs = WebSocket({}, stream, handler)
    assert type(theirs.current_app) is not type(theirs.current_app)
    ours = geventwebsocket_handler.WebSocket({}, stream, handler)
    assert ours.current_app is NO_APP and ours.current_app.on_close("closed") is None


PROOFS = {
    "socketio.Server._engineio_server_class": test_the_node_server_runs_engineio_on_the_chat_engine_server,
    "geventwebsocket.websocket.WebSocket.current_app":
        test_a_websocket_tells_one_shared_app_of_its_close_not_a_new_class_each_time,
    "engineio.server.socket.Socket":
        test_a_real_connection_gets_a_chat_socket_and_leaves_its_request_as_a_wsconn,
    "engineio.socket.Socket._websocket_handler":
        test_a_real_connection_gets_a_chat_socket_and_leaves_its_request_as_a_wsconn,
    "engineio.socket.Socket.send": test_a_packet_for_a_websocket_goes_to_its_conn_not_to_engineio_s_queue,
    "engineio.socket.Socket.schedule_ping":
        test_pings_come_from_a_timer_and_an_idle_websocket_outlives_interval_plus_timeout,
    "geventwebsocket.websocket.WebSocket.handler":
        test_a_real_connection_gets_a_chat_socket_and_leaves_its_request_as_a_wsconn,
    "engineio.socket.Socket.close": test_the_reaper_cuts_off_a_backlogged_connection_through_cut_off,
    "engineio.socket.Socket.handle_get_request":
        test_the_reaper_shuts_down_a_long_poll_stuck_writing_to_a_client_that_stopped_reading,
    "engineio.server.Server._handle_connect":
        test_a_node_at_max_sessions_refuses_the_handshake_and_half_open_sessions_expire,
    "engineio.server.Server._service_task":
        test_the_service_task_looks_at_every_session_once_per_ping_timeout_in_a_few_wakeups,
    "geventwebsocket.handler.WebSocket": test_a_frame_or_message_over_the_limit_is_refused_1009_at_its_header,
    "socketio.server.Server._handle_eio_connect":
        test_a_session_keeps_the_strings_of_its_environ_not_the_request_s_objects,
    "socketio.server.Server._handle_eio_message":
        test_an_event_is_handed_over_from_the_read_callback_and_handled_in_a_greenlet,
    "engineio.server.Server.handle_request": test_jsonp_polling_is_refused_before_engineio,
    "engineio.server.Server.disconnect":
        test_disconnect_does_not_wait_for_a_long_polling_client_to_fetch_its_close,
    "engineio.socket.Socket.handle_post_request":
        test_a_refused_post_is_answered_at_once_its_session_closed_and_its_connection_too,
    "socketio.packet.Packet.add_attachment":
        test_binary_attachments_are_capped_and_a_malformed_packet_closes_the_connection,
    "engineio.base_server.BaseServer._cors_allowed_origins":
        test_a_callable_origin_policy_is_asked_with_the_environ,
    "gevent.pywsgi.WSGIHandler.handle_one_request":
        test_a_request_head_must_come_in_time_and_a_timeout_closes_quietly,
    "socketio.base_manager.BaseManager.basic_disconnect":
        test_room_index.test_every_room_operation_leaves_the_same_rooms_as_the_library_and_no_index_behind,
}


def test_every_entry_of_the_table_has_a_test_above():
    assert set(PROOFS) == {patch.target for patch in patches.PATCHES}


@pytest.mark.parametrize("target", [patch.target for patch in patches.PATCHES])
def test_install_names_a_target_that_is_missing(target, sio, monkeypatch):
    path, _, key = target.partition("[")
    owner_path, _, name = path.rpartition(".")
    owner = patches.resolve(owner_path)
    if key:
        monkeypatch.delitem(getattr(owner, name), key.rstrip("]"))
    else:                                     # gone from the class and its bases
        for cls in getattr(owner, "__mro__", [owner]):
            if name in vars(cls):
                monkeypatch.delattr(cls, name)
    with pytest.raises(RuntimeError, match="missing") as raised:
        patches.install(sio)
    assert target in str(raised.value)


def test_verify_names_a_socket_method_whose_library_signature_changed(sio, monkeypatch):
    monkeypatch.setattr(engineio_socket.Socket, "send", lambda self, pkt, timeout=None: None)
    with pytest.raises(RuntimeError, match="engineio.socket.Socket.send"):
        patches.verify(sio)


def test_verify_names_a_relied_on_seam_the_library_no_longer_calls(sio, monkeypatch):
    """python-socketio running an event handler inline would block the loop's read callback."""
    monkeypatch.setattr(socketio.Server, "_handle_event",
                        lambda self, eio_sid, namespace, id, data: self._handle_event_internal(
                            self, None, eio_sid, data, namespace, id))
    with pytest.raises(RuntimeError, match="socketio.server.Server._handle_eio_message"):
        patches.verify(sio)


def test_verify_names_a_websocket_that_no_longer_keeps_its_handler(sio, monkeypatch):
    from geventwebsocket.websocket import WebSocket

    def init_without_handler(self, environ, stream, handler):
        self.environ, self.stream = environ, stream
    monkeypatch.setattr(WebSocket, "__init__", init_without_handler)
    with pytest.raises(RuntimeError, match="geventwebsocket.websocket.WebSocket.handler"):
        patches.verify(sio)


@pytest.mark.parametrize("dist", sorted(patches.PINNED_VERSIONS))
def test_install_refuses_a_version_other_than_the_pin(dist, sio, monkeypatch):
    monkeypatch.setitem(patches.PINNED_VERSIONS, dist, "0.0.0")
    with pytest.raises(RuntimeError, match=dist):
        patches.install(sio)


def test_install_refuses_a_server_not_built_on_the_chat_engine_server():
    with pytest.raises(RuntimeError, match="socketio.Server._engineio_server_class"):
        patches.install(socketio.Server(async_mode="gevent", logger=False, engineio_logger=False))


def test_the_chat_engine_server_refuses_a_mode_without_gevent_websocket():
    with pytest.raises(RuntimeError, match="gevent-websocket"):
        server.ChatEngineServer(async_mode="threading")


def test_a_socket_of_another_class_is_refused_by_the_sockets_table(sio):
    with pytest.raises(RuntimeError, match="engineio.server.socket.Socket"):
        sio.eio.sockets["x"] = object()
    sio.eio.sockets["y"] = engineio_socket.Socket(sio.eio, "y")
    assert type(sio.eio.sockets["y"]) is ChatSocket


def test_fanout_emit_local_sends_one_packet_to_every_member_of_the_room(sio):
    clients = [WireClient(sio) for _ in range(3)]
    try:
        for client in clients:
            client.send("40")
            assert client.receive().startswith("40")
        fanout.emit_local(sio, "message", {"room": "room", "seq": 7}, "room")
        assert [c.receive() for c in clients] == ['42["message",{"room":"room","seq":7}]'] * 3
        fanout.emit_local(sio, "message", {"seq": 8}, "another room")     # nobody there
    finally:
        for client in clients:
            client.close()


class _CountingQueue:
    def __init__(self, queued):
        self.queued, self.looks = queued, 0

    def qsize(self):
        self.looks += 1
        return self.queued


def _swept_node(count, connected=()):
    """A stand-in node with ``count`` open sessions s0..s<count-1>, opened in that order."""
    sockets = server.ChatSockets()
    for i in range(count):
        dict.__setitem__(sockets, "s%d" % i, SimpleNamespace(closed=False, queue=_CountingQueue(0)))
        sockets.opened["s%d" % i] = float(i)
    looks = []
    manager = SimpleNamespace(sid_from_eio_sid=lambda sid, ns: looks.append(sid) or (
        "sio-" + sid if sid in connected else None))
    return SimpleNamespace(eio=SimpleNamespace(sockets=sockets), manager=manager), looks


def test_the_slow_client_sweep_looks_only_at_connections_that_queued_something():
    sio, _ = _swept_node(10_000)
    sockets = sio.eio.sockets
    sockets["s7"].queue.queued = 5
    sockets.backlogged.add("s7")
    assert sweeps.backlogs(sio) == [("s7", 5)]
    assert sum(s.queue.looks for s in sockets.values()) == 1     # not 10,000 looks a second
    sockets["s7"].queue.queued = 0                                 # drained: forgotten
    assert sweeps.backlogs(sio) == [] and sockets.backlogged == set()


def test_the_half_open_sweep_looks_at_each_session_about_once(monkeypatch):
    sio, looks = _swept_node(10_000, connected={"s0", "s1"})
    from chat.engine import sweeps
    monkeypatch.setattr(sweeps.time, "monotonic", lambda: 3.5)
    assert sweeps.half_open(sio, 0.0) == ["s2", "s3"]      # s0, s1 connected; s4.. too young
    assert looks == ["s0", "s1", "s2", "s3", "s4"]          # stops at the first young one
    assert list(sio.eio.sockets.opened)[:3] == ["s2", "s3", "s4"]   # connected ones forgotten
    sio.eio.sockets["s2"].closed = True                     # cut off by the sweep
    assert sweeps.half_open(sio, 0.0) == ["s3"]
