"""What one batch of requests produced, held until the batch is committed.

Group commit: the broker's loop handles a batch of requests, commits the store
once, and only then sends the outbox (publishes and replies, in order), so
nothing is published or acknowledged before it is durable.  In a failover pair
the items go through ``BrokerPair.hold`` first (broker/pair.py).

An item is ``(socket, [first, last])``; a sequenced message's ``last`` is an
open batch ``(epoch, [message, ...])`` encoded when it is sent, so a room's
messages of one batch go out in one PUB frame (wire.encode_messages).
"""
import logging

import zmq

from chatstream import wire
from chatstream.clock import now_ms

log = logging.getLogger(__name__)

# Plain ints: pyzmq's send combines its IntFlag constants per frame, a measurable
# share of the broker's time at high rates.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)


class Outbox:
    """The batch's outgoing frames, in order.

    :param publisher: the PUB socket publishes go to (set once it is bound).
    """

    def __init__(self, publisher=None):
        self.publisher = publisher
        self.items = []     # (socket, frames) to send once the batch is committed
        self.batches = {}   # room topic -> (epoch, [message]) among the items, still open
        self.sequenced = 0  # messages sequenced into this batch (metrics)

    def __len__(self):
        return len(self.items)

    def reply(self, sock, identity, frame):
        """A reply to the peer ``identity`` of a ROUTER socket."""
        self.items.append((sock, [identity, frame]))

    def publish(self, topic, frame):
        """A frame for PUB; what follows on this topic stays after it."""
        self.batches.pop(topic, None)
        self.items.append((self.publisher, [topic, frame]))

    def publish_message(self, room, epoch, message):
        """A sequenced message, in one PUB frame with the room's others of this
        batch: one send, and one wake-up of each node, per room."""
        self.sequenced += 1
        topic = wire.room_topic(room)
        batch = self.batches.get(topic)
        if batch is not None and batch[0] == epoch and len(batch[1]) < wire.MESSAGES_PER_FRAME:
            batch[1].append(message)
            return
        self.batches[topic] = batch = (epoch, [message])
        self.items.append((self.publisher, [topic, batch]))

    def announce(self, room, text, ts=None):
        """An ``announcement`` to the room ("<nick> joined" / "<nick> left"), in
        order with its messages; ``ts`` is the broker's clock."""
        self.publish(wire.room_topic(room), wire.encode(
            "announcement", room=room, text=text, ts=now_ms() if ts is None else ts))

    def take(self):
        """``(items, sequenced)`` of the batch, which ends here."""
        items, sequenced = self.items, self.sequenced
        self.items, self.batches, self.sequenced = [], {}, 0
        return items, sequenced


def send(items):
    """Send committed items; a full or failing socket drops its frame (logged):
    PUB never blocks, and nodes repair a gap by seq."""
    for sock, (first, last) in items:   # every outgoing message has two frames
        if last.__class__ is tuple:
            last = wire.encode_messages(*last)
        try:
            sock.send(first, _NOBLOCK | _SNDMORE)
            sock.send(last, _NOBLOCK)
        except zmq.Again:
            log.warning("send queue full, frame dropped")
        except zmq.ZMQError as exc:
            log.warning("send failed: %s", exc)
