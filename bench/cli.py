"""scripts/bench: every system under every workload, side by side, in one run.

Systems: ``ours`` (the product, CURVE on), ``ours-plain`` (the product without CURVE,
``burst`` and ``pipe`` only: what CURVE costs), ``redis`` (bench/systems/redis_baseline.py:
python-socketio + RedisManager), ``node`` (bench/systems/node_baseline: Node socket.io 4.8 +
@socket.io/redis-adapter on the same redis-server), ``zmq`` (a raw pyzmq XSUB/XPUB proxy,
``pipe`` only).
Workloads: ``fanout``, ``burst``, ``ramp``, ``idle`` (socket.io systems), ``pipe``
(our broker alone vs the raw proxy), ``profile`` (burst under py-spy).  Each run
starts its system on free loopback ports, drives it with the load generator (or
bench.workloads.pipe's peers), stops it by pid, and appends one JSON line per run to
<out>/results.jsonl; at the end <out>/summary.md and the PNG plots are rewritten
from this run's records (``--report-only`` rewrites them without running).
``scripts/bench sanity`` runs bench/sanity.py instead: one quick run of ours alone
(see ``scripts/bench sanity --help``).

On a shared 2-core machine other load moves every figure: before each run the
bench waits (``--quiet-wait`` seconds in all) for other processes to go quiet, and
a run during which they took more than 15 % of a core is set aside and repeated
(``--retry-disturbed`` times); the tables report what other load remained.

Exit status: 0 every run completed and ours kept its guarantees; 1 some run of
ours saw loss, duplicates, reordering or refusals (the baseline's reordering is
expected and only reported); 2 a run failed (a process died, a deadline passed).
"""
import argparse
import datetime
import json
import shlex
import signal
import sys
import time
import traceback
from pathlib import Path

from bench import RUNS, machine, report, workloads
from bench.report import plots, repeats
from bench.workloads.measure import NOISY_NEIGHBOUR_PCT, Context, disturbance, printer
from bench.systems.servers import SYSTEMS


# The tables and plots name and colour systems by these; ours-plain is ours without CURVE.
report.SYSTEM_LABELS.setdefault("ours-plain", SYSTEMS["ours-plain"].label)
plots.COLORS.setdefault("ours-plain", "tab:cyan")

ALL_SYSTEMS = ("ours", "ours-plain", "redis", "node", "zmq")
ALL_WORKLOADS = ("fanout", "burst", "ramp", "idle", "pipe", "profile")
APPLIES = {"fanout": ("ours", "redis", "node"), "burst": ("ours", "ours-plain", "redis", "node"),
           "ramp": ("ours", "redis", "node"), "idle": ("ours", "redis", "node"), "pipe": ("ours", "ours-plain", "zmq"),
           "profile": ("ours", "redis")}
REPEATED = ("fanout", "burst", "pipe")
# Workload parameters measured in seconds (shown in --help).
SECONDS_PARAMS = frozenset({"duration", "warmup", "drain", "hold", "settle", "flat"})
# File descriptors beyond the idle connections: logs, sockets of the harness.
FD_HEADROOM = 1024


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS), help="comma-separated of %s" % ", ".join(ALL_SYSTEMS))
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                   help="comma-separated of %s" % ", ".join(ALL_WORKLOADS))
    p.add_argument("--quick", action="store_true", help="smoke run: every workload small (under ~2 minutes)")
    p.add_argument("--out", help="results, summary and plots (default var/bench; with --quick var/bench/quick)")
    p.add_argument("--log-dir", help="process logs (default var/bench-logs/<run id>)")
    p.add_argument("--node-bin", default="node", help="Node.js for the load generator (bench/loadgen)")
    p.add_argument("--label", default="", help="free text stored with every record")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite summary.md and the plots from the last run in <out>/results.jsonl")
    p.add_argument("--run", help="with --report-only: this bench run id instead of the last one")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs of each of %s per system, interleaved; tables show medians (default 3, --quick 1)"
                   % ", ".join(REPEATED))
    p.add_argument("--quiet-wait", type=float, default=300,
                   help="seconds in all that the run may wait for other load on the machine to stop (default 300)")
    p.add_argument("--retry-disturbed", type=int, default=2,
                   help="run a system/workload again (up to this many times) when other processes took more than "
                   "%d%%%% of a core during its window (default 2)" % NOISY_NEIGHBOUR_PCT)
    for wl, params in workloads.DEFAULTS.items():
        g = p.add_argument_group("%s workload (defaults)" % wl)
        for key, value in params.items():
            g.add_argument("--%s-%s" % (wl, key.replace("_", "-")), dest="%s__%s" % (wl, key),
                           type=type(value), metavar=type(value).__name__.upper(),
                           help="default %s%s%s" % (value, " s" if key in SECONDS_PARAMS else "",
                                                    " (--quick: %s)" % workloads.QUICK[wl][key]
                                                    if key in workloads.QUICK.get(wl, {}) else ""))
    args = p.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for s in args.systems:
        if s not in ALL_SYSTEMS:
            p.error("unknown system %r (have %s)" % (s, ", ".join(ALL_SYSTEMS)))
    for w in args.workloads:
        if w not in ALL_WORKLOADS:
            p.error("unknown workload %r (have %s)" % (w, ", ".join(ALL_WORKLOADS)))
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.params = {}
    for wl in workloads.DEFAULTS:
        overrides = {k.split("__", 1)[1]: v for k, v in vars(args).items() if k.startswith(wl + "__")}
        args.params[wl] = workloads.effective_params(wl, args.quick, overrides)
    return args


