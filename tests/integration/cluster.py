"""Real processes on free loopback ports: the broker, nodes, HAProxy, and a chat client.

Everything started here is stopped by pid (its own process group), never by name.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests
import socketio

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def new_room(prefix="room"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


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


def _base_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["DJANGO_SECRET_KEY"] = "test-secret"
    env.update(extra or {})
    return env


class Cluster:
    """A broker and any number of nodes (and optionally HAProxy) on free ports.

    :param log_dir: where every process logs.
    :param env: extra environment for every process (e.g. CHAT_HISTORY_SIZE).
    """

    def __init__(self, log_dir, env=None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"intake": free_port(), "publish": free_port(), "snapshot": free_port()}
        self.env = _base_env({
            "CHAT_BROKER_INTAKE_PORT": str(self.ports["intake"]),
            "CHAT_BROKER_PUBLISH_PORT": str(self.ports["publish"]),
            "CHAT_BROKER_SNAPSHOT_PORT": str(self.ports["snapshot"]),
            "CHAT_BROKER_STATE": str(self.log_dir / "broker.sqlite3"),
            **(env or {}),
        })
        self.broker = None
        self.nodes = {}       # name -> (Proc, port)
        self.balancer = None
        self.balancer_port = None
        self.procs = []

    # processes

    def start_broker(self):
        self.broker = Proc("broker", [PYTHON, "-m", "broker"], self.env, self.log_dir).start()
        self.procs.append(self.broker)
        return self.broker

    def start_node(self, name, port=None, env=None, wait=True):
        port = port or free_port()
        node_env = dict(self.env, CHAT_NODE_NAME=name, **(env or {}))
        proc = Proc(name, [PYTHON, "web/manage.py", "runnode", "--name", name, "--port", str(port)],
                    node_env, self.log_dir).start()
        self.procs.append(proc)
        self.nodes[name] = (proc, port)
        if wait:
            self.wait_healthy(name)
        return proc

    def start_balancer(self):
        self.balancer_port = free_port()
        env = dict(self.env, BALANCER_BIND="127.0.0.1:%d" % self.balancer_port)
        for i, (name, (_, port)) in enumerate(sorted(self.nodes.items()), start=1):
            env["NODE%d_ADDR" % i] = "127.0.0.1:%d" % port
        self.balancer = Proc("balancer", ["haproxy", "-W", "-db", "-f", str(ROOT / "deploy/haproxy.cfg")],
                             env, self.log_dir).start()
        self.procs.append(self.balancer)
        wait_until(lambda: self.health(self.balancer_url) == 200, 20, "balancer health")
        return self.balancer

    def stop(self):
        for proc in reversed(self.procs):
            proc.stop()

    # addresses and health

    def url(self, name):
        return "http://127.0.0.1:%d" % self.nodes[name][1]

    @property
    def balancer_url(self):
        return "http://127.0.0.1:%d" % self.balancer_port

    @staticmethod
    def health(url):
        try:
            return requests.get(url + "/healthz", timeout=2).status_code
        except requests.RequestException:
            return None

    def wait_healthy(self, name, timeout=20):
        proc, _ = self.nodes[name]
        def ready():
            assert proc.alive(), "%s exited:\n%s" % (name, proc.log()[-3000:])
            return self.health(self.url(name)) == 200
        wait_until(ready, timeout, "%s /healthz 200" % name)

    def logs(self):
        return {p.name: p.log() for p in self.procs}


def two_nodes_one_room(make_cluster, client, env=None, names=("a", "b")):
    """Broker + node1 + node2 with one client on each, both in a new room.

    Returns ``(cluster, room, client_on_node1, client_on_node2)``.
    """
    c = make_cluster(env)
    c.start_broker()
    c.start_node("node1")
    c.start_node("node2")
    room = new_room()
    first = client(c.url("node1"), name=names[0])
    second = client(c.url("node2"), name=names[1])
    first.join(room)
    second.join(room)
    return c, room, first, second


class ChatClient:
    """A real python-socketio client that records what the server sends."""

    def __init__(self, url, transports=("websocket",), name="client"):
        self.url = url
        self.name = name
        self.messages = []
        self.announcements = []
        self.presence = []
        self.cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("message", self._on_message)
        self.sio.on("announcement", self._on_announcement)
        self.sio.on("presence", self._on_presence)
        self.sio.connect(url, transports=list(transports), wait_timeout=10)

    def _on_message(self, message):
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def _on_announcement(self, announcement):
        with self.cond:
            self.announcements.append(announcement)
            self.cond.notify_all()

    def _on_presence(self, presence):
        with self.cond:
            self.presence.append(presence)
            self.cond.notify_all()

    def call(self, event, payload=None, timeout=10):
        if payload is None:
            return self.sio.call(event, timeout=timeout)
        return self.sio.call(event, payload, timeout=timeout)

    def join(self, room, nick=None, **extra):
        ack = self.call("join", dict(room=room, nick=nick or self.name, **extra))
        assert ack["ok"], ack
        return ack

    def send(self, room, text, cid=None, timeout=10):
        payload = {"room": room, "text": text}
        if cid is not None:
            payload["cid"] = cid
        return self.call("message", payload, timeout=timeout)

    def room_messages(self, room):
        with self.cond:
            return [m for m in self.messages if m["room"] == room]

    def wait_messages(self, room, count, timeout=15):
        """Block until ``count`` messages of ``room`` arrived (an event, not a sleep)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len([m for m in self.messages if m["room"] == room]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len([m for m in self.messages if m["room"] == room])
                    raise AssertionError("%s: %d of %d messages in %s" % (self.name, got, count, room))
                self.cond.wait(left)
            return [m for m in self.messages if m["room"] == room]

    def wait_announcement(self, room, text, timeout=15):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(a["room"] == room and a["text"] == text for a in self.announcements):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no announcement %r in %s" % (self.name, text, room))
                self.cond.wait(left)

    def wait_presence(self, room, members, timeout=15, after=0):
        """Block until a ``presence`` event (from the ``after``-th on) lists exactly
        ``members`` in ``room``; returns the index just past it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.presence)):
                    if self.presence[i]["room"] == room and self.presence[i]["members"] == members:
                        return i + 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no presence %r in %s" % (self.name, members, room))
                self.cond.wait(left)

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:
            pass
