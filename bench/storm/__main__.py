"""Idle-connection and reconnect storm against a running cluster (issue 15 item 6).

    .venv/bin/python -m bench.storm --clients 100000 --hold 60 --sigterm node3
    .venv/bin/python -m bench.storm --harness 3 --clients 3000 --hold 10 --sigterm node2

Starts one load generator (bench/loadgen, storm mode) per node URL (default http://127.0.0.1:8001..8006, clients
split evenly in contiguous blocks, client i in room <prefix>-r<i % rooms>), waits until
all joined (set-up rate per node: joins/s from its first to its last join), holds
--hold s while a probe client (python-socketio) sends a message every second into a room
with members on every node and records its ack latency and its delivery to a listening
client on another node, every node's /healthz is polled
every 250 ms (failures, answers over 1 s, "broker": "down") and its /metrics every second
(chat_link_up, chat_link_state, chat_connections), and unrequested disconnects are
counted; then drops every socket at once (no close frame) and times until all are
reconnected and rejoined; then, with --sigterm NAME, sends SIGTERM to that node's process
(found by the port it listens on, signalled by pid) and times until it exits.
--harness N starts its own broker and N nodes on free ports (CURVE on) and stops them.

Prints a table on stderr and one JSON summary line on stdout (also --out). Exit status:
0 every check passed, 1 some check failed (see "checks"), 2 the run could not complete.
Limits (README "Limits"): this raises its soft open-files limit to the hard one, which
its generators inherit (17,000 clients at most each); nodes need CHAT_MAX_CONNECTIONS
above their share. 100,000 on six nodes (supervisord's programs, scripts/node's too,
inherit the environment scripts/run was started with):
    CHAT_MAX_CONNECTIONS=17000 CHAT_HANDSHAKE_RATE=off scripts/run   # one address opens thousands of sessions
    for n in 4 5 6; do scripts/node add node$n --port 800$n; done
    .venv/bin/python -m bench.storm --clients 100000 --hold 60 --sigterm node3 --out var/storm.json
"""
import argparse
import json
import math
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from bench import RUNS
from bench.storm.cpu import CpuLedger, lines as cpu_lines
from bench.storm.generators import Generator, lower_priority, phase_rates, raise_open_files, split, wait_joined
from bench.storm.watch import (NodeWatch, Phases, Probe, listen_overflows, pid_listening_on,
                               process_facts, time_to_exit)


DEFAULT_URLS = ",".join("http://127.0.0.1:%d" % port for port in range(8001, 8007))
MAX_PER_GENERATOR = 17000
TARGETS = {"probe_ack_max_ms": 50, "reconnect_s": 60, "sigterm_exit_s": 10}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench.storm", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--urls", default=DEFAULT_URLS, help="comma-separated node URLs (one generator each)")
    p.add_argument("--harness", type=int, default=0, metavar="N", help="start a cluster of N nodes on free ports")
    p.add_argument("--clients", type=int, default=100000)
    p.add_argument("--rooms", type=int, default=1000)
    p.add_argument("--hold", type=float, default=60.0, help="seconds held idle (pings only)")
    p.add_argument("--no-drop", action="store_true", help="skip the drop and reconnect")
    p.add_argument("--sigterm", metavar="NODE", help="node name (from /healthz) to stop with SIGTERM at the end")
    p.add_argument("--concurrency", type=int, default=200, help="connections in flight per generator")
    p.add_argument("--jitter-ms", type=int, default=1000, help="random delay before each reconnect, at most")
    p.add_argument("--connect-timeout", type=float, default=600.0, help="seconds for all to join")
    p.add_argument("--reconnect-timeout", type=float, default=180.0, help="seconds for all to rejoin")
    p.add_argument("--exit-timeout", type=float, default=60.0, help="seconds a node may take after SIGTERM")
    p.add_argument("--deadline", type=float, default=0.0, help="hard limit for the whole run, s (0: derived)")
    p.add_argument("--probe-period", type=float, default=1.0)
    p.add_argument("--health-interval", type=float, default=0.25)
    p.add_argument("--metrics-interval", type=float, default=1.0, help="0: no /metrics polling")
    p.add_argument("--node-env", action="append", default=[], metavar="K=V", help="with --harness: node environment")
    p.add_argument("--node-bin", default="node")
    p.add_argument("--gen-nice", type=int, default=0, metavar="N",
                   help="run the generators at this nice value (1-19: the cluster's processes "
                        "get the CPU first, as if the clients were on other machines)")
    p.add_argument("--gen-idle", action="store_true",
                   help="run the generators in SCHED_IDLE: they get the CPU only when nothing "
                        "else wants it (stronger than --gen-nice 19)")
    p.add_argument("--log-dir", help="generator lines and harness logs (default var/storm/<time>)")
    p.add_argument("--out", help="write the JSON summary (with /metrics timelines) here")
    args = p.parse_args(argv)
    if not args.deadline:
        args.deadline = args.connect_timeout + args.hold + args.reconnect_timeout + args.exit_timeout + 120
    return args


