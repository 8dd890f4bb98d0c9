"""Repeated runs of one system and workload, merged into one record.

Counts (sent, delivered, lost, out of order ...) are summed over the runs;
every other number (rates, latencies, CPU, memory) is the median of the runs;
``spread`` keeps (min, max) of the headline figures.
"""
import statistics

# Figures that are counts of events: summed over repeated runs, not medians.
COUNT_KEYS = frozenset({"sent", "acked", "expected", "delivered", "lost", "duplicated", "out_of_order", "seq_gaps",
                        "seq_mismatch", "ack_unresolved", "disconnects", "foreign", "delivered_unacked", "events"})


def _merge_values(values, key=None, summed=False):
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(isinstance(v, dict) for v in values):
        keys = list(dict.fromkeys(k for v in values for k in v))
        return {k: _merge_values([v.get(k) for v in values], k, summed=summed or key == "ack_errors") for k in keys}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        if summed or key in COUNT_KEYS:
            return sum(values)
        m = statistics.median(values)
        if all(isinstance(v, int) for v in values) and m == int(m):
            return int(m)
        return round(m, 3) if isinstance(m, float) else m
    if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1 and values[0] and \
            all(isinstance(x, list) and len(x) == 2 for x in values[0]):
        # a CDF: the median of each quantile
        return [[values[0][i][0], statistics.median(v[i][1] for v in values)] for i in range(len(values[0]))]
    return values[0]


def merge(records):
    """One record from repeated runs of one system and workload (see the module docstring)."""
    good = [r for r in records if r.get("status") in ("ok", "integrity_violation")]
    if len(records) == 1 or not good:
        return dict(records[0], runs=len(good), runs_failed=len(records) - len(good))
    out = dict(good[0])
    for key in ("figures", "processes", "pipe", "loadgen"):
        if key in out:
            out[key] = _merge_values([r.get(key) for r in good])
    out["status"] = "integrity_violation" if any(r["status"] == "integrity_violation" for r in good) else "ok"
    out["runs"], out["runs_failed"] = len(good), len(records) - len(good)
    spread = {}
    for name, path in (("server_cpu_us_per_delivery", ("figures", "server_cpu_us_per_delivery")),
                       ("delivery_p99_ms", ("figures", "latency_ms", "p99")),
                       ("flat_msgs_per_s", ("pipe", "flat", "messages_per_s")),
                       ("fixed_p99_ms", ("pipe", "fixed", "latency_ms", "p99"))):
        vals = []
        for r in good:
            v = r
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if isinstance(v, (int, float)):
                vals.append(v)
        if len(vals) > 1:
            spread[name] = [min(vals), max(vals)]
    out["spread"] = spread
    return out


def merged(records):
    """One record per (system, workload), in first-seen order; ramp keeps only its summary."""
    groups = {}
    for r in records:
        if r.get("workload") == "ramp" and not r.get("summary"):
            continue
        groups.setdefault((r.get("system"), r.get("workload")), []).append(r)
    return [merge(rs) for rs in groups.values()]
