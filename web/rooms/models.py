"""Private rooms, their members, and direct conversations (PROTOCOL.md "People").

A room with no :class:`PrivateRoom` row is public.  A direct conversation is a private
room of two accounts whose ``pair`` names them ("<lower id>:<higher id>"), so there is
one per pair of accounts whoever starts it.
"""
from django.conf import settings
from django.db import models

from accounts.names import skeleton

ROOM_NAME_MAX = 64            # the contract's room names: 1-64 of A-Z a-z 0-9 _ -
# a skeleton maps one character to a few ("m" -> "rn"): room to spare
ROOM_SKELETON_MAX = 4 * ROOM_NAME_MAX


class PrivateRoom(models.Model):
    """A room only its members may join, read and find (``create``, ``dm``)."""
    name = models.CharField(max_length=ROOM_NAME_MAX, unique=True)
    # How the name looks (accounts/names.py): "team-l" and "team-1" are one private room.
    name_skeleton = models.CharField(max_length=ROOM_SKELETON_MAX, unique=True, editable=False)
    # The room stays, moderated by staff, when its owner's account is deleted.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="owned_rooms")
    created = models.DateTimeField(auto_now_add=True)
    pair = models.CharField(max_length=41, unique=True, null=True, blank=True, editable=False,
                            help_text="The two accounts of a direct conversation (their ids).")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership",
                                     related_name="private_rooms")

    @property
    def direct(self):
        return self.pair is not None

    def save(self, *args, **kwargs):
        self.name_skeleton = skeleton(self.name)
        super().save(*args, **kwargs)

    def __str__(self):
        return self.name


class Membership(models.Model):
    """One account's membership of one private room."""
    room = models.ForeignKey(PrivateRoom, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    added = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="one_membership")]

    def __str__(self):
        return "%s in %s" % (self.user, self.room)


def pair_key(user_id, other_id):
    """The ``pair`` of two accounts' direct conversation: the same from either side."""
    low, high = sorted((int(user_id), int(other_id)))
    return "%d:%d" % (low, high)
