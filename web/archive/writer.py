"""Writing room events into the archive: a batch per transaction, each event once.

The archiver hands over events in each room's order; a batch may hold many rooms and
events the archive already has (a catch-up overlapping the live stream, a restart after
a crash between the write and its report).  An event is new when it lies beyond its
room's watermark, which moves in the same transaction as the rows; the unique position
``(room, epoch, seq)`` makes a second writer's copy a no-op as well.
"""
import logging
from dataclasses import dataclass

from django.db import transaction

from .models import Edit, Room, RoomEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    """What one batch did: how many events were new, and the watermark of each room
    it held events of (repeats too: the broker may not have heard of it yet)."""
    new: int
    watermarks: dict      # room name -> (epoch, seq)


def _row(room, epoch, message):
    kind = message.get("kind") or RoomEvent.Kind.MESSAGE
    return RoomEvent(
        room=room, epoch=epoch, seq=message["seq"], kind=kind, message_id=message.get("id", ""),
        uid=message.get("uid") or "", nick=message.get("nick") or "",
        text="" if kind == RoomEvent.Kind.DELETE else message.get("text") or "",
        ts=message["ts"], node=message.get("node") or "", cid=message.get("cid"),
        target=message.get("target"),
        # a message read back from the broker's store is in its current state
        edited_at=message.get("edited"), deleted=bool(message.get("deleted")))


def _rooms(names, using):
    """{name: Room} for ``names``, made where missing."""
    rooms = Room.objects.using(using).in_bulk(names, field_name="name")
    missing = [Room(name=name) for name in names if name not in rooms]
    if missing:
        Room.objects.using(using).bulk_create(missing, ignore_conflicts=True)
        rooms = Room.objects.using(using).in_bulk(names, field_name="name")
    return rooms


def _is_new(room, epoch, seq):
    return epoch != room.epoch or seq > room.seq


def write(events, using="default"):
    """Archive ``events`` [(epoch, Message)] in one transaction; returns :class:`Written`.

    Each room's events come in seq order; edits and deletes change their target's
    current state only the first time they are written.
    """
    if not events:
        return Written(0, {})
    with transaction.atomic(using=using):
        rooms = _rooms(sorted({message["room"] for _, message in events}), using)
        rows = []
        for epoch, message in events:
            room = rooms[message["room"]]
            if _is_new(room, epoch, message["seq"]):
                rows.append(_row(room, epoch, message))
                room.epoch, room.seq = epoch, message["seq"]
        RoomEvent.objects.using(using).bulk_create(rows, ignore_conflicts=True)
        _apply_changes([row for row in rows if row.kind != RoomEvent.Kind.MESSAGE], using)
        touched = {row.room_id: row.room for row in rows}.values()
        Room.objects.using(using).bulk_update(touched, ["epoch", "seq"])
    return Written(len(rows), {room.name: (room.epoch, room.seq) for room in rooms.values()})


def _apply_changes(changes, using):
    """Edits and deletes onto their target messages (which may be in the same batch)."""
    if not changes:
        return
    targets = {}
    for change in changes:
        key = (change.room_id, change.epoch, change.target)
        if key not in targets:
            targets[key] = RoomEvent.objects.using(using).filter(
                room_id=change.room_id, epoch=change.epoch, seq=change.target,
                kind=RoomEvent.Kind.MESSAGE).first()
    history = []
    for change in changes:
        target = targets[(change.room_id, change.epoch, change.target)]
        if target is None:
            # Its message was never archived (lost before the archiver saw it): nothing to change.
            log.warning("%s of %s #%s: no such message archived", change.kind,
                        change.room.name, change.target)
            continue
        if change.kind == RoomEvent.Kind.EDIT and not target.deleted:
            history.append(Edit(event=target, edit_seq=change.seq, text=target.text, ts=change.ts))
            target.text, target.edited_at = change.text, change.ts
        elif change.kind == RoomEvent.Kind.DELETE:
            target.text, target.deleted = "", True
    changed = [t for t in targets.values() if t is not None]
    RoomEvent.objects.using(using).bulk_update(changed, ["text", "edited_at", "deleted"])
    Edit.objects.using(using).bulk_create(history, ignore_conflicts=True)
