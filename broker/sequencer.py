"""Per-room sequencing, replay buffers and cid de-duplication."""
import os

from chatstream import config
from chatstream.clock import new_epoch, now_ms
from chatstream.history import RoomHistory
from .store import MemoryStore

_ID_POOL = []


def new_id():
    """A random (version 4) UUID as 32 hex digits, like ``uuid.uuid4().hex``
    but from 256 ids' worth of ``os.urandom`` at a time (one syscall per id
    was 7 % of the broker's time flat out)."""
    if not _ID_POOL:
        pool = bytearray(os.urandom(16 * 256))
        for i in range(0, len(pool), 16):
            pool[i + 6] = (pool[i + 6] & 0x0F) | 0x40
            pool[i + 8] = (pool[i + 8] & 0x3F) | 0x80
        _ID_POOL.extend(pool[i:i + 16].hex() for i in range(0, len(pool), 16))
    return _ID_POOL.pop()


class Sequencer:
    """Gives every room message its seq, id and ts, and remembers the last ones.

    :param epoch: the epoch of every room this sequencer creates (default:
        the store's, or a new one).
    :param history_size: messages kept per room (the replay buffer and the
        window inside which a repeated ``cid`` is recognised).
    :param clock_ms: returns Unix milliseconds (injectable for tests).
    :param store: where sequenced messages are made durable (see store.py);
        its saved rooms are loaded here.
    """

    def __init__(self, epoch=None, history_size=config.HISTORY_SIZE, clock_ms=now_ms, store=None):
        self.store = store or MemoryStore()
        saved_epoch, saved_rooms = self.store.load(history_size)
        self.epoch = epoch or saved_epoch or new_epoch()
        self.history_size = history_size
        self.clock_ms = clock_ms
        self.rooms = {}          # room -> RoomHistory
        self.cids = {}           # room -> {cid: message} for buffered messages
        self.changed = {}        # room -> seq, since the last take_changes()
        for name, state in saved_rooms.items():
            history = self.rooms[name] = RoomHistory.from_state(name, state, history_size)
            self.cids[name] = {m["cid"]: m for m in history.buffer if "cid" in m}

    def room(self, name):
        """The room's history, created empty on first use."""
        history = self.rooms.get(name)
        if history is None:
            history = self.rooms[name] = RoomHistory(name, self.epoch, size=self.history_size)
            self.cids[name] = {}
        return history

    def sequence(self, room, nick, text, node, cid=None):
        """Sequence one message; returns ``(message, duplicate)``.

        A ``cid`` already seen in the room's buffer returns the first message
        and ``duplicate=True``: it must not be published again.
        """
        history = self.room(room)
        cids = self.cids[room]
        if cid is not None and cid in cids:
            return cids[cid], True
        message = {
            "id": new_id(),
            "seq": history.seq + 1,
            "room": room,
            "nick": nick,
            "text": text,
            "ts": self.clock_ms(),
            "node": node,
        }
        if cid is not None:
            message["cid"] = cid
        evicted = history.append(message)
        if evicted is not None and "cid" in evicted:
            cids.pop(evicted["cid"], None)
        if cid is not None:
            cids[cid] = message
        self.changed[room] = message["seq"]
        self.store.append(room, history.epoch, message, self.history_size)
        return message, False

    def commit(self):
        """Make everything sequenced so far durable (before anyone hears of it)."""
        self.store.commit()

    def snapshot(self, rooms=None):
        """Rooms' state: {room: {epoch, seq, history}}, for the named rooms that
        exist (default: every room)."""
        if rooms is None:
            return {name: history.state() for name, history in self.rooms.items()}
        return {name: self.rooms[name].state() for name in rooms if name in self.rooms}

    def history(self, room, since=None, epoch=None):
        """{room, epoch, seq, history, gap}: the room's position and what a reader
        that last saw ``(epoch, since)`` is missing (see :meth:`RoomHistory.view`)."""
        history = self.rooms.get(room)
        if history is None:
            history = RoomHistory(room, self.epoch, size=self.history_size)
        return {"room": room, **history.view(since, epoch)}

    def take_changes(self):
        """Rooms whose seq moved since the last call, {room: seq}."""
        changed, self.changed = self.changed, {}
        return changed
