"""Who may read a room and who moderates it, from private-room membership.

The rule (the same questions as chat.protocol.access.PublicRooms, its in-memory twin):

- a room without a :class:`~rooms.models.PrivateRoom` row is public: everyone reads it;
- a private room or direct conversation is read by its members only.  Staff are not
  members of other people's conversations: they moderate every room, but reading a
  direct conversation is the two people's privacy.  Staff act on what members report
  (the report carries the message) and may invite themselves to a private room, which
  its members then see; they do not read it unseen through ``join`` or ``search``;
- moderators are the staff everywhere and a private room's owner in that room.

``join``, ``history``, ``members``, ``rooms`` and ``search`` ask it, so each node keeps
what it read in a cache, per room.  Cached answers stay right across nodes because:

- a change of membership (``create``, ``invite``, ``remove``, the admin) is sent to
  every node through the broker (an ``access`` fan-out) and each forgets that room
  before the removed member's connections are evicted (the evict follows it on the wire);
- a refusal of a ``join`` (``history``, ``members``, a search in one room) is never taken
  from the cache: a member invited a moment ago on another node gets in at once;
- a node whose link to the broker was broken forgets everything when it resyncs (it
  may have missed changes), and entries expire after ``cache_s`` in any case.
"""
import time
from contextlib import contextmanager
from dataclasses import dataclass

from chatstream import config

# Rooms remembered per node; beyond it the cache starts again (a flood of names asked).
ACCESS_CACHE_ROOMS = 20_000
# Names per query when many are asked at once (``search`` over every archived room):
# far below any database's limit on bound parameters.
LOAD_ROOMS_PER_QUERY = 500


@dataclass(frozen=True)
class Private:
    """A private room as the rule needs it: its owner's and its members' account ids."""
    owner_id: int
    members: frozenset


@contextmanager
def closing_connections():
    """Socket.IO events are not Django requests: close this greenlet's database
    connections when its reads are done (as chat.protocol.identity does)."""
    from django.db import connections
    try:
        yield
    finally:
        connections.close_all()


def load(rooms):
    """room -> :class:`Private` for the private ones among ``rooms`` (two queries)."""
    from .models import Membership, PrivateRoom
    rooms = list(rooms)
    owners, members = {}, {}
    with closing_connections():
        for start in range(0, len(rooms), LOAD_ROOMS_PER_QUERY):
            chunk = rooms[start:start + LOAD_ROOMS_PER_QUERY]
            found = dict(PrivateRoom.objects.filter(name__in=chunk).values_list("name", "owner_id"))
            owners.update(found)
            members.update((name, set()) for name in found)
            for name, user_id in Membership.objects.filter(room__name__in=list(found)).values_list(
                    "room__name", "user_id"):
                members[name].add(user_id)
    return {name: Private(owners[name], frozenset(members[name])) for name in owners}


class MembershipAccess:
    """The access rule over private-room membership, cached per room on this node.

    :param cache_s: how long an answer read from the database is used (see above).
    :param max_rooms: rooms kept in the cache.
    :param load: ``load(rooms) -> {room: Private}`` (the database; a dict in unit tests).
    """

    def __init__(self, cache_s=config.ACCESS_CACHE_S, max_rooms=ACCESS_CACHE_ROOMS, load=load,
                 clock=time.monotonic):
        self.cache_s = cache_s
        self.max_rooms = max_rooms
        self.load = load
        self.clock = clock
        self.entries = {}     # room -> (expires at, Private or None for a public room)
        self.generation = 0   # counts forget()s

    def may_read(self, identity, room):
        """True when ``identity`` may join and read ``room``."""
        if _reads(identity, self._entries([room])[room]):
            return True
        if identity.user_id is None:
            return False       # a guest is never a member
        # never refuse an account from the cache: an invite may not have reached us yet
        return _reads(identity, self._entries([room], fresh=True)[room])

    def readable(self, identity, rooms):
        """The names among ``rooms`` that ``identity`` may read, in their order.

        Lists (``rooms``, ``search``) are answered from the cache: a lobby asks every few
        seconds, and an invite reaches every node's cache at once anyway."""
        rooms = list(rooms)
        found = self._entries(rooms)
        return [room for room in rooms if _reads(identity, found[room])]

    def is_moderator(self, identity, room):
        """Staff everywhere; a private room's owner in that room."""
        if identity.staff:
            return True
        entry = self._entries([room])[room]    # an owner never changes: the cache is right
        return entry is not None and identity.user_id is not None and (
            entry.owner_id == identity.user_id)

    def private(self, room):
        """The room's :class:`Private`, or None when it is public (fresh from the database)."""
        return self._entries([room], fresh=True)[room]

    def forget(self, room=None):
        """Drop what is cached of ``room`` (of every room when None): it changed."""
        self.generation += 1     # a read in flight may predate this change: not kept
        if room is None:
            self.entries.clear()
        else:
            self.entries.pop(room, None)

    def _entries(self, rooms, fresh=False):
        now = self.clock()
        found, missing = {}, []
        for room in rooms:
            cached = None if fresh else self.entries.get(room)
            if cached is not None and cached[0] > now:
                found[room] = cached[1]
            else:
                missing.append(room)
        if missing:
            generation = self.generation
            private = self.load(missing)     # may yield to other greenlets (PostgreSQL)
            keep = generation == self.generation
            if keep and len(self.entries) + len(missing) > self.max_rooms:
                self.entries.clear()
            for room in missing:
                found[room] = private.get(room)
                if keep:
                    self.entries[room] = (now + self.cache_s, found[room])
        return found


def _reads(identity, entry):
    return entry is None or (identity.user_id is not None and identity.user_id in entry.members)
