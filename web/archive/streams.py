"""Each room's stream as the archiver follows it: the position archived up to, and the
events held while a room catches up from the broker.

The archive must hold every event of a room once and in seq order, with no hole it
does not know of.  An event that continues its room's position is taken; one the
position already covers is a repeat (a catch-up and the live stream overlapping); one
beyond it means events were missed: the room is held (later events wait) until the
broker's ``history`` since the position fills the hole.  No I/O here: the archiver
(archive/archiver.py) asks the broker and writes what this gives it.
"""
import logging

log = logging.getLogger(__name__)

NOWHERE = (None, 0)     # the position of a room the archive has nothing of


class RoomStreams:
    """Positions ``{room: (epoch, seq)}`` and the rooms held for a catch-up.

    :param positions: the archive's watermarks at start (archive.models.Room).
    """

    def __init__(self, positions=None):
        self.positions = dict(positions or {})
        self.held = {}          # room -> [(epoch, message)] that arrived during its catch-up
        self.lost = 0           # events the broker no longer had when a hole was filled

    def position(self, room):
        return self.positions.get(room, NOWHERE)

    def offer(self, epoch, message):
        """A live event: ``(events to write, whether the room needs a catch-up)``."""
        room = message["room"]
        if room in self.held:
            self.held[room].append((epoch, message))
            return [], False
        known_epoch, known = self.position(room)
        seq = message["seq"]
        if epoch == known_epoch and seq <= known:
            return [], False
        if seq == (known + 1 if epoch == known_epoch else 1):
            self.positions[room] = (epoch, seq)
            return [(epoch, message)], False
        self.held[room] = [(epoch, message)]
        return [], True

    def behind(self, room, epoch, seq):
        """The broker says ``room`` is at ``(epoch, seq)`` (a heartbeat, its list of rooms
        at start): True, and the room held, when the archive is behind it and no
        catch-up of it is under way."""
        if room in self.held:
            return False
        known_epoch, known = self.position(room)
        if (epoch == known_epoch and seq <= known) or (known_epoch is None and seq == 0):
            return False
        self.held[room] = []
        return True

    def catching_up(self):
        """The rooms held for a catch-up."""
        return list(self.held)

    def fill(self, room, state):
        """The broker's events of a held room ``{epoch, seq, history}`` (``seq``: the last
        of them, or the position when none): the events to write, then the held ones
        that follow.

        Returns ``(events, whether the room needs another catch-up)``; the room is
        released either way unless it needs one.
        """
        events = self.take(room, state)
        again = False
        for epoch, message in self.held.pop(room, []):
            if again:
                self.held[room].append((epoch, message))
                continue
            more, again = self.offer(epoch, message)
            events += more
        return events, again

    def take(self, room, state):
        """One page of a held room's events beyond its position (the room stays held)."""
        epoch, history = state["epoch"], state.get("history") or []
        known_epoch, known = self.position(room)
        if epoch == known_epoch and state["seq"] <= known:
            return []                               # nothing the archive lacks (or an old reply)
        start = known if epoch == known_epoch else 0
        events = [(epoch, message) for message in history if message["seq"] > start]
        first = events[0][1]["seq"] if events else state["seq"] + 1
        if first > start + 1:
            missing = first - start - 1
            self.lost += missing
            log.warning("room %s: %d events after %s #%d left the broker's buffer before the "
                        "archive had them", room, missing, known_epoch, known)
        self.positions[room] = (epoch, state["seq"])
        return events
