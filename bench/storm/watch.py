"""What bench.storm watches while the storm runs: every node's /healthz and /metrics,
a probe client's message acks, and a node's process (found by the port it listens on).

Figures are kept per phase (``connect``, ``hold``, ``reconnect``, ``sigterm``): the
orchestrator sets :attr:`Phases.name` and every sample lands in the phase it was taken in.
"""
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

from bench.storm.generators import is_loopback_ipv4


SLOW_HEALTH_S = 1.0          # a /healthz answer slower than this is counted "slow"
LINK_METRIC = re.compile(r'^chat_link_(up|state)(?:\{state="(\w+)"\})? (\S+)$', re.M)
CONNECTIONS_METRIC = re.compile(r'^chat_connections\{transport="websocket"\} (\S+)$', re.M)


WATCH_SOURCE = "127.2.0.1"   # the watchers' own loopback address (see generators.loopback_sources)


def http_get(url, path, timeout):
    """``(status, body text)`` of a GET on a fresh connection (as a balancer's check makes);
    from :data:`WATCH_SOURCE` when the host is an IPv4 loopback address. Raises
    ``OSError`` or ``http.client.HTTPException``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout,
                                      source_address=(WATCH_SOURCE, 0)
                                      if is_loopback_ipv4(parts.hostname) else None)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        conn.close()


class Phases:
    """The current phase's name, shared by the watchers."""
    name = "connect"


def quantile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


class NodeWatch:
    """Polls one node's /healthz every ``interval`` s (a fresh connection each time, as a
    balancer's check does) and its /metrics every ``metrics_interval`` s (0: never)."""

    def __init__(self, url, phases, interval=0.25, metrics_interval=1.0, timeout=5.0):
        self.url, self.phases = url, phases
        self.interval, self.metrics_interval, self.timeout = interval, metrics_interval, timeout
        self.stats = {}        # phase -> figures
        self.timeline = []     # (t, phase, websocket connections, link up) from /metrics
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._health, daemon=True)]
        if metrics_interval:
            self.threads.append(threading.Thread(target=self._metrics, daemon=True))

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stopped.set()
        for thread in self.threads:
            thread.join(self.timeout + 1)

    def _phase_stats(self):
        return self.stats.setdefault(self.phases.name, {
            "polls": 0, "failed": 0, "slow": 0, "broker_down": 0, "max_ms": 0.0, "latencies": [],
            "link_down_samples": 0, "link_states": set(), "first_failure": None})

    def _health(self):
        while not self.stopped.is_set():
            t0 = time.monotonic()
            try:
                status, text = http_get(self.url, "/healthz", self.timeout)
                body = json.loads(text)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status, body = None, {"error": type(exc).__name__}
            took = time.monotonic() - t0
            s = self._phase_stats()
            s["polls"] += 1
            s["latencies"].append(took)
            s["max_ms"] = max(s["max_ms"], took * 1000)
            if status != 200:
                s["failed"] += 1
                s["first_failure"] = s["first_failure"] or {"status": status, "body": body,
                                                            "t": round(time.time(), 3)}
            if body.get("broker") == "down":
                s["broker_down"] += 1
            if took > SLOW_HEALTH_S:
                s["slow"] += 1
            self.stopped.wait(max(0.0, self.interval - took))

    def _metrics(self):
        while not self.stopped.is_set():
            t0 = time.monotonic()
            try:
                text = http_get(self.url, "/metrics", self.timeout)[1]
            except (OSError, http.client.HTTPException):
                text = ""
            link_up, conns, s = None, None, self._phase_stats()
            for kind, state, value in LINK_METRIC.findall(text):
                if kind == "up":
                    link_up = float(value) == 1
                elif float(value) == 1:
                    s["link_states"].add(state)
            found = CONNECTIONS_METRIC.search(text)
            if found:
                conns = int(float(found.group(1)))
            if link_up is False:
                s["link_down_samples"] += 1
            self.timeline.append((round(time.time(), 3), self.phases.name, conns, link_up))
            self.stopped.wait(max(0.0, self.metrics_interval - (time.monotonic() - t0)))

    def summary(self):
        out = {}
        for phase, s in self.stats.items():
            out[phase] = {"polls": s["polls"], "failed": s["failed"], "slow": s["slow"],
                          "broker_down": s["broker_down"], "max_ms": round(s["max_ms"], 1),
                          "p50_ms": ms(quantile(s["latencies"], 0.5)),
                          "link_down_samples": s["link_down_samples"],
                          "link_states": sorted(s["link_states"]), "first_failure": s["first_failure"]}
        return out


