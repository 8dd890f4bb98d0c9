"""A uid's connections leaving a room on every node (a ban, a private room's removal).

One wire message carries it (``evict``, chatstream/wire.py): the node that decides
calls ``link.evict(room, uid, reason, until)``, which applies it here at once and has
the broker publish it to every node; each node's link hands it to :meth:`Evictions.evict`,
which makes that uid's connections here leave the room as a ``leave`` would (members,
presence and the "<nick> left" announcement stay right) and tells each connection why:

- ``banned`` ``{"room", "until": ts|null}`` for a ban (PROTOCOL.md "People");
- ``evicted`` ``{"room", "reason"}`` for any other reason (e.g. "removed").

The message is not stored: a node that is away when it is published (its link down)
misses it.  What it stands for is in the database (a ban row, a membership gone), which
refuses the uid's next ``join``; and when the link resyncs, each registered re-check
(:meth:`Evictions.on_resync`) reads the database again for this node's connections.
"""
import logging

import gevent

log = logging.getLogger(__name__)

BANNED = "banned"   # the reason of a ban: the connection gets ``banned``, not ``evicted``


class Evictions:
    """Applies evictions to one node's connections.

    :param events: the node's :class:`~chat.protocol.events.ChatEvents`.
    """

    def __init__(self, events):
        self.events = events
        self.rechecks = []   # callables run (in a greenlet) after each resync
        self.watchers = []   # callables told of every eviction first (moderation's ban book)

    def evict(self, room, uid, reason, until=None):
        """``uid``'s connections here leave ``room`` (None: every room); returns how many
        (connection, room) pairs were left."""
        for watcher in self.watchers:
            watcher(room, uid, reason, until)
        events = self.events
        left = 0
        for sid, conn in list(events.connections.items()):
            if conn.identity.uid != uid:
                continue
            rooms = list(conn.rooms) if room is None else [room] if room in conn.rooms else []
            for name in rooms:
                events.leave_room(sid, conn, name)
                left += 1
                if reason == BANNED:
                    events.sio.emit("banned", {"room": name, "until": until}, to=sid)
                else:
                    events.sio.emit("evicted", {"room": name, "reason": reason}, to=sid)
        return left

    def watch(self, watcher):
        """Call ``watcher(room, uid, reason, until)`` with every eviction, before it is applied."""
        self.watchers.append(watcher)

    def on_resync(self, recheck):
        """Run ``recheck()`` after every resync of the link: evictions published while the
        link was away are not replayed, so it reads what they stand for again."""
        self.rechecks.append(recheck)

    def resynced(self):
        """The link's listener was told of a resync: run the re-checks off its reader."""
        for recheck in self.rechecks:
            gevent.spawn(self._run, recheck)

    @staticmethod
    def _run(recheck):
        try:
            recheck()
        except Exception:
            log.exception("re-check after a resync failed")
