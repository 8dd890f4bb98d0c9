"""The load generator (loadgen.js here, Node): its command lines, and a ``rate`` run as a
child whose lines are echoed and whose marker lines are reacted to.

bench.storm.generators runs its ``storm`` mode.
"""
import json
import queue
import resource
import subprocess
import threading
import time
from pathlib import Path

LOADGEN = Path(__file__).resolve().parent / "loadgen.js"
# Beyond loadgen's own hard deadline: time for it to write its report and exit.
LOADGEN_GRACE_SECS = 20
WINDOW_START, WINDOW_END = "loadgen: window start", "loadgen: window end"
IDLE_HOLDING, IDLE_DONE = "loadgen: idle holding", "loadgen: idle done"


def command(node_bin, mode, **flags):
    """The command line of the generator in ``mode`` (``rate`` or ``storm``); ``flags`` are
    its --flags (``_`` for ``-``, None left out)."""
    argv = [node_bin, str(LOADGEN), mode]
    for name, value in flags.items():
        if value is not None:
            argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


def loadgen_argv(node_bin, urls, out, **flags):
    """The command line of one ``rate`` run against ``urls``, its report written to ``out``."""
    return command(node_bin, "rate", urls=",".join(urls), out=out, **flags)


def run_loadgen(argv, out, deadline_s, on_line=None, echo=print):
    """Run loadgen to completion (or kill it past ``deadline_s`` + grace).

    :param on_line: called with every stdout line before it is echoed (for markers).
    :param echo: where lines go (``None``: nowhere).
    Returns ``(exit code, report dict or None, {"cpu_s", "max_rss_kb"})``; CPU
    and memory come from getrusage(RUSAGE_CHILDREN), so call this with no other
    child being reaped meanwhile.
    """
    out = Path(out)
    if out.exists():
        out.unlink()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, bufsize=1, start_new_session=True)
    lines = queue.Queue()

    def pump():
        for line in child.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    give_up = time.monotonic() + deadline_s + LOADGEN_GRACE_SECS
    try:
        while True:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() > give_up:
                    raise RuntimeError("loadgen did not finish within %.0f s" % (deadline_s + LOADGEN_GRACE_SECS))
                continue
            if line is None:
                break
            if on_line is not None:
                on_line(line)
            if echo is not None:
                echo(line)
        rc = child.wait(timeout=LOADGEN_GRACE_SECS)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = None
    if out.exists():
        try:
            report = json.loads(out.read_text())
        except ValueError:
            report = None
    return rc, report, {"cpu_s": round(cpu, 3), "max_rss_kb": after.ru_maxrss}
