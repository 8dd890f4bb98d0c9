"""A room's stream position (epoch, seq) and its replay buffer.

The broker keeps one per room as the source of truth; every node keeps a
mirror of each.  Both answer ``since`` the same way, so a resume gives every
message after ``seq`` or says ``gap`` -- never a silent partial list.
"""
from collections import deque

from . import room_events
from .config import HISTORY_SIZE


class SequenceError(ValueError):
    """A message that does not directly follow the room's last seq."""


class RoomHistory:
    """The last ``size`` events of one room, in seq order.

    Events are messages, edits and deletes (chatstream/room_events.py); an edit or
    delete also changes its target here when the buffer holds it, so the buffer is
    always the room's current state.

    :param room: the room name.
    :param epoch: the stream's epoch; seqs only compare within one epoch.
    :param seq: the room's latest sequence number (0 for a new room).
    :param size: how many messages the replay buffer keeps.
    :param history: buffered messages, oldest first, ending at ``seq``.
    """

    def __init__(self, room, epoch, seq=0, size=HISTORY_SIZE, history=()):
        self.room = room
        self.epoch = epoch
        self.seq = seq
        self.buffer = deque(history, maxlen=size)
        if self.buffer and self.buffer[-1]["seq"] != seq:
            raise SequenceError("history does not end at seq %d" % seq)

    def append(self, message):
        """Add the next event; returns the event the buffer evicted, if any."""
        if message["seq"] != self.seq + 1:
            raise SequenceError("room %s: expected seq %d, got %d"
                                % (self.room, self.seq + 1, message["seq"]))
        if room_events.is_change(message):
            room_events.apply(self.buffer, message)
        evicted = None
        if self.buffer.maxlen and len(self.buffer) == self.buffer.maxlen:
            evicted = self.buffer[0]
        self.buffer.append(message)
        self.seq = message["seq"]
        return evicted

    def get(self, seq):
        """The buffered event at ``seq`` in its current state, or None."""
        if not self.buffer or not self.buffer[0]["seq"] <= seq <= self.seq:
            return None
        return self.buffer[seq - self.buffer[0]["seq"]]

    def since(self, since=None, epoch=None):
        """Messages a reader that last saw ``(epoch, since)`` is missing.

        Returns ``(history, gap)``.  Without ``since`` the whole buffer and no
        gap.  ``gap`` is true when the epoch differs, when ``since`` lies ahead
        of this stream, or when messages after ``since`` were already evicted;
        the history is then the whole buffer, for the reader to start over.
        """
        everything = list(self.buffer)
        if since is None:
            return everything, False
        if epoch is not None and epoch != self.epoch:
            return everything, True
        if since > self.seq:
            return everything, True
        missing = [m for m in self.buffer if m["seq"] > since]
        oldest_needed = since + 1
        evicted = since < self.seq and (not missing or missing[0]["seq"] != oldest_needed)
        return (everything if evicted else missing), evicted

    def view(self, since=None, epoch=None):
        """What a reader that last saw ``(epoch, since)`` is told: {epoch, seq,
        history, gap}, this stream's position plus :meth:`since`'s answer.

        The one reply shape of a ``history`` request (broker) and of a join or
        resume answered from a node's mirror.
        """
        history, gap = self.since(since, epoch)
        return {"epoch": self.epoch, "seq": self.seq, "history": history, "gap": gap}

    def state(self):
        """The room as a snapshot entry: {epoch, seq, history}."""
        return {"epoch": self.epoch, "seq": self.seq, "history": list(self.buffer)}

    @classmethod
    def from_state(cls, room, state, size):
        """Build a room from a snapshot entry made by :meth:`state`."""
        return cls(room, state["epoch"], state["seq"], size, state["history"])
