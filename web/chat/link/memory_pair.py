"""The in-memory twin of the broker failover pair: two :class:`MemoryBroker`
with the real :class:`broker.pair.BrokerPair` (Binary Star + replication),
their peer link a pair of gevent queues, their loops small greenlets.

For unit tests of the node's failover (link/failover.py): ``kill(index)``
stops a broker like ``kill -9`` (its sockets refuse, its peer frames vanish),
``cut()`` cuts the peer link alone (both still reach the nodes).
"""
import gevent
from gevent.queue import Queue

from broker import bstar
from broker.pair import BrokerPair
from broker.sequencer import Sequencer
from .failover import PairTransport
from .memory import MemoryBroker


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

    def transport(self, attempt_s=0.2):
        """A node's transport to both brokers."""
        return PairTransport(self.brokers[0].transport(), self.brokers[1].transport(),
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
