"""The storm's probe client, in a process of its own: a message every ``--period`` s.

    .venv/bin/python -m bench.storm.probe --url http://127.0.0.1:8006 --room storm-ab-r0 \
        --listen-url http://127.0.0.1:8005

A python-socketio client (harness/client.py) joins ``--room`` as ``storm-probe`` and
sends a message every period, each with its own cid; one JSON line per message on
stdout: ``{"t": Unix time sent, "ms": ack latency or null, "error": code or null}``.
With ``--listen-url``, a second client joins the room there (another node: the
message crosses the broker to it) as ``storm-listener``, and each probe message it
receives is one more line: ``{"t": Unix time sent, "delivery_ms": send to receipt}``.
It runs until stdin closes (its parent stops it so, or by pid).  A process of its
own, so that what it measures is the cluster's ack, not the wait for the GIL of the
storm's dozen watcher threads.
"""
import argparse
import json
import sys
import threading
import time
import uuid

from harness.client import ChatClient


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench.storm.probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--period", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--listen-url", help="a node where a second client hears each message")
    args = p.parse_args(argv)
    stopped = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stopped.set()), daemon=True).start()
    client = ChatClient(args.url, name="storm-probe")
    sent = {}   # cid -> Unix time sent, for the listener
    listener = ChatClient(args.listen_url, name="storm-listener") if args.listen_url else None
    try:
        if listener is not None:
            listener.sio.on("message", lambda message: heard(message, sent))
            listener.join(args.room, nick="storm-listener")
        client.join(args.room, nick="storm-probe")
        print(json.dumps({"ready": True}), flush=True)
        run(client, args, stopped, sent)
    finally:
        client.close()
        if listener is not None:
            listener.close()


_print_lock = threading.Lock()   # the sender and the listener's thread both print lines


def say(line):
    with _print_lock:
        print(json.dumps(line), flush=True)


def heard(message, sent):
    """The listener received ``message``: a probe's, its delivery latency."""
    at = time.time()
    t = sent.pop(message.get("cid"), None)
    if t is not None:
        say({"t": round(t, 3), "delivery_ms": round((at - t) * 1000, 1)})


def run(client, args, stopped, sent):
    k, tag = 0, uuid.uuid4().hex[:8]
    while not stopped.is_set():
        sent_at, t0 = time.time(), time.monotonic()
        sent["probe-%s-%d" % (tag, k)] = sent_at
        try:
            ack = client.send(args.room, "storm probe %d" % k, cid="probe-%s-%d" % (tag, k),
                              timeout=args.timeout)
            code = None if ack.get("ok") else str(ack.get("error"))
        except Exception as exc:   # a timeout, or the connection lost
            code = type(exc).__name__
        took = time.monotonic() - t0
        say({"t": round(sent_at, 3), "ms": None if code else round(took * 1000, 1), "error": code})
        k += 1
        stopped.wait(max(0.0, args.period - took))


if __name__ == "__main__":
    main()
