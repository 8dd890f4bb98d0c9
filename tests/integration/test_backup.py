"""scripts/backup while the cluster runs under traffic, scripts/restore into a fresh folder:
the restored cluster serves the same history, epochs and seqs, and continues the seqs.
Real broker pair, real nodes (harness), the scripts as an operator runs them."""
import json
import os
import stat
import subprocess
import threading
import time

import pytest

from harness.client import ChatClient, new_room
from harness.processes import ROOT, base_env, wait_until

from .postgres import PostgresServer
from .test_discovery import supervised  # noqa: F401  (the fixture: supervisord.conf's cluster)

# Every message of the test stays in the join's history, so "same history" is all of it.
ENV = {"CHAT_HISTORY_SIZE": "1000", "CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"}
SENDS_MAX = 300          # per sender: bounds the traffic in count ...
SENDING_MAX_S = 60       # ... and in time
ADMIN = {"DJANGO_SUPERUSER_USERNAME": "operator", "DJANGO_SUPERUSER_PASSWORD": "a long passphrase",
         "DJANGO_SUPERUSER_EMAIL": "operator@example.org"}


def _paths(cluster):
    """scripts/backup's and scripts/restore's options naming this cluster's files."""
    return ["--store", "broker=%s" % (cluster.log_dir / "broker.sqlite3"),
            "--store", "broker2=%s" % (cluster.log_dir / "broker2.sqlite3"),
            "--database", str(cluster.log_dir / "web.sqlite3")]


def _script(name, *args, env=None):
    return subprocess.run([str(ROOT / "scripts" / name), *args], cwd=ROOT, env=base_env(env),
                          capture_output=True, text=True, timeout=120)


class Sender:
    """One client sending to ``room`` until told to stop (or its bounds), each acked."""

    def __init__(self, url, room, name):
        self.client = ChatClient(url, name=name)
        self.client.join(room)
        self.room, self.acked = room, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        until = time.monotonic() + SENDING_MAX_S
        for i in range(SENDS_MAX):
            if self.stop.is_set() or time.monotonic() > until:
                return
            ack = self.client.send(self.room, "%s %d" % (self.client.name, i))
            if ack.get("ok"):
                self.acked.append(ack["seq"])


def _history(ack):
    return [(m["seq"], m["id"], m["text"]) for m in ack["history"] if m.get("kind", "message") == "message"]


@pytest.mark.timeout(240)
def test_a_backup_under_traffic_restores_into_a_fresh_cluster_with_the_same_history_and_seqs(
        make_cluster, client, tmp_path):
    old = make_cluster(ENV)
    old.start_pair()
    old.start_nodes(("node1", "node2"))
    assert old.manage("createsuperuser", "--noinput", env=ADMIN).returncode == 0
    rooms = [new_room("kept"), new_room("kept")]
    watchers = {room: client(old.url("node2"), name="watch%d" % i) for i, room in enumerate(rooms)}
    for room, watcher in watchers.items():
        watcher.join(room)
    senders = [Sender(old.url(node), room, "s%d" % i)
               for i, (node, room) in enumerate(zip(("node1", "node2"), rooms))]
    try:
        wait_until(lambda: all(len(s.acked) >= 20 for s in senders), 30, "traffic in both rooms")
        folder = tmp_path / "backup"
        taken = _script("backup", str(folder), *_paths(old))
        assert taken.returncode == 0, taken.stdout + taken.stderr
        assert all(s.thread.is_alive() for s in senders), "the traffic went on during the backup"
    finally:
        for s in senders:
            s.stop.set()
            s.thread.join(15)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == dict.fromkeys(
        ("broker.sqlite3", "broker2.sqlite3", "database.sqlite3", "manifest.json"), 0o600)
    primary = manifest["files"]["broker.sqlite3"]
    positions = {room: primary["positions"][room] for room in rooms}
    assert all(seq >= 20 for _, seq in positions.values()), positions
    assert "accounts_user" in manifest["files"]["database.sqlite3"]["tables"]

    # what the running cluster served up to the copy's positions
    served = {}
    for room, watcher in watchers.items():
        sent = sum(len(s.acked) for s in senders if s.room == room)
        seen = watcher.wait_messages(room, sent, 30)
        served[room] = [(m["seq"], m["id"], m["text"]) for m in seen if m["seq"] <= positions[room][1]]
        assert [seq for seq, _, _ in served[room]] == list(range(1, positions[room][1] + 1))

    refused = _script("restore", str(folder), *_paths(old))
    assert refused.returncode != 0 and "the cluster runs" in refused.stderr, refused.stderr
    old.stop()

    fresh = make_cluster(ENV)
    restored = _script("restore", str(folder), *_paths(fresh))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored 3 files" in restored.stdout
    fresh.start_pair()
    fresh.start_nodes(("node1",))
    reader = client(fresh.url("node1"), name="reader")
    for room, (epoch, seq) in positions.items():
        ack = reader.join(room)
        assert (ack["epoch"], ack["seq"]) == (epoch, seq)
        assert _history(ack) == served[room]
        sent = reader.send(room, "after the restore")
        assert sent["ok"] and sent["seq"] == seq + 1, sent
    login = fresh.manage("shell", "-c", "from django.contrib.auth import authenticate; "
                         "print(authenticate(username='operator', password='a long passphrase') is not None)")
    assert login.stdout.split()[-1:] == ["True"], login.stdout + login.stderr