def start_harness(args, log_dir, per_node):
    from harness.cluster import start_cluster   # only --harness needs the harness
    env = dict(kv.split("=", 1) for kv in args.node_env)
    env.setdefault("CHAT_MAX_CONNECTIONS", str(max(10000, per_node + 100)))
    names = tuple("node%d" % k for k in range(1, args.harness + 1))
    return start_cluster(log_dir / "cluster", env=env, nodes=names, balancer=False, timeout=60)


def preflight(urls, blocks):
    """Each node's name (its /healthz), port, pid and limits; warnings where too low."""
    import requests
    nodes = []
    for url, (_, count) in zip(urls, blocks):
        node = {"url": url, "clients": count, "port": int(url.rsplit(":", 1)[1].strip("/")), "warnings": []}
        try:
            node["name"] = requests.get(url + "/healthz", timeout=5).json().get("node")
        except (requests.RequestException, ValueError) as exc:
            raise SystemExit("%s/healthz does not answer: %s" % (url, exc))
        node.update(process_facts(pid_listening_on(node["port"]) or 0))
        if node["max_connections"] is not None and node["max_connections"] < count:
            node["warnings"].append("CHAT_MAX_CONNECTIONS=%d < %d clients" % (node["max_connections"], count))
        if node["max_connections"] is None and count > 10000:
            node["warnings"].append("%d clients above the default CHAT_MAX_CONNECTIONS (10000)" % count)
        if node["open_files"] is not None and node["open_files"] < count + 200:
            node["warnings"].append("open files %d < %d clients + 200" % (node["open_files"], count))
        for warning in node["warnings"]:
            say("WARNING %s (%s): %s" % (node["name"], url, warning))
        nodes.append(node)
    return nodes


def probe_room(blocks, rooms, prefix):
    """A room with members in every generator's block (r0 unless the blocks are small)."""
    for r in range(min(rooms, 10000)):
        if all((r - first) % rooms < count for first, count in blocks):
            return "%s-r%d" % (prefix, r), True
    return "%s-r0" % prefix, False


def say(*parts):
    print(*parts, file=sys.stderr, flush=True)


def tick(gens):
    joined = sum(g.progress.get("joined", 0) for g in gens)
    rate = sum(g.progress.get("rate", 0) for g in gens)
    say("  joined %d/%d, %d/s, unrequested %d" % (joined, sum(g.count for g in gens), rate,
                                                   sum(g.unrequested() for g in gens)))


