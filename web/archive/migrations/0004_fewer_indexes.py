"""The archiver writes every event once and each index costs it: the room's own index and
``(room, seq)`` go, since the unique position ``(room, epoch, seq)`` leads with both (every
read of a room's events names its epoch).  The room's index is dropped by its name as the
database has it, not by a table rebuild (which on SQLite would copy the whole archive)."""
from django.db import migrations, models


def _room_index(schema_editor):
    """The name of the index on ``room_id`` alone, or None."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "archive_roomevent")
    return next((name for name, c in constraints.items() if c["columns"] == ["room_id"]
                 and c["index"] and not c["unique"] and not c["primary_key"]
                 and not c["foreign_key"]), None)


def drop_room_index(apps, schema_editor):
    name = _room_index(schema_editor)
    if name is not None:
        schema_editor.execute("DROP INDEX %s" % schema_editor.quote_name(name))


def add_room_index(apps, schema_editor):
    if _room_index(schema_editor) is None:
        schema_editor.execute('CREATE INDEX "archive_roomevent_room_id" ON "archive_roomevent" ("room_id")')


class Migration(migrations.Migration):

    dependencies = [
        ("archive", "0003_search_rooms"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="roomevent", name="archive_event_room_seq"),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_room_index, add_room_index)],
            state_operations=[migrations.AlterField(
                model_name="roomevent", name="room",
                field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE,
                                        related_name="events", to="archive.room"),
            )],
        ),
    ]
