"""Accounts: Django's user, whose username is also its nick in every room.

A logged-in connection chats as its username (PROTOCOL.md "Identity"), so a username
must pass the nick rules (chatstream.rules.nick: NFKC, no control or format characters,
at most 32 characters) as well as Django's username rule.  ``nick_key`` (NFKC + case
folding) is unique: "Alice" and "alice" cannot both be accounts, and login accepts
either spelling.  ``nick_skeleton`` (accounts/names.py: how the name looks, UTS #39) is
unique too: "аlice" with a Cyrillic a cannot sign up beside "alice", and a guest cannot
take any name that looks like an account's (``nick_taken``).
"""
from django.contrib.auth.models import AbstractUser, UserManager as DjangoUserManager
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import models

from chatstream import rules

from . import names

# nick_key of a 32-character nick: case folding makes at most 3 characters of one (U+0390)
NICK_KEY_MAX = 3 * rules.NICK_MAX
# a skeleton maps one character to a few ("m" -> "rn"): room to spare
NICK_SKELETON_MAX = 8 * NICK_KEY_MAX


def validate_nick(value):
    """A username must be a clean nick: what the nick rules make of it is itself."""
    try:
        clean = rules.nick(value)
    except rules.RuleError as exc:
        raise ValidationError(exc.detail, code=exc.code) from None
    if clean != value:
        raise ValidationError("A username must be its own normal form (NFKC, no spaces "
                              "around it): %(clean)s", code="invalid_nick",
                              params={"clean": clean})


class UserManager(DjangoUserManager):
    def get_by_natural_key(self, username):
        """Login and createsuperuser find an account by its nick key ("ALICE" is alice)."""
        return self.get(nick_key=rules.nick_key(username))


class User(AbstractUser):
    username = models.CharField(
        "username", max_length=rules.NICK_MAX, unique=True,
        help_text="Up to %d letters, digits and @ . + - _ : also your nickname in every room."
                  % rules.NICK_MAX,
        validators=[UnicodeUsernameValidator(), validate_nick],
        error_messages={"unique": "A user with that username already exists."})
    nick_key = models.CharField(max_length=NICK_KEY_MAX, unique=True, editable=False)
    # NULL only for an account made before skeletons whose name looked like an older one's.
    nick_skeleton = models.CharField(max_length=NICK_SKELETON_MAX, unique=True, null=True,
                                     editable=False)

    objects = UserManager()

    def save(self, *args, **kwargs):
        self.nick_key = rules.nick_key(self.username)
        self.nick_skeleton = names.skeleton(self.username)
        super().save(*args, **kwargs)


class Attempt(models.Model):
    """Login or signup attempts of one key (a client address, a username) in one window
    (accounts/throttle.py): in the shared database, so every node counts the same."""
    key = models.CharField(max_length=80, unique=True)
    window_start = models.FloatField(db_index=True)
    count = models.IntegerField(default=0)
