"""scripts/node drain and scripts/node upgrade on supervisord.conf's cluster itself
(relocated to free ports, as test_supervisor.py runs it: the broker pair, three nodes,
a real HAProxy), with python-socketio clients that reconnect by themselves
(``reconnection=True``, as the official clients do) and rejoin with since + epoch."""
import collections
import subprocess
import threading
import time

import pytest
import socketio

from deploy import balancer
from deploy.node import open_sessions
from harness.client import new_room
from harness.processes import wait_until

from .test_failover import record
from .supervised import NODES, SupervisedCluster

FAST = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000", "CHAT_HISTORY_SIZE": "1000",
        "CHAT_REQUEST_RATES": "join=10000/10000"}
ACK_TIMEOUT_S = 6


class ReconnectingClient:
    """A python-socketio client left to its own reconnection; at every connect it
    (re)joins ``room`` with since + epoch, as the contract's reconnect says.

    ``view`` is every message it holds by seq; a seq seen twice on one connection
    is a duplicate, a ``gap: true`` or a changed epoch is counted.  ``generation``
    counts its connections lost; ``cond`` is notified at every loss and join."""

    def __init__(self, url, room, name, transports=("websocket",)):
        self.room, self.name = room, name
        self.cond = threading.Condition()
        self.view, self.duplicates, self.gaps, self.conflicts = {}, 0, 0, []
        self.epoch = None
        self.nodes = []            # the node of every join, in order
        self.joined_at = []        # when each join was acknowledged
        self.generation = 0        # connections lost so far
        self.joined_generation = None
        self.live_seqs = set()     # seqs delivered live on the current connection
        self.sio = socketio.Client(reconnection=True, reconnection_delay=0.2,
                                   reconnection_delay_max=1, randomization_factor=0.2)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("message", self._on_message)
        self.transport = transports[-1]
        self.sio.connect(url, transports=list(transports), wait_timeout=10)
        with self.cond:
            assert self.cond.wait_for(self.live, 15), "%s: no join" % name

    def _on_connect(self):
        threading.Thread(target=self._join, args=(self.generation,), daemon=True).start()

    def _on_disconnect(self, reason=None):
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def _join(self, generation):
        with self.cond:
            self.live_seqs = set()
            payload = {"room": self.room, "nick": self.name}
            if self.epoch is not None:
                payload.update(since=self._contiguous(), epoch=self.epoch)
        for _ in range(20):
            try:
                ack = self.sio.call("join", payload, timeout=ACK_TIMEOUT_S)
            except Exception:      # noqa: BLE001 - dropped again meanwhile: the next connect joins
                return
            if ack.get("ok"):
                break
            time.sleep(0.2)        # `unavailable` while a broker takes over
        else:
            raise AssertionError("%s: join refused %r" % (self.name, ack))
        with self.cond:
            if ack["gap"] or (self.epoch is not None and ack["epoch"] != self.epoch):
                self.gaps += 1
            self.epoch = ack["epoch"]
            for message in ack["history"]:
                self._merge(message)
            self.nodes.append(ack["node"])
            self.joined_at.append(time.monotonic())
            self.joined_generation = generation
            self.cond.notify_all()

    def _on_message(self, message):
        if message["room"] != self.room:
            return
        with self.cond:
            if message["seq"] in self.live_seqs:
                self.duplicates += 1
            self.live_seqs.add(message["seq"])
            self._merge(message)

    def _merge(self, message):
        have = self.view.get(message["seq"])
        if have is not None and have["id"] != message["id"]:
            self.conflicts.append((message["seq"], have["id"], message["id"]))
        self.view[message["seq"]] = message

    def _contiguous(self):
        seq = 0
        while seq + 1 in self.view:
            seq += 1
        return seq

    @property
    def node(self):
        return self.nodes[-1] if self.nodes else None

    def live(self):
        """Connected and joined on the current connection."""
        return self.sio.connected and self.joined_generation == self.generation

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:          # noqa: BLE001
            pass


