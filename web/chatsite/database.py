"""The nodes' shared database, from the environment (settings.DATABASES).

- ``DATABASE_URL`` set: parsed by dj-database-url, e.g.
  ``postgres://chat:secret@db.internal:5432/chat`` (psycopg 3) for nodes on several hosts;
- unset: SQLite at ``CHAT_DATABASE_PATH`` (default ``var/web.sqlite3``), WAL journal and a
  short busy timeout set on every connection, for the nodes of one host.

Connections are not kept between requests (``CONN_MAX_AGE`` 0): under gevent each
greenlet has its own, and a kept one would live as long as its greenlet's garbage.
"""
from pathlib import Path

from chatstream import config as shared

# Set on every new SQLite connection: WAL lets the nodes read while one writes (and is
# kept by the file once set); NORMAL is durable across a crash of the process in WAL.
SQLITE_INIT = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
POSTGRES_CONNECT_TIMEOUT_S = 5   # a node's page or handshake fails fast when the server is away


def from_env(environ, root):
    """DATABASES for ``environ``; relative SQLite paths are relative to ``root``."""
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        import dj_database_url
        db = dj_database_url.parse(url, conn_max_age=0, conn_health_checks=False)
        if db["ENGINE"] == "django.db.backends.postgresql":
            db.setdefault("OPTIONS", {}).setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
        return {"default": db}
    path = Path(environ.get("CHAT_DATABASE_PATH") or shared.DATABASE_PATH)
    return {"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path if path.is_absolute() else Path(root) / path,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "timeout": shared.DATABASE_TIMEOUT_S,
            "init_command": SQLITE_INIT,
            # Writers take the lock when their transaction starts, so two nodes never
            # both read and then both try to upgrade (which fails at once, not after waiting).
            "transaction_mode": "IMMEDIATE",
        },
    }}
