"""The broker failover pair as real processes (python -m broker, plain sockets on
loopback): the primary serves, the backup refuses, kill -9 of the primary, a
node's resend with the same cid is answered by the backup with the same epoch
and seq, and the restarted primary comes back passive and caught up; a backup
catches up on thousands of stored rooms, streamed while publishes go on, and
ends with the same store."""
import random
import re
import sqlite3
import time
import uuid

import pytest
import zmq
import zmq.auth

from broker import keys, replication
from broker.sequencer import Sequencer
from broker.store import SqliteStore
from chatstream import wire
from harness.processes import PYTHON, Proc, allowed_log_errors, base_env, check_logs, free_port, wait_until


def distinct_ports(count):
    """``count`` free ports, no two the same (free_port alone may repeat one)."""
    ports = set()
    for _ in range(100 * count):
        ports.add(free_port())
        if len(ports) == count:
            return list(ports)
    raise RuntimeError("no %d distinct free ports" % count)


def broker_env(tmp_path, name, role, ports, peer_ports):
    return base_env({
        "CHAT_BROKER_ROLE": role,
        "CHAT_KEYS_DIR": str(tmp_path / "no-keys"),
        "CHAT_BROKER_STATE": str(tmp_path / ("%s.sqlite3" % name)),
        "CHAT_BROKER_INTAKE_PORT": str(ports[0]),
        "CHAT_BROKER_PUBLISH_PORT": str(ports[1]),
        "CHAT_BROKER_SNAPSHOT_PORT": str(ports[2]),
        "CHAT_BROKER_METRICS_PORT": "0",
        "CHAT_BROKER_PEER_BIND": "tcp://127.0.0.1:%d" % peer_ports[0],
        "CHAT_BROKER_PEER": "tcp://127.0.0.1:%d" % peer_ports[1],
        "CHAT_BROKER_HEARTBEAT_MS": "200",
    })


class Node:
    """A node's intake DEALER to one broker: publish and wait for the reply."""

    def __init__(self, ctx, port):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect("tcp://127.0.0.1:%d" % port)

    def publish(self, cid, text, timeout=1.0, room="pair"):
        rid = uuid.uuid4().hex
        self.sock.send(wire.encode("publish", rid=rid, room=room, nick="ann", text=text,
                                   node="node1", cid=cid, uid="g" + "0" * 20))
        if not self.sock.poll(int(timeout * 1000)):
            return None
        reply = wire.decode(self.sock.recv())
        assert reply["rid"] == rid
        return reply


@pytest.fixture
def pair(request, tmp_path):
    """``(start, ports, ctx)``: ``start(name)`` (re)starts broker (primary) or broker2
    (backup); their logs are checked at the end as a cluster's are."""
    both = distinct_ports(8)
    ports = {"a": both[:4], "b": both[4:]}
    procs = {}

    def start(name, **extra):
        role, own, other = (("primary", "a", "b") if name == "broker" else ("backup", "b", "a"))
        env = broker_env(tmp_path, name, role, ports[own], (ports[own][3], ports[other][3]))
        env.update(extra)
        procs[name] = Proc(name, [PYTHON, "-m", "broker"], env, tmp_path).start()
        return procs[name]
    ctx = zmq.Context()
    yield start, ports, ctx
    for proc in procs.values():
        proc.stop()
    ctx.destroy(0)
    check_logs(procs.values(), allowed_log_errors(request.node))


def caught_up(proc, timeout=20.0):
    """Wait until ``proc`` (a broker of the pair, maybe restarted) has logged, in its
    latest start, that it caught up with the active as its passive."""
    def done():
        latest = proc.log().rsplit(" listening: intake ", 1)[-1]
        return "replication: caught up with the active" in latest
    wait_until(done, timeout, "%s passive and caught up" % proc.name)


def until_reply(node, cid, text, timeout=10.0):
    """Resend (same cid) until the broker answers something else than not_active."""
    return wait_until(lambda: _served(node.publish(cid, text)), timeout, "a serving broker")


def _served(reply):
    return reply if reply is not None and reply.get("error") != "not_active" else None


