"""CPU time and memory of processes and of the host, read from /proc (Linux)."""
import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of one process, in seconds (resolution 1/CLK_TCK)."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()   # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid, key):
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM ...), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def host_jiffies():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)   # idle + iowait
    return sum(values) - idle, sum(values)


def host_steal_jiffies():
    """Jiffies the hypervisor ran something else while this machine wanted its CPUs
    (/proc/stat's steal; counted in :func:`host_jiffies`'s busy)."""
    with open("/proc/stat") as f:
        values = f.readline().split()[1:]
    return int(values[7]) if len(values) > 7 else 0


def sample(procs):
    """One reading of every process plus the host, with its time.

    :param procs: {name: object with ``pid`` and ``alive()``}.
    """
    reading = {"t": time.monotonic(), "host": host_jiffies(), "procs": {}}
    for name, proc in procs.items():
        if not proc.alive():
            continue
        try:
            reading["procs"][name] = {"cpu_s": cpu_seconds(proc.pid),
                                      "hwm_kb": status_kb(proc.pid, "VmHWM"),
                                      "rss_kb": status_kb(proc.pid, "VmRSS")}
        except OSError:   # exited between alive() and the read
            pass
    return reading


def window_figures(before, start, end, after):
    """Per-process CPU in [start, end] and over the whole run, peak RSS, host load.

    Any of the four samples may be None (e.g. a run that failed before its window).
    """
    window_s = end["t"] - start["t"] if start and end else None
    procs = {}
    for name, b in before["procs"].items():
        entry = {"hwm_kb_before": b["hwm_kb"], "rss_kb_before": b["rss_kb"]}
        if start and end and name in start["procs"] and name in end["procs"]:
            cpu = end["procs"][name]["cpu_s"] - start["procs"][name]["cpu_s"]
            entry.update(cpu_window_s=round(cpu, 3), cpu_window_pct=round(100 * cpu / window_s, 1))
        last = after if after and name in after["procs"] else end
        if last and name in last["procs"]:
            a = last["procs"][name]
            entry.update(cpu_run_s=round(a["cpu_s"] - b["cpu_s"], 3), hwm_kb=a["hwm_kb"],
                         rss_kb_after=a["rss_kb"])
        procs[name] = entry
    result = {"processes": procs, "window_wall_s": round(window_s, 3) if window_s else None}
    if start and end:
        busy = end["host"][0] - start["host"][0]
        total = end["host"][1] - start["host"][1]
        result["host_cpu_busy_pct"] = round(100 * busy / total, 1) if total else None
        result["host_busy_cpu_s"] = round(busy / CLK_TCK, 3)
    return result

