"""Read positions: per account and room, the last seq the account has read.

A position belongs to the room's stream ``epoch``: seqs of another epoch do not compare,
so a position of an older epoch reads as 0 (nothing read).
"""
from django.conf import settings
from django.db import models


class ReadPosition(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="read_positions")
    room = models.CharField(max_length=64)
    epoch = models.CharField(max_length=64, blank=True)
    seq = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)   # the lobby lists recently read rooms first

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "room"], name="reading_one_per_room")]
        indexes = [models.Index(fields=["user", "-updated"], name="reading_recent")]

    def __str__(self):
        return "%s read %s #%d" % (self.user_id, self.room, self.seq)
