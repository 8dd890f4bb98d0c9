"""The cluster's sanity figure: N nodes, clients in one room, a fixed offered rate.

Starts our broker and nodes on free loopback ports (bench.systems.servers.OursSystem, with the
per-connection rate limit raised out of the way), runs the load generator once against
the node URLs (bench.measure.measure: every server process's CPU time from /proc at
the edges of loadgen's measured window, its peak RSS), prints progress and a table,
appends one JSON line (the record of bench.measure plus the command line, commit, host
and timestamp) to var/bench/sanity.jsonl, and always stops what it started.

Usage (from the repository's root)::

    scripts/bench sanity                   # 3 nodes, 30 clients, 1 room, 100 msg/s, 10 s after 2 s warmup
    scripts/bench sanity --rate 300        # a higher offered rate
    .venv/bin/python -m bench.sanity --clients 60 --rooms 2 --no-record --log-dir /tmp/bench-logs

Exit status: 0 clean; 1 the run finished but loadgen saw loss, duplicates, reorder or
ack errors; 2 the run failed (a process died, a connection failed, a deadline passed).
Process logs stay in the printed log directory for evidence.
"""
import argparse
import datetime
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from . import RUNS, machine
from .workloads.measure import Context, measure, printer, started, stop
from .systems.servers import OursSystem

DEFAULT_JSONL = RUNS / "sanity.jsonl"
# Keys of the arguments that are loadgen's parameters (the rest say where output goes).
NOT_PARAMS = ("jsonl", "no_record", "label", "log_dir")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="scripts/bench sanity", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=3, help="web nodes (default 3)")
    p.add_argument("--clients", type=int, default=30, help="clients, round-robin over the nodes (default 30)")
    p.add_argument("--rooms", type=int, default=1, help="rooms the clients are spread over (default 1)")
    p.add_argument("--rate", type=float, default=100, help="total messages/s offered (default 100)")
    p.add_argument("--duration", type=float, default=10, help="measured seconds (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before (default 2)")
    p.add_argument("--drain", type=float, default=5, help="seconds to wait for late deliveries (default 5)")
    p.add_argument("--ack-timeout-ms", type=int, default=10000, help="loadgen's ack timeout (default 10000)")
    p.add_argument("--rate-limit", type=int, default=10000,
                   help="CHAT_RATE_PER_S and CHAT_RATE_BURST of the nodes (default 10000: out of the way)")
    p.add_argument("--log-dir", help="process logs and loadgen's report (default: a new /tmp/bench-sanity-* dir)")
    p.add_argument("--jsonl", default=str(DEFAULT_JSONL), help="where the result line is appended")
    p.add_argument("--no-record", action="store_true", help="do not append to --jsonl")
    p.add_argument("--label", default="", help="free text stored with the result")
    p.add_argument("--node-bin", default="node", help="the Node.js executable (default: node on PATH)")
    args = p.parse_args(argv)
    if args.nodes < 1 or args.clients < 1 or args.rooms < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("--nodes, --clients, --rooms, --rate and --duration must be positive")
    return args


def die(message):
    """Refuse to start: the message on stderr and exit status 2 (a failed run)."""
    print("bench sanity: " + message, file=sys.stderr)
    sys.exit(2)


def _nan(value):
    return float("nan") if value is None else value


