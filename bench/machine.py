"""The machine a bench runs on: what it is, which code runs, and whether it is quiet.

A benchmark on 2 cores is only as good as the quiet around it: a test suite or
a browser next to it moves every figure, so scripts/bench waits for other load
to stop before each run and measures what other processes used during it.
"""
import os
import platform
import resource
import subprocess
import time

from . import ROOT
from .procstat import CLK_TCK, host_jiffies

# Before each run: the machine counts as quiet when other processes use less
# than this share of one core (a test suite or a browser next to a benchmark
# on 2 cores moves every figure).
QUIET_BELOW_PCT = 25


def raise_fd_limit(needed, progress):
    """Lift the soft RLIMIT_NOFILE toward the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            progress("cannot raise the open-files limit from %d (%s)" % (soft, exc))
    return soft


def host_info(node_bin):
    def run(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    model = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError):
        pass
    import gevent
    import socketio
    import zmq
    from importlib.metadata import version
    redis_version = run(["redis-server", "--version"])
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": mem_gib, "kernel": platform.release(),
            "python": platform.python_version(), "node": run([node_bin, "--version"]),
            "redis_server": redis_version.split()[2].replace("v=", "") if redis_version else None,
            "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "gevent": gevent.__version__,
            "python_socketio": version("python-socketio"), "socketio_module": socketio.__name__}


def git_commit():
    """The checked-out commit, read from .git files (no git command), or None."""
    try:
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        ref_file = ROOT / ".git" / ref
        if ref_file.exists():
            return ref_file.read_text().strip()
        for line in (ROOT / ".git" / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return None


def product_digest():
    """sha256 (first 12 hex) of the product's Python sources: which code ran, even uncommitted."""
    import hashlib
    digest = hashlib.sha256()
    for folder in ("broker", "chatstream", "web/chat", "web/chatsite"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def other_load_pct(seconds=2.0):
    """% of one core the machine spends busy over a short interval (nothing of ours runs then)."""
    b0, t0 = host_jiffies()[0], time.monotonic()
    time.sleep(seconds)
    return 100.0 * (host_jiffies()[0] - b0) / CLK_TCK / (time.monotonic() - t0)


def wait_quiet(budget, progress):
    """Wait (within what is left of ``budget`` seconds) until the machine is quiet; returns the budget left."""
    load = other_load_pct()
    if load < QUIET_BELOW_PCT:
        return budget
    progress("the machine is busy with other work (%.0f%% of a core); waiting up to %.0f s for it to calm down"
             % (load, budget))
    start = time.monotonic()
    while time.monotonic() - start < budget:
        time.sleep(4)
        load = other_load_pct()
        if load < QUIET_BELOW_PCT:
            break
    used = time.monotonic() - start
    progress("  other load now %.0f%% of a core (waited %.0f s)%s" % (
        load, used, "" if load < QUIET_BELOW_PCT else "; going on anyway, the run records it"))
    return max(0.0, budget - used)
