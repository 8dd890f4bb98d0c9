"""Markdown tables from one bench run's records (printed and written to docs/bench/summary.md).

Repeated runs of one system and workload are merged first: counts (sent,
delivered, lost, out of order ...) are summed over the runs, every other
number (rates, latencies, CPU, memory) is the median of the runs.
"""
from .repeats import merged

SYSTEM_LABELS = {"ours": "ours (ZeroMQ broker)", "redis": "python-socketio + RedisManager",
                 "node": "Node socket.io + redis adapter", "zmq": "raw pyzmq XSUB/XPUB proxy"}
# The headline's peers, each with a column and a ratio "ours / peer".
PEERS = ("redis", "node")


def _spread(r, name, value):
    sp = (r.get("spread") or {}).get(name)
    if not sp:
        return value
    return "%s (%s–%s)" % (value, _num(sp[0]), _num(sp[1]))


def _ms(lat, keys=("p50", "p90", "p99", "max")):
    if not lat or lat.get("p50") is None:
        return "–"
    return " / ".join(_num(lat.get(k)) for k in keys)


def _num(x, digits=None):
    if x is None:
        return "–"
    if isinstance(x, float):
        if digits is not None:
            return "%.*f" % (digits, x)
        return "%.0f" % x if abs(x) >= 100 else "%.1f" % x if abs(x) >= 10 else "%.2f" % x
    return str(x)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _procs(record, key):
    out = []
    for name, p in (record.get("processes") or {}).items():
        if key == "cpu":
            out.append("%s %s" % (name, _num(p.get("cpu_window_pct"))))
        else:
            out.append("%s %.0f" % (name, (p.get("hwm_kb") or 0) / 1024))
    return ", ".join(out) or "–"


def _errors(f):
    errs = dict(f.get("ack_errors") or {})
    if f.get("ack_unresolved"):
        errs["unresolved"] = f["ack_unresolved"]
    return ", ".join("%s %d" % kv for kv in errs.items()) or "0"


def fixed_table(records):
    header = ["system", "sent / acked", "ack errors", "expected / delivered", "lost / dup / out of order",
              "deliveries/s", "ack ms p50 / p90 / p99 / max", "delivery ms p50 / p90 / p99 / max", "cross-node",
              "server CPU µs / delivery", "CPU % of a core (window)", "peak RSS MB", "loadgen CPU %",
              "other load %"]
    rows = []
    for r in records:
        f = r.get("figures") or {}
        if "sent" not in f:
            rows.append([SYSTEM_LABELS.get(r["system"], r["system"]), "failed: %s" % r.get("status")] + [""] * 12)
            continue
        rows.append([SYSTEM_LABELS.get(r["system"], r["system"]), "%d / %d" % (f["sent"], f["acked"]), _errors(f),
                     "%d / %d" % (f["expected"], f["delivered"]),
                     "%d / %d / %d" % (f["lost"], f["duplicated"], f["out_of_order"]),
                     _num(f["deliveries_per_s"]), _ms(f["ack_latency_ms"]),
                     _spread(r, "delivery_p99_ms", _ms(f["latency_ms"])),
                     "%.0f%%" % (100 * f["cross_node_fraction"]) if f.get("cross_node_fraction") is not None else "–",
                     _spread(r, "server_cpu_us_per_delivery", _num(f["server_cpu_us_per_delivery"])),
                     _procs(r, "cpu"), _procs(r, "rss"),
                     _num(f.get("loadgen_cpu_pct_of_core")), _num(f.get("other_cpu_pct"))])
    return _table(header, rows)


def ramp_table(summaries):
    header = ["system", "max sustainable msg/s", "deliveries/s there", "server CPU µs / delivery there",
              "loadgen CPU % there", "first rate not sustained (why)", "steps (msg/s: p99 ms)"]
    rows = []
    for r in summaries:
        bad = next((s for s in r["steps"] if not s["clean"]), None)
        steps = ", ".join("%.0f%s: %s" % (s["rate"], "" if s["clean"] else "✗", _num(s["p99_ms"]))
                          for s in sorted(r["steps"], key=lambda s: s["rate"]))
        rows.append([SYSTEM_LABELS.get(r["system"], r["system"]), _num(r["max_sustainable_msgs_per_s"]),
                     _num(r["max_sustainable_deliveries_per_s"]), _num(r["server_cpu_us_per_delivery_at_max"]),
                     _num(r["loadgen_cpu_pct_at_max"]),
                     "%s (%s)" % (_num(bad["rate"]), bad["reason"]) if bad else "none up to the cap",
                     steps])
    return _table(header, rows)


