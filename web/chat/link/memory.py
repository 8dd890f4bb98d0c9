"""The broker link's in-memory twin: the real broker in this process, no sockets.

:class:`MemoryBroker` runs the broker's own request handlers
(:class:`broker.server.Broker` with its real ``Sequencer`` and
``PresenceRegistry``) on frames that :class:`MemoryTransport` hands it, and
routes what the broker sends back -- replies to the asking transport, PUB
frames to every transport subscribed to their topic -- through gevent queues,
so a :class:`~chat.link.broker_link.BrokerLink` over it behaves as over
ZeroMQ: replies and published frames arrive later, on the link's own readers.

For unit tests of the link's state machine, presence and the chat's event
handlers; faults are switches (``reachable``, ``answering``) and restarts.
"""
import itertools

from gevent.queue import Queue

from chatstream import config

from broker.config import BrokerConfig
from broker.presence import PresenceRegistry
from broker.sequencer import Sequencer
from broker.server import Broker
from .transport import CLOSED, QueueReader
_SNDMORE = 2   # zmq.SNDMORE, as the broker passes it (this module needs no zmq)


class _Outlet:
    """Stands in for one of the broker's sockets: every message it sends has
    two frames, routed together once the second arrives."""

    def __init__(self, route):
        self.route = route
        self.first = None

    def send(self, data, flags=0):
        if flags & _SNDMORE:
            self.first = data
            return
        first, self.first = self.first, None
        self.route(first, data)


class MemoryBroker:
    """One broker instance and the transports connected to it.

    :param history_size: messages kept per room.
    :param node_ttl_ms: silence after which a node's members are dropped.
    :param clock_ms: the presence registry's clock (injectable).
    :param sequencer: keep room state across :meth:`restart` by passing the
        previous broker's ``sequencer`` (default: a new, empty one).
    :param max_frame_bytes: the broker's ``ZMQ_MAXMSGSIZE``: larger request
        frames are dropped (and listed in ``oversize``).
    """

    _instances = itertools.count(1)

    def __init__(self, history_size=config.HISTORY_SIZE, node_ttl_ms=config.NODE_TTL_MS,
                 clock_ms=None, sequencer=None, max_frame_bytes=config.BROKER_MAX_FRAME_BYTES):
        self.history_size = history_size
        self.node_ttl_ms = node_ttl_ms
        self.clock_ms = clock_ms
        presence = PresenceRegistry(node_ttl_ms, **({"clock_ms": clock_ms} if clock_ms else {}))
        self.broker = Broker(BrokerConfig(history_size=history_size, node_ttl_ms=node_ttl_ms),
                             context=object(),
                             sequencer=sequencer or Sequencer(history_size=history_size),
                             presence=presence)
        self.broker.instance = "%s-mem%d" % (self.broker.sequencer.epoch, next(self._instances))
        self.broker.intake = _Outlet(lambda identity, body: self._reply("intake", identity, body))
        self.broker.snapshots = _Outlet(
            lambda identity, body: self._reply("snapshot", identity, body))
        self.broker.publisher = _Outlet(self._publish)
        self.transports = {}     # identity -> MemoryTransport
        self.reachable = True    # False: sends are refused at once (no broker connected)
        self.answering = True    # False: requests vanish unanswered (a hung broker)
        self.frames_seen = []    # (channel, body bytes) of every request, for assertions
        self.max_frame_bytes = max_frame_bytes   # larger frames are dropped, as ZeroMQ does
        self.oversize = []       # (channel, size) of frames dropped for their size
        self.held_channel = None  # replies on this channel are kept back ...
        self.held = []            # ... here, in order, until release_replies()

    @property
    def sequencer(self):
        return self.broker.sequencer

    @property
    def presence(self):
        return self.broker.presence

    def transport(self):
        """A new node-side transport connected to this broker."""
        transport = MemoryTransport(self, b"node-%d" % (len(self.transports) + 1))
        self.transports[transport.identity] = transport
        return transport

    def handle(self, transport, channel, data):
        """Serve one request frame, then send what it produced (group commit of one)."""
        self.frames_seen.append((channel, data))
        if len(data) > self.max_frame_bytes:
            self.oversize.append((channel, len(data)))
            return
        if not self.answering:
            return
        broker = self.broker
        if channel == "intake":
            sock, handlers = broker.intake, broker.intake_handlers
        else:
            sock, handlers = broker.snapshots, broker.snapshot_handlers
        broker._serve(sock, handlers, [transport.identity, data])
        broker._flush()

    def heartbeat(self):
        """One beat of the broker's loop: expire silent nodes, publish the heartbeat."""
        self.broker.heartbeat()
        self.broker._flush()

    def restart(self, keep_state=True):
        """A new broker instance on the same transports (state kept: same epoch)."""
        successor = MemoryBroker(self.history_size, self.node_ttl_ms, self.clock_ms,
                                 self.sequencer if keep_state else None, self.max_frame_bytes)
        successor.transports = self.transports
        for transport in self.transports.values():
            transport.broker = successor
        return successor

    def hold_replies(self, channel):
        """Serve requests on ``channel`` as usual but keep their replies back:
        a slow answer, computed now, arriving at :meth:`release_replies`.  On
        ``intake`` the room frames published meanwhile are kept back too (a quiet
        publish's ack is its message on PUB: link/acks.py)."""
        self.held_channel = channel

    def release_replies(self):
        held, self.held, self.held_channel = self.held, [], None
        for channel, identity, body in held:
            if channel is None:
                self._publish(identity, body)   # (None, topic, body): a PUB frame
            else:
                self._reply(channel, identity, body)

    def _reply(self, channel, identity, body):
        if channel == self.held_channel:
            self.held.append((channel, identity, body))
            return
        transport = self.transports.get(identity)
        if transport is not None:
            transport.queues[channel].put(body)

    def _publish(self, topic, body):
        if self.held_channel == "intake" and not topic.startswith(b"\x01"):
            self.held.append((None, topic, body))
            return
        for transport in list(self.transports.values()):
            if any(topic.startswith(prefix) for prefix in transport.topics):
                transport.queues["publish"].put([topic, body])


class MemoryTransport(QueueReader):
    """The node side of a :class:`MemoryBroker`; the methods of
    :class:`~chat.link.transport.ZmqTransport`."""

    def __init__(self, broker, identity):
        self.broker = broker
        self.identity = identity
        self.topics = set()
        self.queues = {"intake": Queue(), "snapshot": Queue(), "publish": Queue()}
        self.closed = False

    def open(self):
        pass

    def endpoint(self, channel):
        return "memory://%s" % channel

    def send(self, channel, data):
        if self.closed or not self.broker.reachable:
            return False
        self.broker.handle(self, channel, data)
        return True

    def subscribe(self, topic):
        self.topics.add(topic)

    def unsubscribe(self, topic):
        self.topics.discard(topic)

    def close(self):
        self.closed = True
        for queue in self.queues.values():
            queue.put(CLOSED)
