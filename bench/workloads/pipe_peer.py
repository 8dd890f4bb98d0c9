"""The processes of bench.workloads.pipe: a stand-in node (``peer``) and the raw ``proxy``.

Run by bench.workloads.pipe's driver as ``python -m bench.workloads.pipe_peer peer|proxy ...``.
A peer has one sending socket (PUB to the proxy's XSUB, or DEALER to our broker's intake)
and one SUB subscribed to everything (with ``--keys``, both are CURVE clients holding the
node key of that folder); it sends on a schedule, records every delivery (latency on
CLOCK_MONOTONIC, which all processes share), and writes a JSON summary plus raw latency
arrays (float32 ms) next to ``--out``.
"""
import argparse
import array
import json
import os
import signal
import struct
import sys
import time
from pathlib import Path

import zmq

PHASE_WARMUP, PHASE_FIXED, PHASE_FLAT = 0, 1, 2
PHASES = {PHASE_FIXED: "fixed", PHASE_FLAT: "flat"}
RAW_HEADER = struct.Struct("<BHIQ")    # phase, peer, k, send time (ns)
# Peers and proxy start in well under a second; the first message waits this
# long so every SUB is connected and subscribed (ZeroMQ's slow joiner).
START_DELAY_SECS = 2.0
# Between the phases: no sending, so the fixed phase's stragglers arrive first.
PHASE_GAP_SECS = 1.0
# ZeroMQ queues this many messages per peer before PUB drops: far above any window.
HWM = 1_000_000
# A peer's presence report, as often as a node's keepalive (one broker heartbeat): the
# broker drops the members of a node silent for its node TTL.
REPORT_EVERY_NS = 1_000_000_000



