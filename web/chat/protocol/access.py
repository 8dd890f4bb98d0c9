"""Who may read a room and who moderates it (PROTOCOL.md "People").

One place answers both questions for every handler that needs them: ``join``,
``history``, ``search``, ``members``, ``rooms`` (may the connection see the room?) and
``edit``, ``delete``, ``ban`` (is the connection a moderator of the room?).

:class:`PublicRooms` is the rule before private rooms exist: every room is public and
the staff accounts moderate everywhere.  Private rooms and direct conversations replace
it with a rule that reads their membership (the "people" work); the handlers do not
change.  Every method may block on the database (a greenlet each); none is called per
delivered message.
"""


class PublicRooms:
    """Every room public; staff accounts moderate every room."""

    def may_read(self, identity, room):
        """True when ``identity`` (chat.protocol.identity.Identity) may join and read ``room``."""
        return True

    def readable(self, identity, rooms):
        """The names among ``rooms`` that ``identity`` may read (``rooms``, ``search``)."""
        return [room for room in rooms if self.may_read(identity, room)]

    def is_moderator(self, identity, room):
        """True when ``identity`` may edit and delete anyone's message in ``room`` and ban there."""
        return bool(identity.staff)