def run(args, urls, log_dir):
    blocks = split(args.clients, len(urls))
    nodes = preflight(urls, blocks)
    hard = time.monotonic() + args.deadline
    phases, prefix = Phases(), "storm-" + uuid.uuid4().hex[:8]
    room, room_everywhere = probe_room(blocks, args.rooms, prefix)
    result = {"params": vars(args), "nodes": nodes, "room_prefix": prefix, "probe_room": room,
              "probe_room_on_every_node": room_everywhere, "log_dir": str(log_dir)}
    watches = [NodeWatch(u, phases, args.health_interval, args.metrics_interval).start() for u in urls]
    gens = [Generator(k, url, first, count, log_dir, args.node_bin, rooms=args.rooms, room_prefix=prefix,
                      concurrency=args.concurrency, jitter_ms=args.jitter_ms, deadline=int(args.deadline) + 30)
            for k, (url, (first, count)) in enumerate(zip(urls, blocks))]
    probe, ledger = None, CpuLedger({n["name"]: n.get("pid") for n in nodes})
    ledger.add("storm", os.getpid())
    if not args.harness:
        ledger.add_services()
    try:
        say("connecting %d clients over %d nodes (%s)" % (args.clients, len(urls), prefix))
        t0, overflows = time.time() * 1000, listen_overflows()
        for g in gens:
            g.start()
            ledger.add("gen%d" % g.k, g.proc.pid)
            lower_priority(g.proc.pid, args.gen_nice, args.gen_idle)
        ledger.mark("start")
        result["all_joined"] = wait_joined(gens, "connect", min(hard, time.monotonic() + args.connect_timeout), tick)
        ledger.mark("connect")
        result["setup_per_node"], result["setup"] = phase_rates(gens, "connect", t0)
        result["listen_overflows"] = {"connect": (listen_overflows() or 0) - (overflows or 0)}
        if not result["all_joined"]:
            return result
        serving = [n["url"] for n in reversed(nodes) if n["name"] != args.sigterm] or urls[:1]
        phases.name = "hold"
        # the listener on another node where there is one: its deliveries cross the broker
        probe = Probe(serving[0], room, phases, args.probe_period,
                      listen_url=serving[1] if len(serving) > 1 else serving[0]).start()
        ledger.add("probe", probe.proc.pid)
        before = [g.unrequested() for g in gens]
        say("holding %g s" % args.hold)
        end = min(hard, time.monotonic() + args.hold)
        while time.monotonic() < end and all(g.alive() for g in gens):
            time.sleep(0.1)
        result["hold_joined"] = sum(g.status().get("joined", 0) for g in gens)
        result["hold_unrequested"] = [g.unrequested() - b for g, b in zip(gens, before)]
        ledger.mark("hold")
        if not args.no_drop:
            phases.name = "reconnect"
            say("dropping every connection at once")
            t_drop, until = time.time() * 1000, min(hard, time.monotonic() + args.reconnect_timeout)
            overflows = listen_overflows()
            for g in gens:
                g.send("drop")
            result["all_rejoined"] = wait_joined(gens, "reconnect", until, tick)
            ledger.mark("reconnect")
            result["reconnect_per_node"], result["reconnect"] = phase_rates(gens, "reconnect", t_drop)
            result["listen_overflows"]["reconnect"] = (listen_overflows() or 0) - (overflows or 0)
            time.sleep(1.0)   # late effects of the storm still land in this phase
        if args.sigterm:
            result["sigterm"] = sigterm(args, nodes, gens, phases)
        return result
    finally:
        phases.name = "stopping"   # the generators' own shutdown closes every socket at once
        if probe:
            probe.stop()
            result["probe"] = probe.summary()
        for g in gens:
            g.stop()
        result["unrequested_total"] = [g.progress.get("unrequested", {}) for g in gens]
        result["generator_errors"] = [g.errors for g in gens]
        result["generator_done"] = [g.done for g in gens]
        for w in watches:
            w.stop()
        result["cpu"] = ledger.phases({"connect": args.clients, "reconnect": args.clients})
        result["health"] = {n["name"]: w.summary() for n, w in zip(nodes, watches)}
        result["metrics_timeline"] = {n["name"]: w.timeline for n, w in zip(nodes, watches)}


def sigterm(args, nodes, gens, phases):
    index = next((k for k, n in enumerate(nodes) if n["name"] == args.sigterm), None)
    if index is None:
        return {"error": "no node named %s among %s" % (args.sigterm, [n["name"] for n in nodes])}
    node, gen = nodes[index], gens[index]
    gen.send("reconnect off")   # its clients stay away while it stops (supervisord restarts it)
    clients = gen.status().get("joined")
    pid = pid_listening_on(node["port"])
    if pid is None:
        return {"error": "nothing listens on port %d" % node["port"]}
    phases.name = "sigterm"
    say("SIGTERM to %s (pid %d) with %s clients" % (args.sigterm, pid, clients))
    before, took = gen.unrequested(), time_to_exit(pid, args.exit_timeout, signal.SIGTERM)
    time.sleep(0.5)   # then the generator's progress line counts its clients' disconnects
    gen.status()
    return {"node": args.sigterm, "pid": pid, "clients": clients, "exit_s": None if took is None else round(took, 3),
            "disconnected": gen.unrequested() - before}