class Peer:
    """One stand-in node: sends on a schedule, receives everything, records."""

    def __init__(self, args):
        self.args = args
        self.ctx = zmq.Context()
        curve = _curve_client(args.keys, "peer%d" % args.id) if args.keys else None
        self.sub = self.ctx.socket(zmq.SUB)
        if curve:
            self.sub.curve_serverkey, self.sub.curve_publickey, self.sub.curve_secretkey = curve
        self.sub.setsockopt(zmq.RCVHWM, HWM)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(args.sub)
        kind = zmq.PUB if args.mode == "raw" else zmq.DEALER
        self.out = self.ctx.socket(kind)
        self.out.setsockopt(zmq.SNDHWM, HWM)
        self.out.setsockopt(zmq.LINGER, 0)
        if curve:
            self.out.curve_serverkey, self.out.curve_publickey, self.out.curve_secretkey = curve
        self.out.connect(args.send)
        if args.mode == "broker":
            from chatstream import config, uid_proofs, wire
            self.wire = wire
            # a connection's uid, with its proof when the broker checks them (keys)
            self.uid = "c%020x" % args.id
            self.proofs = ({self.uid: uid_proofs.prove(uid_proofs.read_key(
                os.path.join(args.keys, config.KEY_FILES["uid_proof"][1])), self.uid)}
                if args.keys else {})
            self.rooms = ["pipe-%s-%d" % (args.run, r) for r in range(args.rooms)]
            self.pad = "x" * max(0, args.text_bytes)
            self.register()
        else:
            self.topics = [("pipe-%s-%d" % (args.run, r)).encode() + b"\x00" for r in range(args.rooms)]
            self.pad = b"x" * max(0, args.msg_bytes - RAW_HEADER.size)
        self.sent = {PHASE_WARMUP: 0, PHASE_FIXED: 0, PHASE_FLAT: 0}
        self.own_back = {PHASE_FLAT: 0}
        self.received = {p: 0 for p in (PHASE_WARMUP, PHASE_FIXED, PHASE_FLAT)}
        self.latency = {PHASE_FIXED: array.array("f"), PHASE_FLAT: array.array("f")}
        self.ack_latency = {PHASE_FIXED: array.array("f"), PHASE_FLAT: array.array("f")}
        self.acked = {PHASE_WARMUP: 0, PHASE_FIXED: 0, PHASE_FLAT: 0}
        self.send_times = {}
        self.last = {}        # raw: sender -> last k; broker: room -> last seq
        self.integrity = {"duplicated": 0, "out_of_order": 0, "seq_gaps": 0, "foreign": 0}
        self.k = 0

    def register(self):
        """This peer's member in every room, as a node reports its connections (and keeps
        itself alive at the broker): with keys, the broker sequences a publish only from a
        member its node registered in the room.  On the socket the publishes take, first."""
        self.out.send(self.wire.encode("presence", node="peer%d" % self.args.id, full=True,
                                       rooms={room: [["p%d" % self.args.id, self.uid]]
                                              for room in self.rooms}, proofs=self.proofs))

    def send(self, phase, now_ns):
        a = self.args
        k = self.k
        self.k += 1
        if a.mode == "raw":
            self.out.send_multipart([self.topics[k % len(self.topics)],
                                     RAW_HEADER.pack(phase, a.id, k, now_ns) + self.pad])
        else:
            text = "%d %d %d %d %s" % (phase, a.id, k, now_ns, self.pad)
            self.send_times[k] = now_ns
            # quiet, as a node sends it (web/chat/link/acks.py): its own message on PUB is the ack
            self.out.send(self.wire.encode("publish", rid=k, room=self.rooms[k % len(self.rooms)],
                                           nick="p%d" % a.id, text=text, node="peer%d" % a.id,
                                           uid=self.uid, cid="p%d-%s-%d" % (a.id, a.run, k),
                                           quiet=True))
        self.sent[phase] += 1

    def on_delivery(self, phase, sender, k, t_send, now_ns, order_key, order_value):
        self.received[phase] += 1
        if phase in self.latency:
            self.latency[phase].append((now_ns - t_send) / 1e6)
        if sender == self.args.id and phase in self.own_back:
            self.own_back[phase] += 1
        last = self.last.get(order_key)
        if last is not None:
            if order_value <= last:
                self.integrity["duplicated" if order_value == last else "out_of_order"] += 1
            elif order_value > last + 1:
                self.integrity["seq_gaps"] += 1
        if last is None or order_value > last:
            self.last[order_key] = order_value

    def drain_sub(self, now_ns):
        for _ in range(10000):
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            now_ns = time.monotonic_ns()
            if self.args.mode == "raw":
                if len(frames) != 2 or len(frames[1]) < RAW_HEADER.size:
                    self.integrity["foreign"] += 1
                    continue
                phase, sender, k, t_send = RAW_HEADER.unpack_from(frames[1])
                self.on_delivery(phase, sender, k, t_send, now_ns, sender, k)
            else:
                if len(frames) != 2 or frames[0].startswith(b"\x01"):
                    continue   # heartbeats and relays
                body = self.wire.decode(frames[1])
                if body.get("type") == "message":
                    batch = (body["message"],)
                elif body.get("type") == "messages":   # a room's messages of one broker batch
                    batch = body["messages"]
                else:
                    continue
                for m in batch:
                    try:
                        phase, sender, k, t_send = (int(x) for x in m["text"].split(" ", 4)[:4])
                    except ValueError:
                        self.integrity["foreign"] += 1
                        continue
                    self.on_delivery(phase, sender, k, t_send, now_ns, m["room"], m["seq"])
                    if sender == self.args.id:
                        self.on_ack(phase, k, now_ns)

    def drain_replies(self):
        for _ in range(10000):
            try:
                frame = self.out.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            body = self.wire.decode(frame)
            if body.get("type") != "published" or body.get("rid") not in self.send_times:
                self.integrity["foreign"] += 1
                continue
            self.on_ack(int(body["message"]["text"].split(" ", 1)[0]), body["rid"],
                        time.monotonic_ns())

    def on_ack(self, phase, k, now_ns):
        """Publish ``k`` acknowledged: by its message on PUB (quiet), or a reply."""
        t_send = self.send_times.pop(k, None)
        if t_send is not None:
            self.acked[phase] += 1
            if phase in self.ack_latency:
                self.ack_latency[phase].append((now_ns - t_send) / 1e6)

    def run(self):
        a = self.args
        t0 = a.t0_ns
        fixed_start = t0 + int(a.warmup * 1e9)
        fixed_end = fixed_start + int(a.fixed_s * 1e9)
        flat_start = fixed_end + int(PHASE_GAP_SECS * 1e9)
        flat_end = flat_start + int(a.flat_s * 1e9)
        end = flat_end + int(PHASE_GAP_SECS * 1e9)
        period_ns = int(1e9 / a.rate) if a.rate > 0 else None
        fixed_count = int(a.rate * (a.warmup + a.fixed_s)) if period_ns else 0
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        if a.mode == "broker":
            poller.register(self.out, zmq.POLLIN)
        n_fixed = 0
        next_report = time.monotonic_ns() + REPORT_EVERY_NS
        while True:
            now = time.monotonic_ns()
            if now >= end:
                break
            if a.mode == "broker" and now >= next_report:
                self.register()
                next_report = now + REPORT_EVERY_NS
            timeout_ms = 10
            if t0 <= now < fixed_end and n_fixed < fixed_count:
                while n_fixed < fixed_count and t0 + n_fixed * period_ns <= now:
                    due = t0 + n_fixed * period_ns
                    self.send(PHASE_WARMUP if due < fixed_start else PHASE_FIXED, time.monotonic_ns())
                    n_fixed += 1
                if n_fixed < fixed_count:
                    timeout_ms = max(0, min(10, (t0 + n_fixed * period_ns - time.monotonic_ns()) / 1e6))
            elif flat_start <= now < flat_end:
                while (self.sent[PHASE_FLAT] - self.own_back[PHASE_FLAT] < a.window
                       and self.sent[PHASE_FLAT] < a.max_count):
                    self.send(PHASE_FLAT, time.monotonic_ns())
            elif now < t0:
                timeout_ms = max(0, min(10, (t0 - now) / 1e6))
            events = dict(poller.poll(timeout_ms))
            if self.sub in events:
                self.drain_sub(now)
            if a.mode == "broker" and self.out in events:
                self.drain_replies()
        # summary for the driver
        Path(a.out).write_text(json.dumps({
            "peer": a.id, "sent": {PHASES.get(p, "warmup"): n for p, n in self.sent.items()},
            "acked": {PHASES.get(p, "warmup"): n for p, n in self.acked.items()},
            "received": {PHASES.get(p, "warmup"): n for p, n in self.received.items()},
            "integrity": self.integrity,
        }))
        for phase, name in PHASES.items():
            Path("%s.%s.lat" % (a.out, name)).write_bytes(self.latency[phase].tobytes())
            Path("%s.%s.ack" % (a.out, name)).write_bytes(self.ack_latency[phase].tobytes())
        self.sub.close(0)
        self.out.close(0)
        self.ctx.term()


