"""web/chat/websocket.py: a batch of Engine.IO packets goes out in one write, in order;
an idle writer's packets go straight to the socket, never ahead of queued ones."""
import queue

import pytest
from engineio import packet as eio_packet
from geventwebsocket.exceptions import WebSocketError

from chat.websocket import BatchingWebSocketWSGI


class RawSocket:
    """The kernel side: takes at most ``capacity`` bytes per send()."""

    def __init__(self, capacity=10**9):
        self.capacity = capacity
        self.sends = []

    def send(self, data):
        taken = bytes(data[:self.capacity])
        self.sends.append(taken)
        return len(taken)


class GeventSocket:
    def __init__(self, raw):
        self._sock = raw
        self.sendall_calls = []

    def sendall(self, data):
        self.sendall_calls.append(bytes(data))


class FakeWS:
    def __init__(self, raw):
        self.closed = False
        self.handler = type("Handler", (), {"socket": GeventSocket(raw)})()


class EngineSocket:
    """Stands in for engineio.socket.Socket: its writer polls, then sends each packet."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.upgraded = True
        self.upgrading = False
        self.closed = False
        self.queue = queue.Queue()
        self.queued = []          # what went the normal way: queue.put by Socket.send

    def poll(self):
        return self.batches.pop(0)

    def send(self, pkt):
        self.queued.append(pkt)
        self.queue.put(pkt)

    def check_ping_timeout(self):
        return True

    def _websocket_handler(self, ws):  # the handler engineio passes to the wrapper
        pass


def frame(text):
    data = text.encode()
    return bytes([0x81, len(data)]) + data


def make(batches, capacity=10**9):
    engine = EngineSocket(batches)
    wrapper = BatchingWebSocketWSGI(engine._websocket_handler, server=None)
    raw = RawSocket(capacity)
    wrapper._sock = FakeWS(raw)
    return engine, wrapper, raw


def run_writer(engine, wrapper):
    """What engineio's writer does with one poll."""
    for pkt in engine.poll():
        wrapper.send(pkt)


def test_a_batch_is_written_with_one_send_in_order():
    engine, wrapper, raw = make([["4a", "4b", "4c"], ["4d"]])
    run_writer(engine, wrapper)
    assert raw.sends == [frame("4a") + frame("4b") + frame("4c")]
    run_writer(engine, wrapper)
    assert raw.sends[1] == frame("4d")


def test_a_send_outside_a_batch_goes_out_at_once():
    engine, wrapper, raw = make([])
    wrapper.send("3probe")
    assert raw.sends == [frame("3probe")]


def test_what_the_kernel_does_not_take_is_sent_cooperatively():
    engine, wrapper, raw = make([["4" + "x" * 50, "4" + "y" * 50]], capacity=30)
    run_writer(engine, wrapper)
    whole = frame("4" + "x" * 50) + frame("4" + "y" * 50)
    assert raw.sends == [whole[:30]]
    assert wrapper._sock.handler.socket.sendall_calls == [whole[30:]]


def test_sending_on_a_closed_websocket_raises():
    engine, wrapper, raw = make([])
    wrapper._sock.closed = True
    with pytest.raises(WebSocketError):
        wrapper.send("4x")


def test_long_poll_batches_before_the_upgrade_do_not_count():
    engine, wrapper, raw = make([["4a", "4b"]])
    engine.upgraded = False
    engine.poll()                 # a long-polling GET took these, not the websocket writer
    wrapper.send("3probe")
    assert raw.sends == [frame("3probe")]


def message_packet(text):
    return eio_packet.Packet(eio_packet.MESSAGE, data=text)


def test_an_idle_writer_s_packet_is_written_directly_and_its_frame_built_once():
    engine, wrapper, raw = make([])
    pkt = message_packet('2["message",{"seq":1}]')
    engine.send(pkt)
    assert raw.sends == [frame('42["message",{"seq":1}]')] and engine.queued == []
    other_engine, other, other_raw = make([])
    other_engine.send(pkt)                       # the same broadcast packet, another member
    assert other_raw.sends == raw.sends and pkt._ws_frame == raw.sends[0]


def test_nothing_overtakes_queued_packets():
    engine, wrapper, raw = make([])
    engine.queue.put("something already queued")
    pkt = message_packet("2x")
    engine.send(pkt)
    assert raw.sends == [] and engine.queued == [pkt]


def test_a_partial_direct_write_is_finished_by_the_writer_first():
    engine, wrapper, raw = make([], capacity=3)
    engine.send(message_packet("2" + "a" * 20))     # kernel takes 3 bytes
    whole = frame("42" + "a" * 20)
    assert raw.sends == [whole[:3]]
    [noop] = list(engine.queue.queue)               # the writer is woken ...
    assert noop.packet_type == eio_packet.NOOP
    later = message_packet("2b")
    engine.send(later)                               # ... and nothing else goes direct meanwhile
    assert list(engine.queue.queue) == [noop, later]
    raw.capacity = 10**9
    engine.batches = [[noop.encode(), later.encode()]]
    run_writer(engine, wrapper)
    assert raw.sends[1] == whole[3:] + frame("6") + frame("42b")
