"""The cluster's figures, read from every node's and broker's ``/metrics``.

No Django here: the /ops/ dashboard (dashboard.py) and ``scripts/status`` both
use it.  :class:`ClusterSampler` scrapes all targets in parallel with a bounded
timeout (a stopped node costs at most that), keeps the result for ``cache_s``
(many dashboards, one scrape a second), and turns counters into rates and the
ack histogram into a 99th percentile from the difference between samples.
"""
import collections
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families

from chatstream import config, discovery

# Counters summed per target, by the name the dashboard shows.
COUNTERS = {"accepted": "chat_messages_accepted_total", "deliveries": "chat_deliveries_total",
            "refused": "chat_messages_refused_total", "rate_limited": "chat_rate_limited_total",
            "slow_cut": "chat_slow_clients_cut_total",
            "sequenced": "chat_broker_messages_sequenced_total",
            "duplicates": "chat_broker_duplicates_total"}
GAUGES = {"rooms": "chat_rooms_local", "link_up": "chat_link_up",
          "heartbeat_age_s": "chat_heartbeat_age_seconds", "nodes": "chat_broker_nodes",
          "rooms_in_memory": "chat_broker_rooms_in_memory",
          "archive_lag_events": "chat_archive_lag_events",
          "archive_lag_s": "chat_archive_lag_seconds"}
# A target's kind by its name's start (CHAT_OPS_TARGETS); any other name is a node.
KINDS = ("broker", "archiver")
HISTORY_POINTS = 60        # the sparkline: one point per sample, about a minute
P99_WINDOW_S = 10.0        # the ack p99 covers about the last 10 s


def read_target(name, url, timeout_s=config.OPS_SCRAPE_TIMEOUT_S):
    """One target's figures: {name, kind, up, error, counters..., gauges..., buckets}."""
    figures = {"name": name, "kind": next((k for k in KINDS if name.startswith(k)), "node"),
               "url": url, "up": False, "error": None}
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=timeout_s) as answer:
            text = answer.read().decode("utf-8")
    except (OSError, ValueError) as exc:
        figures["error"] = str(getattr(exc, "reason", exc))
        return figures
    figures["up"] = True
    figures.update({key: 0.0 for key in COUNTERS})
    figures["connections"] = {}
    figures["buckets"] = {}
    by_name = {v: k for k, v in COUNTERS.items()}
    gauges = {v: k for k, v in GAUGES.items()}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in by_name:
                figures[by_name[s.name]] += s.value
            elif s.name in gauges:
                figures[gauges[s.name]] = s.value
            elif s.name == "chat_connections":
                figures["connections"][s.labels["transport"]] = int(s.value)
            elif s.name == "chat_ack_seconds_bucket":
                figures["buckets"][float(s.labels["le"])] = s.value
            elif s.name == "chat_link_state" and s.value == 1:
                figures["link"] = s.labels["state"]
            elif s.name == "chat_link_pair_state" and s.value == 1:   # several broker pairs
                figures.setdefault("pairs", {})[s.labels["pair"]] = s.labels["state"]
            elif s.name == "chat_broker_role" and s.value == 1:
                figures["role"] = s.labels["role"]
    return figures


