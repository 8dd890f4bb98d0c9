"""The archiver against the broker: its sustained write rate beside the broker's flat-out
sequencing rate, and the archive's lag under a steady load, on SQLite and on PostgreSQL.

    scripts/bench archive [--db sqlite|postgresql|both] [--steady-rate 1000] [--flat-s 8]

One pipe run per database (bench/workloads/pipe.py, ``broker`` mode with CURVE: three
stand-in nodes sending real ``publish`` requests) with the ``archiver`` program
(``manage.py runarchiver``) following the broker into a fresh archive: SQLite in the
run's folder, or a PostgreSQL server of tests/integration/postgres.py on a free port.
The archiver's ``/metrics`` is read every ``SAMPLE_EVERY_S``:

- ``steady``: ``--steady-rate`` msg/s for ``--steady-s``; the archive's lag is the age of
  the oldest event received and not yet written (``chat_archive_lag_seconds``), p50/p99/max
  over the samples;
- ``flat``: the peers send flat out for ``--flat-s`` (the broker's sequencing rate); the
  archiver's write rate is what it wrote from the phase's start until its backlog was
  gone, over that time.  When it keeps up, its backlog at the phase's end is a batch or
  two and the rate equals the broker's (a lower bound of what it could write); when it
  does not, the rate is its own and the drain after the phase says by how much (the drain's
  rate is the archiver's with the peers and the broker idle).

Every process is started on free loopback ports and stopped by pid; the PostgreSQL server
too.  Results: one JSON line per database on stdout and in var/bench/archive.jsonl.
"""
import argparse
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

from bench import ROOT

# The archiver's /metrics is read this often: lag samples fine enough for a p99 over a
# few seconds, cheap for the archiver's loop (one scrape is a few hundred bytes).
SAMPLE_EVERY_S = 0.1
# After the flat phase the archiver has this long to write its backlog (a run's bound).
DRAIN_TIMEOUT_S = 40.0
# The backlog counts as gone when at most this many events wait (one batch in flight).
DRAINED_EVENTS = 2000
METRIC_RE = re.compile(rb"^(chat_archive_[a-z_]+?)(?:_total)? ([0-9.e+-]+)$", re.M)
RESULTS = ROOT / "var" / "bench" / "archive.jsonl"


class MetricsSampler(threading.Thread):
    """The archiver's counters every ``SAMPLE_EVERY_S``: ``(t, archived, lag_events, lag_s)``."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.samples = []
        self.stopping = threading.Event()

    def read(self):
        import requests
        body = requests.get(self.url, timeout=2).content
        found = {name.decode(): float(value) for name, value in METRIC_RE.findall(body)}
        return (time.monotonic(), found.get("chat_archive_events_archived", 0.0),
                found.get("chat_archive_lag_events", 0.0), found.get("chat_archive_lag_seconds", 0.0))

    def run(self):
        while not self.stopping.wait(SAMPLE_EVERY_S):
            try:
                self.samples.append(self.read())
            except Exception:        # a scrape that timed out under load: the next one counts
                continue

    def between(self, start, end):
        return [s for s in self.samples if start <= s[0] <= end]


def tree_cpu_s(pid):
    """CPU seconds of ``pid`` and its descendants (those reaped: in their parent's counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        children = []
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                children += [int(c) for c in f.read().split()]
    except OSError:          # gone meanwhile
        return 0.0
    own = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_s(child) for child in children)


def percentiles(values):
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]   # noqa: E731
    return {"p50": round(pick(0.50), 3), "p99": round(pick(0.99), 3), "max": round(ordered[-1], 3)}


