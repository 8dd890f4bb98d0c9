"""Publishes acknowledged by the broker's PUB stream: one send and one wake-up less
per chat message at the broker, one reply less at the node.

A node follows every room its clients are in, so the message a client sent
comes back to the node on PUB, with the node's name and the client's cid, and
only once it is durable (and replicated, in a pair): that is the ack.  The
publish goes out ``quiet`` (wire.py) only when the node can count on that:

- it has the client's cid to match;
- the room's subscription is in effect: a message of the room came on PUB
  (``FollowedRoom.heard``) -- a room just joined gets a reply as before;
- no other quiet publish with the same room and cid is in flight.

If the message does not come within :data:`QUIET_S` (the node left the room
meanwhile, a full PUB queue dropped it, the broker is slow or gone), the
publish is sent again, answered: the broker knows the cid and replies with the
message it sequenced (``duplicate``), or sequences it now.  Never twice.
"""
import time

from .channel import BrokerUnavailable, NotMember

# How long a quiet publish waits for its message on PUB before asking again,
# answered.  Far above a healthy ack (ms); within the pair's attempt (1 s).
QUIET_S = 1.0


class QuietAcks:
    """The quiet publishes of one link.

    :param node: the node's name (stamped on its clients' messages).
    :param intake: the link's intake request channel.
    :param following: the link's :class:`~chat.link.rooms.RoomFollowing`.
    """

    def __init__(self, node, intake, following):
        self.node = node
        self.intake = intake
        self.following = following
        self.awaiting = set()   # (room, cid) of quiet publishes in flight

    def publish(self, timeout, **fields):
        """Have the broker sequence a publish; its ``published`` body."""
        key = (fields["room"], fields.get("cid"))
        record = self.following.get(key[0])
        if key[1] is None or key in self.awaiting or record is None or not record.heard:
            return self.intake.request("publish", timeout, **fields)
        started = time.monotonic()
        self.awaiting.add(key)
        try:
            return self.intake.request("publish", min(QUIET_S, timeout), tag=key, quiet=True,
                                       **fields)
        except NotMember:
            raise            # answered: asking again unchanged gets the same answer
        except BrokerUnavailable:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise
        finally:
            self.awaiting.discard(key)
        return self.intake.request("publish", left, **fields)

    def settle(self, message):
        """A message came from the broker: the ack of a quiet publish of ours?"""
        if message.get("node") == self.node and self.awaiting:
            key = (message.get("room"), message.get("cid"))
            if key in self.awaiting:
                self.intake.settle(key, {"type": "published", "message": message,
                                         "duplicate": False})