def idle_table(records):
    header = ["system", "connections", "RSS KB / connection (nodes)", "RSS KB / connection (all servers)",
              "node RSS MB while holding", "connect + join s", "RSS delta KB per process"]
    rows = []
    for r in records:
        f = r.get("figures") or {}
        if "connections" not in f:
            rows.append([SYSTEM_LABELS.get(r["system"], r["system"]), "failed: %s" % r.get("status"), "", "", "", "",
                         ""])
            continue
        rows.append([SYSTEM_LABELS.get(r["system"], r["system"]), f["connections"],
                     _num(f["rss_kb_per_connection_nodes"]), _num(f["rss_kb_per_connection_all"]),
                     _num(f["node_rss_mb_holding"]), _num(f["connect_join_s"]),
                     ", ".join("%s %+d" % (n, p["delta_kb"]) for n, p in r["processes"].items())])
    return _table(header, rows)


def pipe_table(records):
    header = ["system (3 peers)", "frame bytes", "fixed: msg/s in / deliveries/s", "fixed: lost / ooo",
              "fixed: latency ms p50 / p90 / p99 / max", "flat out: msg/s in / deliveries/s",
              "flat out: latency ms p50 / p99", "hub CPU µs / message (flat)", "CPU % of a core (flat)"]
    rows = []
    for r in records:
        p = r["pipe"]
        fx, fl = p["fixed"], p["flat"]
        label = "raw pyzmq XSUB/XPUB proxy" if p["mode"] == "raw" else "our broker alone"
        rows.append([label, p["msg_bytes"], "%s / %s" % (_num(fx["messages_per_s"]), _num(fx["deliveries_per_s"])),
                     "%d / %d" % (fx["lost"], p["integrity"]["out_of_order"]),
                     _spread(r, "fixed_p99_ms", _ms(fx["latency_ms"])),
                     _spread(r, "flat_msgs_per_s",
                             "%s / %s" % (_num(fl["messages_per_s"]), _num(fl["deliveries_per_s"]))),
                     _ms(fl["latency_ms"], ("p50", "p99")), _num(fl["hub_cpu_us_per_message"]),
                     _procs(fl, "cpu")])
    return _table(header, rows)


# Frames on (nearly) every stack (greenlet and thread entry points) say nothing
# in the inclusive table.
ROOT_FRAME_PCT = 90


def profile_tables(records, limit=12):
    out = []
    for r in records:
        for name, prof in (r.get("profiles") or {}).items():
            out.append("**%s, %s** — %d samples at 100 Hz over %s s (%.0f%% of the window on CPU); "
                       "share of samples:" % (SYSTEM_LABELS.get(r["system"], r["system"]), name, prof["samples"],
                                               _num(r["params"]["duration"]),
                                               100.0 * prof["samples"] / max(1, prof["expected_samples"])))
            out.append("")
            rows = []
            for i in range(limit):
                s = prof["self"][i] if i < len(prof["self"]) else ("", "")
                rows.append(["`%s`" % s[0] if s[0] else "", "%s%%" % s[1] if s[0] else ""])
            incl = [x for x in prof["inclusive"] if x[1] < ROOT_FRAME_PCT][:limit]
            for i in range(limit):
                c = incl[i] if i < len(incl) else ("", "")
                rows[i] += ["`%s`" % c[0] if c[0] else "", "%s%%" % c[1] if c[0] else ""]
            out.append(_table(["function (self: the sampled frame)", "% of samples",
                               "function (inclusive: anywhere on the stack)", "% of samples"], rows))
            out.append("")
            cats = prof.get("categories")
            if cats is None and prof.get("raw"):
                from . import profile as pyspy
                from pathlib import Path
                if Path(prof["raw"]).exists():
                    cats = pyspy.categories(prof["raw"], pyspy.BROKER_CATEGORIES if name == "broker"
                                            else pyspy.NODE_CATEGORIES)
            if cats:
                out.append("Where %s's samples go (first matching part of the stack):" % name)
                out.append("")
                out.append(_table(["part", "% of samples"], [[k, "%s%%" % v] for k, v in cats.items()]))
                out.append("")
    return "\n".join(out)


def headline(by):
    """Ours vs each baseline (PEERS), one line per target."""
    def get(system, workload, path):
        r = by.get((system, workload))
        for key in path:
            if r is None:
                return None
            r = r.get(key) if isinstance(r, dict) else None
        return r

    rows = []
    def row(what, workload, path, fmt=_num, better="lower"):
        ours, peers = get("ours", workload, path), [get(peer, workload, path) for peer in PEERS]
        ratios = ["%.2f×" % (ours / peer) if isinstance(ours, (int, float)) and isinstance(peer, (int, float))
                  and peer else "–" for peer in peers]
        rows.append([what, fmt(ours)] + [fmt(peer) for peer in peers] + ratios)
    for wl in ("burst", "fanout"):
        row("%s: server CPU µs / delivery" % wl, wl, ("figures", "server_cpu_us_per_delivery"))
        row("%s: delivery p99 ms" % wl, wl, ("figures", "latency_ms", "p99"))
        row("%s: lost / duplicated / out of order" % wl, wl, ("figures",),
            fmt=lambda f: ("%d / %d / %d" % (f["lost"], f["duplicated"], f["out_of_order"])
                           if f and "lost" in f else "–"))
    row("ramp: max sustainable msg/s", "ramp", ("max_sustainable_msgs_per_s",), better="higher")
    row("idle: RSS KB / connection (nodes)", "idle", ("figures", "rss_kb_per_connection_nodes"))
    table = _table(["figure", "ours"] + [SYSTEM_LABELS[peer] for peer in PEERS]
                   + ["ours / %s" % peer for peer in PEERS], rows)
    zmq, broker = get("zmq", "pipe", ("pipe", "flat", "messages_per_s")), get("ours", "pipe", ("pipe", "flat",
                                                                                              "messages_per_s"))
    if zmq or broker:
        table += "\n\nNode-to-node path alone, flat out (3 peers): our broker %s msg/s, raw zmq proxy %s msg/s%s." % (
            _num(broker), _num(zmq), " (broker = %.0f%% of the proxy)" % (100 * broker / zmq) if zmq and broker else "")
    return table