def checks(r):
    hold = r.get("health", {})
    target = r["params"].get("sigterm")
    def bad(*keys):   # the stopped node's own polls after its SIGTERM do not count
        return sum(p[k] for name, phases in hold.items() for phase, p in phases.items()
                   if phase != "stopping" and not (phase == "sigterm" and name == target) for k in keys)
    probe_hold = r.get("probe", {}).get("hold", {})
    c = {"all_joined": bool(r.get("all_joined")),
         "no_unrequested_disconnects_in_hold": r.get("hold_unrequested") is not None
         and not any(r["hold_unrequested"]),
         "probe_acked_in_hold": probe_hold.get("acked", 0) > 0 and not probe_hold.get("errors"),
         "healthz_answered_broker_up": bad("failed", "broker_down", "link_down_samples") == 0,
         "healthz_under_1s": bad("slow") == 0}   # 1 s: HAProxy's check interval, hence its check timeout
    if not r["params"]["no_drop"]:
        c["all_rejoined"] = bool(r.get("all_rejoined"))
    if target:
        c["node_exited_after_sigterm"] = (r.get("sigterm") or {}).get("exit_s") is not None
    targets = {"probe_ack_max_ms<=%d" % TARGETS["probe_ack_max_ms"]:
               (probe_hold.get("max_ms") or math.inf) <= TARGETS["probe_ack_max_ms"]}
    if r.get("reconnect"):
        targets["reconnect_s<=%d" % TARGETS["reconnect_s"]] = r["reconnect"]["until_last_s"] <= TARGETS["reconnect_s"]
    if (r.get("sigterm") or {}).get("exit_s") is not None:
        targets["sigterm_exit_s<=%d" % TARGETS["sigterm_exit_s"]] = r["sigterm"]["exit_s"] <= TARGETS["sigterm_exit_s"]
    return c, targets


def table(r):
    row = "%-7s %-24s %7s %8s %9s %9s %11s %11s %6s"
    lines = [row % ("node", "url", "clients", "setup/s", "joined_s", "rejoin_s", "hz_max_hold", "hz_max_reco", "unreq")]
    for k, n in enumerate(r["nodes"]):
        s, re_ = [(r.get(key) or [None] * len(r["nodes"]))[k] or {} for key in ("setup_per_node", "reconnect_per_node")]
        h, unreq = r["health"].get(n["name"], {}), sum(r["unrequested_total"][k].values())
        if n["name"] == r["params"]["sigterm"]:
            unreq -= (r.get("sigterm") or {}).get("disconnected", 0)
        lines.append(row % (n["name"], n["url"], n["clients"], s.get("rate"), s.get("until_last_s"),
                            re_.get("until_last_s"), h.get("hold", {}).get("max_ms"),
                            h.get("reconnect", {}).get("max_ms"), unreq))
    s, re_ = r.get("setup") or {}, r.get("reconnect") or {}
    lines.append(row % ("all", "", r["params"]["clients"], s.get("rate"), s.get("until_last_s"),
                        re_.get("until_last_s"), "", "", ""))
    for phase, p in sorted(r.get("probe", {}).items()):
        lines.append("probe %-9s acked %d, p50 %s ms, p99 %s ms, max %s ms, errors %s; delivered %d,"
                     " p50 %s ms, p99 %s ms, max %s ms" % (
                         phase, p["acked"], p["p50_ms"], p["p99_ms"], p["max_ms"],
                         p["errors"] or "none", p["delivered"], p["delivery_p50_ms"],
                         p["delivery_p99_ms"], p["delivery_max_ms"]))
    lines.extend(cpu_lines(r.get("cpu", {})))
    lines.append("accept queue overflows (kernel, whole host): %s" % r.get("listen_overflows"))
    if r.get("sigterm"):
        lines.append("sigterm (its disconnects are not in unreq): %s" % json.dumps(r["sigterm"]))
    lines.append("checks: %s" % ", ".join("%s=%s" % kv for kv in r["checks"].items()))
    lines.append("issue targets: %s" % ", ".join("%s %s" % (k, "met" if v else "MISSED")
                                                  for k, v in r["targets"].items()))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))   # still stop the harness and generators
    raise_open_files()
    log_dir = Path(args.log_dir or RUNS / "storm" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    per_node = math.ceil(args.clients / (args.harness or len(args.urls.split(","))))
    if per_node > MAX_PER_GENERATOR:
        raise SystemExit("%d clients per node is over %d per generator: add nodes" % (per_node, MAX_PER_GENERATOR))
    cluster = start_harness(args, log_dir, per_node) if args.harness else None
    try:
        urls = ([cluster.url(n) for n in sorted(cluster.nodes)] if cluster
                else [u.strip().rstrip("/") for u in args.urls.split(",") if u.strip()])
        result = run(args, urls, log_dir)
    finally:
        if cluster:
            cluster.stop()
    result["checks"], result["targets"] = checks(result)
    say(table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    result.pop("metrics_timeline")
    print(json.dumps(result, default=str), flush=True)
    if not result.get("all_joined") or (not args.no_drop and "all_rejoined" not in result):
        return 2
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
