"""web/chat/websocket.py: a batch of Engine.IO packets goes out in one write, in order."""
import pytest
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

    def poll(self):
        return self.batches.pop(0)

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