def markdown(records, meta):
    """The whole summary of one bench run (repeats merged, see the module docstring)."""
    all_records = records
    records = merged(records)
    by = {(r.get("system"), r.get("workload")): r for r in records}
    parts = ["# Bench run %s" % meta["bench_run"], "",
             "%s; commit %s (product sources sha256 %s); %s; `%s`" % (
                 meta["ts"], meta.get("commit") or "?", meta.get("product_digest") or "?", meta["machine"],
                 meta["command"]),
             ""]
    digests = {}
    for r in all_records:
        if r.get("product_digest"):
            digests.setdefault(r["product_digest"], []).append("%s/%s" % (r.get("workload"), r.get("system")))
    if len(digests) > 1:
        parts += ["**Warning: the product's sources changed during this run** — the runs measured different "
                  "code: " + "; ".join("%s: %s" % (d, ", ".join(dict.fromkeys(runs))) for d, runs in digests.items()),
                  ""]
    parts += ["## Side by side", "", headline(by), ""]
    for wl in ("fanout", "burst"):
        rs = [r for r in records if r.get("workload") == wl]
        if rs:
            p = rs[0]["params"]
            n = max(r.get("runs", 1) for r in rs)
            parts += ["## %s: %d clients, %d rooms, %d nodes, %.0f msg/s for %.0f s%s" % (
                wl, p["clients"], p["rooms"], p["nodes"], p["rate"], p["duration"],
                " (%d runs each: counts summed, the rest medians, (min–max) of the runs)" % n if n > 1 else ""),
                "", fixed_table(rs), ""]
    ramp = [r for r in records if r.get("workload") == "ramp" and r.get("summary")]
    if ramp:
        p = ramp[0]["params"]
        parts += ["## ramp: %d clients, %d rooms; %.0f s steps from %.0f msg/s ×%.2f, until p99 > %.0f ms or any loss"
                  % (p["clients"], p["rooms"], p["duration"], p["start"], p["factor"], p["p99_ms"]), "",
                  ramp_table(ramp), ""]
    idle = [r for r in records if r.get("workload") == "idle"]
    if idle:
        parts += ["## idle: %d connections, %d rooms" % (idle[0]["params"]["clients"], idle[0]["params"]["rooms"]),
                  "", idle_table(idle), ""]
    pipes = [r for r in records if r.get("workload") == "pipe" and "pipe" in r]
    if pipes:
        p = pipes[0]["params"]
        n = max(r.get("runs", 1) for r in pipes)
        parts += ["## pipe: node-to-node path alone; fixed %.0f msg/s for %.0f s, then flat out for %.0f s "
                  "(window %d per peer)%s" % (p["rate"], p["duration"], p["flat"], p["window"],
                                              " (%d runs each: medians, (min–max))" % n if n > 1 else ""),
                  "", pipe_table(pipes), ""]
    prof = [r for r in records if r.get("workload") == "profile" and r.get("profiles")]
    if prof:
        p = prof[0]["params"]
        parts += ["## profile: py-spy during burst (%d clients, %d rooms, %.0f msg/s)" % (
            p["clients"], p["rooms"], p["rate"]), "",
            "The profiled runs (sampling costs CPU on a 2-core box; these figures are not the table's):", "",
            fixed_table(prof), "", profile_tables(prof)]
    failed = [r for r in all_records if r.get("status") not in ("ok", None) and not r.get("summary")]
    if failed:
        parts += ["## Runs that were not clean", ""]
        for r in failed:
            f = r.get("figures") or {}
            detail = r.get("error") or ""
            if "lost" in f:
                detail = "lost %d, duplicated %d, out of order %d, seq gaps %d, ack errors %s" % (
                    f["lost"], f["duplicated"], f["out_of_order"], f["seq_gaps"], _errors(f)) + (
                    "; ramp: %s" % r["ramp_reason"] if "ramp_reason" in r else "")
            parts.append("- %s %s%s: %s: %s" % (r.get("system"), r.get("workload"), " step %s (%.0f msg/s)" % (
                r["step"], r["params"]["rate"]) if "step" in r else "", r["status"], detail))
        parts.append("")
    return "\n".join(parts)