def _curve_client(keys_dir, node):
    """(broker public, node public, node secret) keys from a keys folder (chatstream.config):
    ``node``'s own, made and authorised if missing (the broker admits it at its handshake)."""
    import zmq.auth
    from broker import keys
    keys.add_node(keys_dir, node)
    server = zmq.auth.load_certificate(os.path.join(keys_dir, "broker.key"))[0]
    return (server,) + zmq.auth.load_certificate(
        os.path.join(keys_dir, keys.NODE_KEYS, node + ".key_secret"))


def serve_proxy(args):
    """``zmq.proxy(XSUB, XPUB)`` until SIGTERM."""
    ctx = zmq.Context()
    xsub = ctx.socket(zmq.XSUB)
    xpub = ctx.socket(zmq.XPUB)
    for sock in (xsub, xpub):
        sock.setsockopt(zmq.SNDHWM, HWM)
        sock.setsockopt(zmq.RCVHWM, HWM)
        sock.setsockopt(zmq.LINGER, 0)
    xsub.bind(args.xsub)
    xpub.bind(args.xpub)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("proxy ready", flush=True)
    zmq.proxy(xsub, xpub)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="role", required=True)
    proxy = sub.add_parser("proxy")
    proxy.add_argument("--xsub", required=True)
    proxy.add_argument("--xpub", required=True)
    peer = sub.add_parser("peer")
    peer.add_argument("--mode", choices=("raw", "broker"), required=True)
    peer.add_argument("--id", type=int, required=True)
    peer.add_argument("--run", required=True)
    peer.add_argument("--send", required=True, help="XSUB (raw) or broker intake endpoint")
    peer.add_argument("--sub", required=True, help="XPUB (raw) or broker publish endpoint")
    peer.add_argument("--t0-ns", type=int, required=True, help="CLOCK_MONOTONIC start of the fixed phase")
    peer.add_argument("--warmup", type=float, default=1.0)
    peer.add_argument("--fixed-s", type=float, default=5.0)
    peer.add_argument("--rate", type=float, default=333.0, help="this peer's messages/s in the fixed phase")
    peer.add_argument("--flat-s", type=float, default=5.0)
    peer.add_argument("--window", type=int, default=200)
    peer.add_argument("--max-count", type=int, default=2_000_000)
    peer.add_argument("--rooms", type=int, default=2)
    peer.add_argument("--msg-bytes", type=int, default=300, help="raw: payload bytes")
    peer.add_argument("--text-bytes", type=int, default=0, help="broker: padding added to the text")
    peer.add_argument("--keys", help="broker: a keys folder (CURVE with its node key); default plain")
    peer.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.role == "proxy":
        serve_proxy(args)
    else:
        Peer(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
