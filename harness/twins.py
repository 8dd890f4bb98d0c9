"""In-memory twins of the broker for unit tests of the node's link: the real broker
code in this process, no sockets.

:class:`MemoryBroker` runs the broker's own request handlers
(:class:`broker.server.Broker` with its real ``Sequencer`` and
``PresenceRegistry``) on frames that :class:`MemoryTransport` hands it, and
routes what the broker sends back -- replies to the asking transport, PUB
frames to every transport subscribed to their topic -- through gevent queues,
so a :class:`~chat.link.broker_link.BrokerLink` over it behaves as over
ZeroMQ: replies and published frames arrive later, on the link's own readers.
Faults are switches (``reachable``, ``answering``) and restarts.

:class:`MemoryPair` is the failover pair: two :class:`MemoryBroker` with the real
:class:`broker.pair.BrokerPair` (Binary Star + replication), their peer link a pair
of gevent queues, their loops small greenlets.  ``kill(index)`` stops a broker like
``kill -9`` (its sockets refuse, its peer frames vanish), ``cut()`` cuts the peer
link alone (both still reach the nodes).
"""
import itertools

import gevent
from gevent.queue import Queue

from broker import bstar
from broker.pair import BrokerPair
from broker.presence_registry import PresenceRegistry
from broker.sequencer import Sequencer
from broker.server import Broker
from chat.link.failover import PairTransport
from chat.link.transport import CLOSED, QueueReader
from chatstream import config
from chatstream.config import BrokerConfig

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

    def transport(self, peer=None):
        """A new node-side transport connected to this broker; with ``peer`` (a node
        name) its requests come as with that node's CURVE key (``User-Id``)."""
        transport = MemoryTransport(self, b"node-%d" % (len(self.transports) + 1), peer)
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
        broker._serve(sock, handlers, [transport.identity, data], transport.peer)
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

    def __init__(self, broker, identity, peer=None):
        self.broker = broker
        self.identity = identity
        self.peer = peer
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


class MemoryPair:
    """``broker`` (index 0, primary) and ``broker2`` (index 1, backup).

    :param heartbeat_ms: both brokers' heartbeat (peer expiry is twice it).
    :param history_size: messages kept per room.
    """

    def __init__(self, heartbeat_ms=50, history_size=50):
        self.heartbeat_ms = heartbeat_ms
        self.history_size = history_size
        self.brokers = [None, None]
        self.inboxes = [Queue(), Queue()]
        self.linked = True
        self.greenlets = [[], []]
        for index in (0, 1):
            self.start(index)

    def start(self, index, sequencer=None):
        """(Re)start one broker: a new instance, its own (or the given) state."""
        memory = MemoryBroker(history_size=self.history_size,
                              sequencer=sequencer or Sequencer(history_size=self.history_size))
        if self.brokers[index] is not None:       # a restart keeps the nodes' transports
            memory.transports = self.brokers[index].transports
            for transport in memory.transports.values():
                transport.broker = memory
        memory.broker.pair = BrokerPair(index == 0, lambda frame: self._send(index, frame),
                                        memory.sequencer, memory.broker.instance,
                                        self.heartbeat_ms)
        self.brokers[index] = memory
        self.inboxes[index] = Queue()
        self.greenlets[index] = [gevent.spawn(self._deliver, index, memory),
                                 gevent.spawn(self._beat, index, memory)]
        return memory

    def kill(self, index):
        """Like kill -9: the broker stops, its sockets refuse."""
        gevent.killall(self.greenlets[index], block=False)
        self.brokers[index].reachable = False
        self.brokers[index].dead = True

    def cut(self, linked=False):
        """Cut (or mend) the peer link only."""
        self.linked = linked

    def state(self, index):
        return self.brokers[index].broker.pair.state

    def active(self):
        return [i for i in (0, 1) if self.state(i) == bstar.ACTIVE
                and not getattr(self.brokers[i], "dead", False)]

    def transport(self, attempt_s=0.2, peer=None):
        """A node's transport to both brokers (``peer``: as :meth:`MemoryBroker.transport`)."""
        return PairTransport(self.brokers[0].transport(peer), self.brokers[1].transport(peer),
                             attempt_s=attempt_s)

    def close(self):
        for greenlets in self.greenlets:
            gevent.killall(greenlets, block=False)

    def _send(self, index, frame):
        memory = self.brokers[index]
        if self.linked and not getattr(memory, "dead", False):
            self.inboxes[1 - index].put(frame)

    def _deliver(self, index, memory):
        inbox = self.inboxes[index]
        while True:
            frame = inbox.get()
            memory.broker.pair.on_peer_frame(frame)
            memory.broker.pair.flush()
            memory.broker._flush()

    def _beat(self, index, memory):
        while True:
            pair = memory.broker.pair
            pair.tick()
            if pair.state == bstar.ACTIVE:
                memory.broker.heartbeat()
            memory.broker._flush()
            gevent.sleep(self.heartbeat_ms / 1000.0)
