"""python-socketio's client manager over the broker link (:mod:`chat.link`).

python-socketio's pub/sub seam is used as designed for its own traffic:
``_publish`` hands emits, disconnects and callbacks to the link, which relays
them through the broker to every node, and ``_listen`` yields the relays the
link received, which the base class's listener thread dispatches.

Chat messages, presence lists and announcements do not take that path: the
base class emits locally *before* publishing, while a chat message must reach
every node (this one too) only once the broker has sequenced it, in seq order.
The link delivers those through :meth:`ZmqManager.deliver`.
"""
import logging
import time

from gevent.queue import Full, Queue
from socketio.pubsub_manager import PubSubManager

from chatstream import rules
from . import fanout
from .room_index import IndexedRooms

log = logging.getLogger(__name__)

# Nodes relay one thing to each other: python-socketio's emit of an announcement
# to a room (chat.events._announce).  A relay of any other shape (disconnect,
# close_room, callback, another event, skip_sid ...) is dropped before the base
# class sees it, whatever the broker let through: chatstream.rules.announcement_relay.


class ZmqManager(IndexedRooms, PubSubManager):
    """Client manager that makes the broker the single source of order.

    Disconnects cost O(rooms of the sid), not O(connections): :mod:`chat.room_index`.

    :param link: the node's :class:`~chat.link.BrokerLink`.
    :param max_relays: relays received but not yet dispatched, at most (a
        flood beyond it is dropped and logged, not queued without bound).
    """
    name = "zmq-broker"

    def __init__(self, link, max_relays=10_000, logger=None):
        super().__init__(channel="chat", logger=logger)
        self.link = link
        self.relays = Queue(max_relays)
        self.relays_dropped, self.drop_logged_at = 0, float("-inf")

    def initialize(self):
        """Start the listener and the link (once, before serving)."""
        if self.link.listener is not None:
            return
        super().initialize()
        self.link.start(self)

    @property
    def broker_up(self):
        return self.link.broker_up

    def goodbye(self):
        """This node is stopping: the broker announces its members as gone."""
        self.link.goodbye()

    # python-socketio's pub/sub extension points

    def _publish(self, data):
        self.link.relay(data)

    def _listen(self):
        while True:
            yield self.relays.get()

    # the link's listener

    def relay(self, data):
        try:
            rules.announcement_relay(data)
        except rules.RuleError as exc:
            log.warning("relay dropped: %s", exc.detail)
            return
        try:
            self.relays.put_nowait(data)
        except Full:   # logged at most once a second: a line per drop cost a storm 37 % CPU
            self.relays_dropped += 1
            now = time.monotonic()
            if now - self.drop_logged_at >= 1.0:
                log.warning("relay queue full (%d): %d relays (announcements) dropped",
                            self.relays.maxsize, self.relays_dropped)
                self.relays_dropped, self.drop_logged_at = 0, now

    def deliver(self, event, data, room):
        """Emit to this node's members of a room (the link's order is kept)."""
        fanout.emit_local(self.server, event, data, room)

    def restart_room(self, room):
        """Disconnect this node's members of a room whose stream broke, so they
        rejoin with ``since`` and hear ``gap`` (never a silent hole)."""
        members = [sid for sid, _ in self.get_participants("/", room)]
        log.warning("room %s: stream broken, restarting %d local members", room, len(members))
        for sid in members:
            self.server.disconnect(sid, ignore_queue=True)
