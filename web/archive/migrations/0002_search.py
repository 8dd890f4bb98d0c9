"""Search: the full-text index of the database in use (archive/search/), and an index
on ``ts`` (retention's oldest events, search's newest first)."""
from django.db import migrations, models


def install(apps, schema_editor):
    from archive.search import BACKENDS
    backend = BACKENDS.get(schema_editor.connection.vendor)
    if backend is None:
        raise RuntimeError("no full-text search for the %s database"
                           % schema_editor.connection.vendor)
    with schema_editor.connection.cursor() as cursor:
        backend.install(cursor)


def uninstall(apps, schema_editor):
    from archive.search import BACKENDS
    with schema_editor.connection.cursor() as cursor:
        BACKENDS[schema_editor.connection.vendor].uninstall(cursor)


class Migration(migrations.Migration):

    dependencies = [
        ("archive", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="roomevent",
            index=models.Index(fields=["ts"], name="archive_event_ts"),
        ),
        migrations.RunPython(install, uninstall),
    ]
