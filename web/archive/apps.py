from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ArchiveConfig(AppConfig):
    name = "archive"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_migrate.connect(_ensure_search, sender=self)


def _ensure_search(using, **kwargs):
    """The search index's machinery after every migrate: a schema change that rebuilt
    the events' table (SQLite) dropped its triggers (archive/search/sqlite.py)."""
    from django.db import connections

    from .search import BACKENDS
    backend = BACKENDS.get(connections[using].vendor)
    if backend is not None:
        with connections[using].cursor() as cursor:
            backend.ensure(cursor)
