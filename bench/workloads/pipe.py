"""The node-to-node path alone: a raw ZeroMQ XSUB/XPUB proxy versus our broker.

Three peer processes (bench/workloads/pipe_peer.py) stand in for three nodes.  Each has
one sending socket and one SUB socket subscribed to everything, so every message
reaches all three (like a broker publishing to every node):

- ``raw``: a PUB connected to a ``zmq.proxy(XSUB, XPUB)`` process; the payload is
  a small binary header padded to the size of our broker's published frame;
- ``broker``: a DEALER sending our wire format's ``publish`` requests to the
  product's broker (``python -m broker``), which sequences them and publishes
  ``message`` frames to the SUB sockets; with ``curve`` (as deployed) the peers
  are CURVE clients holding the node key, without it plain sockets.

Two phases, both bounded in time and count:

1. ``fixed``: the total offered rate split over the peers, after a warm-up;
   latency = receive - send on CLOCK_MONOTONIC (one clock for every process);
2. ``flat``: every peer sends as fast as it can while fewer than ``window`` of
   its own messages are still on their way back to it: the sustained rate.

:func:`run` is the driver (called by bench.workloads).
"""
import json
import os
import sys
import time
from pathlib import Path

from .pipe_peer import PHASE_GAP_SECS, START_DELAY_SECS

PEER_MODULE = "bench.workloads.pipe_peer"
# Runs side by side wait this long at most for each other's hub to be ready.
BARRIER_TIMEOUT_S = 60


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
        max_count=2_000_000, rooms=2, text_bytes=0, progress=print, sample=None, hub_env=None, curve=True,
        barrier=None, on_hub=None):
    """One pipe run; returns a result dict (figures per phase, per-process CPU).

    :param mode: ``raw`` (zmq proxy) or ``broker`` (our broker alone).
    :param curve: ``broker`` mode: CURVE between the peers and the broker.
    :param sample: bench.procstat.sample (injected to keep this module's imports small).
    :param barrier: a ``threading.Barrier`` waited on once the hub is ready, so runs side
        by side (:func:`run_pairs`) start their phases together.
    :param on_hub: ``broker`` mode: called with the harness's Cluster once the broker is
        ready (e.g. to start the archiver, bench/studies/archive_rate.py); what it returns,
        if callable, is called after the phases, before any process stops.
    """
    from bench.procstat import window_figures
    from harness.cluster import Cluster
    from harness.processes import Proc, base_env, free_port, wait_until
    import numpy as np

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    run_id = os.urandom(4).hex()
    msg_bytes = published_frame_bytes(text_bytes)
    started, hub, after_phases = [], None, None
    env = base_env()
    keys = []
    try:
        if mode == "raw":
            send_port, sub_port = free_port(), free_port()
            send_ep, sub_ep = "tcp://127.0.0.1:%d" % send_port, "tcp://127.0.0.1:%d" % sub_port
            hub = Proc("proxy", [sys.executable, "-m", PEER_MODULE, "proxy", "--xsub", send_ep, "--xpub", sub_ep],
                       env, log_dir).start()
            started.append(hub)
            wait_until(lambda: "proxy ready" in hub.log() or _dead(hub), 20, "the zmq proxy")
        else:
            cluster = Cluster(log_dir, env=hub_env, curve=curve)
            keys = ["--keys", str(cluster.keys_dir)] if curve else []
            hub = cluster.start_broker()
            started.append(hub)
            send_ep = "tcp://127.0.0.1:%d" % cluster.ports["intake"]
            sub_ep = "tcp://127.0.0.1:%d" % cluster.ports["publish"]
            wait_until(lambda: "listening" in hub.log() or _dead(hub), 20, "the broker")
            after_phases = on_hub(cluster) if on_hub is not None else None
        hub_name = "proxy" if mode == "raw" else "broker"
        if barrier is not None:
            barrier.wait(BARRIER_TIMEOUT_S)
        t0_ns = time.monotonic_ns() + int(START_DELAY_SECS * 1e9)
        peer_procs = {}
        for i in range(1, peers + 1):
            out = log_dir / ("peer%d.json" % i)
            argv = [sys.executable, "-m", PEER_MODULE, "peer", "--mode", mode, "--id", str(i), "--run", run_id,
                    "--send", send_ep, "--sub", sub_ep, "--t0-ns", str(t0_ns), "--warmup", str(warmup),
                    "--fixed-s", str(fixed_s), "--rate", str(rate / peers), "--flat-s", str(flat_s),
                    "--window", str(window), "--max-count", str(max_count), "--rooms", str(rooms),
                    "--msg-bytes", str(msg_bytes), "--text-bytes", str(text_bytes), "--out", str(out)] + keys
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
        if callable(after_phases):
            after_phases()
        dead_peers = [n for n, p in peer_procs.items() if p.alive() or p.popen.returncode != 0]
    finally:
        for proc in reversed(started):
            proc.stop()
    if dead_peers:
        raise RuntimeError("pipe peers failed: %s; see %s" % (", ".join(dead_peers), log_dir))
    summaries = [json.loads((log_dir / ("peer%d.json" % i)).read_text()) for i in range(1, peers + 1)]
    result = {"mode": mode, "curve": curve and mode == "broker", "hub": hub_name, "peers": peers,
              "msg_bytes": msg_bytes, "rooms": rooms, "window": window, "log_dir": str(log_dir)}
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


def run_pairs(pairs, log_dir, rate=1000.0, **kwargs):
    """``pairs`` broker runs side by side on this machine, as many broker pairs' active
    brokers would run (each room on one of them): each with peers of its own and
    ``rate / pairs`` in the fixed phase, all phases at the same moments.  Returns pair
    one's result with the rates, counts and losses summed over the pairs, and
    ``pairs``: each pair's flat and fixed rate (latencies and CPU are pair one's)."""
    import threading
    barrier = threading.Barrier(pairs)
    results, errors = [None] * pairs, []

    def one(k):
        try:
            results[k] = run("broker", Path(log_dir) / ("pair%d" % (k + 1)), rate=rate / pairs,
                             barrier=barrier, **kwargs)
        except BaseException as exc:   # reported below; the barrier lets the others go
            errors.append(exc)
            barrier.abort()
    threads = [threading.Thread(target=one, args=(k,)) for k in range(pairs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    result = dict(results[0], log_dir=str(log_dir))
    result["pairs"] = {"count": pairs}
    for phase in ("fixed", "flat"):
        result["pairs"]["%s_messages_per_s" % phase] = [r[phase]["messages_per_s"] for r in results]
        result[phase] = dict(results[0][phase])
        for key in ("sent", "acked", "expected", "delivered", "lost", "messages_per_s", "deliveries_per_s"):
            result[phase][key] = round(sum(r[phase][key] for r in results), 1)
        if phase == "fixed":
            result[phase]["offered_msgs_per_s"] = rate
    result["integrity"] = {key: sum(r["integrity"].get(key, 0) for r in results)
                           for key in results[0]["integrity"]}
    return result


def _dead(proc):
    if not proc.alive():
        raise RuntimeError("%s exited:\n%s" % (proc.name, proc.log()[-2000:]))
    return False

