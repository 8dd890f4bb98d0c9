"""Full-text search of the archive (PROTOCOL.md "Conversation", ``search``): one interface,
a backend per database.

:class:`ArchiveSearch` keeps what every backend shares: the words of a query, the rooms
the caller may read (as a filter on room ids), the page's order and the hits as clients
see them.  A backend finds the rows: messages only (never an edit or a delete event),
never a deleted one, in their room's current epoch, holding every word, newest first
(by archive order: within a room that is seq order), at most ``limit``.
:mod:`.postgres` reads a generated ``tsvector`` column through its GIN index,
:mod:`.sqlite` an FTS5 table kept in step by triggers; both stem English word forms
and ignore case.
"""
import re

from django.db import connections

from chat.protocol.search import SEARCH_LIMIT
from ..models import Room
from ..reader import as_message
from . import postgres, sqlite

# Words are what both databases' tokenizers take as words (letters, digits, underscore):
# punctuation never reaches a query language (FTS5's MATCH syntax, tsquery operators).
WORD_RE = re.compile(r"\w+")
# Room names resolved to ids per query at most (a database's bound on parameters).
NAMES_PER_QUERY = 500

BACKENDS = {"postgresql": postgres, "sqlite": sqlite}


def words(q):
    """The words of ``q``, as the search looks for every one of them."""
    return WORD_RE.findall(q)


class RoomFilter:
    """The rooms searched, as SQL on a room id column: "in these", or "not in those" when
    that list is shorter; the ids are written out (integers from the archive's own table,
    however many: no bound on parameters).

    :param ids: the ids of the rooms searched.
    :param others: the ids of the archive's other rooms, or None when not read (few rooms
        are searched).
    """

    def __init__(self, ids, others=None):
        self.ids = sorted(ids)
        self.others = None if others is None else sorted(others)

    @property
    def listed(self):
        """True when the filter names the rooms searched (not the others)."""
        return self.others is None or len(self.ids) <= len(self.others)

    def sql(self, column):
        if self.others is not None and not self.others:
            return "1 = 1"
        if self.listed:
            return "%s IN (%s)" % (column, ",".join(str(int(i)) for i in self.ids))
        return "%s NOT IN (%s)" % (column, ",".join(str(int(i)) for i in self.others))


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

    def _room_filter(self, names):
        wanted = set(names)
        if len(wanted) <= NAMES_PER_QUERY:
            return RoomFilter(Room.objects.using(self.using).filter(name__in=wanted)
                              .values_list("id", flat=True))
        ids, others = set(), set()
        for room_id, name in Room.objects.using(self.using).values_list("id", "name").iterator():
            (ids if name in wanted else others).add(room_id)
        return RoomFilter(ids, others)

    def search(self, q, rooms, before=None, limit=SEARCH_LIMIT):
        """Messages of ``rooms`` holding every word of ``q``, newest first, as clients see them.

        :param rooms: the room names to search (those the caller may read).
        :param before: only messages with ``seq < before`` (in each room).
        """
        found = words(q)
        if not found or not rooms:
            return []
        rooms = self._room_filter(rooms)
        if not rooms.ids:
            return []
        rows = list(self.backend.hits(self.using, found, rooms, before, limit))
        # Archive order is seq order within a room; across rooms the page reads by time.
        rows.sort(key=lambda row: (row.ts, row.id), reverse=True)
        return [as_message(row) for row in rows]
