"""Per-room sequencing, replay buffers and cid de-duplication.

Rooms are loaded from the store on first use, not at start, and at most
``rooms_in_memory`` stay in memory; rooms idle past their TTL lose their
messages.  So the broker's memory and start-up time do not grow with the
number of rooms it has ever seen.
"""
import collections
import heapq
import os

from chatstream import config, room_events
from chatstream.clock import new_epoch, now_ms
from chatstream.history import RoomHistory
from .store import MemoryStore

DAY_MS = 86_400_000
# Names of rooms with nothing stored that find() remembers (a join asks for its room's
# history before anyone wrote there); past this many it forgets them all.
ABSENT_ROOMS_MAX = 200_000
_ID_POOL = []


class TargetNotFound(LookupError):
    """An edit or delete of a seq that is not a message of the room (any more)."""


def new_id():
    """A random (version 4) UUID as 32 hex digits, like ``uuid.uuid4().hex``
    but from 256 ids' worth of ``os.urandom`` at a time: a syscall per id is a
    visible share of the loop at high rates."""
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
    :param history_size: messages kept per room (the replay buffer).
    :param cid_window_ms: how long a repeated ``cid`` is recognised after its event
        left the buffer (inside the buffer it always is), at most ``cid_window_max``
        cids per room (an id and a seq each): a resend after a late ack, however busy
        the room, is answered with the first event, never sequenced twice.
    :param clock_ms: returns Unix milliseconds (injectable for tests).
    :param store: where sequenced messages are made durable (see store.py);
        its saved rooms are loaded from it on first use.
    :param rooms_in_memory: rooms kept in memory (with a durable store).
    :param room_ttl_ms: idle time after which a room's messages expire.
    """

    def __init__(self, epoch=None, history_size=config.HISTORY_SIZE, clock_ms=now_ms, store=None,
                 rooms_in_memory=config.BROKER_ROOMS_IN_MEMORY,
                 room_ttl_ms=config.ROOM_TTL_DAYS * DAY_MS,
                 cid_window_ms=config.CID_WINDOW_S * 1000, cid_window_max=config.CID_WINDOW_MAX):
        self.store = store or MemoryStore()
        self.epoch = epoch or self.store.epoch() or new_epoch()
        self.history_size = history_size
        self.clock_ms = clock_ms
        self.rooms_in_memory = rooms_in_memory
        self.room_ttl_ms = room_ttl_ms
        self.cid_window_ms = cid_window_ms
        self.cid_window_max = cid_window_max
        self.rooms = collections.OrderedDict()   # room -> RoomHistory, least recently used first
        self.cids = {}           # room -> {cid: message} for buffered messages
        self.left_cids = {}      # room -> OrderedDict {cid: (ts, id, seq)} of events out of the buffer
        self.changed = {}        # room -> seq, since the last take_changes()
        self.absent = set()      # rooms the store was asked for and had nothing of

    def find(self, name):
        """The room's history, from memory or the store; None if it never had a message."""
        history = self.rooms.get(name)
        if history is not None:
            self.rooms.move_to_end(name)
            return history
        if name in self.absent:  # joins and snapshots ask for rooms never written to
            return None
        state = self.store.load_room(name, self.history_size)
        if state is None:
            if len(self.absent) >= ABSENT_ROOMS_MAX:
                self.absent.clear()
            self.absent.add(name)
            return None
        history = self.rooms[name] = RoomHistory.from_state(name, state, self.history_size)
        self.cids[name] = {m["cid"]: m for m in history.buffer if "cid" in m}
        return history

    def room(self, name):
        """The room's history, created empty on first use."""
        history = self.find(name)
        if history is None:
            history = self.rooms[name] = RoomHistory(name, self.epoch, size=self.history_size)
            self._forget_cids(name)
            self.absent.discard(name)
        return history

    def sequence(self, room, nick, text, node, cid=None, uid=None):
        """Sequence one message; returns ``(message, duplicate)``.

        A ``cid`` already seen in the room's buffer returns the first message
        and ``duplicate=True``: it must not be published again.  ``uid`` (the
        author's identity) travels in the message, so its buffer, store and
        snapshots carry it; a message from a node that sends none has none.
        """
        history = self.room(room)
        seen = self._seen(room, cid)
        if seen is not None:
            return seen, True
        message = {
            "id": new_id(),
            "seq": history.seq + 1,
            "room": room,
            "kind": room_events.MESSAGE,   # every room event says which (PROTOCOL.md)
            "nick": nick,
            "text": text,
            "ts": self.clock_ms(),
            "node": node,
        }
        if cid is not None:
            message["cid"] = cid
        if uid is not None:
            message["uid"] = uid
        self._add(room, history, message)
        return message, False

    def sequence_change(self, room, epoch, kind, target, node, uid, nick=None, text=None,
                        cid=None):
        """Sequence an edit or delete of message ``target`` of ``room``; returns
        ``(event, duplicate)`` as :meth:`sequence` does (a resent request's ``cid``).

        The node checked who may change the message and found it live (in its mirror or
        the archive).  Here, where every change of the room is ordered, the target is
        checked once more wherever the broker still holds it (buffer or store): two
        deletes, or an edit racing a delete, from two nodes whose mirrors had not heard
        of each other, must not both pass.  Raises :class:`TargetNotFound`.

        :param epoch: the epoch the target's seq is of (another one: not found).
        """
        history = self.find(room)
        if history is None or history.epoch != epoch or not 1 <= target <= history.seq:
            raise TargetNotFound("no message #%d in room %s" % (target, room))
        seen = self._seen(room, cid)
        if seen is not None:
            return seen, True
        current = history.get(target)
        if current is None:
            current = self.store.event(room, target)   # beyond the buffer, not yet archived
        if current is not None and not room_events.is_live_message(current):
            raise TargetNotFound("#%d of room %s is not a message or is deleted" % (target, room))
        event = {"id": new_id(), "seq": history.seq + 1, "room": room, "kind": kind,
                 "target": target, "ts": self.clock_ms(), "node": node, "uid": uid}
        if kind == room_events.EDIT:
            event["nick"], event["text"] = nick, text
        if cid is not None:
            event["cid"] = cid
        self._add(room, history, event)
        return event, False

    def _seen(self, room, cid):
        """The event ``cid`` was sequenced as in ``room``, if it is recognised: the
        buffered event itself, or ``{id, seq, room, cid}`` of one that left the buffer
        within the window (an ack needs no more).  None otherwise."""
        if cid is None:
            return None
        found = self.cids[room].get(cid)
        if found is not None:
            return found
        left = self.left_cids.get(room)
        entry = left.get(cid) if left else None
        if entry is None or entry[0] < self.clock_ms() - self.cid_window_ms:
            return None
        return {"id": entry[1], "seq": entry[2], "room": room, "cid": cid}

    def _forget_cids(self, room):
        self.cids[room] = {}
        self.left_cids.pop(room, None)

    def _add(self, room, history, event):
        """Append a sequenced event to its room (memory, cids, store)."""
        cids = self.cids[room]
        evicted = history.append(event)
        if evicted is not None and "cid" in evicted:
            cids.pop(evicted["cid"], None)
            left = self.left_cids.get(room)
            if left is None:
                left = self.left_cids[room] = collections.OrderedDict()
            left[evicted["cid"]] = (evicted["ts"], evicted["id"], evicted["seq"])
            left.move_to_end(evicted["cid"])     # a cid used again long after: newest
            oldest_ms = event["ts"] - self.cid_window_ms
            while left and (len(left) > self.cid_window_max or next(iter(left.values()))[0] < oldest_ms):
                left.popitem(last=False)
        if "cid" in event:
            cids[event["cid"]] = event
        if room_events.is_change(event):
            # a resent publish of the target gets its current state, never a deleted text
            target = history.get(event["target"])
            if target is not None and "cid" in target:
                cids[target["cid"]] = target
        self.changed[room] = event["seq"]
        self.store.append(room, history.epoch, event, self.history_size)

    def apply(self, room, epoch, message):
        """A replica's step (broker/replication.py): add an event the active
        sequenced, with its own seq, id, ts, cid and uid (an edit or delete changes
        its target here as it did there).  Returns False (and
        changes nothing) when it does not follow the room's last seq in the
        same epoch: the replica is out of step and needs a catch-up."""
        history = self.find(room)
        if history is None:
            if message["seq"] != 1:
                return False
            history = self.rooms[room] = RoomHistory(room, epoch, size=self.history_size)
            self._forget_cids(room)
            self.absent.discard(room)
        if history.epoch != epoch or message["seq"] != history.seq + 1:
            return False
        self._add(room, history, message)
        return True

    def names_after(self, after, limit):
        """Up to ``limit`` room names after ``after``, in name order, loading none
        (a catch-up's next part): from a durable store, which holds every room
        once committed, else from memory, where every room then is."""
        if self.store.durable:
            return self.store.room_names_after(after, limit)
        return heapq.nsmallest(limit, (name for name in self.rooms if name > after))

    def peek(self, name):
        """A room's state {epoch, seq, history}, from memory or the store, without
        loading it into memory; None if it never had a message."""
        history = self.rooms.get(name)
        if history is not None:
            return history.state()
        return self.store.load_room(name, self.history_size)

    def restore_part(self, states, after, upto=None):
        """A replica's catch-up part: the rooms after ``after`` up to ``upto``
        (None: every room after it) become exactly ``states`` {room: {epoch, seq,
        history}}, in the store; they leave memory (a durable store loads them on
        their next use), so memory stays within ``rooms_in_memory``."""
        for name in [n for n in self.rooms if n > after and (upto is None or n <= upto)]:
            del self.rooms[name]
            del self.cids[name]
            self.left_cids.pop(name, None)
        if not self.store.durable:     # memory is all there is
            for room, state in states.items():
                history = self.rooms[room] = RoomHistory.from_state(room, state,
                                                                    self.history_size)
                self.cids[room] = {m["cid"]: m for m in history.buffer if "cid" in m}
        self.store.replace_rooms(states, after, upto)
        self.absent.clear()            # the store changed under every name

    def adopt_epoch(self, epoch):
        """New rooms take the active's epoch (same epoch across a failover)."""
        self.epoch = epoch
        self.store.set_epoch(epoch)

    def commit(self):
        """Make everything sequenced so far durable (before anyone hears of it);
        then rooms beyond ``rooms_in_memory`` leave memory, least recently used
        first (a durable store loads them again on their next use)."""
        self.store.commit()
        if self.store.durable:
            while len(self.rooms) > self.rooms_in_memory:
                name, _ = self.rooms.popitem(last=False)
                del self.cids[name]
                self.left_cids.pop(name, None)

    def expire(self):
        """Rooms without a message for ``room_ttl_ms`` lose their messages,
        in memory and in the store; their position (epoch, seq) stays, so a
        client resuming from before hears ``gap``.  Returns how many rooms."""
        cutoff = self.clock_ms() - self.room_ttl_ms
        idle = [name for name, history in self.rooms.items()
                if history.buffer and history.buffer[-1]["ts"] < cutoff]
        for name in idle:
            history = self.rooms[name]
            self.rooms[name] = RoomHistory(name, history.epoch, history.seq, self.history_size)
            self._forget_cids(name)
        stored = self.store.expire(cutoff)
        return max(len(idle), stored)

    def snapshot(self, rooms=None):
        """Rooms' state: {room: {epoch, seq, history}}, for the named rooms that
        exist (default: every room in memory)."""
        if rooms is None:
            return {name: history.state() for name, history in self.rooms.items()}
        found = ((name, self.find(name)) for name in rooms)
        return {name: history.state() for name, history in found if history is not None}

    def history(self, room, since=None, epoch=None):
        """{room, epoch, seq, history, gap}: the room's position and what a reader
        that last saw ``(epoch, since)`` is missing (see :meth:`RoomHistory.view`)."""
        history = self.find(room)
        if history is None:
            history = RoomHistory(room, self.epoch, size=self.history_size)
        return {"room": room, **history.view(since, epoch)}

    def take_changes(self):
        """Rooms whose seq moved since the last call, {room: seq}."""
        changed, self.changed = self.changed, {}
        return changed
