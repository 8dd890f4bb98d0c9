"""The presence storm of issue 12: N clients join one room; what do `presence` events cost?

Starts a broker and nodes on free loopback ports (``harness.cluster.start_cluster``,
no balancer), connects ``--clients`` websocket clients round-robin over the nodes,
then has them all join one room (at most ``--concurrency`` joins in flight) and
counts every `presence` event the room's members receive: events, and bytes of the
Socket.IO packets (``42["presence",{...}]``, the websocket frame's payload).  The run
ends once every client's latest `presence` lists all N members and nothing more came
for ``--quiet`` seconds, or at ``--timeout`` (then ``converged`` is false).

The clients are a minimal Engine.IO v4 / Socket.IO v5 websocket client on asyncio in
this one process (no per-client thread, presence frames are counted, not decoded, but
for the member count of each client's latest list), so the measuring side stays cheap
next to the cluster it measures.  Send queues are raised out of the way
(``CHAT_MAX_SEND_QUEUE``): the figure is the traffic, not the slow-client reaper.

Usage (from the repository's root, or from a worktree of another commit)::

    .venv/bin/python -m bench.studies.presence_storm           # 400 clients, 3 nodes
    .venv/bin/python -m bench.studies.presence_storm --clients 100 --nodes 2

Prints progress on stderr and one JSON line of figures on stdout.  Exit status 0 when
converged, 1 when not, 2 when the cluster or a client failed.  Everything it started
is stopped by pid; process logs stay in the printed directory.
"""
import argparse
import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

from harness.cluster import start_cluster
from harness.processes import ROOT

PRESENCE_PREFIX = b'42["presence",'
ANNOUNCEMENT_PREFIX = b'42["announcement",'


class StormClient:
    """One Socket.IO client over a raw websocket: join, answer pings, count frames."""

    def __init__(self, host, port, nick):
        self.host, self.port, self.nick = host, port, nick
        self.reader = self.writer = None
        self.presence_events = self.presence_bytes = 0
        self.announcement_bytes = 0
        self.last_members = 0
        self.last_presence_at = 0.0
        self.acks = {}          # ack id -> Future
        self.closed = None      # why the server side ended, if it did

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write((
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.host, self.port, key)).encode())
        status = await self.reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n", 1)[0]:
            raise RuntimeError("%s: no websocket upgrade: %r" % (self.nick, status[:80]))
        opened = await self._read_message()          # 0{"sid":..., "pingInterval":...}
        if not opened.startswith(b"0"):
            raise RuntimeError("%s: no Engine.IO open packet: %r" % (self.nick, opened[:80]))
        self._send(b"40")                            # Socket.IO connect to "/"
        connected = await self._read_message()
        if not connected.startswith(b"40"):
            raise RuntimeError("%s: namespace refused: %r" % (self.nick, connected[:120]))

    async def join(self, room, ack_id, timeout):
        future = self.acks[ack_id] = asyncio.get_running_loop().create_future()
        self._send(b"42%d" % ack_id + json.dumps(
            ["join", {"room": room, "nick": self.nick}], separators=(",", ":")).encode())
        ack = await asyncio.wait_for(future, timeout)
        if not ack.get("ok"):
            raise RuntimeError("%s: join refused: %s" % (self.nick, ack))

    async def read_forever(self):
        try:
            while True:
                self._on_packet(await self._read_message())
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.closed = self.closed or repr(exc)

    def _on_packet(self, packet):
        if packet.startswith(PRESENCE_PREFIX):
            self.presence_events += 1
            self.presence_bytes += len(packet)
            self.last_presence_at = time.monotonic()
            # '42["presence",{"room":"...","members":["a","b"]}]': count the list's items
            members = packet[packet.index(b'"members":') + 10:]
            self.last_members = 0 if members.startswith(b"[]") else members.count(b",") + 1
        elif packet.startswith(ANNOUNCEMENT_PREFIX):
            self.announcement_bytes += len(packet)
        elif packet == b"2":                          # Engine.IO ping: answer pong
            self._send(b"3")
        elif packet.startswith(b"43"):                # an ack: 43<id>[{...}]
            digits = packet[2:].split(b"[", 1)[0]
            future = self.acks.pop(int(digits), None)
            if future is not None and not future.done():
                future.set_result(json.loads(packet[2 + len(digits):])[0])
        elif packet.startswith(b"1") or packet.startswith(b"41"):
            self.closed = "closed by the server: %r" % packet[:40]

    async def _read_message(self):
        """One websocket message's payload (fragments joined; control frames handled)."""
        parts = []
        while True:
            head = await self.reader.readexactly(2)
            fin, opcode, size = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            if head[1] & 0x80:                        # servers do not mask; skip a key anyway
                await self.reader.readexactly(4)
            payload = await self.reader.readexactly(size)
            if opcode == 0x8:
                raise ConnectionError("websocket close")
            if opcode == 0x9:
                self._send(payload, opcode=0xA)
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if fin:
                return b"".join(parts)

    def _send(self, payload, opcode=0x1):
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    def close(self):
        if self.writer is not None:
            self.writer.close()


