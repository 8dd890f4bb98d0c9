"""The nodes' database and secret key settings (chatsite.database, chatsite.secret_key)."""
import os
import runpy
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatsite import database, secret_key


def test_without_database_url_the_nodes_share_a_sqlite_file_in_wal_mode(tmp_path):
    db = database.from_env({}, tmp_path)["default"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == tmp_path / "var" / "web.sqlite3"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert db["OPTIONS"]["timeout"] == 5 and db["CONN_MAX_AGE"] == 0
    assert database.from_env({"CHAT_DATABASE_PATH": "/x/y.db"}, tmp_path)["default"]["NAME"].as_posix() == "/x/y.db"


def test_database_url_selects_postgresql_through_psycopg(tmp_path):
    db = database.from_env({"DATABASE_URL": "postgres://chat:pw@db.internal:6543/chat"}, tmp_path)["default"]
    assert (db["ENGINE"], db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "django.db.backends.postgresql", "chat", "chat", "pw", "db.internal", 6543)
    assert db["CONN_MAX_AGE"] == 0 and db["OPTIONS"]["connect_timeout"] == 5


def test_the_secret_key_file_is_made_once_private_and_read_back(tmp_path):
    path = tmp_path / "var" / "secret_key"
    assert secret_key.ensure(path) and not secret_key.ensure(path)
    key = path.read_text().strip()
    assert len(key) >= 50 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret_key.read({"DJANGO_SECRET_KEY_FILE": str(path)}, "/nowhere") == key
    assert secret_key.read({}, path) == key
    assert secret_key.read({"DJANGO_SECRET_KEY": "given"}, path) == "given"
    assert secret_key.read({}, tmp_path / "absent") is None
    with pytest.raises(RuntimeError, match="does not exist"):
        secret_key.read({"DJANGO_SECRET_KEY_FILE": str(tmp_path / "absent")}, path)


def _settings(monkeypatch, **environ):
    for name in ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE", "DJANGO_DEBUG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_module("chatsite.settings")


def test_outside_development_a_node_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.setattr(secret_key, "read", lambda environ, default_file: None)   # no var/secret_key
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        _settings(monkeypatch)
    assert _settings(monkeypatch, DJANGO_DEBUG="1")["SECRET_KEY"].startswith("dev-insecure")
