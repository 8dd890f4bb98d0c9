"""Search on SQLite: an FTS5 table kept in step with the messages by triggers.

``archive_search`` is contentless (it stores the index, not the texts): its rowid is
the message's row id.  Triggers on ``archive_roomevent`` index a message when it is
inserted, index its new text when an edit changes it, and take it out when it is
deleted or removed by retention, whoever writes the row.  Django rebuilds a SQLite
table for some schema changes and that drops its triggers: :func:`ensure` puts them
back after every ``migrate`` (archive/apps.py).
"""
from django.db.models.expressions import RawSQL

# unicode61 folds case (and diacritics); porter stems English word forms, as PostgreSQL's
# "english" configuration on the other side.
TABLE_SQL = ("CREATE VIRTUAL TABLE IF NOT EXISTS archive_search USING fts5(text, content='', "
             "tokenize='porter unicode61 remove_diacritics 2')")
TRIGGERS_SQL = [
    """CREATE TRIGGER IF NOT EXISTS archive_search_insert AFTER INSERT ON archive_roomevent
       WHEN new.kind = 'message' AND NOT new.deleted BEGIN
         INSERT INTO archive_search(rowid, text) VALUES (new.id, new.text);
       END""",
    # A contentless table forgets a row by being told its indexed text again.
    """CREATE TRIGGER IF NOT EXISTS archive_search_delete AFTER DELETE ON archive_roomevent
       WHEN old.kind = 'message' AND NOT old.deleted BEGIN
         INSERT INTO archive_search(archive_search, rowid, text) VALUES ('delete', old.id, old.text);
       END""",
    """CREATE TRIGGER IF NOT EXISTS archive_search_update AFTER UPDATE OF text, deleted
       ON archive_roomevent WHEN old.kind = 'message' BEGIN
         INSERT INTO archive_search(archive_search, rowid, text)
           SELECT 'delete', old.id, old.text WHERE NOT old.deleted;
         INSERT INTO archive_search(rowid, text) SELECT new.id, new.text WHERE NOT new.deleted;
       END""",
]
FILL_SQL = ("INSERT INTO archive_search(rowid, text) SELECT id, text FROM archive_roomevent "
            "WHERE kind = 'message' AND NOT deleted")
DROP_SQL = ["DROP TRIGGER IF EXISTS archive_search_insert",
            "DROP TRIGGER IF EXISTS archive_search_delete",
            "DROP TRIGGER IF EXISTS archive_search_update",
            "DROP TABLE IF EXISTS archive_search"]


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


def matching(rows, words):
    """``rows`` narrowed to those whose text holds every one of ``words`` (each a quoted
    FTS5 string: never an operator; consecutive strings mean AND)."""
    query = " ".join('"%s"' % word for word in words)
    return rows.filter(id__in=RawSQL("SELECT rowid FROM archive_search WHERE archive_search "
                                     "MATCH %s", [query]))
