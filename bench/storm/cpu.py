"""CPU of every process of a storm, per phase: where a client's join and rejoin cost goes.

Marks are taken at phase boundaries (connect start, all joined, hold end, all rejoined);
between two marks each process's utime + stime grows by its share, and the host's busy
jiffies by everything's: "steal" is the time the hypervisor gave this machine's CPUs to
someone else, and the remainder is "other" (the kernel's softirqs, anything else on the
box).  Processes are found by pid (a node by the port it listens on, a generator by its
Popen), never by name.
"""
import time

from bench.procstat import CLK_TCK, cpu_seconds, host_jiffies, host_steal_jiffies
from bench.storm.watch import pid_listening_on

# The brokers' ROUTER ports and the balancer's port of a default cluster (scripts/run).
SERVICE_PORTS = {"broker": 5555, "broker2": 5565, "balancer": 8000}


class CpuLedger:
    """Per-phase CPU seconds of named processes.

    :param pids: {name: pid}; more can be added with :meth:`add` before the first mark.
    """

    def __init__(self, pids=None):
        self.pids = dict(pids or {})
        self.marks = []   # (label, monotonic, host busy jiffies, {name: cpu_s}, steal jiffies)

    def add(self, name, pid):
        if pid:
            self.pids[name] = pid

    def add_services(self, ports=SERVICE_PORTS):
        for name, port in ports.items():
            self.add(name, pid_listening_on(port))

    def mark(self, label):
        cpu = {}
        for name, pid in self.pids.items():
            try:
                cpu[name] = cpu_seconds(pid)
            except OSError:   # gone (a node stopped): it counts up to its last mark
                pass
        self.marks.append((label, time.monotonic(), host_jiffies()[0], cpu, host_steal_jiffies()))

    def phases(self, per_client=None):
        """{phase: {"wall_s", "host_busy_s", "cpu_s": {name: s}, "groups": {group: s}}}.

        A phase runs from one mark to the next and is named by the later mark.
        ``per_client`` ({phase: clients}) adds each group's CPU per client in ms.
        """
        out = {}
        for (_, t0, busy0, cpu0, steal0), (label, t1, busy1, cpu1, steal1) in zip(self.marks, self.marks[1:]):
            cpu = {n: round(cpu1[n] - cpu0[n], 2) for n in cpu1 if n in cpu0}
            groups = {}
            for name, s in cpu.items():
                group = name.rstrip("0123456789") or name
                groups[group] = round(groups.get(group, 0) + s, 2)
            host = round((busy1 - busy0) / CLK_TCK, 2)
            groups["steal"] = round((steal1 - steal0) / CLK_TCK, 2)
            groups["other"] = round(host - sum(cpu.values()) - groups["steal"], 2)
            phase = {"wall_s": round(t1 - t0, 1), "host_busy_s": host, "cpu_s": cpu, "groups": groups}
            clients = (per_client or {}).get(label)
            if clients:
                phase["ms_per_client"] = {g: round(1000 * s / clients, 3) for g, s in groups.items()}
                phase["ms_per_client"]["all"] = round(1000 * host / clients, 3)
            out[label] = phase
        return out


def lines(phases):
    """The table's lines: each phase's CPU by group (s, and ms per client where known)."""
    out = []
    for label, p in phases.items():
        per = p.get("ms_per_client", {})
        parts = ["%s %.1f s%s" % (g, s, " (%.2f ms/client)" % per[g] if g in per else "")
                 for g, s in sorted(p["groups"].items(), key=lambda kv: -kv[1])]
        out.append("cpu %-9s %5.1f s wall, host busy %.1f s%s: %s" % (
            label, p["wall_s"], p["host_busy_s"],
            " (%.2f ms/client)" % per["all"] if "all" in per else "", "; ".join(parts)))
    return out
