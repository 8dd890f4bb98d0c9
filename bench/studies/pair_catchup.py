"""The failover pair's catch-up with many stored rooms: the active's time, memory and loop.

    .venv/bin/python -m bench.studies.pair_catchup --rooms 100000 --messages 5
    .venv/bin/python -m bench.studies.pair_catchup --state /tmp/rooms.sqlite3 --broker-root /tmp/old

Fills a SQLite state file with ``--rooms`` rooms of ``--messages`` messages
(bench/studies/broker_rooms.py's fill; ``--state`` copies a filled one instead), starts
``python -m broker`` as the pair's primary on it and, once it serves alone, the
backup on an empty state file.  While the backup catches up, one client
publishes to random rooms (one publish in flight, its ack awaited; an ack
also waits for the passive to store the message once its room was sent), or
with ``--probe history`` reads one room's history (the active's loop alone):
the slowest answer shows how long the active's loop was held.  Reported: the time
from the backup's start to "caught up", the active's RSS before and its peak
(VmHWM) after, the acks' latency.  Then both brokers are stopped (by pid) and
their state files compared room by room: epoch, seq, last message time and
every stored message must be the same.
"""
import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from bench.studies.broker_rooms import fill
from bench.procstat import status_kb
from chatstream import wire
from bench import ROOT
from harness.processes import free_port



def broker_env(tmp, name, role, own, other):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env.update(CHAT_BROKER_ROLE=role, CHAT_BROKER_STATE=os.path.join(tmp, name + ".sqlite3"),
               CHAT_KEYS_DIR=os.path.join(tmp, "no-keys"), CHAT_BROKER_HOST="127.0.0.1",
               CHAT_BROKER_INTAKE_PORT=str(own[0]), CHAT_BROKER_PUBLISH_PORT=str(own[1]),
               CHAT_BROKER_SNAPSHOT_PORT=str(own[2]), CHAT_BROKER_METRICS_PORT="0",
               CHAT_BROKER_PEER_BIND="tcp://127.0.0.1:%d" % own[3],
               CHAT_BROKER_PEER="tcp://127.0.0.1:%d" % other[3], PYTHONUNBUFFERED="1")
    return env


