"""The workloads of scripts/bench: each one runs one system and returns JSON-able records.

- ``fanout``, ``burst``: a fixed offered rate (bench/loadgen, rate mode), figures per run;
- ``ramp``: fixed-rate steps of rising rate until p99 > limit or any loss/refusal;
  the highest clean step is the max sustainable rate;
- ``idle``: many joined, silent websocket connections: RSS per connection;
- ``pipe``: the node-to-node path alone (bench.workloads.pipe): raw zmq proxy vs our broker;
- ``profile``: ``burst`` again with py-spy on a node and the broker.

Every system is started on free loopback ports and stopped (by pid) before the
function returns, whatever happened.
"""
import math
import shlex
import time

from . import pipe, profile as pyspy
from bench.loadgen import IDLE_HOLDING, loadgen_argv, run_loadgen
from .measure import measure, started, stop, summarise
from bench.procstat import sample

# pipe: system -> (bench.workloads.pipe mode, CURVE between peers and broker)
PIPE_HUBS = {"zmq": ("raw", False), "ours": ("broker", True), "ours-plain": ("broker", False)}
# Connecting and joining thousands of idle clients on 2 busy cores.
IDLE_CONNECT_BUDGET_SECS = 240

DEFAULTS = {
    "fanout": {"nodes": 3, "clients": 300, "rooms": 10, "rate": 200.0, "duration": 20.0, "warmup": 2.0,
               "drain": 5.0},
    "burst": {"nodes": 3, "clients": 60, "rooms": 2, "rate": 1000.0, "duration": 10.0, "warmup": 2.0,
              "drain": 5.0},
    # Steps of `duration` s at start x factor^i msg/s; then `refine` bisections
    # between the last clean and the first failed rate.
    "ramp": {"nodes": 3, "clients": 60, "rooms": 2, "start": 200.0, "factor": 1.5, "max_rate": 8000.0,
             "max_steps": 12, "refine": 2, "duration": 5.0, "warmup": 1.0, "drain": 3.0, "p99_ms": 250.0},
    "idle": {"nodes": 3, "clients": 3000, "rooms": 300, "hold": 8.0, "settle": 3.0},
    # pairs: brokers run side by side, each with peers of its own (rooms over broker pairs)
    "pipe": {"peers": 3, "rate": 1000.0, "warmup": 1.0, "duration": 5.0, "flat": 5.0, "window": 200,
             "pairs": 1},
    "profile": {"nodes": 3, "clients": 60, "rooms": 2, "rate": 1000.0, "duration": 10.0, "warmup": 2.0,
                "drain": 5.0},
}
# --quick: a smoke run of every workload in well under two minutes.
QUICK = {
    "fanout": {"clients": 60, "rooms": 5, "rate": 100.0, "duration": 3.0, "warmup": 1.0, "drain": 2.0},
    "burst": {"clients": 30, "rooms": 2, "rate": 300.0, "duration": 3.0, "warmup": 1.0, "drain": 2.0},
    "ramp": {"clients": 30, "start": 200.0, "factor": 2.0, "max_steps": 2, "refine": 0, "duration": 2.0,
             "warmup": 0.5, "drain": 2.0},
    "idle": {"clients": 300, "rooms": 30, "hold": 3.0, "settle": 1.0},
    "pipe": {"warmup": 0.5, "duration": 1.5, "flat": 1.5},
    "profile": {"clients": 30, "rate": 300.0, "duration": 3.0, "warmup": 1.0, "drain": 2.0},
}


# the workloads

def run_fixed(ctx, system_cls, workload, p):
    """fanout / burst: one system, one fixed-rate run."""
    log_dir = ctx.log_dir(system_cls.name, workload)
    system, urls = started(ctx, system_cls, p["nodes"], log_dir)
    record = {"status": "failed", "figures": {}}
    try:
        record = measure(ctx, system, urls, p, log_dir, workload)
    finally:
        stop(ctx, system, record)
    summarise(ctx, record)
    return [record]


