"""python-socketio's client manager over the broker link (:mod:`chat.link`).

python-socketio's pub/sub seam is used as designed for its own traffic:
``emit`` applies an emit here (``_handle_emit``) and ``_publish`` hands it to the
link, which relays it through the broker to every node following the room.  A
relay that comes back on the link is applied at once, in the link's read loop,
in the order it came among the room's messages (:meth:`ZmqManager.relay`): no
queue and no listener greenlet of the base class (``write_only``), whose hop per
relay cost every node of a reconnect storm a queue, a greenlet switch and
python-socketio's emit layers for each of 100,000 announcements.

Chat messages, presence lists and the broker's own announcements do not take
that path: the base class emits locally *before* publishing, while a chat
message must reach every node (this one too) only once the broker has sequenced
it, in seq order.  The link delivers those through :meth:`ZmqManager.deliver`.
"""
import logging

from socketio.pubsub_manager import PubSubManager

from chatstream import rules
from . import fanout
from .room_index import IndexedRooms

log = logging.getLogger(__name__)

# Nodes relay one thing to each other: python-socketio's emit of an announcement
# to a room (chat.protocol.events._announce).  A relay of any other shape (disconnect,
# close_room, callback, another event, skip_sid ...) is dropped before the base
# class sees it, whatever the broker let through: chatstream.rules.announcement_relay.


class ZmqManager(IndexedRooms, PubSubManager):
    """Client manager that makes the broker the single source of order.

    Disconnects cost O(rooms of the sid), not O(connections): :mod:`chat.engine.room_index`.

    :param link: the node's :class:`~chat.link.BrokerLink`.
    """
    name = "zmq-broker"

    def __init__(self, link, logger=None):
        # write_only: no listener greenlet; the link hands relays to relay()
        super().__init__(channel="chat", write_only=True, logger=logger)
        self.link = link

    def initialize(self):
        """Start the link (once, before serving)."""
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

    def _handle_emit(self, message):
        """An emit to one room, here (an announcement: the one emit relayed):
        encoded once, as a chat message's delivery; any other shape goes
        python-socketio's own way."""
        room, data = message.get("room"), message["data"]
        if (isinstance(room, str) and len(data) == 1 and not message.get("binary")
                and message.get("skip_sid") is None and message.get("callback") is None):
            fanout.emit_local(self.server, message["event"], data[0], room, message.get("namespace") or "/")
        else:
            super()._handle_emit(message)

    # the link's listener

    def relay(self, data):
        """A relay from the broker's PUB socket, applied now (another node's
        announcement; this node's own was applied when it was emitted)."""
        try:
            rules.announcement_relay(data)
        except rules.RuleError as exc:
            log.warning("relay dropped: %s", exc.detail)
            return
        if data["host_id"] != self.host_id:
            self._handle_emit(data)

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
