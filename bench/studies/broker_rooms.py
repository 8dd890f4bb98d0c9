"""Broker start-up time and memory with many rooms in its state file.

    .venv/bin/python -m bench.studies.broker_rooms --rooms 100000 --messages 5

Fills a fresh SQLite state file with ``--rooms`` rooms of ``--messages``
messages each (the broker's own store code), then starts ``python -m broker``
on it (free loopback ports), and reports the time until its first answer
(a ``history`` request for one room), its RSS then, and its RSS after
``--touch`` random rooms were read.  Stopped by pid; the state file lives in a
temporary folder that is removed.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from broker.sequencer import Sequencer
from broker.store import SqliteStore
from chatstream import wire
from bench import ROOT
from harness.processes import free_port



def fill(path, rooms, messages):
    seq = Sequencer(history_size=50, store=SqliteStore(path))
    for r in range(rooms):
        for m in range(messages):
            seq.sequence("room-%d" % r, "nick", "message %d of room %d" % (m, r), "node1")
        if r % 1000 == 999:
            seq.commit()
    seq.commit()
    seq.store.close()


def rss_kb(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=100_000)
    p.add_argument("--messages", type=int, default=5)
    p.add_argument("--touch", type=int, default=1000, help="random rooms read after start-up")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    p.add_argument("--broker-root", default=str(ROOT),
                   help="checkout whose broker to start (e.g. a worktree of an older commit)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="broker-rooms-") as tmp:
        path = os.path.join(tmp, "state.sqlite3")
        t0 = time.monotonic()
        fill(path, args.rooms, args.messages)
        print("filled %d rooms x %d messages in %.1f s (%.1f MB)" % (
            args.rooms, args.messages, time.monotonic() - t0, os.path.getsize(path) / 1e6))
        ports = [free_port() for _ in range(3)]
        env = dict(os.environ, CHAT_BROKER_STATE=path, CHAT_BROKER_HOST="127.0.0.1",
                   CHAT_BROKER_INTAKE_PORT=str(ports[0]), CHAT_BROKER_PUBLISH_PORT=str(ports[1]),
                   CHAT_BROKER_SNAPSHOT_PORT=str(ports[2]), CHAT_LOG_LEVEL="WARNING",
                   CHAT_BROKER_METRICS_PORT="0",   # no metrics server (never :5558 here)
                   CHAT_KEYS_DIR=os.path.join(tmp, "no-keys"))   # plain sockets on loopback
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect("tcp://127.0.0.1:%d" % ports[2])
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "broker"], cwd=args.broker_root, env=env,
                                start_new_session=True)
        try:
            deadline = started + args.timeout
            answered = None
            while answered is None and time.monotonic() < deadline:
                sock.send(wire.encode("history", rid=1, room="room-0"))
                if sock.poll(500):
                    answered = wire.decode(sock.recv())
            if answered is None:
                raise SystemExit("no answer within %.0f s" % args.timeout)
            ready_s = time.monotonic() - started
            ready_rss = rss_kb(proc.pid)
            for i in range(args.touch):
                room = "room-%d" % random.randrange(args.rooms)
                sock.send(wire.encode("history", rid=i + 2, room=room))
                reply = wire.decode(sock.recv())
                assert reply["seq"] == args.messages, reply
            print("broker answered after %.2f s, RSS %.1f MB; after reading %d random rooms "
                  "RSS %.1f MB" % (ready_s, ready_rss / 1024, args.touch, rss_kb(proc.pid) / 1024))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            sock.close()
            ctx.term()


if __name__ == "__main__":
    main()