def test_kill_9_of_the_active_fails_over_with_same_epoch_and_seq(pair):
    start, ports, ctx = pair
    primary, backup = start("broker"), start("broker2")
    a, b = Node(ctx, ports["a"][0]), Node(ctx, ports["b"][0])
    first = until_reply(a, "c1", "one")
    assert first["type"] == "published" and first["message"]["seq"] == 1
    caught_up(backup)                                      # passive, following the active
    assert b.publish("c2", "two")["error"] == "not_active"
    second = a.publish("c2", "two")
    assert second["message"]["seq"] == 2
    primary.kill()
    killed = time.monotonic()
    again = until_reply(b, "c2", "two")                   # the node's resend, same cid
    took = time.monotonic() - killed
    assert again["duplicate"] is True and again["message"] == second["message"]
    third = b.publish("c3", "three")
    assert (third["duplicate"], third["message"]["seq"]) == (False, 3)
    assert took < 5.0, "first ack %.2f s after kill -9" % took
    print("first ack after kill -9 of the active: %.2f s" % took)

    restarted = start("broker")                            # comes back passive
    a2 = Node(ctx, ports["a"][0])
    caught_up(restarted)
    assert a2.publish("c4", "four")["error"] == "not_active"
    fourth = b.publish("c4", "four")
    assert fourth["message"]["seq"] == 4
    backup.kill()                                          # now the restarted one takes over
    fourth_again = until_reply(a2, "c4", "four")
    assert fourth_again["duplicate"] and fourth_again["message"] == fourth["message"]
    assert a2.publish("c5", "five")["message"]["seq"] == 5
    assert restarted.alive()


def _peer_dealer(ctx, port, keys_dir, key):
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    server_public, _ = zmq.auth.load_certificate(str(keys_dir / "broker.key"))
    sock.curve_serverkey = server_public
    sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(
        str(keys_dir / ("%s.key_secret" % key)))
    sock.connect("tcp://127.0.0.1:%d" % port)
    return sock


@pytest.mark.timeout(60)
def test_the_peer_link_admits_the_broker_key_only(tmp_path):
    """A node's key cannot speak on the peer link (it could fake a partner); the broker key can."""
    keys.init(tmp_path / "keys")
    ports = distinct_ports(5)
    env = broker_env(tmp_path, "broker2", "backup", ports, (ports[3], ports[4]))
    env["CHAT_KEYS_DIR"] = str(tmp_path / "keys")
    backup = Proc("broker2", [PYTHON, "-m", "broker"], env, tmp_path).start()
    ctx = zmq.Context()
    try:
        wait_until(lambda: "peer link: listening" in backup.log(), 10, "the backup")
        active = replication.encode("peer_state", state="ACTIVE", in_sync=True, term=1,
                                    instance="fake", epoch="E")
        rogue = _peer_dealer(ctx, ports[3], tmp_path / "keys", "nodes/node1")
        for _ in range(10):
            try:
                rogue.send(active, zmq.NOBLOCK)   # refused at the handshake: nowhere to queue
            except zmq.Again:
                pass
            time.sleep(0.1)
        assert "-> PASSIVE" not in backup.log()
        partner = _peer_dealer(ctx, ports[3], tmp_path / "keys", "broker")
        partner.send(active)
        wait_until(lambda: "BACKUP -> PASSIVE" in backup.log(), 5, "the partner to be heard")
    finally:
        backup.stop()
        ctx.destroy(0)


def _store_contents(path):
    db = sqlite3.connect(str(path))
    try:
        return (db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone(),
                db.execute("SELECT room, epoch, seq, last_ms FROM rooms ORDER BY room").fetchall(),
                db.execute("SELECT room, seq, body FROM messages ORDER BY room, seq").fetchall())
    finally:
        db.close()


@pytest.mark.timeout(60)
def test_a_backup_catches_up_on_many_rooms_streamed_while_publishes_go_on(pair, tmp_path):
    start, ports, ctx = pair
    rooms = 5000
    filled = Sequencer(store=SqliteStore(str(tmp_path / "broker.sqlite3")))
    for r in range(rooms):
        for m in range(3):
            filled.sequence("room-%04d" % r, "ann", "m%d" % m, "node1", "c%d-%d" % (r, m))
    filled.commit()
    filled.store.close()
    small = {"CHAT_BROKER_ROOMS_IN_MEMORY": "100"}
    primary = start("broker", **small)
    node = Node(ctx, ports["a"][0])
    until_reply(node, "first", "first", timeout=15.0)       # serving alone
    backup = start("broker2", **small)
    rng, i, deadline = random.Random(3), 0, time.monotonic() + 30
    while "caught up with the active" not in backup.log():
        assert time.monotonic() < deadline, "no catch-up within 30 s"
        i += 1
        reply = node.publish("p%d" % i, "during", timeout=5.0,
                             room="room-%04d" % rng.randrange(rooms))
        assert reply["type"] == "published", reply
    for j in range(10):                                     # acked once the passive has them
        reply = node.publish("q%d" % j, "after", timeout=5.0,
                             room="room-%04d" % rng.randrange(rooms))
        assert reply["type"] == "published", reply
    sent = wait_until(lambda: re.search(r"sent (\d+) rooms in (\d+) parts", primary.log()), 5,
                      "the active's catch-up line")
    assert int(sent.group(1)) >= rooms and int(sent.group(2)) >= rooms // 200
    primary.stop()
    backup.stop()
    assert _store_contents(tmp_path / "broker.sqlite3") == _store_contents(
        tmp_path / "broker2.sqlite3")
    print("%d publishes while the backup caught up on %d rooms in %s parts" % (
        i, rooms, sent.group(2)))
