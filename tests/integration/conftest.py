import os
import shutil

import pytest

from harness.client import ChatClient
from harness.cluster import Cluster, start_cluster
from harness.processes import allowed_log_errors, check_logs

if shutil.which("haproxy") is None:  # scripts/setup installs it; say so instead of skipping
    raise RuntimeError("haproxy is not installed: run scripts/test (it installs it) or apt-get install haproxy")


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """Broker + node1..node3, shared by a module's tests (each test uses its own rooms)."""
    # Tests send and ask faster than people do; the rate limits have their own tests.
    c = start_cluster(tmp_path_factory.mktemp("cluster"), balancer=False,
                      env={"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000",
                           "CHAT_REQUEST_RATES": ",".join("%s=10000/10000" % event for event in
                                                          ("join", "leave", "rooms", "members"))})
    try:
        yield c
    finally:
        c.stop()
    check_logs(c.procs, allowed_log_errors(request.node))


@pytest.fixture
def make_cluster(request, tmp_path):
    """A fresh cluster per test, for tests that stop or break processes; their logs are
    checked as the shared cluster's are (the test's ``allow_log_errors`` markers)."""
    made = []

    def make(env=None, curve=True):
        c = Cluster(tmp_path / ("cluster%d" % len(made)), env=env, curve=curve)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()
    check_logs([p for c in made for p in c.procs], allowed_log_errors(request.node))


@pytest.fixture
def client():
    """Factory of connected clients, all disconnected after the test."""
    made = []

    def connect(url, name="client", transports=("websocket",), cookies=None):
        c = ChatClient(url, transports=transports, name=name, cookies=cookies)
        made.append(c)
        return c
    yield connect
    for c in made:
        c.close()


@pytest.fixture(scope="session")
def archive_databases(tmp_path_factory):
    """Django in this process on the archive's tables only, for the tests of its writer,
    search and retention: ``default`` (an SQLite file) and, with its binaries installed,
    ``postgresql`` (a server of tests/integration/postgres.py); each migrated."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    from .postgres import PostgresServer, binaries
    assert not settings.configured, "another test configured Django in this process"
    server = PostgresServer() if binaries() is not None else None
    try:     # the server stops whatever fails below
        folder = tmp_path_factory.mktemp("archive")
        aliases = {"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": str(folder / "web.sqlite3")}}
        if server is not None:
            import dj_database_url
            aliases["postgresql"] = dj_database_url.parse(server.url)
        # The browser tests' Playwright (sync API, one browser for the session) keeps an asyncio
        # loop running in this thread, which Django's async-safety check takes for async code.
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        settings.configure(INSTALLED_APPS=["archive"], DATABASES=aliases, USE_TZ=True,
                           DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
        django.setup()
        for alias in aliases:
            call_command("migrate", "archive", database=alias, verbosity=0)
        yield set(aliases)
    finally:
        if settings.configured:
            from django.db import connections
            connections.close_all()
        if server is not None:
            server.stop()


@pytest.fixture(params=["default", "postgresql"])
def archive_db(request, archive_databases):
    """Each archive database in turn, emptied: its alias."""
    if request.param not in archive_databases:
        pytest.skip("PostgreSQL's initdb/postgres are not installed "
                    "(scripts/setup --test installs Debian's postgresql)")
    from archive.models import Room
    Room.objects.using(request.param).all().delete()     # events and edits go with their room
    return request.param