def ramp_verdict(record, p99_limit_ms):
    """(clean?, why) for one ramp step: no loss, no refusal, p99 within the limit."""
    f = record["figures"]
    if record["status"] in ("process_died", "loadgen_failed") or "sent" not in f:
        return False, record["status"]
    if f["lost"] or f["ack_unresolved"] or f["ack_errors"]:
        return False, "lost %d, ack errors %s, unresolved %d" % (f["lost"], f["ack_errors"] or 0, f["ack_unresolved"])
    if f["latency_ms"]["p99"] is None or f["latency_ms"]["p99"] > p99_limit_ms:
        return False, "p99 %s ms > %s ms" % (f["latency_ms"]["p99"], p99_limit_ms)
    return True, "clean"


def run_ramp(ctx, system_cls, p):
    """Raise the offered rate until p99 > limit or any loss: the max sustainable rate."""
    records, steps = [], []
    best, first_bad = None, None
    system = urls = None
    log_dir = ctx.log_dir(system_cls.name, "ramp")

    def step(rate):
        nonlocal system, urls
        if system is None:
            system, urls = started(ctx, system_cls, p["nodes"], log_dir)
        q = dict(p, rate=round(rate, 1))
        ctx.progress("ramp %s: step %d at %.0f msg/s" % (system_cls.name, len(steps) + 1, q["rate"]))
        record = measure(ctx, system, urls, q, log_dir, "step%d" % (len(steps) + 1))
        ok, why = ramp_verdict(record, p["p99_ms"])
        record["step"] = len(steps) + 1
        record["ramp_clean"] = ok
        record["ramp_reason"] = why
        f = record["figures"]
        if f.get("loadgen_event_loop_utilization") and f["loadgen_event_loop_utilization"] > 0.9:
            record["loadgen_saturated"] = True
        summarise(ctx, record)
        ctx.progress("  -> %s (%s)" % ("clean" if ok else "NOT sustained", why))
        records.append(record)
        steps.append({"rate": q["rate"], "clean": ok, "reason": why,
                      "deliveries_per_s": f.get("deliveries_per_s"),
                      "offered_deliveries_per_s": f.get("offered_deliveries_per_s"),
                      "p99_ms": (f.get("latency_ms") or {}).get("p99"),
                      "server_cpu_us_per_delivery": f.get("server_cpu_us_per_delivery"),
                      "loadgen_cpu_pct_of_core": f.get("loadgen_cpu_pct_of_core"),
                      "other_cpu_pct": f.get("other_cpu_pct")})
        if not ok:   # an overloaded system may carry a backlog: start the next step fresh
            stop(ctx, system, record)
            system = None
        return ok

    try:
        rate = p["start"]
        for _ in range(int(p["max_steps"])):
            if rate > p["max_rate"]:
                break
            if step(rate):
                best = rate
                rate *= p["factor"]
            else:
                first_bad = rate
                break
        for _ in range(int(p["refine"])):
            if best is None or first_bad is None:
                break
            mid = math.sqrt(best * first_bad)
            if step(mid):
                best = mid
            else:
                first_bad = mid
    finally:
        if system is not None:
            stop(ctx, system, records[-1] if records else {})
    members = math.ceil(p["clients"] / p["rooms"])
    best_step = max((s for s in steps if s["clean"]), key=lambda s: s["rate"], default=None)
    summary = {"summary": True, "params": dict(p), "steps": steps,
               "max_sustainable_msgs_per_s": round(best, 1) if best else None,
               "first_unsustained_msgs_per_s": round(first_bad, 1) if first_bad else None,
               "members_per_room": members,
               "max_sustainable_deliveries_per_s": best_step["deliveries_per_s"] if best_step else None,
               "server_cpu_us_per_delivery_at_max": best_step["server_cpu_us_per_delivery"] if best_step else None,
               "loadgen_cpu_pct_at_max": best_step["loadgen_cpu_pct_of_core"] if best_step else None,
               "status": "ok" if best else "no_clean_step"}
    ctx.progress("ramp %s: max sustainable %s msg/s (%s deliveries/s); first unsustained %s"
                 % (system_cls.name, summary["max_sustainable_msgs_per_s"],
                    summary["max_sustainable_deliveries_per_s"], summary["first_unsustained_msgs_per_s"]))
    return records + [summary]