async def storm(ports, args, say):
    clients = [StormClient("127.0.0.1", ports[i % len(ports)], "c%03d" % i)
               for i in range(args.clients)]
    gate = asyncio.Semaphore(args.concurrency)

    async def bounded(coro):
        async with gate:
            await coro

    await asyncio.wait_for(asyncio.gather(*(bounded(c.connect()) for c in clients)),
                           args.timeout)
    say("%d clients connected; joining room %s" % (len(clients), args.room))
    readers = [asyncio.create_task(c.read_forever()) for c in clients]
    started = time.monotonic()
    deadline = started + args.timeout
    try:
        await asyncio.wait_for(asyncio.gather(
            *(bounded(c.join(args.room, 1, args.timeout)) for c in clients)), args.timeout)
        joined = time.monotonic()
        say("all joined in %.1f s; waiting for presence to settle" % (joined - started))
        converged = False
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            dead = [c for c in clients if c.closed]
            if dead:
                raise RuntimeError("%d clients lost their connection, e.g. %s: %s"
                                   % (len(dead), dead[0].nick, dead[0].closed))
            last = max(c.last_presence_at for c in clients)
            complete = all(c.last_members == args.clients for c in clients)
            if complete and time.monotonic() - last >= args.quiet:
                converged = True
                break
    finally:
        for task in readers:
            task.cancel()
        for c in clients:
            c.close()
    last = max(c.last_presence_at for c in clients)
    return {
        "clients": args.clients,
        "nodes": len(ports),
        "converged": converged,
        "presence_events": sum(c.presence_events for c in clients),
        "presence_bytes": sum(c.presence_bytes for c in clients),
        "presence_mb": round(sum(c.presence_bytes for c in clients) / 1e6, 3),
        "announcement_bytes": sum(c.announcement_bytes for c in clients),
        "joins_s": round(joined - started, 2),
        "presence_settled_s": round(last - started, 2),
        "max_events_per_client": max(c.presence_events for c in clients),
        "min_events_per_client": min(c.presence_events for c in clients),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=400, help="clients joining the room (400)")
    p.add_argument("--nodes", type=int, default=3, help="web nodes, clients round-robin (3)")
    p.add_argument("--concurrency", type=int, default=50, help="connects/joins in flight (50)")
    p.add_argument("--quiet", type=float, default=2.0,
                   help="seconds without presence after convergence that end the run (2)")
    p.add_argument("--timeout", type=float, default=120.0, help="hard limit per phase, s (120)")
    p.add_argument("--room", default="storm")
    p.add_argument("--log-dir", default=None, help="process logs (default: a new temp dir)")
    return p.parse_args(argv)


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    args = parse_args(argv)

    def say(text):
        print("presence_storm: %s" % text, file=sys.stderr, flush=True)

    log_dir = args.log_dir or tempfile.mkdtemp(prefix="presence-storm-")
    say("tree %s (commit %s), logs in %s" % (ROOT, commit(), log_dir))
    names = tuple("node%d" % (i + 1) for i in range(args.nodes))
    env = {"CHAT_MAX_SEND_QUEUE": "1000000", "CHAT_BROKER_STATE": "memory",
           "CHAT_LOG_LEVEL": "WARNING"}
    cluster = start_cluster(log_dir, env=env, nodes=names, balancer=False, timeout=60)
    try:
        ports = [cluster.nodes[name][1] for name in names]
        try:
            figures = asyncio.run(storm(ports, args, say))
        except (RuntimeError, OSError, asyncio.TimeoutError) as exc:
            say("failed: %r" % (exc,))
            return 2
    finally:
        cluster.stop()
    figures["commit"] = commit()
    say("%(presence_events)d presence events, %(presence_mb).1f MB to %(clients)d members; "
        "joins took %(joins_s)s s, presence settled after %(presence_settled_s)s s" % figures)
    print(json.dumps(figures))
    return 0 if figures["converged"] else 1


if __name__ == "__main__":
    sys.exit(main())
