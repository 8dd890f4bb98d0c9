"""Read positions and unread counts (PROTOCOL.md "People", PROTOCOL-EXTENSIONS.md "Unread").

``read`` {room, seq} moves the account's position in a room it has joined forward (never
back, never past the room's latest seq).  The node that hears it tells every node at once
through the broker (the ``read`` fan-out, chatstream/wire.py), each of which emits
``read`` {room, seq} to that account's connections there and remembers it; the node
writes it to the database in a batch at most every ``flush_ms``.  A join answers
``read`` from the database or from what this node heard since, whichever is further.
``rooms`` lists ``unread`` per room for accounts.  Guests keep no positions.
"""
import logging
import time

import gevent

from chatstream import config
from . import validation
from .acks import acked
from .validation import ContractError

log = logging.getLogger(__name__)

# Positions this node remembers (heard, or moved here) beside the database: far more
# than the accounts active on one node; the oldest is forgotten first.
REMEMBERED_MAX = 100_000


class MemoryPositions:
    """The in-memory twin of :class:`reading.positions.ReadPositions` (unit tests):
    counts from the mirror alone."""

    def __init__(self):
        self.rows = {}   # (user_id, room) -> (epoch, seq)

    def load(self, user_id, rooms):
        return {room: self.rows[(user_id, room)] for room in rooms if (user_id, room) in self.rows}

    def recent(self, user_id, limit):
        return [room for (user, room) in reversed(list(self.rows)) if user == user_id][:limit]

    def save(self, positions):
        for key, (epoch, seq) in positions.items():
            old = self.rows.get(key)
            if old is None or old[0] != epoch or old[1] < seq:
                self.rows.pop(key, None)
                self.rows[key] = (epoch, seq)

    def unread(self, uid, rooms, limit):
        counts = {}
        for room, (epoch, (read_epoch, read), mirror) in rooms.items():
            events = mirror["history"] if mirror else []
            read = read if read_epoch == epoch else 0
            deleted = {m.get("target") for m in events if m.get("kind") == "delete"}
            counts[room] = min(limit, sum(
                1 for m in events if m.get("kind", "message") == "message" and m["seq"] > read
                and m.get("uid") != uid and not m.get("deleted") and m["seq"] not in deleted))
        return counts


