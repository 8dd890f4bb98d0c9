"""Writing room events into the archive: a batch per transaction, each event once.

The archiver hands over events in each room's order; a batch may hold many rooms and
events the archive already has (a catch-up overlapping the live stream, a restart after
a crash between the write and its report).  An event is new when it lies beyond its
room's watermark, which moves in the same transaction as the rows; the unique position
``(room, epoch, seq)`` makes a second writer's copy a no-op as well (``ON CONFLICT DO
NOTHING``, which SQLite and PostgreSQL both take).

The rows go in without model instances (at the broker's flat-out rate the ORM's per-row
work was most of the archiver's time): on SQLite one prepared ``INSERT`` run over the
batch (``executemany``, a loop in C), on PostgreSQL one ``INSERT ... SELECT FROM unnest``
of a column array each (one statement and one round-trip per batch).  Edits and
deletes, rare, go through the models.
"""
import logging
from collections import namedtuple
from dataclasses import dataclass

from django.db import connections, transaction

from .models import Edit, Room, RoomEvent

log = logging.getLogger(__name__)

# The columns of a new row, in the order of :func:`_values`.
COLUMNS = ("room_id", "epoch", "seq", "kind", "message_id", "uid", "nick", "text", "ts",
           "node", "cid", "target", "edited_at", "deleted")
INSERT_SQL = "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (room_id, epoch, seq) DO NOTHING" % (
    RoomEvent._meta.db_table, ", ".join(COLUMNS), ", ".join(["%s"] * len(COLUMNS)))
WATERMARK_SQL = "UPDATE %s SET epoch = %%s, seq = %%s WHERE id = %%s" % Room._meta.db_table
ROOMS_SQL = "SELECT id, name, epoch, seq FROM %s WHERE name IN (%%s)" % Room._meta.db_table
NEW_ROOM_SQL = ("INSERT INTO %s (name, epoch, seq) VALUES (%%s, '', 0) ON CONFLICT (name) DO NOTHING"
                % Room._meta.db_table)
# Room names in one query at most (within every database's bound on parameters).
ROOMS_PER_QUERY = 500

# PostgreSQL's type of each of COLUMNS, for the arrays of UNNEST_SQL.
TYPES = ("bigint", "text", "bigint", "text", "text", "text", "text", "text", "bigint", "text",
         "text", "bigint", "bigint", "boolean")
UNNEST_SQL = ("INSERT INTO %s (%s) SELECT * FROM unnest(%s) ON CONFLICT (room_id, epoch, seq) "
              "DO NOTHING" % (RoomEvent._meta.db_table, ", ".join(COLUMNS),
                              ", ".join("%%s::%s[]" % t for t in TYPES)))
MESSAGE, EDIT, DELETE = RoomEvent.Kind.MESSAGE.value, RoomEvent.Kind.EDIT.value, RoomEvent.Kind.DELETE.value

# An edit or a delete of this batch, for :func:`_apply_changes`.
Change = namedtuple("Change", "room epoch seq kind text ts target")


@dataclass(frozen=True)
class Written:
    """What one batch did: how many events were new, and the watermark of each room
    it held events of (repeats too: the broker may not have heard of it yet)."""
    new: int
    watermarks: dict      # room name -> (epoch, seq)


def _values(room_id, epoch, message, kind):
    """A new row's values in :data:`COLUMNS` order."""
    return (room_id, epoch, message["seq"], kind, message.get("id", ""),
            message.get("uid") or "", message.get("nick") or "",
            "" if kind == DELETE else message.get("text") or "",
            message["ts"], message.get("node") or "", message.get("cid"), message.get("target"),
            # a message read back from the broker's store is in its current state
            message.get("edited"), bool(message.get("deleted")))


class RoomRow:
    """A room's id, name and watermark as read in the batch's transaction."""
    __slots__ = ("id", "name", "epoch", "seq")

    def __init__(self, id, name, epoch, seq):
        self.id, self.name, self.epoch, self.seq = id, name, epoch, seq


def _rooms(cursor, names):
    """{name: RoomRow} for ``names``, made where missing."""
    def read():
        found = {}
        for start in range(0, len(names), ROOMS_PER_QUERY):
            part = names[start:start + ROOMS_PER_QUERY]
            cursor.execute(ROOMS_SQL % ", ".join(["%s"] * len(part)), part)
            found.update((row[1], RoomRow(*row)) for row in cursor.fetchall())
        return found
    rooms = read()
    missing = [(name,) for name in names if name not in rooms]
    if missing:
        cursor.executemany(NEW_ROOM_SQL, missing)
        rooms = read()
    return rooms


def write(events, using="default"):
    """Archive ``events`` [(epoch, Message)] in one transaction; returns :class:`Written`.

    Each room's events come in seq order; edits and deletes change their target's
    current state only the first time they are written.
    """
    if not events:
        return Written(0, {})
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        rooms = _rooms(cursor, sorted({message["room"] for _, message in events}))
        rows, changes, moved = [], [], set()
        for epoch, message in events:
            room = rooms[message["room"]]
            seq = message["seq"]
            if epoch == room.epoch and seq <= room.seq:
                continue                    # archived already
            kind = message.get("kind") or MESSAGE
            rows.append(_values(room.id, epoch, message, kind))
            if kind != MESSAGE:
                changes.append(Change(room, epoch, seq, kind, message.get("text") or "",
                                      message["ts"], message.get("target")))
            room.epoch, room.seq = epoch, seq
            moved.add(room)
        _insert(cursor, rows, connections[using].vendor)
        _apply_changes(changes, using)
        cursor.executemany(WATERMARK_SQL, [(room.epoch, room.seq, room.id) for room in moved])
    return Written(len(rows), {room.name: (room.epoch, room.seq) for room in rooms.values()})


def _insert(cursor, rows, vendor):
    """The new rows (each ignored if its position is there already)."""
    if vendor != "postgresql":
        cursor.executemany(INSERT_SQL, rows)
    elif rows:
        cursor.execute(UNNEST_SQL, [list(column) for column in zip(*rows)])


def _apply_changes(changes, using):
    """Edits and deletes onto their target messages (which may be in the same batch)."""
    if not changes:
        return
    targets = {}
    for change in changes:
        key = (change.room.id, change.epoch, change.target)
        if key not in targets:
            targets[key] = RoomEvent.objects.using(using).filter(
                room_id=change.room.id, epoch=change.epoch, seq=change.target,
                kind=RoomEvent.Kind.MESSAGE).first()
    history = []
    for change in changes:
        target = targets[(change.room.id, change.epoch, change.target)]
        if target is None:
            # Its message was never archived (lost before the archiver saw it): nothing to change.
            log.warning("%s of %s #%s: no such message archived", change.kind,
                        change.room.name, change.target)
            continue
        if change.kind == EDIT and not target.deleted:
            history.append(Edit(event=target, edit_seq=change.seq, text=target.text, ts=change.ts))
            target.text, target.edited_at = change.text, change.ts
        elif change.kind == DELETE:
            target.text, target.deleted = "", True
    changed = [t for t in targets.values() if t is not None]
    RoomEvent.objects.using(using).bulk_update(changed, ["text", "edited_at", "deleted"])
    Edit.objects.using(using).bulk_create(history, ignore_conflicts=True)
