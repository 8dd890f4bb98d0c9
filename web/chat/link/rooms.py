"""Rooms whose stream this node follows: one record per followed room.

A node follows a room while it has local members.  Following starts with the
room's topic subscribed on the SUB socket, then the broker's state of the room
is fetched; live messages that arrive meanwhile are held in the room's record
and merged by seq once the state is installed (the Clone pattern, per room).

When the last local member leaves, the room stays followed for a grace period
(``grace_s``, at most ``max_idle`` rooms; the oldest goes first): a member who
comes back -- a reload, a reconnect, every client of a node after a mass drop --
finds it live, with no subscribe and no fetch from the broker.
"""
import time

from gevent.event import Event

from chatstream import wire
from .channel import BrokerUnavailable


class FollowedRoom:
    """One followed room.

    ``held`` is the list of live messages waiting while the room's state is
    fetched, and None once it is installed; ``ready`` is set when the fetch
    ends, whether it worked or not; ``heard`` once a message of the room came
    on PUB, so the subscription is in effect (link/acks.py relies on it).
    """
    __slots__ = ("name", "held", "ready", "heard")

    def __init__(self, name):
        self.name = name
        self.held = []
        self.ready = Event()
        self.heard = False

    @property
    def fetching(self):
        return self.held is not None


class RoomFollowing:
    """The table of followed rooms, kept in step with the SUB subscriptions
    and with the mirror (a room not followed is not mirrored).

    :param transport: subscribes and unsubscribes room topics.
    :param mirror: the node's :class:`~chat.link.mirror.Mirror`.
    """

    def __init__(self, transport, mirror, grace_s=0.0, max_idle=0):
        self.transport = transport
        self.mirror = mirror
        self.rooms = {}     # room -> FollowedRoom
        self.grace_s = grace_s
        self.max_idle = max_idle
        self.idle = {}      # room without local members -> since when (monotonic), oldest first

    def get(self, room):
        return self.rooms.get(room)

    def names(self):
        return sorted(self.rooms)

    def is_live(self, room):
        """Followed, and its state installed: live messages apply directly."""
        record = self.rooms.get(room)
        return record is not None and not record.fetching

    def follow(self, room, fetch, timeout_s):
        """Follow a room: subscribe, then install ``fetch()``'s state of it.

        Returns the live messages held meanwhile (to merge by seq).  A second
        caller while the fetch runs waits for it.  Raises what ``fetch``
        raised, or :class:`~chat.link.channel.BrokerUnavailable` to a caller
        that waited for a fetch that failed.
        """
        self.idle.pop(room, None)        # a join is coming: no sweep may stop it now
        record = self.rooms.get(room)
        if record is not None:
            if record.fetching:
                record.ready.wait(timeout_s)
                if not self.is_live(room):
                    raise BrokerUnavailable("room %s could not be fetched" % room)
            return []
        self.start(room)
        try:
            return self.installed(room, fetch())
        except BaseException:
            self.failed(room)
            raise

    def start(self, room):
        """Subscribe to the room's topic; its state is to be fetched next."""
        record = self.rooms[room] = FollowedRoom(room)
        self.transport.subscribe(wire.room_topic(room))
        return record

    def snapshot(self, request, per_request):
        """The followed rooms' state (one ``snapshot`` reply): ``request(rooms)`` per
        ``per_request`` rooms; raises BrokerUnavailable if the broker restarted meanwhile."""
        names = self.names()
        snapshot = None
        for batch in [names[i:i + per_request] for i in range(0, len(names), per_request)] or [[]]:
            reply = request(batch)
            if snapshot is None:
                snapshot = reply
            elif reply["broker"] != snapshot["broker"] or reply["epoch"] != snapshot["epoch"]:
                raise BrokerUnavailable("broker restarted during the sync")
            else:
                snapshot["rooms"].update(reply["rooms"])
        return snapshot

    def hold(self, room, body):
        """Keep a live message of a room being fetched; False if not fetching."""
        record = self.rooms.get(room)
        if record is None:
            return False
        record.heard = True
        if not record.fetching:
            return False
        record.held.append(body)
        return True

    def installed(self, room, state):
        """The fetch worked: install the state; returns the held messages."""
        record = self.rooms[room]
        self.mirror.install_room(room, state)
        held, record.held = record.held, None
        record.ready.set()
        return held

    def failed(self, room):
        """The fetch did not work: stop following the room."""
        record = self.rooms.pop(room, None)
        if record is not None:
            self._forget(room)
            record.ready.set()

    def left_empty(self, room):
        """The last local member left: stop following now, or after the grace period."""
        if self.grace_s <= 0 or self.max_idle <= 0 or not self.is_live(room):
            return self.stop(room)
        self.idle.pop(room, None)
        self.idle[room] = time.monotonic()
        while len(self.idle) > self.max_idle:
            self.stop(next(iter(self.idle)))

    def in_use(self, room):
        """A local member is in the room again."""
        self.idle.pop(room, None)

    def sweep(self, now=None):
        """Stop following the rooms idle for the whole grace period."""
        now = time.monotonic() if now is None else now
        while self.idle:
            room, since = next(iter(self.idle.items()))
            if now - since < self.grace_s:
                return
            self.stop(room)

    def stop(self, room):
        """Stop following (and forget) the room: no local member is left.
        A room being fetched is left to its fetch, which a join is waiting on."""
        self.idle.pop(room, None)
        if self.is_live(room):
            del self.rooms[room]
            self._forget(room)

    def _forget(self, room):
        self.transport.unsubscribe(wire.room_topic(room))
        self.mirror.forget(room)
