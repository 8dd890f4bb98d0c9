"""Bans, reports and the moderator action log.

A ban names a uid (PROTOCOL.md "Identity": an account's is the same everywhere, a guest's
lasts its browser session) and a room, or every room (``room`` empty: a cluster-wide ban,
made by staff in the admin).  A report names a room event by ``(room, epoch, seq)`` and
keeps who wrote it, not its text: the archive holds the text, and a deleted message's text
is gone everywhere.
"""
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from chatstream import rules

_room = RegexValidator(r"\A(?:%s)\Z" % rules.ROOM_RE.pattern, "1-64 characters of A-Z a-z 0-9 _ -")
_uid = RegexValidator(r"\A(?:%s)\Z" % rules.UID_RE.pattern, "a, g or c and 20 hex digits (a message's uid)")


class BanQuerySet(models.QuerySet):
    def active(self, now=None):
        """Bans in force at ``now``: for good, or until a later time."""
        now = now or timezone.now()
        return self.filter(models.Q(until__isnull=True) | models.Q(until__gt=now))


class Ban(models.Model):
    """``uid`` may not join or write in ``room`` (empty: any room) until ``until`` (null: for good)."""
    room = models.CharField(max_length=64, blank=True, validators=[_room],
                            help_text="Empty: every room (a cluster-wide ban).")
    uid = models.CharField(max_length=32, validators=[_uid],
                           help_text="The banned uid (PROTOCOL.md, Identity).")
    nick = models.CharField(max_length=64, blank=True, help_text="The name it was seen with.")
    until = models.DateTimeField(null=True, blank=True, help_text="Empty: for good.")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                           on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(default=timezone.now)

    objects = BanQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["uid", "room"], name="moderation_ban_uid_room")]
        ordering = ["-created"]

    def active(self, now=None):
        return self.until is None or self.until > (now or timezone.now())

    @property
    def until_ms(self):
        """The end as the wire has it: Unix milliseconds, None for good."""
        return None if self.until is None else int(self.until.timestamp() * 1000)

    def __str__(self):
        return "%s from %s" % (self.nick or self.uid, self.room or "every room")


class Report(models.Model):
    """A member's report of a message, open until staff act on it."""

    class State(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"
        DISMISSED = "dismissed"

    room = models.CharField(max_length=64)
    epoch = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    author_uid = models.CharField(max_length=32, blank=True)
    author_nick = models.CharField(max_length=64, blank=True)
    reporter_uid = models.CharField(max_length=32)
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    created = models.DateTimeField(default=timezone.now)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "epoch", "seq", "reporter_uid"],
                                               name="moderation_report_once")]
        indexes = [models.Index(fields=["state", "created"], name="moderation_report_state")]
        ordering = ["-created"]

    def __str__(self):
        return "%s #%d" % (self.room, self.seq)


class ModAction(models.Model):
    """One moderator action: who did what to whom, when (never changed afterwards)."""

    class Kind(models.TextChoices):
        BAN = "ban"
        LIFT = "lift", "lift a ban"
        DELETE = "delete"
        DISMISS = "dismiss", "dismiss a report"

    created = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    actor_uid = models.CharField(max_length=32, blank=True)
    actor_name = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    room = models.CharField(max_length=64, blank=True)
    target_uid = models.CharField(max_length=32, blank=True)
    seq = models.BigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created"], name="moderation_action_created")]
        ordering = ["-created"]

    def __str__(self):
        return "%s %s %s" % (self.actor_name, self.kind, self.target_uid or self.seq)
