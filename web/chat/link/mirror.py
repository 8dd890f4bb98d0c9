"""A node's copy of every room's stream, merged from snapshots and live messages.

Stdlib only, so the merge rules are unit-tested without sockets: the
Clone pattern's "snapshot, then live updates with seq above it" per room.
"""
import enum

from chatstream import config
from chatstream.history import RoomHistory


class Outcome(enum.Enum):
    APPLIED = "applied"        # the next message of the room: deliver it
    DUPLICATE = "duplicate"    # already have it (snapshot overlap): drop it
    GAP = "gap"                # messages are missing before it: repair first


class Mirror:
    """Rooms as this node knows them.

    :param history_size: messages kept per room, as on the broker.
    """

    def __init__(self, history_size=config.HISTORY_SIZE):
        self.history_size = history_size
        self.rooms = {}        # room -> RoomHistory
        self.epoch = None      # the broker's epoch, for rooms not seen yet

    def install(self, epoch, rooms):
        """Replace everything with a broker snapshot.

        Returns ``(missed, broken)``: ``missed`` maps rooms that moved on while
        this node was not listening to the messages its readers have not been
        given yet, in seq order; ``broken`` holds the rooms whose stream this
        node can no longer continue (new epoch, seq went backwards, room gone,
        or the missed messages already left the buffer): their readers must
        start over.
        """
        missed, broken = {}, set()
        for name, history in self.rooms.items():
            state = rooms.get(name)
            if state is None:
                if history.seq:
                    broken.add(name)
            elif state["epoch"] != history.epoch or state["seq"] < history.seq:
                broken.add(name)
            elif state["seq"] > history.seq:
                after = [m for m in state["history"] if m["seq"] > history.seq]
                if after and after[0]["seq"] == history.seq + 1:
                    missed[name] = after
                else:
                    broken.add(name)
        self.epoch = epoch
        self.rooms = {name: RoomHistory.from_state(name, state, self.history_size)
                      for name, state in rooms.items()}
        return missed, broken

    def install_room(self, room, state):
        """Replace one room with the broker's state of it."""
        self.rooms[room] = RoomHistory.from_state(room, state, self.history_size)

    def apply(self, message, epoch):
        """Merge one live message of the given epoch."""
        history = self.rooms.get(message["room"])
        if history is None:
            if message["seq"] != 1:
                return Outcome.GAP
            history = self.rooms[message["room"]] = RoomHistory(
                message["room"], epoch, size=self.history_size)
        if epoch != history.epoch:
            return Outcome.GAP
        if message["seq"] <= history.seq:
            return Outcome.DUPLICATE
        if message["seq"] != history.seq + 1:
            return Outcome.GAP
        history.append(message)
        return Outcome.APPLIED

    def position(self, room):
        """``(epoch, seq)`` of a room; a room not seen yet is at seq 0."""
        history = self.rooms.get(room)
        if history is None:
            return self.epoch, 0
        return history.epoch, history.seq

    def view(self, room, since=None, epoch=None):
        """What a join answers: {epoch, seq, history, gap} (see RoomHistory.view)."""
        history = self.rooms.get(room)
        if history is None:
            history = RoomHistory(room, self.epoch, size=self.history_size)
        return history.view(since, epoch)

    def forget(self, room):
        """Drop a room this node no longer follows."""
        self.rooms.pop(room, None)
