"""The node-to-node path alone: a raw ZeroMQ XSUB/XPUB proxy versus our broker.

Three peer processes stand in for three nodes.  Each has one sending socket and
one SUB socket subscribed to everything, so every message reaches all three
(like a broker publishing to every node):

- ``raw``: a PUB connected to a ``zmq.proxy(XSUB, XPUB)`` process; the payload is
  a small binary header padded to the size of our broker's published frame;
- ``broker``: a DEALER sending our wire format's ``publish`` requests to the
  product's broker (``python -m broker``), which sequences them and publishes
  ``message`` frames to the SUB sockets.

Two phases, both bounded in time and count:

1. ``fixed``: the total offered rate split over the peers, after a warm-up;
   latency = receive - send on CLOCK_MONOTONIC (one clock for every process);
2. ``flat``: every peer sends as fast as it can while fewer than ``window`` of
   its own messages are still on their way back to it: the sustained rate.

Driver: :func:`run` (called by scripts/bench).  The peers and the proxy are this
module run as ``python -m bench.pipe peer|proxy ...``.
"""
import argparse
import array
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parent.parent
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


# the peer process

class Peer:
    """One stand-in node: sends on a schedule, receives everything, records."""

    def __init__(self, args):
        self.args = args
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, HWM)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(args.sub)
        kind = zmq.PUB if args.mode == "raw" else zmq.DEALER
        self.out = self.ctx.socket(kind)
        self.out.setsockopt(zmq.SNDHWM, HWM)
        self.out.setsockopt(zmq.LINGER, 0)
        self.out.connect(args.send)
        if args.mode == "broker":
            from chatstream import wire
            self.wire = wire
            self.rooms = ["pipe-%s-%d" % (args.run, r) for r in range(args.rooms)]
            self.pad = "x" * max(0, args.text_bytes)
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
            self.out.send(self.wire.encode("publish", rid=k, room=self.rooms[k % len(self.rooms)],
                                           nick="p%d" % a.id, text=text, node="peer%d" % a.id,
                                           cid="p%d-%s-%d" % (a.id, a.run, k)))
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
                if body.get("type") != "message":
                    continue
                m = body["message"]
                try:
                    phase, sender, k, t_send = (int(x) for x in m["text"].split(" ", 4)[:4])
                except ValueError:
                    self.integrity["foreign"] += 1
                    continue
                self.on_delivery(phase, sender, k, t_send, now_ns, m["room"], m["seq"])

    def drain_replies(self):
        for _ in range(10000):
            try:
                frame = self.out.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            now_ns = time.monotonic_ns()
            body = self.wire.decode(frame)
            t_send = self.send_times.pop(body.get("rid"), None)
            if body.get("type") != "published" or t_send is None:
                self.integrity["foreign"] += 1
                continue
            phase = int(body["message"]["text"].split(" ", 1)[0])
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
        while True:
            now = time.monotonic_ns()
            if now >= end:
                break
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
    peer.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.role == "proxy":
        serve_proxy(args)
    else:
        Peer(args).run()
    return 0


# the driver

def published_frame_bytes(text_bytes):
    """Size of the frame our broker publishes for one peer message (its topic excluded)."""
    from chatstream import wire
    text = "%d %d %d %d %s" % (1, 1, 123456, time.monotonic_ns(), "x" * text_bytes)
    message = {"id": "0" * 32, "seq": 12345, "room": "pipe-abcdef01-0", "nick": "p1", "text": text,
               "ts": int(time.time() * 1000), "node": "peer1", "cid": "p1-abcdef01-123456"}
    return len(wire.encode("message", message=message, epoch="0" * 16))


def _percentiles(values, ps=(50, 90, 99)):
    import numpy as np
    if not len(values):
        return {"count": 0, **{"p%d" % p: None for p in ps}, "max": None, "mean": None}
    v = np.sort(np.asarray(values, dtype=np.float64))
    out = {"count": int(v.size)}
    for p in ps:
        out["p%d" % p] = round(float(v[max(0, int(np.ceil(p / 100 * v.size)) - 1)]), 3)
    out["max"] = round(float(v[-1]), 3)
    out["mean"] = round(float(v.mean()), 3)
    return out


def _cdf(values, points):
    import numpy as np
    if not len(values):
        return []
    v = np.sort(np.asarray(values, dtype=np.float64))
    return [[p, round(float(v[min(v.size - 1, max(0, int(np.ceil(p / 100 * v.size)) - 1))]), 3)] for p in points]


CDF_POINTS = [0, 0.1, 0.5, 1] + list(range(2, 97, 2)) + [97, 98, 99, 99.5, 99.9, 99.95, 99.99, 100]


