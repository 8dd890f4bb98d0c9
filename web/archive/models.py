"""The archive's tables: rooms, their events by position, and the texts edits replaced.

A room event is what the broker sequenced in a room: a message, an edit or a delete
(PROTOCOL.md "Conversation"), each at one position ``(epoch, seq)``.  A message row
also holds its current state: an edit sets its text and ``edited_at``, a delete empties
its text and nick and sets ``deleted``; the texts an edit replaced stay in :class:`Edit`
for staff.
"""
from django.db import models


class Room(models.Model):
    """A room the archive has events of, and how far it holds them without a hole.

    ``(epoch, seq)`` is the archived watermark: every event of ``epoch`` up to ``seq``
    is in :class:`RoomEvent` (or was lost before the archiver saw it, logged as a gap).
    """
    name = models.CharField(max_length=64, unique=True)
    epoch = models.CharField(max_length=64, blank=True)
    seq = models.BigIntegerField(default=0)

    def __str__(self):
        return self.name


class RoomEvent(models.Model):
    """One sequenced event of a room, as the broker published it."""

    class Kind(models.TextChoices):
        MESSAGE = "message"
        EDIT = "edit"
        DELETE = "delete"

    # No index of its own: the unique position (room, epoch, seq) leads with it.
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events", db_index=False)
    epoch = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.MESSAGE)
    message_id = models.CharField(max_length=64)          # the broker's "id"
    uid = models.CharField(max_length=64, blank=True)      # messages from before uids have none
    nick = models.CharField(max_length=64, blank=True)
    text = models.TextField(blank=True)
    ts = models.BigIntegerField()                           # Unix ms, the broker's clock
    node = models.CharField(max_length=64, blank=True)
    cid = models.CharField(max_length=64, null=True, blank=True)
    target = models.BigIntegerField(null=True, blank=True)  # the seq an edit or delete is about
    edited_at = models.BigIntegerField(null=True, blank=True)   # ts of the latest edit
    deleted = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "epoch", "seq"],
                                               name="archive_event_position")]
        # Paging a room back from its newest event (history's ``before``) reads the unique
        # position's index (a page is of one epoch); retention's oldest events and search's
        # newest first read this one.  Every index is paid for by each event written.
        indexes = [models.Index(fields=["ts"], name="archive_event_ts")]
        ordering = ["room", "epoch", "seq"]

    def __str__(self):
        return "%s #%d" % (self.room.name, self.seq)


class Edit(models.Model):
    """A text an edit replaced: the message's edit history, oldest first, for staff."""
    event = models.ForeignKey(RoomEvent, on_delete=models.CASCADE, related_name="edits")
    edit_seq = models.BigIntegerField()                     # the edit event's own seq
    text = models.TextField()                                # the text before that edit
    ts = models.BigIntegerField()                            # when the edit was sequenced

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "edit_seq"],
                                               name="archive_edit_once")]
        ordering = ["event", "edit_seq"]
