"""Child processes on free loopback ports: start, signal and stop them by pid.

Everything started here is stopped by pid (its own process group), never by name.
"""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The ports of a development cluster (scripts/run) that may be up on this machine:
# never taken by a test or a benchmark.
RESERVED_PORTS = frozenset({8000, 8001, 8002, 8003, 8004, 8443, 5555, 5556, 5557, 5558, 5559,
                            5565, 5566, 5567, 5568, 5569})   # 556x: broker2 of the pair


def _ephemeral_range():
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


_HANDED_OUT = set()


def free_port():
    """A free loopback port: never one of RESERVED_PORTS, never one handed out before by
    this process, and below the kernel's ephemeral range, so that no outgoing connection
    takes it as its source port between this call and the server's bind."""
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(10000, low)
        if port in RESERVED_PORTS or port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port in 10000-%d outside %s" % (low - 1, sorted(RESERVED_PORTS)))


def wait_until(predicate, timeout, what, interval=0.05):
    """Poll a cheap condition (a port, a health check) until true or fail loudly."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def base_env(extra=None):
    """This process's environment without any CHAT_ setting or DATABASE_URL, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_") and k != "DATABASE_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    env["DJANGO_SECRET_KEY"] = "test-secret"
    env.update(extra or {})
    return env


# A process failed when its log holds a traceback or a record at ERROR or above, in the
# plain format ("<time> ERROR <name>: ...") or the JSON one ("level": "ERROR").
FAILURE_LINE = re.compile(r'Traceback \(most recent call last\)|\s(ERROR|CRITICAL)\s|"level": ?"(ERROR|CRITICAL)"')
TRACEBACK = "Traceback (most recent call last)"


def log_failures(text, allow=()):
    """The failure lines of one log that no ``allow`` pattern matches (``re.search``).

    A traceback counts once, as its header and its last line (the exception), and an
    allow pattern is matched against the whole traceback, so it may name a frame or
    the exception.
    """
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        block = [line]
        if TRACEBACK in line:
            # the frames are indented; the first line that is not ends the traceback
            while i + 1 < len(lines) and (lines[i + 1][:1].isspace() or not lines[i + 1].strip()):
                i += 1
                block.append(lines[i])
            if i + 1 < len(lines):
                i += 1
                block.append(lines[i])
            shown = "%s ... %s" % (line.strip(), block[-1].strip())
        elif FAILURE_LINE.search(line):
            shown = line.strip()
        else:
            i += 1
            continue
        i += 1
        if not any(re.search(pattern, "\n".join(block)) for pattern in allow):
            found.append(shown)
    return found


def check_logs(procs, allow=()):
    """Fail naming each process and line when a log of ``procs`` holds a traceback or
    an ERROR line that no ``allow`` pattern matches (see :func:`log_failures`)."""
    bad = logs_failures(procs, allow)
    assert not bad, "tracebacks or errors in process logs (allow one a test provokes on purpose " \
        "with @pytest.mark.allow_log_errors(r\"regex\")):\n" + "\n".join(
            "%s: %s" % (name, line) for name, lines in bad.items() for line in lines)


def logs_failures(procs, allow=()):
    """{process name: its failure lines} for the processes of ``procs`` that have any."""
    seen, bad = set(), {}
    for proc in procs:
        if proc.log_path in seen:          # a restarted process appends to its own log
            continue
        seen.add(proc.log_path)
        lines = log_failures(proc.log(), allow)
        if lines:
            bad[proc.name] = lines
    return bad


def allowed_log_errors(node):
    """The patterns of every ``allow_log_errors`` marker on a pytest item or module."""
    return [pattern for mark in node.iter_markers("allow_log_errors") for pattern in mark.args]


class Proc:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = Path(log_dir) / ("%s.log" % name)
        self.popen = None

    def start(self):
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        os.killpg(self.popen.pid, sig)

    def stop(self, timeout=10):
        if not self.alive():
            return
        try:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        except ProcessLookupError:
            pass

    def kill(self):
        if self.alive():
            self.signal(signal.SIGKILL)
            self.popen.wait(5)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