def run(mode, log_dir, peers=3, rate=1000.0, warmup=1.0, fixed_s=5.0, flat_s=5.0, window=200,
        max_count=2_000_000, rooms=2, text_bytes=0, progress=print, sample=None, hub_env=None):
    """One pipe run; returns a result dict (figures per phase, per-process CPU).

    :param mode: ``raw`` (zmq proxy) or ``broker`` (our broker alone).
    :param sample: bench.procstat.sample (injected to keep this module's imports small).
    """
    from bench.procstat import PidProc, window_figures
    from bench.systems import free_port
    from tests.integration.cluster import Cluster, Proc, wait_until
    import numpy as np

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    run_id = os.urandom(4).hex()
    msg_bytes = published_frame_bytes(text_bytes)
    started, hub = [], None
    env = dict(Cluster(log_dir).env)
    try:
        if mode == "raw":
            send_port, sub_port = free_port(), free_port()
            send_ep, sub_ep = "tcp://127.0.0.1:%d" % send_port, "tcp://127.0.0.1:%d" % sub_port
            hub = Proc("proxy", [sys.executable, "-m", "bench.pipe", "proxy", "--xsub", send_ep, "--xpub", sub_ep],
                       env, log_dir).start()
            started.append(hub)
            wait_until(lambda: "proxy ready" in hub.log() or _dead(hub), 20, "the zmq proxy")
        else:
            cluster = Cluster(log_dir, env=hub_env)
            hub = cluster.start_broker()
            started.append(hub)
            send_ep = "tcp://127.0.0.1:%d" % cluster.ports["intake"]
            sub_ep = "tcp://127.0.0.1:%d" % cluster.ports["publish"]
            wait_until(lambda: "listening" in hub.log() or _dead(hub), 20, "the broker")
        hub_name = "proxy" if mode == "raw" else "broker"
        t0_ns = time.monotonic_ns() + int(START_DELAY_SECS * 1e9)
        peer_procs = {}
        for i in range(1, peers + 1):
            out = log_dir / ("peer%d.json" % i)
            argv = [sys.executable, "-m", "bench.pipe", "peer", "--mode", mode, "--id", str(i), "--run", run_id,
                    "--send", send_ep, "--sub", sub_ep, "--t0-ns", str(t0_ns), "--warmup", str(warmup),
                    "--fixed-s", str(fixed_s), "--rate", str(rate / peers), "--flat-s", str(flat_s),
                    "--window", str(window), "--max-count", str(max_count), "--rooms", str(rooms),
                    "--msg-bytes", str(msg_bytes), "--text-bytes", str(text_bytes), "--out", str(out)]
            proc = Proc("peer%d" % i, argv, env, log_dir).start()
            started.append(proc)
            peer_procs["peer%d" % i] = proc
        procs = {hub_name: hub, **peer_procs}
        progress("pipe/%s: %s pid %d, %d peers; fixed %.0f msg/s for %.0f s, then flat out for %.0f s"
                 % (mode, hub_name, hub.pid, peers, rate, fixed_s, flat_s))

        def at(offset_s):
            left = t0_ns / 1e9 + offset_s - time.monotonic()
            if left > 0:
                time.sleep(left)
            return sample(procs)

        s = {"before": sample(procs)}
        s["fixed_start"] = at(warmup)
        s["fixed_end"] = at(warmup + fixed_s)
        s["flat_start"] = at(warmup + fixed_s + PHASE_GAP_SECS)
        s["flat_end"] = at(warmup + fixed_s + PHASE_GAP_SECS + flat_s)
        deadline = time.monotonic() + PHASE_GAP_SECS + 20
        for proc in peer_procs.values():
            while proc.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        s["after"] = sample({hub_name: hub})
        dead_peers = [n for n, p in peer_procs.items() if p.alive() or p.popen.returncode != 0]
    finally:
        for proc in reversed(started):
            proc.stop()
    if dead_peers:
        raise RuntimeError("pipe peers failed: %s; see %s" % (", ".join(dead_peers), log_dir))
    summaries = [json.loads((log_dir / ("peer%d.json" % i)).read_text()) for i in range(1, peers + 1)]
    result = {"mode": mode, "hub": hub_name, "peers": peers, "msg_bytes": msg_bytes, "rooms": rooms,
              "window": window, "log_dir": str(log_dir)}
    integrity = {}
    for summary in summaries:
        for key, value in summary["integrity"].items():
            integrity[key] = integrity.get(key, 0) + value
    result["integrity"] = integrity
    for name, (start_key, end_key), duration in (("fixed", ("fixed_start", "fixed_end"), fixed_s),
                                                  ("flat", ("flat_start", "flat_end"), flat_s)):
        lat = np.concatenate([np.fromfile("%s.%s.lat" % (log_dir / ("peer%d.json" % i), name), dtype=np.float32)
                              for i in range(1, peers + 1)])
        ack = np.concatenate([np.fromfile("%s.%s.ack" % (log_dir / ("peer%d.json" % i), name), dtype=np.float32)
                              for i in range(1, peers + 1)])
        sent = sum(x["sent"][name] for x in summaries)
        received = sum(x["received"][name] for x in summaries)
        figs = window_figures(s["before"], s[start_key], s[end_key], None)
        server_cpu = figs["processes"].get(hub_name, {}).get("cpu_window_s")
        ours = sum(p.get("cpu_window_s", 0) for p in figs["processes"].values())
        figs["other_cpu_pct"] = round(100 * max(0.0, figs["host_busy_cpu_s"] - ours) / figs["window_wall_s"], 1)
        result[name] = {
            "offered_msgs_per_s": rate if name == "fixed" else None,
            "sent": sent, "acked": sum(x["acked"][name] for x in summaries) if mode == "broker" else None,
            "expected": sent * peers, "delivered": received, "lost": max(0, sent * peers - received),
            "messages_per_s": round(sent / duration, 1),
            "deliveries_per_s": round(received / duration, 1),
            "latency_ms": _percentiles(lat), "ack_latency_ms": _percentiles(ack) if mode == "broker" else None,
            "latency_cdf_ms": _cdf(lat, CDF_POINTS),
            "hub_cpu_us_per_message": round(1e6 * server_cpu / sent, 2) if server_cpu and sent else None,
            **figs,
        }
    return result


def _dead(proc):
    if not proc.alive():
        raise RuntimeError("%s exited:\n%s" % (proc.name, proc.log()[-2000:]))
    return False


if __name__ == "__main__":
    sys.exit(main())
