"""web/chat/websocket.py: a batch of Engine.IO packets goes out in one write, in order;
an idle writer's packets go straight to the socket, never ahead of queued ones.

The Engine.IO side is real (the node's server class and its ChatSocket); the kernel side
is a stand-in that takes only so many bytes per send."""
import pytest
from engineio import packet as eio_packet
from geventwebsocket.exceptions import WebSocketError

from chat import patches
from chat.websocket import BatchingWebSocketWSGI, flush_held


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


def frame(text):
    data = text.encode()
    return bytes([0x81, len(data)]) + data


def make(capacity=10**9):
    """A websocket-mode ChatSocket of a real node server, its writer over a RawSocket."""
    sio = patches.ChatServer(async_mode="gevent", logger=False, engineio_logger=False)
    engine = patches.ChatSocket(sio.eio, "sid")
    engine.connected = engine.upgraded = True
    wrapper = engine.writer = BatchingWebSocketWSGI(engine._websocket_handler, sio.eio)
    raw = RawSocket(capacity)
    wrapper._sock = FakeWS(raw)
    wrapper.wake = engine._wake_writer            # as ChatSocket._websocket_handler does
    return engine, wrapper, raw


def message_packet(text):
    return eio_packet.Packet(eio_packet.MESSAGE, data=text)


def queue(engine, *texts):
    for text in texts:
        engine.queue.put(message_packet(text))


def run_writer(engine, wrapper):
    """What engineio's writer does with one poll."""
    for pkt in engine.poll():
        wrapper.send(pkt.encode())


def test_a_batch_is_written_with_one_send_in_order():
    engine, wrapper, raw = make()
    queue(engine, "a", "b", "c")
    run_writer(engine, wrapper)
    assert raw.sends == [frame("4a") + frame("4b") + frame("4c")]
    queue(engine, "d")
    run_writer(engine, wrapper)
    assert raw.sends[1] == frame("4d")


def test_a_send_outside_a_batch_goes_out_at_once():
    engine, wrapper, raw = make()
    wrapper.send("3probe")
    assert raw.sends == [frame("3probe")]


def test_what_the_kernel_does_not_take_is_sent_cooperatively():
    engine, wrapper, raw = make(capacity=30)
    queue(engine, "x" * 50, "y" * 50)
    run_writer(engine, wrapper)
    whole = frame("4" + "x" * 50) + frame("4" + "y" * 50)
    assert raw.sends == [whole[:30]]
    assert wrapper._sock.handler.socket.sendall_calls == [whole[30:]]


def test_sending_on_a_closed_websocket_raises():
    engine, wrapper, raw = make()
    wrapper._sock.closed = True
    with pytest.raises(WebSocketError):
        wrapper.send("4x")


def test_long_poll_batches_before_the_upgrade_do_not_count():
    engine, wrapper, raw = make()
    engine.upgraded = False
    queue(engine, "a", "b")
    engine.poll()                 # a long-polling GET took these, not the websocket writer
    wrapper.send("3probe")
    assert raw.sends == [frame("3probe")]


def test_an_idle_writer_s_packet_is_written_directly_and_its_frame_built_once():
    engine, wrapper, raw = make()
    pkt = message_packet('2["message",{"seq":1}]')
    engine.send(pkt)
    assert raw.sends == [] and engine.queue.empty()     # held until the loop tick ends
    other_engine, other, other_raw = make()
    other_engine.send(pkt)                       # the same broadcast packet, another member
    flush_held()
    assert raw.sends == [frame('42["message",{"seq":1}]')]
    assert other_raw.sends == raw.sends and pkt._ws_frame == raw.sends[0]


def test_frames_due_to_one_connection_in_one_tick_go_out_in_one_send_in_order():
    engine, wrapper, raw = make()
    for text in ("2a", "2b", "2c"):
        engine.send(message_packet(text))
    flush_held()
    assert raw.sends == [frame("42a") + frame("42b") + frame("42c")]
    flush_held()                                 # nothing held: nothing sent
    engine.send(message_packet("2d"))
    flush_held()
    assert raw.sends[1:] == [frame("42d")]


def test_held_frames_go_before_a_packet_the_writer_sends_later():
    engine, wrapper, raw = make()
    engine.send(message_packet("2held"))
    later = eio_packet.Packet(eio_packet.MESSAGE, data=b"binary")   # binary: queued
    engine.send(later)
    assert list(engine.queue.queue) == [later]
    run_writer(engine, wrapper)                  # the writer runs before the tick's end
    flush_held()
    assert raw.sends[0].startswith(frame("42held")) and len(raw.sends) == 1


def test_nothing_overtakes_queued_packets():
    engine, wrapper, raw = make()
    queue(engine, "something already queued")
    pkt = message_packet("2x")
    engine.send(pkt)
    assert raw.sends == [] and list(engine.queue.queue)[1:] == [pkt]


def test_a_partial_direct_write_is_finished_by_the_writer_first():
    engine, wrapper, raw = make(capacity=3)
    engine.send(message_packet("2" + "a" * 20))
    flush_held()                                     # kernel takes 3 bytes
    whole = frame("42" + "a" * 20)
    assert raw.sends == [whole[:3]]
    [noop] = list(engine.queue.queue)               # the writer is woken ...
    assert noop.packet_type == eio_packet.NOOP
    later = message_packet("2b")
    engine.send(later)                               # ... and nothing else goes direct meanwhile
    assert list(engine.queue.queue) == [noop, later]
    raw.capacity = 10**9
    run_writer(engine, wrapper)
    assert raw.sends[1] == whole[3:] + frame("6") + frame("42b")


def test_one_writer_failing_at_the_tick_end_never_leaves_anothers_frames_held():
    broken_engine, broken, _ = make()
    engine, wrapper, raw = make()
    broken_engine.send(message_packet("2x"))
    engine.send(message_packet("2y"))

    def fails():
        raise RuntimeError("boom")
    broken.flush_tick = fails
    flush_held()
    assert raw.sends == [frame("42y")] and broken._tick == []
    broken_engine.send(message_packet("2z"))         # held again, and flushed again
    del broken.flush_tick
    flush_held()
    assert broken._sock.handler.socket._sock.sends == [frame("42z")]


def test_frames_held_for_a_connection_whose_request_ended_are_dropped_quietly():
    gone_engine, gone, _ = make()
    engine, wrapper, raw = make()
    gone_engine.send(message_packet("2x"))
    engine.send(message_packet("2y"))
    gone._sock.handler.socket = None             # pywsgi's handler let its socket go
    flush_held()
    assert raw.sends == [frame("42y")] and gone._tick == []
