"""py-spy sampling of running processes, reduced to the top costs per function."""
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# 100 Hz over a 10 s window gives ~1000 samples per process: enough for the
# top ~15 functions to within a few percent, at a cost the target barely feels.
SAMPLE_RATE_HZ = 100


def py_spy_binary():
    """py-spy from the venv (next to this interpreter) or PATH, or None."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid, duration_s, out, rate=SAMPLE_RATE_HZ):
    """Start ``py-spy record`` on one pid (raw collapsed stacks), non-blocking sampling."""
    binary = py_spy_binary()
    if binary is None:
        raise RuntimeError("py-spy is missing: .venv/bin/pip install py-spy")
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--duration", str(int(round(duration_s))),
                             "--rate", str(rate), "--format", "raw", "--nonblocking", "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _function(frame):
    """'handle (gevent/pywsgi.py:123)' -> 'handle (gevent/pywsgi.py)': aggregate over lines."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return "%s (%s)" % (name, path) if path else name


def top_costs(raw_path, limit=15):
    """Self and inclusive sample shares per function from a py-spy raw file.

    Returns {"samples", "self": [[function, pct], ...], "inclusive": [...]}.
    """
    self_counts, incl_counts, total = Counter(), Counter(), 0
    for line in Path(raw_path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        self_counts[frames[-1]] += n
        for f in set(frames):
            incl_counts[f] += n
    def share(counter):
        return [[f, round(100.0 * n / total, 1)] for f, n in counter.most_common(limit)] if total else []
    return {"samples": total, "self": share(self_counts), "inclusive": share(incl_counts)}


# Where a node's and the broker's samples go, by the first rule whose text
# appears anywhere on the sampled stack (rules in priority order).  Greenlets
# have their own stacks, and a websocket's frames go out from a loop callback at the
# tick's end, never on the stack of the broker link that emitted them.
NODE_CATEGORIES = [
    ("websocket writes: the frames of each tick, one send per connection (WsConn)",
     ("flush_tick (chat/engine/websocket.py", "_writable (chat/engine/websocket.py")),
    ("client events: websocket read, Socket.IO decode, handlers, request to the broker",
     ("_handle_event_internal", "_readable (chat/engine/websocket.py", "chat/protocol/events.py",
      "handle_request (engineio/server.py")),
    ("broker link: SUB read, decode, mirror, emit to the room (encode once), replies",
     ("BrokerLink._read_forever", "RequestChannel._read", "chat/mirror.py")),
    ("gevent hub: libev loop in C (polling, timers, switching)", ("Hub.run (gevent/hub.py",)),
]
BROKER_CATEGORIES = [
    ("durable store (sqlite)", ("broker/store.py",)),
    ("zmq send (replies, publishes)", ("Socket.send (zmq/", "send_multipart (zmq/")),
    ("zmq poll / receive", ("Poller.poll (zmq/", "recv_multipart (zmq/", "Socket.recv (zmq/")),
    ("wire encode / decode (json)", ("chatstream/wire.py",)),
    ("sequencing, history, cid window", ("broker/sequencer.py", "chatstream/history.py")),
]


def categories(raw_path, rules):
    """{label: % of samples} for ``rules`` = [(label, (substring, ...)), ...]; the rest is "other"."""
    counts, total = Counter(), 0
    for line in Path(raw_path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        for label, needles in rules:
            if any(needle in stack for needle in needles):
                counts[label] += n
                break
        else:
            counts["other"] += n
    return {label: round(100.0 * counts[label] / total, 1) for label in [r[0] for r in rules] + ["other"]} \
        if total else {}