class Stream:
    """Numbered messages with cids through one reconnecting client; a message whose
    connection is lost before its ack is sent again (same cid) once the client has
    rejoined, as the browser's outbox does; ``acked`` cid -> (seq, ack time)."""

    def __init__(self, client, limit=3000):
        self.client, self.limit = client, limit
        self.acked = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, cid):
        """One try: the ack, or None when the connection was lost (or it timed out)."""
        client, answer = self.client, {}

        def on_ack(ack):
            with client.cond:
                answer["ack"] = ack
                client.cond.notify_all()
        with client.cond:
            if not client.cond.wait_for(client.live, ACK_TIMEOUT_S):
                return None
            generation = client.generation
        try:
            client.sio.emit("message", {"room": client.room, "text": cid, "cid": cid},
                            callback=on_ack)
        except Exception:          # noqa: BLE001 - lost just now: again once rejoined
            return None
        with client.cond:
            client.cond.wait_for(lambda: "ack" in answer or client.generation != generation,
                                 ACK_TIMEOUT_S)
        return answer.get("ack")

    def _run(self):
        i = 0
        while not self.stop.is_set() and i < self.limit:
            cid = "%s-%d" % (self.client.name, i)
            deadline = time.monotonic() + 60
            while not self.stop.is_set() and time.monotonic() < deadline:
                ack = self._send(cid)
                if ack is None:
                    continue
                if ack.get("ok"):
                    self.acked[cid] = (ack["seq"], time.monotonic())
                    break
                time.sleep(0.1)    # `unavailable` during a failover: the same cid again
            i += 1
            time.sleep(0.02)

    def longest_pause_s(self, since, until=float("inf")):
        """The longest time between two acks from ``since`` to ``until`` (monotonic)."""
        times = sorted(t for _, t in self.acked.values() if since <= t <= until)
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


