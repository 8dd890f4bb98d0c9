"""One loadgen run against a running system, and what every workload shares.

:class:`Context` carries the driver's settings; :func:`measure` runs
the load generator (rate mode) once, samples the servers' /proc figures at its window
marks and returns a record (JSON-able) whose ``figures`` are the table's columns.
"""
import shlex
import time
from pathlib import Path

from bench.loadgen import WINDOW_END, WINDOW_START, loadgen_argv, run_loadgen
from bench.procstat import sample, window_figures

# CPU (in % of one core) used by processes outside the benchmark during a
# window above which the run is flagged: the machine was not quiet.
NOISY_NEIGHBOUR_PCT = 15
# Connecting and joining every client; generous because 2-core boxes are slow.
CONNECT_BUDGET_SECS = 60


def printer(tag):
    """A progress function: each line stamped with ``tag``, the time and the seconds since this call."""
    t0 = time.monotonic()

    def progress(line):
        print("[%s %s +%4.0fs] %s" % (tag, time.strftime("%H:%M:%S"), time.monotonic() - t0, line), flush=True)
    return progress


class Context:
    """What every workload needs from the driver.

    :param node_bin: the Node.js executable for the load generator.
    :param log_root: a directory; each run logs into its own subdirectory.
    :param progress: a function taking one line of progress.
    """

    def __init__(self, node_bin, log_root, progress):
        self.node_bin = node_bin
        self.log_root = Path(log_root)
        self.progress = progress

    def log_dir(self, *parts):
        path = self.log_root.joinpath("-".join(str(p) for p in parts))
        path.mkdir(parents=True, exist_ok=True)
        return path


def log_findings(logs):
    """WARNING/ERROR/Traceback counts per process log and the first few such lines.

    A node answers /healthz 503 until its first broker snapshot and Django logs
    that as ERROR; those start-up lines are counted apart.
    """
    findings = {}
    for name, text in logs.items():
        lines = text.splitlines()
        healthz = sum("Service Unavailable: /healthz" in line for line in lines)
        lines = [line for line in lines if "Service Unavailable: /healthz" not in line]
        bad = [line for line in lines if " WARNING " in line or " ERROR " in line or "Traceback" in line]
        # the baseline logs its start line at WARNING on purpose (its only log line);
        # redis-server warns about vm.overcommit_memory, irrelevant without persistence
        bad = [line for line in bad if "serving on http" not in line and "Memory overcommit" not in line]
        findings[name] = {"healthz_503": healthz, "warnings": sum(" WARNING " in line for line in bad),
                          "errors": sum(" ERROR " in line for line in bad),
                          "tracebacks": sum("Traceback" in line for line in bad), "first": bad[:5]}
    return findings


def started(ctx, system_cls, nodes, log_dir, env=None):
    """A system started with ``nodes`` nodes and its node URLs; stopped again if it fails to start.

    :param env: extra environment for every process of the system.
    """
    system = system_cls(log_dir, env=env)
    try:
        urls = system.start(nodes)
    except BaseException:
        system.stop()
        raise
    ctx.progress("%s up: %s" % (system.name, system.describe()))
    return system, urls


def stop(ctx, system, record):
    system.stop()
    findings = log_findings(system.logs())
    record["log_findings"] = findings
    for name, f in findings.items():
        if f["warnings"] or f["errors"] or f["tracebacks"]:
            ctx.progress("  %s log: %d warnings, %d errors, %d tracebacks, e.g. %s"
                         % (name, f["warnings"], f["errors"], f["tracebacks"], f["first"][:2]))


def measure(ctx, system, urls, p, log_dir, tag, on_window=None):
    """One fixed-rate loadgen run against a running system; returns a record.

    :param on_window: called with ("start"|"end") at loadgen's window marks
        (the profile starts py-spy there).
    """
    procs = system.procs
    samples = {"before": sample(procs)}

    def on_line(line):
        if line == WINDOW_START:
            samples["start"] = sample(procs)
            if on_window:
                on_window("start")
        elif line == WINDOW_END:
            samples["end"] = sample(procs)
            if on_window:
                on_window("end")

    # an ack may arrive up to loadgen's --ack-timeout-ms after the last send
    late_s = max(p["drain"], p.get("ack_timeout_ms", 0) / 1000)
    deadline = CONNECT_BUDGET_SECS + p["warmup"] + p["duration"] + late_s + 25
    out = log_dir / ("loadgen-%s.json" % tag)
    argv = loadgen_argv(ctx.node_bin, urls, out, clients=p["clients"], rooms=p["rooms"], rate=p["rate"],
                        duration=p["duration"], warmup=p["warmup"], drain=p["drain"], deadline=deadline,
                        ack_timeout_ms=p.get("ack_timeout_ms"), progress=2)
    ctx.progress("loadgen: %s" % shlex.join(argv))
    rc, report, usage = run_loadgen(argv, out, deadline, on_line=on_line,
                                    echo=lambda line: print("      " + line, flush=True))
    samples["after"] = sample(procs)
    dead = [name for name, proc in procs.items() if not proc.alive()]
    record = {"params": dict(p), "loadgen_exit": rc, "loadgen_argv": shlex.join(argv), "log_dir": str(log_dir)}
    record.update(window_figures(samples["before"], samples.get("start"), samples.get("end"), samples["after"]))
    record["figures"] = figures(report, record["processes"], usage, record.get("host_busy_cpu_s"),
                                record.get("window_wall_s"))
    record["loadgen"] = report
    if dead:
        record["status"] = "process_died"
        record["dead"] = dead
    elif report is None or rc not in (0, 1):
        record["status"] = "loadgen_failed"
    else:
        record["status"] = "ok" if rc == 0 else "integrity_violation"
    return record