def plan(args):
    """[(workload, repeat, system)] in run order: workload by workload, systems interleaved."""
    return [(wl, rep, s) for wl in ALL_WORKLOADS if wl in args.workloads
            for rep in range(1, (args.repeat if wl in REPEATED else 1) + 1)
            for s in args.systems if s in APPLIES[wl]]


def run_guarded(ctx, workload, system, params, progress):
    """run_one, with any failure turned into a failed record (the next run still starts)."""
    try:
        return run_one(ctx, workload, system, params)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        progress("FAILURE in %s/%s: %s: %s" % (workload, system, type(exc).__name__, exc))
        progress("  (the run is recorded as failed; the next one starts)")
        lines = [line for line in str(exc).splitlines() if line.strip()]
        brief = lines[0] + (" ... " + lines[-1] if len(lines) > 1 else "") if lines else ""
        return [{"status": "failed", "error": "%s: %s" % (type(exc).__name__, brief),
                 "traceback": traceback.format_exc(), "params": params, "figures": {}}]


def run_one(ctx, workload, system, params):
    if workload == "pipe":
        return workloads.run_pipe(ctx, system, params)
    cls = SYSTEMS[system]
    if workload in ("fanout", "burst"):
        return workloads.run_fixed(ctx, cls, workload, params)
    if workload == "ramp":
        return workloads.run_ramp(ctx, cls, params)
    if workload == "idle":
        return workloads.run_idle(ctx, cls, params)
    if workload == "profile":
        return workloads.run_profile(ctx, cls, params)
    raise ValueError(workload)


def report_only(out, progress, bench_run=None):
    """Rewrite summary.md and the plots from one run recorded in out/results.jsonl (default: the newest)."""
    jsonl = out / "results.jsonl"
    if not jsonl.exists():
        progress("no %s" % jsonl)
        return 2
    runs = {}
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        runs.setdefault(r["bench_run"], {"records": [], "meta": None})
        if "meta" in r:
            runs[r["bench_run"]]["meta"] = r["meta"]
        elif not r.get("superseded"):
            runs[r["bench_run"]]["records"].append(r)
    if bench_run is None:
        bench_run = sorted(runs)[-1]
    elif bench_run not in runs:
        progress("no run %s in %s (have %s)" % (bench_run, jsonl, ", ".join(sorted(runs))))
        return 2
    records, meta = runs[bench_run]["records"], runs[bench_run]["meta"]
    summary = report.markdown(records, meta)
    (out / "summary.md").write_text(summary + "\n")
    print(summary)
    stamp = "bench run %s%s" % (bench_run, " (quick)" if meta.get("quick") else "")
    for path in plots.all_plots(repeats.merged(records), out, stamp):
        progress("plot %s" % path)
    return 0