class ArchiverAlongside:
    """``on_hub`` of the pipe run: starts the archiver and its sampler once the broker is
    ready; after the phases waits for its backlog to drain, then stops both."""

    def __init__(self, env, profile_s=0.0, log_dir=None, database=None):
        self.env = env
        self.profile_s = profile_s
        self.log_dir = log_dir
        self.database = database       # a PostgreSQL server's Proc (its CPU is the archive's too)
        self.proc = self.sampler = self.profiler = None
        self.t_hub = self.t_drained = None
        self.cpu = {}

    def __call__(self, cluster):
        self.proc = cluster.start_archiver(env=self.env)
        self.sampler = MetricsSampler("http://127.0.0.1:%d/metrics" % cluster.archiver_metrics_port)
        self.sampler.start()
        if self.profile_s:
            import subprocess
            self.profiler = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--nonblocking", "-p", str(self.proc.pid),
                 "-r", "100",
                 "-d", str(int(self.profile_s)), "-f", "raw", "-o", str(self.log_dir / "archiver.pyspy.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.t_hub = time.monotonic()
        return self.drain

    def cpu_s(self):
        """The archiver's CPU seconds, and the database server's (every process of it)."""
        total = tree_cpu_s(self.proc.pid)
        if self.database is not None:
            total += tree_cpu_s(self.database.pid)
        return total

    def mark(self, name):
        self.cpu[name] = (time.monotonic(), self.cpu_s())

    def drain(self):
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            samples = self.sampler.samples
            if samples and samples[-1][2] == 0:
                break
            time.sleep(SAMPLE_EVERY_S)
        time.sleep(3 * SAMPLE_EVERY_S)
        self.mark("drained")

    def stop(self):
        if self.profiler is not None:
            self.profiler.wait(timeout=self.profile_s + 30)
        if self.sampler is not None:
            self.sampler.stopping.set()
        if self.proc is not None:
            self.proc.stop()


def run_one(db, log_dir, steady_rate, steady_s, flat_s, peers, rooms, text_bytes, profile_s=0.0,
            progress=print):
    """One database's figures (a dict)."""
    from bench.procstat import sample
    from bench.workloads import pipe
    from bench.workloads.pipe_peer import PHASE_GAP_SECS, START_DELAY_SECS
    server, env = None, {}
    if db == "postgresql":
        from tests.integration.postgres import PostgresServer
        server = PostgresServer()
        env["DATABASE_URL"] = server.url
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    alongside = ArchiverAlongside(env, profile_s, Path(log_dir),
                                  server.proc if server is not None else None)
    warmup = 1.0
    try:
        timer = []

        def on_hub(cluster):
            drain = alongside(cluster)
            t0 = alongside.t_hub + START_DELAY_SECS
            flat_start = t0 + warmup + steady_s + PHASE_GAP_SECS
            for name, at in (("flat_start", flat_start), ("flat_end", flat_start + flat_s)):
                timer.append(threading.Timer(at - time.monotonic(), alongside.mark, [name]))
                timer[-1].start()
            return drain
        result = pipe.run("broker", log_dir, peers=peers, rate=steady_rate, warmup=warmup,
                          fixed_s=steady_s, flat_s=flat_s, rooms=rooms, text_bytes=text_bytes,
                          progress=progress, sample=sample, hub_env=env, on_hub=on_hub)
    finally:
        for t in timer:
            t.cancel()
        alongside.stop()
        if server is not None:
            server.stop()
    t0 = alongside.t_hub + START_DELAY_SECS
    steady = alongside.sampler.between(t0 + warmup, t0 + warmup + steady_s)
    (t_start, cpu_start), (t_end, _) = alongside.cpu["flat_start"], alongside.cpu["flat_end"]
    t_drained, cpu_drained = alongside.cpu["drained"]
    samples = alongside.sampler.samples
    at_start = max((s for s in samples if s[0] <= t_start), default=samples[0], key=lambda s: s[0])
    at_end = min((s for s in samples if s[0] >= t_end), default=samples[-1], key=lambda s: s[0])
    gone = next((s for s in samples if s[0] >= t_end and s[2] <= DRAINED_EVENTS), samples[-1])
    written = gone[1] - at_start[1]
    behind = at_end[2] > DRAINED_EVENTS
    sent = sum(result[p]["sent"] for p in ("fixed", "flat"))
    return {
        "db": db, "peers": peers, "rooms": rooms, "text_bytes": text_bytes,
        "broker_flat_msgs_per_s": result["flat"]["messages_per_s"],
        "archiver_msgs_per_s": round(written / max(1e-9, gone[0] - at_start[0]), 1),
        "backlog_at_flat_end": int(at_end[2]),
        # its rate above is then the broker's, as far as scrapes delayed by a busy archiver
        # (their time is when the answer came) let it show
        "kept_up": not behind,
        # what it wrote of its backlog once the peers stopped: its rate with the cores to itself
        "drain_after_flat_s": round(gone[0] - t_end, 2) if behind else 0.0,
        "drain_msgs_per_s": round((gone[1] - at_end[1]) / max(1e-9, gone[0] - at_end[0]), 1)
        if behind else None,
        "broker_cpu_us_per_msg": result["flat"]["hub_cpu_us_per_message"],
        # with the PostgreSQL server's: what writing an event costs the host
        "archive_cpu_us_per_event": round(1e6 * (cpu_drained - cpu_start) / max(1, samples[-1][1]
                                                                                 - at_start[1]), 1),
        "steady_msgs_per_s": steady_rate,
        "steady_lag_s": percentiles([s[3] for s in steady]),
        "archived": int(samples[-1][1]), "sent_steady_and_flat": sent,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "log_dir": str(log_dir),
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/bench archive", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--steady-rate", type=float, default=1000.0, help="msg/s of the steady phase")
    p.add_argument("--steady-s", type=float, default=8.0)
    p.add_argument("--flat-s", type=float, default=8.0)
    p.add_argument("--peers", type=int, default=3)
    p.add_argument("--rooms", type=int, default=10, help="rooms per peer")
    p.add_argument("--text-bytes", type=int, default=60, help="padding of each message's text")
    p.add_argument("--profile-s", type=float, default=0.0,
                   help="py-spy the archiver this long from its start (raw stacks in the run's folder)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "web"))
    run_dir = ROOT / "var" / "bench" / "logs" / ("archive-%s" % time.strftime("%Y%m%d-%H%M%S"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for db in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        figures = run_one(db, run_dir / db, args.steady_rate, args.steady_s, args.flat_s,
                          args.peers, args.rooms, args.text_bytes, args.profile_s)
        line = json.dumps(figures)
        print(line, flush=True)
        with open(RESULTS, "a") as out:
            out.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