def start(root, tmp, name, env):
    log = open(os.path.join(tmp, name + ".log"), "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "broker"], cwd=root, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def publish(sock, room, i, timeout_s):
    """One publish and its ack: (seconds, reply or None)."""
    t0 = time.monotonic()
    sock.send(wire.encode("publish", rid=i, room=room, nick="bench", text="during catch-up %d" % i,
                          node="node1", cid="bench-%d" % i, uid="g" + "0" * 20))
    if not sock.poll(int(timeout_s * 1000)):
        return time.monotonic() - t0, None
    return time.monotonic() - t0, wire.decode(sock.recv())


def history(sock, room, i, timeout_s):
    t0 = time.monotonic()
    sock.send(wire.encode("history", rid=i, room=room))
    if not sock.poll(int(timeout_s * 1000)):
        return time.monotonic() - t0, None
    reply = wire.decode(sock.recv())
    return time.monotonic() - t0, dict(reply, type="published")   # answered


def dump(path):
    db = sqlite3.connect(path)
    try:
        rooms = db.execute("SELECT room, epoch, seq, last_ms FROM rooms ORDER BY room").fetchall()
        messages = db.execute("SELECT room, seq, body FROM messages ORDER BY room, seq").fetchall()
        epoch = db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
    finally:
        db.close()
    return epoch, rooms, messages


def run(args, tmp):
    path = os.path.join(tmp, "broker.sqlite3")
    if args.state:
        shutil.copy(args.state, path)
    else:
        t0 = time.monotonic()
        fill(path, args.rooms, args.messages)
        print("filled %d rooms x %d messages in %.1f s" % (args.rooms, args.messages,
                                                         time.monotonic() - t0))
    rooms = sqlite3.connect(path).execute("SELECT count(*) FROM rooms").fetchone()[0]
    ports = {"a": [free_port() for _ in range(4)], "b": [free_port() for _ in range(4)]}
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect("tcp://127.0.0.1:%d" % ports["a"][0])
    reader = ctx.socket(zmq.DEALER)
    reader.setsockopt(zmq.LINGER, 0)
    reader.connect("tcp://127.0.0.1:%d" % ports["a"][2])
    procs = {}
    try:
        procs["a"] = start(args.broker_root, tmp, "broker",
                           broker_env(tmp, "broker", "primary", ports["a"], ports["b"]))
        deadline = time.monotonic() + args.timeout
        i, reply = 0, None
        while reply is None or reply.get("type") != "published":   # serves alone after expiry
            if time.monotonic() > deadline:
                raise SystemExit("the primary never served")
            i += 1
            _, reply = publish(sock, "room-0", i, 1.0)
        before_rss = status_kb(procs["a"].pid, "VmRSS")
        before_hwm = status_kb(procs["a"].pid, "VmHWM")
        started = time.monotonic()
        procs["b"] = start(args.broker_root, tmp, "broker2",
                           broker_env(tmp, "broker2", "backup", ports["b"], ports["a"]))
        log_b = os.path.join(tmp, "broker2.log")
        waits, lost, slowest = [], 0, (0.0, 0.0)
        while "caught up with the active" not in Path(log_b).read_text(errors="replace"):
            if time.monotonic() > deadline or procs["b"].poll() is not None:
                raise SystemExit("no catch-up within %.0f s" % args.timeout)
            i += 1
            if args.probe == "history":
                took, reply = history(reader, "room-0", i, 30.0)
            else:
                took, reply = publish(sock, "room-%d" % random.randrange(rooms), i, 30.0)
            waits.append(took)
            slowest = max(slowest, (took, time.monotonic() - started - took))
            lost += reply is None or reply.get("type") != "published"
        caught_s = time.monotonic() - started
        hwm = status_kb(procs["a"].pid, "VmHWM")
        rss = status_kb(procs["a"].pid, "VmRSS")
        for _ in range(20):   # after the catch-up: acked only once the passive stored them
            i += 1
            _, reply = publish(sock, "room-%d" % random.randrange(rooms), i, 10.0)
            lost += reply is None or reply.get("type") != "published"
        waits.sort()
        print("%d rooms: caught up %.1f s after the backup started; active RSS %.1f MB before, "
              "peak %.1f MB (VmHWM before %.1f MB), %.1f MB after; %d %s requests during it, answer "
              "median %.4f s, p99 %.3f s, max %.3f s; %d unanswered" % (
                  rooms, caught_s, before_rss / 1024, hwm / 1024, before_hwm / 1024, rss / 1024,
                  len(waits), args.probe, waits[len(waits) // 2] if waits else 0,
                  waits[int(len(waits) * 0.99)] if waits else 0, waits[-1] if waits else 0,
                  lost))
        said = Path(tmp, "broker.log").read_text(errors="replace")
        print("the slowest answer came %.1f s after the backup started; the active served %d "
              "catch-up requests and detached the passive %d times" % (
                  slowest[1], said.count("catching up"), said.count("passive detached")))
    finally:
        for proc in procs.values():
            stop(proc)
        sock.close()
        reader.close()
        ctx.term()
    a, b = dump(path), dump(os.path.join(tmp, "broker2.sqlite3"))
    same = [x == y for x, y in zip(a, b)]
    print("passive's store vs active's: epoch %s, rooms %s (%d), messages %s (%d)" % (
        *("same" if s else "DIFFERENT" for s in same[:2]), len(a[1]),
        "same" if same[2] else "DIFFERENT", len(a[2])))
    for name, x, y in (("room", a[1], b[1]), ("message", a[2], b[2])):
        diff = sorted(set(x) ^ set(y))[:4]
        if diff:
            print("first %ss that differ (%d on the active, %d on the passive): %s" % (
                name, len(x), len(y), diff))
    return all(same) and not lost


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=100_000)
    p.add_argument("--messages", type=int, default=5)
    p.add_argument("--state", help="a filled state file to copy instead of filling one")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--probe", choices=("publish", "history"), default="publish",
                   help="what a client asks of the active while the backup catches up")
    p.add_argument("--broker-root", default=str(ROOT),
                   help="checkout whose broker to start (e.g. an export of an older commit)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pair-catchup-") as tmp:
        try:
            ok = run(args, tmp)
        except SystemExit:
            for name in ("broker", "broker2"):   # what the brokers said, for the failure
                lines = Path(tmp, name + ".log").read_text(errors="replace").splitlines()
                print("--- %s.log (last 15 lines)\n%s" % (name, "\n".join(lines[-15:])))
            raise
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
