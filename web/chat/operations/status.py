"""``scripts/status``: the cluster in a few terminal lines; exit status 1 when anything is down.

Reads supervisor (``supervisorctl status``), every target's ``/healthz`` (nodes)
and ``/metrics`` twice ``--interval`` apart (for rates, scrape.py).  No Django.
"""
import argparse
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from chatstream import config
from .scrape import ClusterSampler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def supervisor_lines(conf, timeout_s=5):
    """(ok, lines) of ``supervisorctl status``; every program must be RUNNING."""
    try:
        done = subprocess.run([os.path.join(ROOT, ".venv/bin/supervisorctl"), "-c", conf, "status"],
                              capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, ["supervisor: cannot ask (%s)" % exc]
    lines = [line for line in done.stdout.splitlines() if line.strip()] or [done.stderr.strip()]
    ok = bool(lines) and all(" RUNNING " in line for line in lines)
    return ok, ["supervisor: %s" % line for line in lines]


def health(url, timeout_s):
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=timeout_s) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def describe(row, timeout_s):
    """One line for a target, and whether it is fine."""
    if row["kind"] == "broker":
        if not row["up"]:
            return False, "%-8s broker  DOWN  (%s)" % (row["name"], row["error"])
        return True, "%-8s broker  up    %s, %d nodes, %d rooms in memory, %.1f sequenced/s" % (
            row["name"], row.get("role", "?"), row.get("nodes", 0), row.get("rooms_in_memory", 0),
            row["sequenced_per_s"])
    if row["kind"] == "archiver":
        if not row["up"]:
            return False, "%-8s archive DOWN  (%s)" % (row["name"], row["error"])
        return True, "%-8s archive up    lag %d events, %.1f s" % (
            row["name"], row.get("archive_lag_events", 0), row.get("archive_lag_s", 0.0))
    status = health(row["url"], timeout_s)
    if not row["up"]:
        return False, "%-8s node    DOWN  (%s; /healthz %s)" % (row["name"], row["error"], status)
    conns = row.get("connections", {})
    ok = row["state"] == "up" and status == 200
    pairs = row.get("pairs")   # several broker pairs: each one's link
    link = ", ".join("%s %s" % item for item in pairs.items()) if pairs else row.get("link")
    return ok, ("%-8s node    %-5s /healthz %s, link %s, %d connections (%d ws, %d polling), "
                "%d rooms, %.1f msg/s, %.1f deliveries/s, ack p99 %s" % (
                    row["name"], "up" if ok else row["state"].upper(), status, link,
                    row["connections_total"], conns.get("websocket", 0), conns.get("polling", 0),
                    row.get("rooms", 0), row["accepted_per_s"], row["deliveries_per_s"],
                    "-" if row["ack_p99_ms"] is None else "%s ms" % row["ack_p99_ms"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", help="name=url,... (default CHAT_OPS_TARGETS or the scripts/run cluster)")
    parser.add_argument("--targets-file", help="the discovery file of the balancer's nodes (default "
                        "CHAT_OPS_TARGETS_FILE, or var/targets/nodes.json when no targets are given)")
    parser.add_argument("--supervisor-conf", default=os.path.join(ROOT, "supervisord.conf"))
    parser.add_argument("--no-supervisor", action="store_true", help="a cluster not run by supervisor")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between the two scrapes")
    parser.add_argument("--timeout", type=float, default=config.OPS_SCRAPE_TIMEOUT_S * 4)
    args = parser.parse_args(argv)
    fine, lines = True, []
    if not args.no_supervisor:
        fine, lines = supervisor_lines(args.supervisor_conf)
    # --targets names a cluster of its own, as CHAT_OPS_TARGETS does: no default file then
    environ = dict(os.environ, CHAT_OPS_TARGETS=args.targets) if args.targets else os.environ
    targets = (config.env_str("CHAT_OPS_TARGETS", "", environ)
               or config.default_ops_targets(environ))
    targets_file = args.targets_file or config.ops_targets_file(environ, ROOT)
    sampler = ClusterSampler(config.ops_targets(targets), timeout_s=args.timeout, cache_s=0,
                             targets_file=targets_file)
    sampler.sample()
    time.sleep(args.interval)
    sample = sampler.sample()
    for row in sample["targets"]:
        ok, line = describe(row, args.timeout)
        fine = fine and ok
        lines.append(line)
    t = sample["totals"]
    lines.append("cluster  %d/%d nodes up, %d connections, %.1f msg/s, %.1f deliveries/s, ack p99 %s"
                 % (t["nodes_up"], t["nodes"], t["connections"], t["messages_per_s"],
                    t["deliveries_per_s"], "-" if t["ack_p99_ms"] is None else "%s ms" % t["ack_p99_ms"]))
    lines.append("status   %s" % ("OK" if fine else "SOMETHING IS DOWN"))
    print("\n".join(lines))
    return 0 if fine else 1


if __name__ == "__main__":
    sys.exit(main())
