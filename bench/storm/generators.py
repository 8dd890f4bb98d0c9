"""The load generator in ``storm`` mode, one process per node, driven by bench.storm.

Each generator prints JSON lines (see the header of bench/loadgen/storm.js); a reader thread
keeps the latest of each kind and writes every line to ``<log_dir>/stormgen-<k>.jsonl``.
Commands go to its stdin, all generators one after the other within microseconds.
"""
import ipaddress
import json
import os
import resource
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.loadgen import command
MAX_ERROR_SAMPLES = 20


def raise_open_files():
    """The soft open-files limit up to the hard one (here 20,000, which root cannot raise)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def lower_priority(pid, nice=0, idle=False):
    """Every thread of process ``pid`` at nice ``nice`` and, with ``idle``, in SCHED_IDLE
    (runs only when no other process wants the CPU).  Linux keeps both per thread,
    and Node's V8 helper threads exist before this is called; threads made later
    inherit it from the thread that makes them.  So the cluster gets the CPU first,
    as if its clients were on other machines."""
    for tid in (int(t) for t in os.listdir("/proc/%d/task" % pid)):
        try:
            if nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            if idle:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except ProcessLookupError:
            pass                          # a thread that has ended meanwhile


def is_loopback_ipv4(host):
    """True for an IPv4 address in 127.0.0.0/8 (not a name such as ``localhost``)."""
    try:
        return ipaddress.IPv4Address(host or "").is_loopback
    except ValueError:
        return False


SOURCES_PER_GENERATOR = 4   # ports: 4 x 28,232 for <= 17,000 clients and their TIME_WAITs after a drop


def loopback_sources(url, k, count=SOURCES_PER_GENERATOR):
    """Source addresses of its own for generator ``k`` when ``url``'s host is an IPv4
    loopback address (Linux routes all of 127.0.0.0/8 to ``lo``); [] otherwise.

    Clients that all connect from 127.0.0.1 share one range of ephemeral ports, and the
    kernel looks for a free port to a destination by walking the ones it already gave:
    with 100,000 connections held, one ``connect()`` from 127.0.0.1 took 1.6 ms of
    kernel CPU (0.05 ms from an address of its own). Real clients come from many
    addresses. Generator ``k`` gets ``127.1.k.1`` .. ``127.1.k.<count>``: each holds one
    port per connection until 60 s after it closes (TIME_WAIT), so a drop and rejoin
    needs twice the connections' ports."""
    if not is_loopback_ipv4(urlsplit(url).hostname) or not 0 <= k < 256:
        return []
    return ["127.1.%d.%d" % (k, j + 1) for j in range(count)]


def split(total, parts):
    """``total`` clients over ``parts`` generators as contiguous (first, count) blocks."""
    base, extra = divmod(total, parts)
    blocks, first = [], 0
    for k in range(parts):
        count = base + (1 if k < extra else 0)
        blocks.append((first, count))
        first += count
    return blocks


class Generator:
    def __init__(self, k, url, first, count, log_dir, node_bin="node", **flags):
        self.k, self.url, self.first, self.count = k, url, first, count
        sources = loopback_sources(url, k)
        self.argv = command(node_bin, "storm", url=url, first=first, clients=count,
                            local_address=",".join(sources) if sources else None, **flags)
        self.log_path = Path(log_dir) / ("stormgen-%d.jsonl" % k)
        self.lock = threading.Lock()
        self.progress = {}      # the latest progress line
        self.joined = {}        # phase -> its "joined" line
        self.dropped = None     # the "dropped" line
        self.done = None        # the "done" or "fatal" line
        self.errors = []        # the first error lines
        self.proc = None

    def start(self):
        """Start it; its open-files limit is this process's (storm.py raised it first)."""
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, text=True, bufsize=1, start_new_session=True)
        threading.Thread(target=self._read, args=(log,), daemon=True).start()
        return self

    def _read(self, log):
        for line in self.proc.stdout:
            log.write(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("ev")
            with self.lock:
                if kind == "progress":
                    self.progress = event
                elif kind == "joined":
                    self.joined.setdefault(event["phase"], event)
                elif kind == "dropped":
                    self.dropped = event
                elif kind == "error" and len(self.errors) < MAX_ERROR_SAMPLES:
                    self.errors.append(event)
                elif kind in ("done", "fatal"):
                    self.done = event
        log.close()

    def send(self, command):
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def unrequested(self):
        with self.lock:
            return sum(self.progress.get("unrequested", {}).values())

    def status(self):
        """Ask for a progress line now and wait for it (at most ``1`` s)."""
        before = self.progress.get("t")
        self.send("status")
        deadline = time.monotonic() + 1.0
        while self.alive() and self.progress.get("t") == before and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            return dict(self.progress)

    def stop(self, timeout=10):
        if self.proc is None:
            return
        self.send("quit")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def wait_joined(gens, phase, deadline, on_tick=None, tick=2.0):
    """Wait until every generator reported ``phase`` joined, one dies, or ``deadline``
    (time.monotonic()) passes; returns True when all joined."""
    last = time.monotonic()
    while time.monotonic() < deadline:
        if all(phase in g.joined for g in gens):
            return True
        if any(not g.alive() for g in gens):
            return False
        if on_tick and time.monotonic() - last >= tick:
            on_tick(gens)
            last = time.monotonic()
        time.sleep(0.05)
    return False


def phase_rates(gens, phase, t0):
    """Per generator and overall: joins/s from first to last join, and seconds since t0 (ms)."""
    per, firsts, lasts = [], [], []
    for g in gens:
        ev = g.joined.get(phase)
        if ev is None:
            per.append(None)
            continue
        firsts.append(ev["first_join"])
        lasts.append(ev["last_join"])
        per.append({"rate": ev["rate"], "until_last_s": round((ev["last_join"] - t0) / 1000, 3),
                    "joins": ev["joins"], "attempts": ev["attempts"]})
    total = sum(g.count for g in gens)
    overall = None
    if len(lasts) == len(gens):
        span = (max(lasts) - min(firsts)) / 1000
        overall = {"rate": round(total / span) if span > 0 else None,
                   "until_last_s": round((max(lasts) - t0) / 1000, 3)}
    return per, overall