class Unread:
    """The ``read`` event, the fan-out behind it, and what ``join`` and ``rooms`` add.

    :param events: the node's :class:`~chat.protocol.events.ChatEvents`.
    :param positions: :class:`reading.positions.ReadPositions` on a node.
    :param unread_max: counts are exact up to this; above, ``unread_max + 1``.
    :param rooms_max: rooms a ``rooms`` answer counts in.
    :param flush_ms: how often positions moved here are written.
    """

    def __init__(self, events, positions=None, unread_max=config.UNREAD_MAX,
                 rooms_max=config.UNREAD_ROOMS_MAX, flush_ms=config.READ_FLUSH_MS):
        self.events = events
        self.limits = events.limits     # acked: the payload size
        self.positions = positions or MemoryPositions()
        self.unread_max = unread_max
        self.rooms_max = rooms_max
        self.flush_s = flush_ms / 1000.0
        self.known = {}     # (uid, room) -> (epoch, seq): heard or moved here, newest last
        self.pending = {}   # (user_id, room) -> (epoch, seq) to write
        self.flusher = None
        events.sio.on("read", self.on_read)
        events.link.on_published("read", self.on_published)

    @acked
    def on_read(self, sid, payload):
        self.events._throttle(sid, "read")
        req = validation.read_request(payload)
        conn = self.events._connection(sid)
        room, identity = req["room"], conn.identity
        if identity.guest:
            raise ContractError("forbidden", "read positions are kept for accounts; log in to "
                                "keep yours")
        if room not in conn.rooms:
            raise ContractError("not_joined", "join room %s first" % room)
        epoch, latest = self.events.link.position(room)
        seq = min(req["seq"], latest)
        self._load(identity, room, epoch)       # may wait on the database: other reads run
        if self._advance(identity.uid, room, epoch, seq):   # checked and set at once
            key = (identity.user_id, room)
            pending = self.pending.get(key)
            if pending is None or pending[0] != epoch or pending[1] < seq:
                self.pending[key] = (epoch, seq)
            self._flush_soon()
            self.events.link.fanout("read", uid=identity.uid, room=room, epoch=epoch, seq=seq)
        return {"ok": True, "read": self._heard(identity.uid, room, epoch)}

    def on_published(self, body):
        """A ``read`` from the broker (this node's own too): tell the account's connections."""
        uid, room, epoch, seq = body["uid"], body["room"], body["epoch"], body["seq"]
        self._advance(uid, room, epoch, seq)
        for sid in list(self.events.by_uid.get(uid, ())):
            self.events.sio.emit("read", {"room": room, "seq": seq}, to=sid)

    def join_fields(self, identity, room, view):
        """What ``join``'s ack adds: ``read`` for an account (guests: nothing)."""
        if identity.guest:
            return {}
        self._load(identity, room, view["epoch"], always=True)
        return {"read": min(self._heard(identity.uid, room, view["epoch"]), view["seq"])}

    def annotate(self, identity, rooms, add_recent=True):
        """``rooms``' entries [{room, ...}] with ``unread`` for an account; with
        ``add_recent`` (``rooms``), the rooms it read recently that have no members are
        listed too (members 0)."""
        if identity.guest:
            return rooms
        listed = {entry["room"] for entry in rooms}
        recent = self.positions.recent(identity.user_id, self.rooms_max)
        if add_recent:
            rooms = rooms + [{"room": room, "members": 0} for room in self.events.access.readable(
                identity, [room for room in recent if room not in listed])]
        # the account's own conversations (recently read) are counted before the busiest
        mine = set(recent)
        names = [entry["room"] for entry in rooms]
        counted = list(dict.fromkeys([room for room in names if room in mine] + names))
        counted = counted[:self.rooms_max]
        stored = self.positions.load(identity.user_id, counted)
        asked = {}
        for room in counted:
            mirror = self.events.link.view(room) if self.events.link.position(room)[1] else None
            read = stored.get(room, (None, 0))
            known = self.known.get((identity.uid, room))
            if known is not None and (known[0] != read[0] or known[1] > read[1]):
                read = known   # heard since: newer than the database (or of the newer epoch)
            asked[room] = (mirror["epoch"] if mirror is not None else None, read, mirror)
        counts = self.positions.unread(identity.uid, asked, self.unread_max + 1)
        return [dict(entry, unread=counts[entry["room"]]) if entry["room"] in counts else entry
                for entry in rooms]

    def flush(self):
        """Write the positions moved here since the last flush (one transaction)."""
        pending, self.pending = self.pending, {}
        if not pending:
            return
        try:
            self.positions.save(pending)
        except Exception:
            for key, position in pending.items():   # kept for the next flush (newer wins)
                self.pending.setdefault(key, position)
            raise

    def _load(self, identity, room, epoch, always=False):
        """Take the database's position into what this node knows, when it knows none of
        this epoch (``always``: in any case).  The wait for the database lets other
        greenlets run, so what is known is compared again after it (:meth:`_advance`)."""
        if not always and self._heard(identity.uid, room, epoch):
            return
        stored = self.positions.load(identity.user_id, [room]).get(room)
        if stored is not None and stored[0] == epoch:
            self._advance(identity.uid, room, epoch, stored[1])

    def _heard(self, uid, room, epoch):
        """The furthest position of ``uid`` in ``room`` of ``epoch`` known here (0: none)."""
        known = self.known.get((uid, room))
        return known[1] if known is not None and known[0] == epoch else 0

    def _advance(self, uid, room, epoch, seq):
        """Remember ``(epoch, seq)`` when it is further than what is known (or of another
        epoch); True when it moved.  Never waits, so check and change are one step."""
        known = self.known.get((uid, room))
        if known is not None and known[0] == epoch and known[1] >= seq:
            return False
        if seq <= 0 and known is None:
            return False
        self.known.pop((uid, room), None)
        self.known[(uid, room)] = (epoch, seq)
        while len(self.known) > REMEMBERED_MAX:
            del self.known[next(iter(self.known))]
        return True

    def _flush_soon(self):
        if self.flusher is None or self.flusher.dead:
            self.flusher = gevent.spawn(self._flush_forever)

    def _flush_forever(self):
        """Write every ``flush_s`` while positions move; end once there are none."""
        while self.pending:
            started = time.monotonic()
            gevent.sleep(self.flush_s)
            try:
                self.flush()
            except Exception:
                log.exception("read positions not written; retried at the next flush")
                gevent.sleep(max(0.0, self.flush_s - (time.monotonic() - started)))
