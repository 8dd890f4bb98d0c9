"""python-socketio's client manager of a node, fed by the broker link (:mod:`chat.link`).

Every broadcast -- a chat message, a room's member list, an announcement -- goes
node -> broker -> every node following the room (the author's too), and reaches
local members only from the link, in the broker's order (:meth:`LinkManager.deliver`).
python-socketio's own pub/sub (``PubSubManager``) is not used: it emits locally
*before* publishing, and it would be a second path between nodes.  What remains of
the library's manager is the rooms of this node's connections (with the index of
:mod:`chat.engine.room_index`); an emit through it reaches this node's members only.
"""
import logging

from . import fanout
from .room_index import IndexedManager

log = logging.getLogger(__name__)


class LinkManager(IndexedManager):
    """The node's rooms, and the link's listener: what the broker publishes reaches them here.

    :param link: the node's :class:`~chat.link.BrokerLink`.
    """

    def __init__(self, link):
        super().__init__()
        self.link = link
        # session_ref -> connections ended: the chat's handlers know who connected with
        # which session (ChatEvents.end_session); the assembly sets it.
        self.end_session = lambda session: 0
        # The chat's handlers make a uid's connections leave a room (ChatEvents.evict)
        # and read the bans again after a resync (ChatEvents.resynced); the assembly sets them.
        self.evict_uid = lambda room, uid, reason, until: 0
        self.after_resync = lambda: None
        # who may read a room changed: the node's access rule forgets it (rooms/access.py)
        self.forget_access = lambda room: None

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

    # the link's listener (chat.link.Listener)

    def deliver(self, event, data, room):
        """Emit to this node's members of a room (the link's order is kept)."""
        fanout.emit_local(self.server, event, data, room)

    def log_out(self, session):
        """A session logged out on this node: its connections here end now, and every
        node's through the broker (this one's again: nothing is left by then)."""
        self.revoke(session)
        self.link.revoke(session)

    def revoke(self, session):
        """A logout, from the broker: end this node's connections of that session."""
        ended = self.end_session(session)
        if ended:
            log.info("a session logged out: %d of its connections here ended", ended)

    def evict(self, room, uid, reason, until):
        """An eviction (a ban, a removal), from this node or the broker: that uid's
        connections here leave the room."""
        left = self.evict_uid(room, uid, reason, until)
        if left:
            log.info("%s evicted from %s (%s): %d of its connections here left",
                     uid, room or "every room", reason, left)

    def resynced(self):
        """The link installed a new snapshot: evictions published meanwhile may be missed."""
        self.after_resync()

    def access_changed(self, room):
        """Who may read ``room`` changed, on this node or another."""
        self.forget_access(room)

    def restart_room(self, room):
        """Disconnect this node's members of a room whose stream broke, so they
        rejoin with ``since`` and hear ``gap`` (never a silent hole)."""
        members = [sid for sid, _ in self.get_participants("/", room)]
        log.warning("room %s: stream broken, restarting %d local members", room, len(members))
        for sid in members:
            self.server.disconnect(sid, ignore_queue=True)