def print_table(record):
    """Per-process CPU and peak RSS, then delivery, latency and cost figures."""
    report, f = record.get("loadgen"), record["figures"]
    rows = [("process", "cpu window s", "cpu %", "cpu run s", "peak RSS MB")]
    for name, p in record["processes"].items():
        rows.append((name, "%.2f" % _nan(p.get("cpu_window_s")), "%.1f" % _nan(p.get("cpu_window_pct")),
                     "%.2f" % _nan(p.get("cpu_run_s")), "%.1f" % ((p.get("hwm_kb") or 0) / 1024)))
    lg = report["loadgen"] if report else {}
    rows.append(("loadgen", "%.2f" % _nan(lg.get("cpu_window_s")), "%.1f" % _nan(lg.get("cpu_window_pct_of_core")),
                 "%.2f" % f["loadgen_process_cpu_s"], "%.1f" % _nan(lg.get("max_rss_mb"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print("  " + "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    if not report:
        return
    w, ig = report["window"], report["integrity"]
    lat, ack = w["latency_ms"], w["ack_latency_ms"]
    errors = ", ".join("%s=%d" % kv for kv in w["ack_errors"].items()) or "none"
    print()
    print("  sent %d  acked %d  ack errors %s  unresolved %d" % (w["sent"], w["acked"], errors, w["ack_unresolved"]))
    print("  expected %d  delivered %d  lost %d  | whole run: duplicated %d  out of order %d  seq gaps %d"
          % (w["expected"], w["delivered"], w["lost"], ig["duplicated"], ig["out_of_order"], ig["seq_gaps"]))
    print("  deliveries/s %.1f (offered %.1f)" % (w["deliveries_per_s"], w["offered_deliveries_per_s"]))
    print("  delivery latency ms  p50 %s  p90 %s  p99 %s  max %s" % (lat["p50"], lat["p90"], lat["p99"], lat["max"]))
    print("  ack latency ms       p50 %s  p99 %s" % (ack["p50"], ack["p99"]))
    print("  server CPU per delivery %s us (%s s of server CPU in the window, host busy %s%% of %d CPUs)"
          % (f["server_cpu_us_per_delivery"], f["server_cpu_window_s"], record.get("host_cpu_busy_pct"),
             os.cpu_count()))
    print("  loadgen CPU %s%% of a core in the window, event loop utilization %s, loop delay p99 %s ms, "
          "send lag p99 %s ms" % (f["loadgen_cpu_pct_of_core"], f["loadgen_event_loop_utilization"],
                                  f["loadgen_loop_delay_p99_ms"], f["send_lag_p99_ms"]))
    print()


def main(argv=None):
    args = parse_args(argv)
    if not Path("/proc/self/stat").exists():
        die("needs Linux /proc for CPU and RSS sampling")
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="bench-sanity-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    host = machine.host_info(args.node_bin)
    if host["node"] is None:
        die("cannot run %r; Node 20 is needed for the load generator (bench/loadgen)" % args.node_bin)
    params = {k: v for k, v in vars(args).items() if k not in NOT_PARAMS}
    meta = {
        "ts": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["scripts/bench", "sanity"] + (sys.argv[1:] if argv is None else list(argv))),
        "python": sys.executable, "commit": machine.git_commit(), "product_digest": machine.product_digest(),
        "label": args.label, "host": host,
    }
    ctx = Context(args.node_bin, log_dir, printer("bench sanity"))
    ctx.progress("logs in %s" % log_dir)
    rate_limit = str(args.rate_limit)
    record, system = {"status": "failed", "params": params, "log_dir": str(log_dir)}, None
    try:
        system, urls = started(ctx, OursSystem, args.nodes, log_dir,
                               env={"CHAT_RATE_PER_S": rate_limit, "CHAT_RATE_BURST": rate_limit})
        record = measure(ctx, system, urls, params, log_dir, "sanity")
        if record["status"] == "process_died":
            ctx.progress("FAILURE: exited during the run: %s" % ", ".join(record["dead"]))
        print_table(record)
    except Exception as exc:   # say what failed, then still stop and report below
        ctx.progress("FAILURE: %s: %s" % (type(exc).__name__, exc))
        record["error"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        if system is not None:
            stop(ctx, system, record)
        record = dict(meta, **record)
        if not args.no_record and "processes" in record:
            jsonl = Path(args.jsonl)
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            with open(jsonl, "a") as f:
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
            ctx.progress("appended the result to %s" % jsonl)
        ctx.progress("status %s; logs in %s" % (record["status"], log_dir))
    return {"ok": 0, "integrity_violation": 1}.get(record["status"], 2)


if __name__ == "__main__":
    sys.exit(main())
