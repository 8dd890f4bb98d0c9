"""web/chat/engine/websocket.py: a websocket connection run by loop callbacks (WsConn).

Real sockets (a socketpair, one end the WsConn's, the other the client's), a real
Engine.IO packet codec; the Engine.IO socket above is a stand-in recording what it
is handed.  What is checked: the frames of one tick go out in one send and in order,
also behind what the kernel did not take; client frames in any split are parsed,
bounded at their header and answered (ping, close); a lost connection closes the
Engine.IO socket from a greenlet; an Engine.IO close sends what is due first."""
import _socket
import struct
from types import SimpleNamespace

import gevent
import gevent.socket
import pytest
from engineio import packet as eio_packet

from chat.engine import websocket
from chat.engine.websocket import WsConn, flush_held
from tests.wsframes import frame_header

WAIT_S = 3.0


class EngineSocket:
    """What a WsConn hands packets to (engine.io's Socket, as ChatSocket runs it)."""

    def __init__(self):
        self.sid = "sid"
        self.received, self.pings, self.closes = [], 0, []
        self.closed = False
        self.server = SimpleNamespace(async_handlers=True, sockets=_Sockets(),
                                      reason=SimpleNamespace(TRANSPORT_CLOSE="transport close"))
        self.server.sockets[self.sid] = self

    def receive(self, pkt):
        self.received.append(pkt)

    def schedule_ping(self):
        self.pings += 1

    def close(self, wait=True, abort=False, reason=None):
        self.closes.append(reason)
        self.closed = True

    def close_soon(self):
        gevent.spawn(self.close, reason=self.server.reason.TRANSPORT_CLOSE)
        del self.server.sockets[self.sid]


class _Sockets(dict):
    backlogged = set()


def make(buffered=b""):
    ours, theirs = gevent.socket.socketpair()
    sock = _socket.socket(fileno=ours.detach())
    sock.setblocking(False)
    engine = EngineSocket()
    return WsConn(engine, sock, buffered), engine, theirs


def client_frame(opcode, payload, fin=True):
    return frame_header(opcode, len(payload), fin) + payload      # mask zero


def read_frames(sock, count, timeout=WAIT_S):
    """``count`` server frames as (opcode, payload), unmasked as servers send them."""
    frames, buffer = [], b""
    with gevent.Timeout(timeout):
        while len(frames) < count:
            while len(buffer) >= 2:
                length, start = buffer[1] & 0x7F, 2
                if length == 126:
                    length, start = struct.unpack("!H", buffer[2:4])[0], 4
                elif length == 127:
                    length, start = struct.unpack("!Q", buffer[2:10])[0], 10
                if len(buffer) < start + length:
                    break
                frames.append((buffer[0] & 0x0F, buffer[start:start + length]))
                buffer = buffer[start + length:]
            if len(frames) < count:
                chunk = sock.recv(1 << 20)
                assert chunk, "connection ended; frames so far %r" % frames
                buffer += chunk
    return frames


def wait_for(condition):
    with gevent.Timeout(WAIT_S):
        while not condition():
            gevent.sleep(0.005)


def message(text):
    return eio_packet.Packet(eio_packet.MESSAGE, data=text)


def test_the_packets_of_one_tick_go_out_in_one_send_in_order():
    conn, _, client = make()
    sends = []
    conn._sock = SimpleNamespace(send=lambda data: sends.append(bytes(data)) or len(data),
                                 fileno=conn._sock.fileno, close=conn._sock.close)
    for n in range(3):
        conn.put(message("m%d" % n))
    assert sends == []                         # held to the end of the tick
    flush_held()
    assert len(sends) == 1 and sends[0].count(b"4m") == 3
    assert sends[0].index(b"4m0") < sends[0].index(b"4m1") < sends[0].index(b"4m2")


def test_what_the_kernel_does_not_take_goes_out_first_in_order_and_counts_as_backlog():
    conn, engine, client = make()
    big = "x" * 300_000                        # more than the pair's buffers
    conn.put(message("first" + big))
    flush_held()
    assert conn.backlog == 1 and engine.sid in engine.server.sockets.backlogged
    conn.put(message("second"))
    flush_held()
    assert conn.backlog == 2                   # behind the first, not ahead of it
    got = read_frames(client, 2)
    assert [payload[:6] for _, payload in got] == [b"4first", b"4secon"]
    wait_for(lambda: conn.backlog == 0)


def test_a_frame_is_built_once_per_packet_shared_by_every_member():
    a, _, _ = make()
    b, _, _ = make()
    pkt = message("room message")
    a.put(pkt)
    frame = pkt._ws_frame
    b.put(pkt)
    assert a._tick[0] is b._tick[0] is frame
    flush_held()


def test_one_connection_failing_at_the_tick_end_never_leaves_anothers_frames_held():
    broken, engine, _ = make()
    conn, _, client = make()
    broken.put(message("a"))
    conn.put(message("b"))
    broken._sock = SimpleNamespace(send=lambda data: 1 / 0, fileno=lambda: -1, close=lambda: None)
    flush_held()
    assert read_frames(client, 1) == [(1, b"4b")]
    assert broken.closed
    wait_for(lambda: engine.closes)             # the broken one's socket is closed