@pytest.fixture
def supervised(tmp_path):
    """supervisord.conf's cluster on free ports, with its own var/ (store, drain plans)."""
    cluster = SupervisedCluster(tmp_path, env=FAST).start()

    def start(*args):
        return subprocess.Popen(cluster.node_command(*args), env=cluster.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def lines(*args, timeout=300):
        """Run scripts/node, returning ``[(when, line)]`` of its output as it came."""
        proc = start(*args)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            seen = [(time.monotonic(), line.rstrip()) for line in proc.stdout]
        finally:
            timer.cancel()
        assert proc.wait() == 0, "\n".join(line for _, line in seen)
        return seen
    try:
        cluster.node("ready")
        yield {"run": cluster.node, "start": start, "lines": lines, "var": cluster.var, "url": cluster.url,
               "node_url": {n: cluster.node_url(n) for n in NODES}}
    finally:
        cluster.stop(timeout=60)


def _check_views(clients, acked):
    """Every acknowledged message in every client's view exactly once, one order, no gap."""
    wait_until(lambda: all(set(acked.values()) <= set(c.view) for c in clients), 20,
               "every acknowledged message in every view")
    for c in clients:
        seqs = sorted(c.view)
        assert seqs == list(range(1, len(seqs) + 1)), "%s: a gap in %s" % (c.name, seqs[:50])
        assert (c.duplicates, c.gaps, c.conflicts) == (0, 0, []), c.name
        assert {c.view[seq]["cid"] for seq in acked.values()} == set(acked), c.name
    first = clients[0]
    assert all([(s, c.view[s]["id"]) for s in sorted(acked.values())]
               == [(s, first.view[s]["id"]) for s in sorted(acked.values())] for c in clients)


@pytest.mark.timeout(240)
def test_drain_moves_every_client_off_in_batches_and_none_lands_on_the_node(supervised):
    room = new_room("drain")
    url = supervised["url"]
    # The last three stay on long-polling (leastconn deals the twelve out in turn: one
    # per node, its youngest session, so the last batch closes it): their requests keep
    # reaching the drained node by stickiness until it closes them, then they move too.
    clients = [ReconnectingClient(url, room, "c%d" % i,
                                  transports=("polling",) if i >= 9 else ("websocket",))
               for i in range(12)]
    try:
        on = collections.Counter(c.node for c in clients)
        target = on.most_common(1)[0][0]
        moving = [c for c in clients if c.node == target]
        assert len(moving) >= 3, on
        assert {c.transport for c in moving} == {"polling", "websocket"}, on
        sender = next(c for c in clients if c.node != target)
        stream = Stream(sender)
        wait_until(lambda: len(stream.acked) >= 20, 20, "a steady stream")
        landed, watching = [], threading.Event()

        def newcomers():              # new sessions through the balancer while it drains
            while not watching.is_set() and len(landed) < 40:
                probe = socketio.Client(reconnection=False)
                probe.connect(url, transports=["polling"], wait_timeout=10)
                landed.append(probe.call("join", {"room": room, "nick": "probe"}, timeout=10)["node"])
                probe.disconnect()
                time.sleep(0.1)
        watcher = threading.Thread(target=newcomers, daemon=True)
        began = time.monotonic()
        draining = supervised["start"]("drain", target, "--over", "3", "--batch", "2")
        try:
            wait_until(lambda: balancer.statuses(supervised["var"] / "haproxy.sock")[target]
                       .startswith("DRAIN"), 20, "the balancer's server in drain")
            watcher.start()
            out, _ = draining.communicate(timeout=120)
        finally:
            draining.kill()
            watching.set()
        assert draining.returncode == 0, out
        watcher.join(15)
        assert "%s is empty" % target in out, out
        progress = [line for line in out.splitlines() if "sessions open" in line]
        assert len(progress) >= 2, out          # batches, not everyone at once
        assert landed and target not in landed, landed
        wait_until(lambda: all(c.live() and c.node != target for c in clients), 20,
                   "every client back, on another node")
        poller = next(c for c in moving if c.transport == "polling")
        first_moved = min(c.joined_at[-1] for c in moving)
        # the long-poller stayed on the drained node until the last batch, then moved once
        assert poller.joined_at[-1] - first_moved >= 1.0, "all moved at once"
        assert len(poller.nodes) == 2, poller.nodes
        assert all(len(c.nodes) == 1 for c in clients if c not in moving)   # others untouched
        _more(stream, 20)
        stream.stop.set()
        stream.thread.join(15)
        _check_views(clients, {cid: seq for cid, (seq, _) in stream.acked.items()})
        pause_s = stream.longest_pause_s(began)
        record({"fault": "scripts/node drain of a node with clients (over 3 s, batches of 2)",
                "acked": len(stream.acked), "moved": len(moving), "longest_ack_pause_s":
                round(pause_s, 2), "lost": 0, "duplicated": 0, "same_epoch": True})
        assert pause_s < 3.0, pause_s      # the stream's own node was never drained
        assert open_sessions(supervised["node_url"][target]) == 0
        # undrained, the empty node is the one with the fewest sessions: leastconn's first
        assert "%s takes new sessions again" % target in supervised["run"]("undrain", target)
        probe = ReconnectingClient(url, room, "after")
        clients.append(probe)
        assert probe.node == target
    finally:
        for c in clients:
            c.close()


def _more(stream, n, timeout=30):
    count = len(stream.acked)
    wait_until(lambda: len(stream.acked) >= count + n, timeout, "%d more acks" % n)


@pytest.mark.timeout(420)
def test_a_rolling_upgrade_under_a_stream_loses_nothing_and_leaves_everyone_connected(supervised):
    """scripts/node upgrade: node1..node3 drained and restarted in turn, then the pair:
    the passive restarted, the active stopped (failover) and started again as the passive."""
    room = new_room("upgrade")
    url = supervised["url"]
    clients = [ReconnectingClient(url, room, "u%d" % i,
                                  transports=("polling",) if i % 4 == 0 else ("websocket",))
               for i in range(9)]
    try:
        streams = [Stream(c) for c in clients[:3]]
        wait_until(lambda: all(len(s.acked) >= 20 for s in streams), 30, "a steady stream")
        began = time.monotonic()
        seen = supervised["lines"]("upgrade", "--over", "2")
        out = "\n".join(line for _, line in seen)
        brokers_at = next(when for when, line in seen if line.startswith("brokers:"))
        for name in NODES:
            assert "%s restarted and UP in the balancer" % name in out, out
        assert "(passive) restarted and caught up" in out and "took over" in out, out
        for s in streams:
            _more(s, 20)
            s.stop.set()
        for s in streams:
            s.thread.join(15)
        wait_until(lambda: all(c.live() for c in clients), 20, "every client connected")
        acked = {cid: seq for s in streams for cid, (seq, _) in s.acked.items()}
        _check_views(clients, acked)
        nodes_s = max(s.longest_pause_s(began, brokers_at) for s in streams)
        pause_s = max(s.longest_pause_s(began) for s in streams)
        record({"fault": "scripts/node upgrade: three nodes drained and restarted, then the pair",
                "acked": len(acked), "lost": 0, "duplicated": 0, "clients_connected": len(clients),
                "longest_ack_pause_nodes_s": round(nodes_s, 2),
                "longest_ack_pause_s": round(pause_s, 2)})
        # 0.4-0.6 s on a quiet machine (docs/FAULTS.md); a client left to find out by
        # itself would wait out a ping timeout (20 s) or an ack timeout (5 s), so the
        # bound sits below those, with room for a machine busy with other suites.
        assert nodes_s < 4.5, nodes_s
        assert pause_s < 10.0, pause_s
    finally:
        for c in clients:
            c.close()
