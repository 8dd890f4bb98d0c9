"""Durable broker state: each room's epoch, last seq and replay buffer.

The cid window needs no table of its own: it is the cids of the buffered
messages.  :class:`SqliteStore` keeps everything in one SQLite file in WAL
mode; :class:`MemoryStore` is the in-memory fake for tests and for running
without a state file.

Once an archiver has reported (``archived``, meta ``archiving``), a room's messages
stay in the store beyond its buffer until the archive holds them: a message is pruned
only when it is both out of the buffer and at or below the room's ``archived`` seq.
The archiver reads them back with :meth:`SqliteStore.events_after`.

An edit or delete (chatstream/room_events.py) also rewrites its target's row, if the
store still holds it, to the target's current state; a delete also takes the text out
of the rows of the target's earlier edits.  So a deleted text leaves the store in the
same commit as the delete is stored.

Why SQLite: it ships with Python, a WAL commit is an append to one file, and
``synchronous=NORMAL`` survives ``kill -9`` of the broker (the WAL is in the
OS page cache; only a power cut can lose the last commits -- set
``CHAT_BROKER_SYNC=FULL`` to fsync every commit and survive that too).  The
broker commits once per batch of requests (group commit), so the cost is per
batch, not per message.
"""
import logging
import os
import sqlite3
import time

from chatstream import fastjson, room_events
from chatstream.clock import new_epoch, now_ms

log = logging.getLogger(__name__)

# rooms.last_ms: when the room's last message was sequenced (Unix ms), for the
# idle-room TTL.  A room whose messages expired keeps its row (~100 bytes):
# its position, so a client resuming from before the expiry hears `gap`
# instead of a restarted seq that could look like a continuation.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, epoch TEXT NOT NULL, seq INTEGER NOT NULL,
                                  last_ms INTEGER NOT NULL DEFAULT 0,
                                  archived INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (room, seq)) WITHOUT ROWID;
"""


class MemoryStore:
    """Keeps nothing across restarts: every start is a new epoch."""

    durable = False

    def epoch(self):
        """The stored epoch (None: nothing stored)."""
        return None

    def load_room(self, room, history_size):
        """A room's stored state {"epoch", "seq", "history"}, or None."""
        return None

    def append(self, room, epoch, message, history_size):
        pass

    def event(self, room, seq):
        """The stored event ``seq`` of ``room`` in its current state, or None."""
        return None

    def expire(self, before_ms):
        """Drop the messages of rooms silent since before ``before_ms``."""
        return 0

    def set_epoch(self, epoch):
        pass

    def replace_rooms(self, states, after, upto=None):
        """Make the stored rooms after ``after`` up to ``upto`` exactly ``states``
        (a replica's catch-up part; see :meth:`SqliteStore.replace_rooms`)."""

    def room_names_after(self, after, limit):
        """Up to ``limit`` stored rooms after ``after``, in name order."""
        return []

    def record_archived(self, rooms, history_size):
        pass

    def unarchived_rooms(self, after, limit):
        """Up to ``limit`` rooms after ``after`` with events the archive lacks."""
        return {}

    def events_after(self, room, since, limit):
        """Up to ``limit`` stored events of ``room`` after seq ``since``."""
        return []

    def commit(self):
        pass

    def close(self):
        pass