SLOW_ACK_MS = 50   # the target for a probe ack during the hold


class Probe:
    """The probe client (bench/storm/probe.py, a process of its own) in ``room``: a
    message every ``period`` s; each ack's latency is recorded under the phase it
    came in, and with ``listen_url`` each message's delivery to a client there."""

    def __init__(self, url, room, phases, period=1.0, timeout=5.0, listen_url=None):
        self.phases, self.timeout = phases, timeout
        self.acks = {}         # phase -> [latency s]
        self.deliveries = {}   # phase -> [send to receipt at the listener, s]
        self.slow = {}         # phase -> [(Unix time sent, latency ms)] of acks over SLOW_ACK_MS
        self.errors = {}       # phase -> {code: count}
        listen = ["--listen-url", listen_url] if listen_url else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.storm.probe", "--url", url, "--room", room, "--period",
             str(period), "--timeout", str(timeout), *listen], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()   # joined, or the process ended
        if not ready.strip():
            self.stop()
            raise RuntimeError("the probe could not join %s at %s" % (room, url))
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                sample = json.loads(line)
            except ValueError:
                continue
            phase = self.phases.name
            if "delivery_ms" in sample:
                self.deliveries.setdefault(phase, []).append(sample["delivery_ms"] / 1000)
                continue
            if sample.get("error"):
                errors = self.errors.setdefault(phase, {})
                errors[sample["error"]] = errors.get(sample["error"], 0) + 1
                continue
            self.acks.setdefault(phase, []).append(sample["ms"] / 1000)
            if sample["ms"] > SLOW_ACK_MS:   # when, to match with the nodes' and brokers' logs
                self.slow.setdefault(phase, []).append((sample["t"], sample["ms"]))

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "thread", None) is not None and self.thread.is_alive():
            self.thread.join(2)

    def summary(self):
        phases = set(self.acks) | set(self.errors) | set(self.deliveries)
        out = {}
        for phase in phases:
            acks, deliveries = self.acks.get(phase, []), self.deliveries.get(phase, [])
            out[phase] = {"acked": len(acks), "errors": self.errors.get(phase, {}),
                          "p50_ms": ms(quantile(acks, 0.5)), "p99_ms": ms(quantile(acks, 0.99)),
                          "max_ms": ms(max(acks, default=None)),
                          "delivered": len(deliveries),
                          "delivery_p50_ms": ms(quantile(deliveries, 0.5)),
                          "delivery_p99_ms": ms(quantile(deliveries, 0.99)),
                          "delivery_max_ms": ms(max(deliveries, default=None)),
                          "slow": self.slow.get(phase, [])[:100]}
        return out


# processes: found by the port they listen on, signalled by pid

def _listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add("socket:[%s]" % fields[9])
        except OSError:
            continue
    return inodes


def pid_listening_on(port):
    """The pid of the process that listens on TCP ``port`` (None if none is seen)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
                    return int(pid)
            except OSError:
                continue
    return None


def process_facts(pid):
    """A node process's open-files limit and CHAT_MAX_CONNECTIONS (None where unreadable)."""
    facts = {"pid": pid, "open_files": None, "max_connections": None}
    try:
        limits = open("/proc/%d/limits" % pid).read()
        found = re.search(r"^Max open files\s+(\S+)", limits, re.M)
        facts["open_files"] = int(found.group(1)) if found and found.group(1).isdigit() else None
        env = open("/proc/%d/environ" % pid, "rb").read().split(b"\0")
        for item in env:
            if item.startswith(b"CHAT_MAX_CONNECTIONS="):
                facts["max_connections"] = int(item.split(b"=", 1)[1])
    except (OSError, ValueError):
        pass
    return facts


def exited(pid):
    """True once ``pid`` is gone or a zombie (exited, not yet reaped by its parent)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def time_to_exit(pid, timeout, sig):
    """Send ``sig`` to ``pid`` and return the seconds until it exited (None: not within ``timeout``)."""
    t0 = time.monotonic()
    os.kill(pid, sig)
    while time.monotonic() - t0 < timeout:
        if exited(pid):
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def listen_overflows():
    """The kernel's count of connections dropped for a full accept queue (TcpExt
    ListenOverflows, this network namespace, every listener): SYNs then wait ~1 s to be sent again."""
    try:
        lines = [line.split() for line in open("/proc/net/netstat") if line.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1]))["ListenOverflows"])
    except (OSError, IndexError, KeyError, ValueError):
        return None