def run_idle(ctx, system_cls, p):
    """Idle connections: RSS of the servers before and while they hold them."""
    log_dir = ctx.log_dir(system_cls.name, "idle")
    system, urls = started(ctx, system_cls, p["nodes"], log_dir)
    record = {"params": dict(p), "log_dir": str(log_dir)}
    try:
        procs = system.procs
        # One connection per node first: the first websocket imports and warms
        # code paths whose memory is per process, not per connection.
        warm_out = log_dir / "loadgen-warm.json"
        argv = loadgen_argv(ctx.node_bin, urls, warm_out, clients=len(urls), rooms=1, idle_hold=0.2, progress=0,
                            deadline=60)
        rc, _, _ = run_loadgen(argv, warm_out, 60, echo=None)
        if rc != 0:
            raise RuntimeError("warm-up connections failed (exit %d), see %s" % (rc, warm_out))
        time.sleep(p["settle"])
        samples = {"before": sample(procs)}

        def on_line(line):
            if line.startswith(IDLE_HOLDING):
                time.sleep(p["settle"])
                samples["holding"] = sample(procs)

        out = log_dir / "loadgen-idle.json"
        deadline = IDLE_CONNECT_BUDGET_SECS + p["hold"] + 30
        argv = loadgen_argv(ctx.node_bin, urls, out, clients=p["clients"], rooms=p["rooms"], idle_hold=p["hold"],
                            connect_concurrency=50, deadline=deadline, progress=5)
        ctx.progress("loadgen: %s" % shlex.join(argv))
        t = time.monotonic()
        rc, report, usage = run_loadgen(argv, out, deadline, on_line=on_line,
                                        echo=lambda line: print("      " + line, flush=True))
        samples["after"] = sample(procs)
        record.update({"loadgen_exit": rc, "loadgen_argv": shlex.join(argv), "loadgen": report,
                       "wall_s": round(time.monotonic() - t, 1)})
        if "holding" not in samples or report is None or rc != 0:
            record["status"] = "loadgen_failed"
            record["figures"] = {}
            return [record]
        before, holding = samples["before"]["procs"], samples["holding"]["procs"]
        per_proc = {}
        for name in before:
            if name in holding:
                per_proc[name] = {"rss_kb_before": before[name]["rss_kb"], "rss_kb_holding": holding[name]["rss_kb"],
                                  "delta_kb": holding[name]["rss_kb"] - before[name]["rss_kb"],
                                  "hwm_kb": samples["after"]["procs"].get(name, {}).get("hwm_kb")}
        nodes = [n for n in per_proc if n.startswith("node")]
        n = report["params"]["clients"]
        node_delta = sum(per_proc[x]["delta_kb"] for x in nodes)
        all_delta = sum(v["delta_kb"] for v in per_proc.values())
        record["status"] = "ok"
        record["processes"] = per_proc
        record["figures"] = {
            "connections": n, "connect_join_s": report["timings"].get("connect_join_s"),
            "rss_kb_per_connection_nodes": round(node_delta / n, 2),
            "rss_kb_per_connection_all": round(all_delta / n, 2),
            "node_rss_mb_holding": round(sum(per_proc[x]["rss_kb_holding"] for x in nodes) / 1024, 1),
            "disconnects": report["integrity"]["disconnects"],
            "loadgen_max_rss_mb": report["loadgen"].get("max_rss_mb"),
        }
        ctx.progress("  idle %s: %d connections held; RSS per connection %.1f KB (nodes), %.1f KB (all servers)"
                     % (system_cls.name, n, record["figures"]["rss_kb_per_connection_nodes"],
                        record["figures"]["rss_kb_per_connection_all"]))
        return [record]
    finally:
        stop(ctx, system, record)