@pytest.mark.timeout(180)
def test_a_postgresql_database_is_dumped_and_restored(make_cluster):
    server = PostgresServer()
    try:
        url = {"DATABASE_URL": server.url}
        c = make_cluster(url)
        c.start_broker()
        assert c.manage("createsuperuser", "--noinput", env=ADMIN).returncode == 0
        folder = c.log_dir / "backup"
        taken = _script("backup", str(folder), "--store", "broker=%s" % (c.log_dir / "broker.sqlite3"),
                        env=url)
        assert taken.returncode == 0, taken.stdout + taken.stderr
        entry = json.loads((folder / "manifest.json").read_text())["files"]["database.pgdump"]
        assert entry["kind"] == "postgresql" and entry["source"] == "DATABASE_URL"
        c.stop()
        gone = c.manage("shell", "-c", "from accounts.models import User; "
                        "User.objects.filter(username='operator').delete()")
        assert gone.returncode == 0, gone.stderr
        restored = _script("restore", str(folder), "--store", "broker=%s" % (c.log_dir / "broker.sqlite3"),
                           env=url)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        back = c.manage("shell", "-c", "from accounts.models import User; "
                        "print(User.objects.filter(username='operator').exists())")
        assert back.stdout.split()[-1:] == ["True"], back.stdout + back.stderr
    finally:
        server.stop()


@pytest.mark.timeout(240)
def test_the_stores_are_found_in_supervisord_conf_and_restore_refuses_while_it_runs(
        supervised, tmp_path):  # noqa: F811
    conf, var = str(supervised["conf"]), supervised["var"]
    folder = tmp_path / "backup"
    taken = _script("backup", str(folder), "--config", conf, env=supervised["env"])
    assert taken.returncode == 0, taken.stdout + taken.stderr
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert {name: entry["source"] for name, entry in files.items()} == {
        "broker.sqlite3": str(var / "broker.sqlite3"), "broker2.sqlite3": str(var / "broker2.sqlite3"),
        "database.sqlite3": str(var / "web.sqlite3")}
    assert files["broker.sqlite3"]["epoch"] == files["broker2.sqlite3"]["epoch"]   # one pair
    refused = _script("restore", str(folder), "--config", conf, env=supervised["env"])
    assert refused.returncode != 0, refused.stdout
    assert "the cluster runs (" in refused.stderr and "broker2" in refused.stderr, refused.stderr


def test_restore_checks_every_checksum_before_touching_anything(tmp_path):
    """A copy altered after the backup: scripts/restore refuses and leaves the target alone."""
    import sqlite3
    source = tmp_path / "live" / "broker.sqlite3"
    source.parent.mkdir()
    with sqlite3.connect(source) as db:
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                         "CREATE TABLE rooms (room TEXT PRIMARY KEY, epoch TEXT, seq INTEGER);"
                         "INSERT INTO meta VALUES ('epoch', 'e1'); INSERT INTO rooms VALUES ('r', 'e1', 7);")
    database = tmp_path / "live" / "web.sqlite3"
    sqlite3.connect(database).close()
    paths = ["--store", "broker=%s" % source, "--database", str(database)]
    taken = _script("backup", str(tmp_path / "b"), *paths)
    assert taken.returncode == 0, taken.stderr
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["files"]["broker.sqlite3"]["positions"] == {"r": ["e1", 7]}
    copy = tmp_path / "b" / "broker.sqlite3"
    os.chmod(copy, 0o600)
    with open(copy, "r+b") as f:
        f.seek(200)
        f.write(b"\x01")
    target = tmp_path / "target"
    refused = _script("restore", str(tmp_path / "b"), "--store", "broker=%s" % (target / "broker.sqlite3"),
                      "--database", str(target / "web.sqlite3"))
    assert refused.returncode != 0 and "checksum mismatch" in refused.stderr, refused.stderr
    assert not target.exists()
