"""Full-text search of the archive (PROTOCOL.md "Conversation", ``search``): one interface,
a backend per database.

:class:`ArchiveSearch` keeps what every backend shares: only messages (never an edit or
a delete event), never a deleted one, each room's current epoch, newest first, the
rooms the caller may read.  A backend only says which rows match the words:
:mod:`.postgres` (a generated ``tsvector`` column with a GIN index) and :mod:`.sqlite`
(an FTS5 table kept in step by triggers).  Both stem English word forms and ignore case.
"""
import re

from django.db import connections
from django.db.models import F

from chat.protocol.search import SEARCH_LIMIT
from ..models import Room, RoomEvent
from ..reader import as_message
from . import postgres, sqlite

# Words are what both databases' tokenizers take as words (letters, digits, underscore):
# punctuation never reaches a query language (FTS5's MATCH syntax, tsquery operators).
WORD_RE = re.compile(r"\w+")

BACKENDS = {"postgresql": postgres, "sqlite": sqlite}


def words(q):
    """The words of ``q``, as the search looks for every one of them."""
    return WORD_RE.findall(q)


class ArchiveSearch:
    """``search(q, rooms, before, limit)`` over the archive's messages.

    :param using: the database alias (the nodes' ``default``).
    """

    def __init__(self, using="default"):
        self.using = using

    @property
    def backend(self):
        vendor = connections[self.using].vendor
        try:
            return BACKENDS[vendor]
        except KeyError:
            raise RuntimeError("no full-text search for the %s database (have %s)"
                               % (vendor, ", ".join(sorted(BACKENDS)))) from None

    def rooms(self):
        """Every room the archive holds events of: ``[name]``."""
        return list(Room.objects.using(self.using).values_list("name", flat=True))

    def search(self, q, rooms, before=None, limit=SEARCH_LIMIT):
        """Messages of ``rooms`` holding every word of ``q``, newest first, as clients see them.

        :param rooms: the room names to search (those the caller may read).
        :param before: only messages with ``seq < before`` (in each room).
        """
        found = words(q)
        if not found or not rooms:
            return []
        rows = RoomEvent.objects.using(self.using).filter(
            kind=RoomEvent.Kind.MESSAGE, deleted=False, epoch=F("room__epoch"),
            room__name__in=list(rooms))
        if before is not None:
            rows = rows.filter(seq__lt=before)
        rows = self.backend.matching(rows, found)
        rows = rows.annotate(room_name=F("room__name")).order_by("-ts", "-id")[:limit]
        return [as_message(row) for row in rows]
