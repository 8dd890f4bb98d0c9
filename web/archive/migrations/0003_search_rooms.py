"""Search on SQLite: the index holds each message's room too (archive/search/sqlite.py),
so a search of a few rooms narrows inside it; rebuilt from the rows.  Nothing changes on
PostgreSQL."""
from django.db import migrations


def rebuild(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    from archive.search import sqlite
    with schema_editor.connection.cursor() as cursor:
        sqlite.uninstall(cursor)
        sqlite.install(cursor)


class Migration(migrations.Migration):

    dependencies = [
        ("archive", "0002_search"),
    ]

    operations = [
        migrations.RunPython(rebuild, migrations.RunPython.noop),
    ]
