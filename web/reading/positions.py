"""Read positions in the database, and unread counts from the archive joined with the mirror.

What chat/protocol/unread.py asks of the database (its in-memory twin there has the same
methods).  Every call may block on the database; none is made per delivered message:
a join reads one row, a ``rooms`` answer a few bounded queries, and positions are
written in batches (:meth:`ReadPositions.save`).
"""
from contextlib import contextmanager

from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from archive.models import Room, RoomEvent
from .models import ReadPosition


@contextmanager
def _database():
    """Socket.IO events are no Django requests: close this greenlet's connections when done."""
    try:
        yield
    finally:
        connections.close_all()


class ReadPositions:
    """Positions of accounts (by user id) in rooms, and what they have not read."""

    def load(self, user_id, rooms):
        """{room: (epoch, seq)} of ``user_id``'s positions in ``rooms``."""
        with _database():
            return {room: (epoch, seq) for room, epoch, seq in ReadPosition.objects.filter(
                user_id=user_id, room__in=list(rooms)).values_list("room", "epoch", "seq")}

    def recent(self, user_id, limit):
        """The rooms ``user_id`` read most recently, newest first, at most ``limit``."""
        with _database():
            return list(ReadPosition.objects.filter(user_id=user_id).order_by("-updated")
                        .values_list("room", flat=True)[:limit])

    def save(self, positions):
        """Move positions forward: ``{(user_id, room): (epoch, seq)}``, in one transaction.
        A row is changed only forward (or to another epoch), so a late batch from another
        node never moves one back."""
        with _database():
            self._save(positions, timezone.now())

    @staticmethod
    def _save(positions, now):
        def forward(user_id, room, epoch, seq):
            return ReadPosition.objects.filter(
                Q(seq__lt=seq) | ~Q(epoch=epoch), user_id=user_id, room=room).update(
                epoch=epoch, seq=seq, updated=now)

        missing = []
        with transaction.atomic():
            for (user_id, room), (epoch, seq) in positions.items():
                if not forward(user_id, room, epoch, seq):
                    missing.append((user_id, room, epoch, seq))
            # absent, or already at or beyond: an insert that conflicts is the latter, or
            # another node's insert of the same row at the same moment (PostgreSQL: each saw
            # no row), which the forward update after it then moves on if it is behind
            ReadPosition.objects.bulk_create(
                [ReadPosition(user_id=user_id, room=room, epoch=epoch, seq=seq, updated=now)
                 for user_id, room, epoch, seq in missing], ignore_conflicts=True)
            for row in missing:
                forward(*row)

    def unread(self, uid, rooms, limit):
        """{room: unread count} for the account ``uid``, each at most ``limit``.

        :param rooms: {room: (epoch, (read epoch, read seq), mirror)}: the room's current
            epoch (None: the archive's), the account's position (of another epoch: nothing
            read), and the node's mirror of the room ({epoch, seq, history}) or None when
            this node does not follow it.
        """
        with _database():
            archived = {name: (epoch, seq) for name, epoch, seq in Room.objects.filter(
                name__in=list(rooms)).values_list("name", "epoch", "seq")}
            return {room: self._count(room, uid, epoch, read, mirror, archived.get(room), limit)
                    for room, (epoch, read, mirror) in rooms.items()}

    @staticmethod
    def _count(room, uid, epoch, position, mirror, archived, limit):
        events = mirror["history"] if mirror is not None else []
        if epoch is None:
            epoch = archived[0] if archived else None
        read = position[1] if position[0] == epoch else 0
        deleted = {m.get("target") for m in events if m.get("kind") == "delete"}
        mirrored = [m for m in events if m.get("kind", "message") == "message"]
        watermark = archived[1] if archived and archived[0] == epoch else 0
        seqs = set()
        if epoch is not None and watermark > read:
            seqs.update(RoomEvent.objects.filter(
                room__name=room, epoch=epoch, kind=RoomEvent.Kind.MESSAGE, deleted=False,
                seq__gt=read).exclude(uid=uid).order_by("seq")
                .values_list("seq", flat=True)[:limit + len(deleted)])
        seqs.update(m["seq"] for m in mirrored if m["seq"] > max(read, watermark)
                    and m.get("uid") != uid and not m.get("deleted"))
        return min(len(seqs - deleted), limit)
