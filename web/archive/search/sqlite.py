"""Search on SQLite: an FTS5 table kept in step with the messages by triggers.

``archive_search`` is contentless (it stores the index, not the texts): its rowid is
the message's row id, its columns the message's words and its room's id (a word of its
own, so a search of a few rooms narrows inside the index).  Triggers on
``archive_roomevent`` index a message when it is inserted, index its new text when an
edit changes it, and take it out when it is deleted or removed by retention, whoever
writes the row.  Django rebuilds a SQLite table for some schema changes and that drops
its triggers: :func:`ensure` puts them back after every ``migrate`` (archive/apps.py).

A search walks the index newest row first and stops at ``limit`` hits: the rows of the
rooms asked, in their current epoch.
"""
from ..models import RoomEvent

# unicode61 folds case (and diacritics); porter stems English word forms, as PostgreSQL's
# "english" configuration on the other side.
TABLE_SQL = ("CREATE VIRTUAL TABLE IF NOT EXISTS archive_search USING fts5(text, room, "
             "content='', tokenize='porter unicode61 remove_diacritics 2')")
TRIGGERS_SQL = [
    """CREATE TRIGGER IF NOT EXISTS archive_search_insert AFTER INSERT ON archive_roomevent
       WHEN new.kind = 'message' AND NOT new.deleted BEGIN
         INSERT INTO archive_search(rowid, text, room) VALUES (new.id, new.text, new.room_id);
       END""",
    # A contentless table forgets a row by being told its indexed values again.
    """CREATE TRIGGER IF NOT EXISTS archive_search_delete AFTER DELETE ON archive_roomevent
       WHEN old.kind = 'message' AND NOT old.deleted BEGIN
         INSERT INTO archive_search(archive_search, rowid, text, room)
           VALUES ('delete', old.id, old.text, old.room_id);
       END""",
    """CREATE TRIGGER IF NOT EXISTS archive_search_update AFTER UPDATE OF text, deleted
       ON archive_roomevent WHEN old.kind = 'message' BEGIN
         INSERT INTO archive_search(archive_search, rowid, text, room)
           SELECT 'delete', old.id, old.text, old.room_id WHERE NOT old.deleted;
         INSERT INTO archive_search(rowid, text, room)
           SELECT new.id, new.text, new.room_id WHERE NOT new.deleted;
       END""",
]
FILL_SQL = ("INSERT INTO archive_search(rowid, text, room) SELECT id, text, room_id "
            "FROM archive_roomevent WHERE kind = 'message' AND NOT deleted")
DROP_SQL = ["DROP TRIGGER IF EXISTS archive_search_insert",
            "DROP TRIGGER IF EXISTS archive_search_delete",
            "DROP TRIGGER IF EXISTS archive_search_update",
            "DROP TABLE IF EXISTS archive_search"]
# Up to this many rooms searched are named inside the index query too (an OR of their
# ids): a few rooms' hits are then found without walking every room's.
ROOMS_IN_INDEX = 32

HITS_SQL = """SELECT e.*, r.name AS room_name FROM archive_search s
    JOIN archive_roomevent e ON e.id = s.rowid
    JOIN archive_room r ON r.id = e.room_id
    WHERE archive_search MATCH %s AND e.kind = 'message' AND NOT e.deleted
      AND e.epoch = r.epoch AND {rooms} {before}
    ORDER BY s.rowid DESC LIMIT %s"""


def install(cursor):
    """Make the table, index the messages already archived, add the triggers."""
    cursor.execute(TABLE_SQL)
    cursor.execute(FILL_SQL)
    for statement in TRIGGERS_SQL:
        cursor.execute(statement)


def uninstall(cursor):
    for statement in DROP_SQL:
        cursor.execute(statement)


def ensure(cursor):
    """The triggers again, if a table rebuild dropped them (the index itself survives:
    a rebuild keeps the rows' ids)."""
    cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archive_search'")
    if cursor.fetchone() is not None:
        for statement in TRIGGERS_SQL:
            cursor.execute(statement)


def match(words, rooms):
    """The MATCH query: every word (each a quoted FTS5 string, never an operator) and, for
    a few rooms, one of their ids."""
    query = " AND ".join('text : "%s"' % word for word in words)
    if rooms.listed and len(rooms.ids) <= ROOMS_IN_INDEX:
        query += " AND room : (%s)" % " OR ".join('"%d"' % i for i in rooms.ids)
    return query


def hits(using, words, rooms, before, limit):
    """Up to ``limit`` messages of ``rooms`` (a RoomFilter) holding every one of ``words``,
    newest first; each with ``room_name``."""
    params = [match(words, rooms)]
    if before is not None:
        params.append(before)
    params.append(limit)
    sql = HITS_SQL.format(rooms=rooms.sql("e.room_id"),
                          before="AND e.seq < %s" if before is not None else "")
    return RoomEvent.objects.using(using).raw(sql, params)
