"""State private to its owner: what scripts/setup and the supervised cluster write
(var/, the databases with their -wal/-shm, the secret key) is not readable by other
local users, even when started from a shell whose umask is the usual 022."""
import os
import stat
import subprocess

import pytest

from harness.client import ChatClient, new_room
from harness.cluster import Cluster
from harness.processes import ROOT, base_env, free_port, wait_until

from .supervised import SupervisedCluster, programs


def _loose(paths):
    """The paths some other user may read or enter, with their modes."""
    return {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths
            if p.exists() and stat.S_IMODE(p.stat().st_mode) & 0o077}


@pytest.fixture
def usual_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_setup_and_the_supervised_cluster_keep_var_and_the_databases_private(tmp_path, usual_umask):
    var = tmp_path / "var"       # this cluster's var/ (ROOT/var is scripts/setup's own)
    var.mkdir(mode=0o700)
    env = base_env({"CHAT_DATABASE_PATH": str(var / "web.sqlite3"),
                    **{"CHAT_BROKER_%s_PORT" % k: str(free_port())
                       for k in ("INTAKE", "PUBLISH", "SNAPSHOT", "METRICS")}})
    setup = subprocess.run([str(ROOT / "scripts/setup")], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert _loose([ROOT / "var", ROOT / "var/log", ROOT / "var/secret_key",
                   var / "web.sqlite3"]) == {}

    cluster = SupervisedCluster(tmp_path, env={"CHAT_DATABASE_PATH": str(var / "web.sqlite3")})
    cluster.start()
    try:
        wait_until(lambda: cluster.status() == {p: "RUNNING" for p in programs()}, 60,
                   "all programs RUNNING")
        node = cluster.node_url("node1")
        wait_until(lambda: Cluster.health(node) == 200, 30, "node1 healthy")
        chatter = ChatClient(node, name="owner")    # the nick check opens the accounts database
        try:
            room = new_room()
            chatter.join(room)
            assert chatter.send(room, "written to the broker's store")["ok"]
        finally:
            chatter.close()
        # The programs' own files (supervisord's logs and pid file take scripts/run's umask).
        made = list(var.glob("*.sqlite3*"))
        names = {path.name for path in made}
        assert {"web.sqlite3-wal", "web.sqlite3-shm", "broker2.sqlite3"} <= names, names
        assert _loose(made) == {}
    finally:
        cluster.stop(timeout=30)
