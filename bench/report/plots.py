"""PNG plots of one bench run (matplotlib, no display needed)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import SYSTEM_LABELS  # noqa: E402

COLORS = {"ours": "tab:blue", "redis": "tab:red", "node": "tab:orange", "zmq": "tab:green",
          "broker": "tab:purple"}


def _cdf_axes(ax_cdf, ax_tail, cdf, label, color):
    if not cdf:
        return
    xs = [max(v, 1e-3) for _, v in cdf]
    ps = [p / 100 for p, _ in cdf]
    ax_cdf.plot(xs, ps, label=label, color=color)
    tail = [(x, 1 - p) for x, p in zip(xs, ps) if p < 1]
    if tail:
        ax_tail.plot([x for x, _ in tail], [t for _, t in tail], label=label, color=color, marker=".")


def latency_cdfs(records, out_dir, stamp):
    """latency_cdf_<workload>.png for fanout, burst and the pipe's fixed phase."""
    written = []
    for workload in ("fanout", "burst", "pipe"):
        rs = [r for r in records if r.get("workload") == workload]
        if not rs:
            continue
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for r in rs:
            if workload == "pipe":
                if "pipe" not in r:
                    continue
                cdf = r["pipe"]["fixed"]["latency_cdf_ms"]
                label = "raw zmq proxy" if r["pipe"]["mode"] == "raw" else "our broker alone"
                color = COLORS["zmq"] if r["pipe"]["mode"] == "raw" else COLORS["broker"]
            else:
                cdf = ((r.get("loadgen") or {}).get("window") or {}).get("latency_cdf_ms")
                label, color = SYSTEM_LABELS.get(r["system"], r["system"]), COLORS.get(r["system"])
            _cdf_axes(ax1, ax2, cdf, label, color)
        p = rs[0]["params"]
        if workload == "pipe":
            title = "pipe: 3 peers, %.0f msg/s fixed rate" % p["rate"]
        else:
            title = "%s: %d clients, %d rooms, %.0f msg/s" % (workload, p["clients"], p["rooms"], p["rate"])
        ax1.set(xscale="log", xlabel="delivery latency (ms)", ylabel="fraction of deliveries", title=title + ": CDF")
        ax2.set(xscale="log", yscale="log", xlabel="delivery latency (ms)", ylabel="fraction slower",
                title="tail (1 - CDF)")
        for ax in (ax1, ax2):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        written.append(_save(fig, out_dir, "latency_cdf_%s.png" % workload, stamp))
    return written


def ramp(records, out_dir, stamp):
    """ramp.png: deliveries/s achieved and p99 against the offered rate."""
    rs = [r for r in records if r.get("workload") == "ramp" and r.get("summary")]
    if not rs:
        return []
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
    top = 0
    for r in rs:
        steps = sorted(r["steps"], key=lambda s: s["rate"])
        color = COLORS.get(r["system"])
        label = SYSTEM_LABELS.get(r["system"], r["system"])
        xs = [s["offered_deliveries_per_s"] or s["rate"] * r["members_per_room"] for s in steps]
        ys = [s["deliveries_per_s"] or 0 for s in steps]
        top = max([top] + xs + ys)
        ax1.plot(xs, ys, color=color, marker="o", label=label)
        bad = [(x, y) for x, y, s in zip(xs, ys, steps) if not s["clean"]]
        if bad:
            ax1.scatter([x for x, _ in bad], [y for _, y in bad], color=color, marker="x", s=80, zorder=3)
        ax2.plot([s["rate"] for s in steps], [s["p99_ms"] or float("nan") for s in steps], color=color, marker="o",
                 label=label)
        ax3.plot([s["rate"] for s in steps], [s["server_cpu_us_per_delivery"] or float("nan") for s in steps],
                 color=color, marker="o", label=label)
        if r.get("max_sustainable_msgs_per_s"):
            ax2.axvline(r["max_sustainable_msgs_per_s"], color=color, ls=":", alpha=0.7)
            ax3.axvline(r["max_sustainable_msgs_per_s"], color=color, ls=":", alpha=0.7)
    ax1.plot([0, top], [0, top], color="gray", ls="--", lw=1, label="achieved = offered")
    p = rs[0]["params"]
    ax1.set(xlabel="offered deliveries/s", ylabel="deliveries/s achieved",
            title="ramp: %d clients, %d rooms (× = not sustained)" % (p["clients"], p["rooms"]))
    ax2.axhline(p["p99_ms"], color="gray", ls="--", lw=1, label="p99 limit")
    ax2.set(xlabel="offered messages/s", ylabel="delivery p99 (ms)", yscale="log",
            title="p99 vs offered rate (dotted: max sustainable)")
    ax3.set(xlabel="offered messages/s", ylabel="server CPU µs per delivery", ylim=(0, None),
            title="CPU per delivery falls as wake-ups batch")
    for ax in (ax1, ax2, ax3):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return [_save(fig, out_dir, "ramp.png", stamp)]


def cpu_per_delivery(records, out_dir, stamp):
    """cpu_per_delivery.png: server CPU per delivery by workload and system, split by process kind."""
    bars = []
    for r in records:
        if r.get("workload") in ("fanout", "burst") and (r.get("figures") or {}).get("server_cpu_us_per_delivery"):
            deliveries = r["loadgen"]["window"]["deliveries_in_window"]
            nodes = sum(p.get("cpu_window_s", 0) for n, p in r["processes"].items() if n.startswith("node"))
            hub = sum(p.get("cpu_window_s", 0) for n, p in r["processes"].items() if not n.startswith("node"))
            bars.append(("%s\n%s" % (r["workload"], r["system"]), 1e6 * nodes / deliveries, 1e6 * hub / deliveries,
                         r["system"]))
    if not bars:
        return []
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(bars))
    ax.bar(xs, [b[1] for b in bars], color=[COLORS.get(b[3]) for b in bars], label="nodes")
    ax.bar(xs, [b[2] for b in bars], bottom=[b[1] for b in bars], color="lightgray", edgecolor="gray",
           label="broker / redis-server")
    ax.set_xticks(list(xs), [b[0] for b in bars], fontsize=8)
    ax.set(ylabel="server CPU µs per delivery", title="server CPU per delivery (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return [_save(fig, out_dir, "cpu_per_delivery.png", stamp)]


def _save(fig, out_dir, name, stamp):
    """Stamp the run into a corner, write ``out_dir/name`` and free the figure."""
    fig.text(0.99, 0.01, stamp, ha="right", va="bottom", fontsize=7, color="gray")
    fig.tight_layout()
    path = Path(out_dir) / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def all_plots(records, out_dir, stamp):
    return latency_cdfs(records, out_dir, stamp) + ramp(records, out_dir, stamp) + \
        cpu_per_delivery(records, out_dir, stamp)
