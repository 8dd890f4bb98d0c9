"""Pages of a room's conversation for the ``history`` event (PROTOCOL.md "Conversation"):
read from the archive, joined with the node's mirror for the newest events the archiver
has not written yet.  Never from the broker.
"""
from chat.protocol.history import HistoryUnavailable, current_messages
from chatstream import room_events
from .models import Room, RoomEvent

HISTORY_LIMIT = 50       # messages per page unless the client asks for fewer or more
HISTORY_LIMIT_MAX = 100


def as_message(row):
    """An archived message in its current state, as clients see it."""
    if row.deleted:
        return {"id": row.message_id, "seq": row.seq, "room": row.room_name, "ts": row.ts,
                "deleted": True, "kind": "message"}
    message = {"id": row.message_id, "seq": row.seq, "room": row.room_name, "nick": row.nick,
               "text": row.text, "ts": row.ts, "node": row.node, "uid": row.uid, "kind": "message"}
    if row.cid is not None:
        message["cid"] = row.cid
    if row.edited_at is not None:
        message["edited"] = row.edited_at
    return message


class ArchiveReader:
    """``page(room, view, before, limit)`` over the archive's tables.

    :param using: the database alias (the nodes' ``default``).
    """

    def __init__(self, using="default"):
        self.using = using

    def page(self, room, view, before=None, limit=HISTORY_LIMIT):
        """Up to ``limit`` messages of ``room`` with ``seq < before`` (default: the newest),
        oldest first, and whether they reach the room's first message.

        :param view: the node's mirror of the room {epoch, seq, history}: its epoch is the
            room's, and its buffer holds the newest events, archived or not.
        """
        epoch, newest = view["epoch"], view["seq"]
        before = newest + 1 if before is None else min(before, newest + 1)
        mirrored = {m["seq"]: room_events.as_listed(m) for m in view["history"]
                    if m["seq"] < before and not room_events.is_change(m)}
        watermark = Room.objects.using(self.using).filter(name=room, epoch=epoch).values_list("seq", flat=True).first()
        oldest_mirrored = min((m["seq"] for m in view["history"]), default=newest + 1)
        if (watermark or 0) + 1 < oldest_mirrored and before > (watermark or 0) + 1:
            # The archive has not caught up with the mirror: never a page across the hole.
            if before <= oldest_mirrored:
                raise HistoryUnavailable("the archive holds %s up to #%d, the node from #%d"
                                    % (room, watermark or 0, oldest_mirrored))
            rows = []
        else:
            rows = self._rows(room, epoch, before, limit)
        merged = {**{row.seq: as_message(row) for row in rows}, **mirrored}
        messages = current_messages([merged[seq] for seq in sorted(merged)[-limit:]], view)
        first = not messages or self._is_first(room, epoch, messages[0]["seq"])
        return {"epoch": epoch, "messages": messages, "first": first}

    def message(self, room, epoch, seq):
        """Archived message ``seq`` of ``(room, epoch)`` in its current state, or None
        (an ``edit`` or ``delete`` of a message older than the node's mirror)."""
        row = RoomEvent.objects.using(self.using).filter(
            room__name=room, epoch=epoch, seq=seq, kind=RoomEvent.Kind.MESSAGE).first()
        if row is None:
            return None
        row.room_name = room
        return as_message(row)

    def _rows(self, room, epoch, before, limit):
        rows = list(RoomEvent.objects.using(self.using).filter(room__name=room, epoch=epoch, seq__lt=before,
                                             kind=RoomEvent.Kind.MESSAGE)
                    .order_by("-seq")[:limit])
        for row in rows:
            row.room_name = room
        return rows

    def _is_first(self, room, epoch, seq):
        """Is ``seq`` the room's first message in ``epoch``?  Seq 1 is; a later one when the
        archive holds everything up to it and nothing before it (the older ones were
        gone from the broker before the archive began)."""
        if seq <= 1:
            return True
        archived = Room.objects.using(self.using).filter(name=room, epoch=epoch, seq__gte=seq).exists()
        return archived and not RoomEvent.objects.using(self.using).filter(
            room__name=room, epoch=epoch, seq__lt=seq, kind=RoomEvent.Kind.MESSAGE).exists()