def main(argv=None):
    args = parse_args(argv)
    t0 = time.monotonic()
    progress = printer("bench")
    # SIGTERM unwinds like Ctrl-C, so every started process is stopped by the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    bench_run = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else (RUNS / "quick" if args.quick else RUNS)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return report_only(out, progress, args.run)
    log_root = Path(args.log_dir) if args.log_dir else RUNS / "logs" / bench_run
    log_root.mkdir(parents=True, exist_ok=True)
    runs = plan(args)
    if not runs:
        progress("nothing to run: no selected workload applies to the selected systems")
        return 2
    if "idle" in args.workloads:
        limit = machine.raise_fd_limit(args.params["idle"]["clients"] + FD_HEADROOM, progress)
        if limit < args.params["idle"]["clients"] + FD_HEADROOM:
            fit = max(10, limit - FD_HEADROOM)
            progress("open-files limit %d is too low for %d idle connections: using %d (raise `ulimit -n`)"
                     % (limit, args.params["idle"]["clients"], fit))
            args.params["idle"]["clients"] = fit
            args.params["idle"]["rooms"] = max(1, min(args.params["idle"]["rooms"], fit // 10))
    meta = {"bench_run": bench_run, "ts": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(["scripts/bench"] + (sys.argv[1:] if argv is None else list(argv))),
            "commit": machine.git_commit(), "product_digest": machine.product_digest(), "quick": args.quick,
            "label": args.label, "host": machine.host_info(args.node_bin)}
    h = meta["host"]
    meta["machine"] = "%s CPUs (%s), %s GiB, Linux %s, Python %s, Node %s, redis-server %s, libzmq %s" % (
        h["cpus"], h["cpu_model"], h["mem_gib"], h["kernel"], h["python"], h["node"], h["redis_server"], h["libzmq"])
    progress("run %s: %d runs: %s" % (bench_run, len(runs), ", ".join(
        "%s/%s%s" % (wl, system, "#%d" % rep if args.repeat > 1 and wl in REPEATED else "")
        for wl, rep, system in runs)))
    progress("machine: %s" % meta["machine"])
    progress("logs in %s; results to %s" % (log_root, out))
    ctx = Context(args.node_bin, log_root, progress)
    records, worst = [], 0
    jsonl = out / "results.jsonl"
    try:
        quiet_budget = args.quiet_wait
        digest = meta["product_digest"]
        for i, (workload, rep, system) in enumerate(runs, 1):
            progress("=== %d/%d: %s on %s%s" % (i, len(runs), workload, system,
                                                " (repeat %d)" % rep if workload in REPEATED else ""))
            attempt = 0
            while True:
                quiet_budget = machine.wait_quiet(quiet_budget, progress)
                now_digest = machine.product_digest()
                if now_digest != digest:
                    progress("WARNING: the product's sources changed (sha256 %s -> %s): later runs measure "
                             "other code" % (digest, now_digest))
                    digest = now_digest
                started = time.monotonic()
                new = run_guarded(ctx, workload, system, args.params[workload], progress)
                other = disturbance(new)
                for record in new:
                    record.update({"bench_run": bench_run, "ts": datetime.datetime.now(datetime.timezone.utc)
                                   .isoformat(timespec="seconds"), "system": system, "workload": workload,
                                   "repeat": rep, "attempt": attempt, "other_load_pct": other,
                                   "product_digest": digest,
                                   "quick": args.quick, "label": args.label, "commit": meta["commit"]})
                retry = (other > NOISY_NEIGHBOUR_PCT and attempt < args.retry_disturbed
                         and quiet_budget > 0)
                if not retry:
                    break
                progress("disturbed: other processes took up to %.0f%% of a core during the window; "
                         "this run is set aside and repeated" % other)
                # the repeat is time lost to other load, like waiting: it comes out of the same budget
                quiet_budget = max(0.0, quiet_budget - (time.monotonic() - started))
                with open(jsonl, "a") as f:
                    for record in new:
                        record["superseded"] = "disturbed"
                        f.write(json.dumps(record, separators=(",", ":")) + "\n")
                attempt += 1
            for record in new:
                records.append(record)
                status = record.get("status")
                # an overloaded ramp step may fail (that ends the ramp); our guarantees hold everywhere
                if status in ("failed", "process_died", "loadgen_failed") and not record.get("step"):
                    worst = 2
                elif status == "integrity_violation" and system.startswith("ours"):
                    worst = max(worst, 1)
            with open(jsonl, "a") as f:
                for record in new:
                    f.write(json.dumps(record, separators=(",", ":")) + "\n")
    except KeyboardInterrupt:
        progress("interrupted: every started process has been stopped; partial results follow")
        worst = 2
    finally:
        with open(jsonl, "a") as f:
            f.write(json.dumps({"bench_run": bench_run, "meta": meta, "wall_s": round(time.monotonic() - t0, 1)},
                               separators=(",", ":")) + "\n")
    summary = report.markdown(records, meta)
    (out / "summary.md").write_text(summary + "\n")
    print()
    print(summary)
    if not args.no_plots and records:
        stamp = "bench run %s%s" % (bench_run, " (quick)" if args.quick else "")
        for path in plots.all_plots(repeats.merged(records), out, stamp):
            progress("plot %s" % path)
    progress("done in %.0f s; %s, %s" % (time.monotonic() - t0, jsonl, out / "summary.md"))
    return worst


if __name__ == "__main__":
    sys.exit(main())