def run_pipe(ctx, system_name, p):
    """zmq: the raw proxy; ours (-plain): the broker alone, with (without) CURVE (same peers, frame size)."""
    mode, curve = PIPE_HUBS[system_name]
    log_dir = ctx.log_dir(system_name, "pipe")
    if p.get("pairs", 1) > 1 and mode == "broker":
        result = pipe.run_pairs(p["pairs"], log_dir, peers=p["peers"], rate=p["rate"], warmup=p["warmup"],
                                fixed_s=p["duration"], flat_s=p["flat"], window=p["window"],
                                progress=ctx.progress, sample=sample, curve=curve)
        ctx.progress("  pipe %s over %d pairs: flat %s msg/s per pair, %.0f msg/s in all"
                     % (system_name, p["pairs"], " + ".join("%.0f" % r for r in result["pairs"]["flat_messages_per_s"]),
                        result["flat"]["messages_per_s"]))
    else:
        result = pipe.run(mode, log_dir, peers=p["peers"], rate=p["rate"], warmup=p["warmup"], fixed_s=p["duration"],
                          flat_s=p["flat"], window=p["window"], progress=ctx.progress, sample=sample, curve=curve)
    record = {"params": dict(p), "status": "ok", "pipe": result}
    if result["integrity"]["out_of_order"] or result["integrity"]["duplicated"] or \
            result["fixed"]["lost"] or result["flat"]["lost"]:
        record["status"] = "integrity_violation"
    for phase in ("fixed", "flat"):
        r = result[phase]
        ctx.progress("  pipe %s %s: %.0f msg/s in, %.0f deliveries/s, lost %d, latency p50/p99 %s/%s ms, "
                     "%s CPU %s us/message"
                     % (system_name, phase, r["messages_per_s"], r["deliveries_per_s"], r["lost"],
                        r["latency_ms"]["p50"], r["latency_ms"]["p99"], result["hub"], r["hub_cpu_us_per_message"]))
    return [record]


def run_profile(ctx, system_cls, p):
    """``burst`` with py-spy on node1 and the hub process (when it is Python)."""
    log_dir = ctx.log_dir(system_cls.name, "profile")
    system, urls = started(ctx, system_cls, p["nodes"], log_dir)
    spies = {}
    record = {}
    targets = {"node1": system.procs["node1"]}
    if system.hub == "broker":
        targets["broker"] = system.procs["broker"]

    def on_window(mark):
        if mark == "start":
            for name, proc in targets.items():
                spies[name] = pyspy.start(proc.pid, p["duration"], log_dir / ("%s.pyspy.raw" % name))

    try:
        record = measure(ctx, system, urls, p, log_dir, "profile", on_window=on_window)
    finally:
        for name, spy in spies.items():
            try:
                spy.wait(timeout=p["duration"] + 30)
            except Exception:
                spy.kill()
                spy.wait(5)
        stop(ctx, system, record)
    record["profiles"] = {}
    for name in targets:
        raw = log_dir / ("%s.pyspy.raw" % name)
        if raw.exists():
            top = pyspy.top_costs(raw, limit=25)
            top["categories"] = pyspy.categories(raw, pyspy.BROKER_CATEGORIES if name == "broker"
                                                 else pyspy.NODE_CATEGORIES)
            top["raw"] = str(raw)
            top["expected_samples"] = int(p["duration"] * pyspy.SAMPLE_RATE_HZ)
            record["profiles"][name] = top
            ctx.progress("  profile %s %s: %d samples; top self: %s" % (
                system_cls.name, name, top["samples"],
                "; ".join("%s %.1f%%" % (f, pct) for f, pct in top["self"][:5])))
        else:
            ctx.progress("  profile %s %s: py-spy wrote nothing (%s)" % (system_cls.name, name,
                                                                        spies.get(name) and spies[name].stdout.read()))
    summarise(ctx, record)
    return [record]


def effective_params(workload, quick=False, overrides=None):
    p = dict(DEFAULTS[workload])
    if quick:
        p.update(QUICK.get(workload, {}))
    for key, value in (overrides or {}).items():
        if value is not None:
            p[key] = value
    return p