@pytest.mark.parametrize("split", [1, 3, 1000], ids=["byte-by-byte", "3-byte-reads", "whole"])
def test_client_frames_split_anyhow_are_parsed_and_pong_schedules_the_next_ping(split):
    conn, engine, client = make()
    data = (client_frame(1, b"4a") + client_frame(1, b"3")
            + client_frame(1, b"4b", fin=False) + client_frame(0, b"c")
            + client_frame(1, b"4" + b"x" * 70_000))
    for start in range(0, len(data), split):
        client.sendall(data[start:start + split])
        if split < 1000 and start % 97 == 0:
            gevent.sleep(0)                    # let some reads happen mid-frame
    wait_for(lambda: len(engine.received) == 3)
    assert [p.data for p in engine.received[:2]] == ["a", "bc"]
    assert engine.received[2].data == "x" * 70_000
    assert engine.pings == 1


def test_bytes_read_with_the_handshake_are_parsed():
    conn, engine, _ = make(buffered=client_frame(1, b"4early"))
    wait_for(lambda: engine.received)
    assert engine.received[0].data == "early"


def test_a_ping_frame_is_answered_with_a_pong_and_a_close_is_echoed_then_the_socket_closes():
    conn, engine, client = make()
    client.sendall(client_frame(9, b"hi") + client_frame(8, struct.pack("!H", 1001)))
    assert read_frames(client, 2) == [(10, b"hi"), (8, struct.pack("!H", 1001))]
    wait_for(lambda: engine.closes)
    assert client.recv(10) == b""               # and the connection is closed


@pytest.mark.parametrize("data, code", [
    (frame_header(1, 1_000_001) , 1009),                             # announced: refused at once
    (client_frame(1, b"4" + b"x" * 600_000, fin=False) + frame_header(0, 500_000), 1009),
    (bytes([0x81, 0x02]) + b"40", 1002),                             # unmasked
    (client_frame(0, b"x"), 1002),                                   # continuation of nothing
    (client_frame(1, b"\xff\xfe"), 1007),                            # not UTF-8
    (client_frame(1, b"x"), 1002),                                   # not an Engine.IO packet
    (client_frame(9, b"x" * 126), 1009),                             # control frame over 125
], ids=["frame-over-limit", "message-over-limit", "unmasked", "lone-continuation",
        "invalid-utf8", "bad-packet", "big-ping"])
def test_bad_frames_are_refused_with_their_close_code_and_nothing_after_is_handled(data, code):
    conn, engine, client = make()
    client.sendall(data + client_frame(1, b"4after"))
    opcode, payload = read_frames(client, 1)[0]
    assert opcode == 8 and struct.unpack("!H", payload[:2])[0] == code
    wait_for(lambda: engine.closes)
    assert not any(p.data == "after" for p in engine.received)


def test_a_lost_connection_closes_the_engineio_socket_from_a_greenlet():
    conn, engine, client = make()
    client.close()
    wait_for(lambda: engine.closes)
    assert conn.closed and engine.closes == ["transport close"]
    assert "sid" not in engine.server.sockets


def test_engineio_s_close_sends_what_is_due_then_a_close_frame_then_ends():
    conn, engine, client = make()
    conn.put(message("last words"))
    conn.put(None)                              # engine.io closed the socket
    conn.put(message("too late"))
    assert read_frames(client, 2) == [(1, b"4last words"), (8, struct.pack("!H", 1000))]
    assert client.recv(10) == b""
    assert conn.closed and "sid" not in engine.server.sockets


def test_a_close_that_cannot_be_sent_is_given_up_after_the_flush_bound(monkeypatch):
    monkeypatch.setattr(websocket, "CLOSE_FLUSH_S", 0.05)
    conn, engine, client = make()
    conn.put(message("y" * 2_000_000))          # a client that reads nothing
    conn.put(None)
    wait_for(lambda: conn.closed)
    assert conn.backlog == 0


def test_open_connections_are_counted_as_they_open_and_close():
    before = WsConn.open
    conn, engine, client = make()
    assert WsConn.open == before + 1
    client.close()
    wait_for(lambda: conn.closed)
    conn._stop()                                # closing twice counts once
    assert WsConn.open == before


def test_a_mass_drop_is_closed_by_one_greenlet_that_lets_the_node_run_between_batches():
    from chat.engine import socket as engine_socket
    order = []

    class Closing:
        server = SimpleNamespace(sockets={}, reason=SimpleNamespace(TRANSPORT_CLOSE="t"))

        def __init__(self, sid):
            self.sid = sid
            self.server.sockets[sid] = self

        def close(self, wait=True, abort=False, reason=None):
            order.append(self.sid)
            if self.sid == 7:
                raise RuntimeError("a failing disconnect handler")

    for sid in range(200):
        engine_socket._close_soon(Closing(sid))
    gevent.spawn(lambda: order.append("keepalive"))      # due while the drop is handled
    wait_for(lambda: len(order) == 201)
    assert order.index("keepalive") == engine_socket.CLOSE_BATCH   # not after all 200
    assert [sid for sid in order if sid != "keepalive"] == list(range(200))
    assert Closing.server.sockets == {}
    wait_for(lambda: not engine_socket._closer)


def test_a_message_in_thousands_of_tiny_frames_holds_its_bytes_not_an_object_per_frame():
    conn, engine, client = make()
    parts = [client_frame(1, b"4", fin=False)]
    parts += [client_frame(0, b"" if n % 2 else b"x", fin=False) for n in range(20_000)]
    client.sendall(b"".join(parts))
    wait_for(lambda: conn._parts is not None and len(conn._parts[1]) == 1 + 10_000)
    assert len(conn._parts) == 2                   # one buffer, whatever the frame count
    client.sendall(client_frame(0, b"!"))
    wait_for(lambda: engine.received)
    assert engine.received[0].data == "x" * 10_000 + "!"