def quantile(q, buckets):
    """Prometheus's histogram_quantile over cumulative ``{le: count}``; None without data."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(buckets[le] - below, 1e-12)
        lower, below = le, buckets[le]
    return lower


def _delta(new, old, key):
    return max(0.0, new.get(key, 0.0) - old.get(key, 0.0)) if new["up"] and old["up"] else 0.0


class ClusterSampler:
    """Scrape ``targets`` ([(name, url)]) and the nodes of ``targets_file`` (the
    discovery file scripts/node writes, read at every scrape: an added node shows at
    the next one, a removed one is gone) at most once per ``cache_s``."""

    def __init__(self, targets, timeout_s=config.OPS_SCRAPE_TIMEOUT_S, cache_s=config.OPS_CACHE_S,
                 targets_file=None):
        self.targets = list(targets)
        self.targets_file = targets_file
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self.samples = collections.deque(maxlen=64)   # (monotonic, {name: figures})
        self.history = collections.deque(maxlen=HISTORY_POINTS)   # (msg/s, deliveries/s)
        self.lock = threading.Lock()
        self.last = None

    def scrape(self):
        """{name: figures} of every target, read in parallel."""
        targets = discovery.merged(self.targets, self.targets_file)
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            found = pool.map(lambda t: read_target(t[0], t[1], self.timeout_s), targets)
            return {f["name"]: f for f in found}

    def sample(self):
        """The cluster now: targets with rates, totals, and the rates' recent history."""
        with self.lock:
            now = time.monotonic()
            if self.last is not None and now - self.last[0] < self.cache_s:
                return self.last[1]
            self.samples.append((now, self.scrape()))
            self.last = (now, self._summary())
            return self.last[1]

    def _summary(self):
        now, current = self.samples[-1]
        then, previous = self.samples[-2] if len(self.samples) > 1 else (now, current)
        window = next(((t, s) for t, s in self.samples if now - t <= P99_WINDOW_S), (now, current))
        elapsed = max(now - then, 1e-6)
        rows, merged = [], collections.Counter()
        for name, figures in current.items():
            row = {k: v for k, v in figures.items() if k != "buckets"}
            old = previous.get(name, figures)
            for key in ("accepted", "deliveries", "sequenced"):
                row[key + "_per_s"] = round(_delta(figures, old, key) / elapsed, 2) if now > then else 0.0
            old_buckets = window[1].get(name, figures).get("buckets", {})
            buckets = {le: max(0.0, count - old_buckets.get(le, 0.0))
                       for le, count in figures.get("buckets", {}).items()}
            merged.update(buckets)
            p99 = quantile(0.99, buckets)
            row["ack_p99_ms"] = None if p99 is None else round(p99 * 1000, 2)
            row["connections_total"] = sum(figures.get("connections", {}).values())
            row["state"] = _state(figures)
            rows.append(row)
        nodes = [r for r in rows if r["kind"] == "node"]
        p99 = quantile(0.99, merged)
        totals = {"connections": sum(r["connections_total"] for r in nodes),
                  "messages_per_s": round(sum(r["accepted_per_s"] for r in nodes), 2),
                  "deliveries_per_s": round(sum(r["deliveries_per_s"] for r in nodes), 2),
                  "ack_p99_ms": None if p99 is None else round(p99 * 1000, 2),
                  "rooms": rooms_in_memory(rows),
                  "nodes_up": sum(1 for r in nodes if r["state"] == "up"), "nodes": len(nodes),
                  **_archive_lag(rows),
                  "down": sorted(r["name"] for r in rows if r["state"] != "up")}
        self.history.append((totals["messages_per_s"], totals["deliveries_per_s"]))
        return {"time": time.time(), "targets": rows, "totals": totals,
                "history": list(self.history)}


def _archive_lag(rows):
    """The archive's lag (events, seconds): the largest an archiver reports; None when
    no archiver answers."""
    archivers = [r for r in rows if r["kind"] == "archiver" and r["up"]]
    if not archivers:
        return {"archive_lag_events": None, "archive_lag_s": None}
    return {"archive_lag_events": int(max(r.get("archive_lag_events", 0) for r in archivers)),
            "archive_lag_s": round(max(r.get("archive_lag_s", 0.0) for r in archivers), 2)}


def rooms_in_memory(rows):
    """Rooms the brokers hold: each pair's both brokers hold the same rooms (the larger
    count), the pairs different ones (summed; chatstream.config.broker_pair)."""
    per_pair = {}
    for r in rows:
        if r["kind"] == "broker":
            pair = config.broker_pair(r["name"]) or r["name"]
            per_pair[pair] = max(per_pair.get(pair, 0), r.get("rooms_in_memory", 0))
    return sum(per_pair.values())


def _state(figures):
    """up, degraded (answers but does not follow the broker) or down."""
    if not figures["up"]:
        return "down"
    if figures["kind"] == "node" and figures.get("link") != "live":
        return "degraded"
    return "up"
