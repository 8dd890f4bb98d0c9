"""What scripts/backup copies by default: supervisord.conf's broker programs' stores
and the nodes' database (deploy/stores.py)."""
import pytest

from deploy import stores


def test_the_default_cluster_backs_up_both_brokers_of_the_pair_and_the_sqlite_database():
    found = stores.sources(stores.ROOT / "supervisord.conf", {})
    assert [(s.name, s.kind, s.location) for s in found] == [
        ("broker", "store", str(stores.ROOT / "var/broker.sqlite3")),
        ("broker2", "store", str(stores.ROOT / "var/broker2.sqlite3")),
        ("database", "sqlite", str(stores.ROOT / "var/web.sqlite3"))]


def test_a_postgresql_database_is_dumped_and_other_urls_are_refused():
    assert stores.database({"DATABASE_URL": "postgres://u:p@db:5432/chat"}).kind == "postgresql"
    assert stores.database({"CHAT_DATABASE_PATH": "/data/web.sqlite3"}).location == "/data/web.sqlite3"
    with pytest.raises(SystemExit):
        stores.database({"DATABASE_URL": "mysql://u:p@db/chat"})


def test_store_options_are_name_equals_path():
    assert stores.named_paths(["broker3=/data/b3.sqlite3"]) == {"broker3": "/data/b3.sqlite3"}
    with pytest.raises(SystemExit):
        stores.named_paths(["/data/b3.sqlite3"])