def figures(report, processes, usage, host_busy_s=None, window_s=None):
    """The flat figures of one run (the table's columns).

    ``other_cpu_pct``: CPU the host spent in the window outside the servers and
    loadgen (another job on the machine), in % of one core: a noisy-neighbour check.
    """
    server_cpu = sum(p.get("cpu_window_s", 0) for p in processes.values())
    f = {"server_cpu_window_s": round(server_cpu, 3), "loadgen_process_cpu_s": usage["cpu_s"]}
    if not report:
        return f
    loadgen_window_s = report["loadgen"].get("cpu_window_s") or 0
    if host_busy_s is not None and window_s:
        f["other_cpu_pct"] = round(100 * max(0.0, host_busy_s - server_cpu - loadgen_window_s) / window_s, 1)
    w, ig, lg = report["window"], report["integrity"], report["loadgen"]
    deliveries = w["deliveries_in_window"]
    f.update({
        "sent": w["sent"], "acked": w["acked"], "ack_errors": w["ack_errors"], "ack_unresolved": w["ack_unresolved"],
        "expected": w["expected"], "delivered": w["delivered"], "lost": w["lost"],
        "duplicated": ig["duplicated"], "out_of_order": ig["out_of_order"], "seq_gaps": ig["seq_gaps"],
        "seq_mismatch": ig["seq_mismatch"], "disconnects": ig["disconnects"],
        "deliveries_per_s": w["deliveries_per_s"], "offered_deliveries_per_s": w["offered_deliveries_per_s"],
        "ack_latency_ms": w["ack_latency_ms"], "latency_ms": w["latency_ms"],
        "cross_node_fraction": w.get("cross_node_fraction"),
        "server_cpu_us_per_delivery": round(1e6 * server_cpu / deliveries, 1) if deliveries else None,
        "server_cpu_us_per_message": round(1e6 * server_cpu / w["acked"], 1) if w["acked"] else None,
        "loadgen_cpu_pct_of_core": lg.get("cpu_window_pct_of_core"),
        "loadgen_event_loop_utilization": lg.get("event_loop_utilization_window"),
        "loadgen_loop_delay_p99_ms": (lg.get("event_loop_delay_ms") or {}).get("p99"),
        "loadgen_max_rss_mb": lg.get("max_rss_mb"),
        "send_lag_p99_ms": w["send_lag_ms"]["p99"],
    })
    return f


def disturbance(records):
    """The most CPU (% of one core) other processes used during any measured window of these records."""
    worst = 0.0
    for r in records:
        values = [(r.get("figures") or {}).get("other_cpu_pct")]
        values += [s.get("other_cpu_pct") for s in r.get("steps") or []]
        if "pipe" in r:
            values += [r["pipe"][phase].get("other_cpu_pct") for phase in ("fixed", "flat")]
        worst = max([worst] + [v for v in values if isinstance(v, (int, float))])
    return worst


def summarise(ctx, record):
    f = record["figures"]
    if "sent" not in f:
        ctx.progress("  no figures (status %s)" % record["status"])
        return
    lat, ack = f["latency_ms"], f["ack_latency_ms"]
    ctx.progress("  %s: sent %d acked %d | expected %d delivered %d lost %d dup %d ooo %d | %.0f deliveries/s | "
                 "delivery p50/p99 %s/%s ms, ack p99 %s ms | server CPU %s us/delivery | loadgen %s%% of a core"
                 % (record["status"], f["sent"], f["acked"], f["expected"], f["delivered"], f["lost"],
                    f["duplicated"], f["out_of_order"], f["deliveries_per_s"], lat["p50"], lat["p99"], ack["p99"],
                    f["server_cpu_us_per_delivery"], f["loadgen_cpu_pct_of_core"]))
    if (f.get("other_cpu_pct") or 0) > NOISY_NEIGHBOUR_PCT:
        ctx.progress("  WARNING: %.0f%% of a core went to other processes on this machine during the window: "
                     "these figures are disturbed" % f["other_cpu_pct"])
