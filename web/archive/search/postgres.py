"""Search on PostgreSQL: a generated ``tsvector`` column with a GIN index.

The column ``archive_roomevent.search`` is computed by PostgreSQL from the row itself
(migration 0002), so every way a row changes (the writer's inserts, an edit's or a
delete's update, retention's deletes) keeps it in step with no code of ours; it holds
nothing for edit and delete events and for deleted messages.  ``to_tsvector`` with an
explicit configuration is immutable, which a generated column requires.
"""
from django.db.models import BooleanField, F
from django.db.models.expressions import RawSQL

from ..models import RoomEvent

# English stemming ("messages" finds "message"), as the SQLite side's porter tokenizer.
# The column's expression names it too: changing it means a migration.
CONFIG = "english"

COLUMN_SQL = ("ALTER TABLE archive_roomevent ADD COLUMN search tsvector GENERATED ALWAYS AS "
              "(CASE WHEN kind = 'message' AND NOT deleted THEN to_tsvector('%s', text) END) "
              "STORED" % CONFIG)
INDEX_SQL = "CREATE INDEX archive_event_search ON archive_roomevent USING gin (search)"
DROP_SQL = ["DROP INDEX IF EXISTS archive_event_search",
            "ALTER TABLE archive_roomevent DROP COLUMN IF EXISTS search"]


def install(cursor):
    """Add the column (computed for the rows already there) and its index."""
    cursor.execute(COLUMN_SQL)
    cursor.execute(INDEX_SQL)


def uninstall(cursor):
    for statement in DROP_SQL:
        cursor.execute(statement)


def ensure(cursor):
    """Nothing to restore: PostgreSQL alters the table in place and keeps the column."""


def _true(sql, params=()):
    return RawSQL(sql, list(params), output_field=BooleanField())


def hits(using, words, rooms, before, limit):
    """Up to ``limit`` messages of ``rooms`` (a RoomFilter) holding every one of ``words``,
    newest first; each with ``room_name``."""
    rows = RoomEvent.objects.using(using).filter(
        _true('"archive_roomevent"."search" @@ plainto_tsquery(%s::regconfig, %s)',
              [CONFIG, " ".join(words)]),
        _true(rooms.sql('"archive_roomevent"."room_id"')),
        kind=RoomEvent.Kind.MESSAGE, deleted=False, epoch=F("room__epoch"))
    if before is not None:
        rows = rows.filter(seq__lt=before)
    return rows.annotate(room_name=F("room__name")).order_by("-id")[:limit]