class SqliteStore:
    """Room state in one SQLite file (WAL).

    :param path: the database file; created with its folder if missing.
    :param synchronous: SQLite's ``synchronous`` pragma: NORMAL survives a
        process crash, FULL also a power cut.
    """

    durable = True

    def __init__(self, path, synchronous="NORMAL"):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.db = self._open(path, synchronous)
        self.rows = []      # (room, seq, body) staged since the last commit
        self.changes = []   # (room, edit or delete event) staged since the last commit
        self.touched = {}   # room -> (epoch, seq, history_size) since the last commit
        self.archived = {}  # room -> (epoch, seq) the archiver reported since the last commit
        self.archived_history_size = 0
        self._archiving = None   # read from meta on first use

    @staticmethod
    def _open(path, synchronous):
        try:
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=%s" % ("FULL" if synchronous == "FULL" else "NORMAL"))
            db.executescript(SCHEMA)
            columns = [row[1] for row in db.execute("PRAGMA table_info(rooms)")]
            if "last_ms" not in columns:    # a state file from before the TTL: its rooms
                db.execute("ALTER TABLE rooms ADD COLUMN last_ms INTEGER NOT NULL DEFAULT 0")
                db.execute("UPDATE rooms SET last_ms = ?", (now_ms(),))   # count from now
            if "archived" not in columns:   # a state file from before the archive
                db.execute("ALTER TABLE rooms ADD COLUMN archived INTEGER NOT NULL DEFAULT 0")
            db.execute("CREATE INDEX IF NOT EXISTS rooms_by_last_ms ON rooms (last_ms)")
            db.execute("SELECT count(*) FROM rooms").fetchone()
            return db
        except sqlite3.DatabaseError as exc:
            # The state is truly lost: keep the bad file for inspection, start afresh
            # (a new epoch tells every client so).
            aside = "%s.corrupt-%d" % (path, int(time.time()))
            log.error("state file %s unreadable (%s); moved to %s, starting a new epoch",
                      path, exc, aside)
            os.replace(path, aside)
            return SqliteStore._open(path, synchronous)

    def epoch(self):
        """The stored epoch, made (and committed) on first use."""
        row = self.db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        if row:
            return row[0]
        epoch = new_epoch()
        self.db.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        return epoch

    def set_epoch(self, epoch):
        """Store ``epoch`` as this state's epoch (a replica adopts the active's)."""
        self.db.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (epoch,))

    def room_names_after(self, after, limit):
        """Up to ``limit`` stored rooms after ``after``, in name order (a catch-up
        reads the store a part at a time; the primary key's order, no sort)."""
        return [room for (room,) in self.db.execute(
            "SELECT room FROM rooms WHERE room > ? ORDER BY room LIMIT ?", (after, limit))]

    def replace_rooms(self, states, after, upto=None):
        """Make the stored rooms after ``after`` up to ``upto`` (None: every room
        after it) exactly ``states`` {room: {epoch, seq, history}}, in one
        transaction: a replica's catch-up part; a room of that range the part
        does not hold is gone from the active, so it goes here too."""
        self.commit()
        span = "room > ?" if upto is None else "room > ? AND room <= ?"
        bounds = (after,) if upto is None else (after, upto)
        rows, positions = [], []
        for room, state in states.items():
            history = state["history"]
            rows.extend((room, m["seq"], fastjson.dumps(m, separators=fastjson.COMPACT))
                        for m in history)
            positions.append((room, state["epoch"], state["seq"],
                              history[-1]["ts"] if history else 0))
        self.db.execute("BEGIN")
        try:
            self.db.execute("DELETE FROM messages WHERE " + span, bounds)
            self.db.execute("DELETE FROM rooms WHERE " + span, bounds)
            self.db.executemany("INSERT INTO messages (room, seq, body) VALUES (?, ?, ?)", rows)
            self.db.executemany("INSERT INTO rooms (room, epoch, seq, last_ms) VALUES (?, ?, ?, ?)",
                                positions)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def archiving(self):
        """True once an archiver reported: messages then wait for it beyond the buffer."""
        if self._archiving is None:
            self._archiving = self.db.execute(
                "SELECT 1 FROM meta WHERE key='archiving'").fetchone() is not None
        return self._archiving

    def record_archived(self, rooms, history_size):
        """The archive holds ``rooms`` {room: (epoch, seq)}: each room's messages up to
        seq (of the room's own epoch) may go once out of the buffer.  Applied with the
        batch being staged, if any (its commit comes at the batch's end), else at once."""
        if not self.archiving():   # from now on, whatever the report holds
            self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('archiving', '1')")
            self._archiving = True
        for room, (epoch, seq) in rooms.items():
            staged = self.archived.get(room)
            if staged is None or staged[0] != epoch or staged[1] < seq:
                self.archived[room] = (epoch, seq)
        self.archived_history_size = history_size
        if not self.rows and not self.touched:
            self.commit()

    def unarchived_rooms(self, after, limit):
        """Up to ``limit`` rooms after ``after`` (name order) with events the archive
        lacks: {room: (epoch, seq, archived)}."""
        return {room: (epoch, seq, archived) for room, epoch, seq, archived in self.db.execute(
            "SELECT room, epoch, seq, archived FROM rooms WHERE room > ? AND seq > archived "
            "ORDER BY room LIMIT ?", (after, limit))}

    def events_after(self, room, since, limit):
        """Up to ``limit`` stored events of ``room`` after seq ``since``, in seq order."""
        return [fastjson.loads(body) for (body,) in self.db.execute(
            "SELECT body FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?",
            (room, since, limit))]

    def load_room(self, room, history_size):
        """A room's state {"epoch", "seq", "history"} as last committed, or None."""
        row = self.db.execute("SELECT epoch, seq FROM rooms WHERE room=?", (room,)).fetchone()
        if row is None:
            return None
        bodies = self.db.execute("SELECT body FROM messages WHERE room=? ORDER BY seq DESC LIMIT ?",
                                 (room, history_size)).fetchall()
        history = [fastjson.loads(b) for (b,) in reversed(bodies)]
        if history and history[-1]["seq"] != row[1]:
            history = []      # the tail is gone (expired): keep the position only
        return {"epoch": row[0], "seq": row[1], "history": history}

    def append(self, room, epoch, message, history_size):
        """Stage one sequenced event; durable at the next :meth:`commit`."""
        body = fastjson.dumps(message, separators=fastjson.COMPACT)
        self.rows.append((room, message["seq"], body))
        self.touched[room] = (epoch, message["seq"], history_size, message["ts"])
        if room_events.is_change(message):
            self.changes.append((room, message))

    def event(self, room, seq):
        """The event ``seq`` of ``room`` in its current state (staged changes too), or None."""
        row = self.db.execute("SELECT body FROM messages WHERE room=? AND seq=?",
                              (room, seq)).fetchone()
        if row is None:   # staged in this batch?
            row = next(((body,) for r, s, body in self.rows if r == room and s == seq), None)
            if row is None:
                return None
        event = fastjson.loads(row[0])
        for changed_room, change in self.changes:
            if changed_room == room and change["target"] == seq:
                event = room_events.changed(event, change)
        return event

    def expire(self, before_ms):
        """Delete the messages of rooms with none since ``before_ms``; their
        position stays (``last_ms`` 0: expired).  Returns how many rooms."""
        rooms = [(room,) for (room,) in self.db.execute(
            "SELECT room FROM rooms WHERE last_ms > 0 AND last_ms < ?", (before_ms,))]
        if not rooms:
            return 0
        self.db.execute("BEGIN")
        try:
            self.db.executemany("DELETE FROM messages WHERE room=?", rooms)
            self.db.execute("UPDATE rooms SET last_ms = 0 WHERE last_ms > 0 AND last_ms < ?",
                            (before_ms,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return len(rooms)

    def commit(self):
        """Make every staged message durable in one transaction; prune what
        left the buffers."""
        if not self.rows and not self.touched and not self.archived:
            return
        self.db.execute("BEGIN")
        try:
            self._apply_archived()
            self.db.executemany("INSERT INTO messages (room, seq, body) VALUES (?, ?, ?)",
                                self.rows)
            for room, change in self.changes:
                self._apply_change(room, change)
            for room, (epoch, seq, history_size, last_ms) in self.touched.items():
                self.db.execute("INSERT INTO rooms (room, epoch, seq, last_ms) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT(room) DO UPDATE SET epoch=excluded.epoch, "
                                "seq=excluded.seq, last_ms=excluded.last_ms",
                                (room, epoch, seq, last_ms))
                self.db.execute("DELETE FROM messages WHERE room=? AND seq<=? AND seq<=?",
                                (room, seq - history_size, self._kept_from(room, seq)))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.rows = []
        self.changes = []
        self.touched = {}
        self.archived = {}

    def _apply_change(self, room, change):
        """Rewrite the rows an edit or delete changes (inside the commit's transaction)."""
        target = change["target"]
        row = self.db.execute("SELECT body FROM messages WHERE room=? AND seq=?",
                              (room, target)).fetchone()
        if row is not None:
            state = room_events.changed(fastjson.loads(row[0]), change)
            self.db.execute("UPDATE messages SET body=? WHERE room=? AND seq=?",
                            (fastjson.dumps(state, separators=fastjson.COMPACT), room, target))
        if change["kind"] != room_events.DELETE:
            return
        edits = self.db.execute(
            "SELECT seq, body FROM messages WHERE room=? AND seq>? AND seq<? "
            "AND json_extract(body, '$.kind')='edit' AND json_extract(body, '$.target')=?",
            (room, target, change["seq"], target)).fetchall()
        self.db.executemany("UPDATE messages SET body=? WHERE room=? AND seq=?", [
            (fastjson.dumps(room_events.redacted(fastjson.loads(body)),
                            separators=fastjson.COMPACT), room, seq) for seq, body in edits])

    def _apply_archived(self):
        if not self.archived:
            return
        self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('archiving', '1')")
        self._archiving = True
        for room, (epoch, seq) in self.archived.items():
            self.db.execute("UPDATE rooms SET archived = max(archived, ?) WHERE room = ? AND "
                            "epoch = ?", (seq, room, epoch))
            self.db.execute("DELETE FROM messages WHERE room = ? AND seq <= "
                            "(SELECT min(archived, seq - ?) FROM rooms WHERE room = ?)",
                            (room, self.archived_history_size, room))

    def _kept_from(self, room, seq):
        """The highest seq of ``room`` the archive lets go: all of them while no archiver
        runs, else its reported watermark."""
        if not self.archiving():
            return seq
        row = self.db.execute("SELECT archived FROM rooms WHERE room=?", (room,)).fetchone()
        return row[0] if row else 0

    def close(self):
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()


def open_store(config):
    """The store the configuration names: a SQLite file, or memory."""
    if config.state_path in ("", "memory"):
        log.warning("broker state is in memory only: a restart starts a new epoch")
        return MemoryStore()
    return SqliteStore(config.state_path, synchronous=config.state_sync)
