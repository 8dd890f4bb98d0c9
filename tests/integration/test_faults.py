"""Fault injection over real processes: no acknowledged message lost or doubled.

Three clients on three nodes send numbered messages with cids (retrying on
`unavailable`, timeouts and lost connections, resuming with since + epoch)
while a process is killed, hung, or a client stops reading.  Afterwards every
acknowledged message must be in every surviving client's view exactly once,
under the same seq everywhere.
"""
import json
import signal
import threading
import time

import pytest

from harness.client import new_room
from harness.processes import ROOT, wait_until
from .resilient import ResumingClient
from .test_limits import SilentClient

MESSAGES_PER_CLIENT = 40
FAST = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000", "CHAT_ACK_TIMEOUT_MS": "3000",
        "CHAT_NODE_TTL_MS": "3000",
        # resuming clients must find what they missed in the buffer: every test
        # message fits, so a `gap` here would be a bug
        "CHAT_HISTORY_SIZE": "1000"}
RESULTS = ROOT / "var" / "fault-results.jsonl"


def _peak_rss_mb(proc):
    try:
        with open("/proc/%d/status" % proc.pid) as f:
            return int(next(line for line in f if line.startswith("VmHWM")).split()[1]) // 1024
    except (OSError, StopIteration):
        return None


class Run:
    """A cluster of broker + 3 nodes and three resuming senders, one per node."""

    def __init__(self, make_cluster, env=None):
        self.cluster = c = make_cluster(dict(FAST, **(env or {})))
        c.start_broker()
        for name in ("node1", "node2", "node3"):
            c.start_node(name)
        self.room = new_room("fault")
        urls = [c.url(n) for n in ("node1", "node2", "node3")]
        # client i starts on node i and fails over to the next ones
        self.clients = [ResumingClient(urls[i:] + urls[:i], self.room, "c%d" % (i + 1)) for i in range(3)]
        self.progress = threading.Semaphore(0)
        self.errors = []
        self.fault_at = None
        self.recovery_s = None

    def start_senders(self):
        def send_all(client):
            try:
                for i in range(MESSAGES_PER_CLIENT):
                    client.send_numbered(i)
                    self.progress.release()
                    time.sleep(0.02)           # pacing: ~50 msg/s per client
            except Exception as exc:            # reported by finish()
                self.errors.append((client.name, exc))
        self.threads = [threading.Thread(target=send_all, args=(c,), daemon=True) for c in self.clients]
        for t in self.threads:
            t.start()

    def wait_acks(self, count, timeout=30):
        for _ in range(count):
            assert self.progress.acquire(timeout=timeout), "senders stalled"

    def fault(self, what):
        self.fault_at = time.monotonic()
        self.fault_name = what

    def finish(self, survivors=None, timeout=90):
        for t in self.threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "senders did not finish"
        assert not self.errors, self.errors
        survivors = survivors or self.clients
        acked = {}
        for client in self.clients:
            acked.update(client.acked)
        seqs = sorted(seq for _, seq in acked.values())

        def complete(client):
            with client.lock:
                return all(seq in client.view for seq in seqs)
        for client in survivors:
            wait_until(lambda: complete(client), 30, "%s to hold every acknowledged message" % client.name)
        lost = duplicated = 0
        reference = None
        for client in survivors:
            with client.lock:
                view = dict(client.view)
                assert not client.conflicts, client.conflicts
                duplicated += client.live_duplicates
            lost += sum(1 for mid, seq in acked.values() if view.get(seq, {}).get("id") != mid)
            cids = [m.get("cid") for m in view.values() if m.get("cid")]
            duplicated += len(cids) - len(set(cids))          # one cid sequenced twice
            assert sorted(view) == list(range(1, max(view) + 1)), "holes in %s's view" % client.name
            ordered = [(s, view[s]["id"]) for s in sorted(view)]
            assert reference is None or ordered == reference, "views differ"
            reference = ordered
        result = {
            "fault": self.fault_name,
            "sent": sum(c.sent for c in self.clients),
            "acknowledged": len(acked),
            "lost": lost,
            "duplicated": duplicated,
            "reconnects": sum(c.reconnects for c in self.clients),
            "gaps": sum(c.gaps for c in self.clients),
            "recovery_s": self.recovery_s,
            "peak_rss_mb": {p.name: _peak_rss_mb(p) for p in self.cluster.procs if p.alive()},
        }
        RESULTS.parent.mkdir(exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(result) + "\n")
        print("\nFAULT RESULT", json.dumps(result))
        assert (lost, duplicated, result["gaps"]) == (0, 0, 0), result
        assert len(acked) == 3 * MESSAGES_PER_CLIENT
        return result

    def measure_recovery(self, recovered):
        """Seconds from the fault until ``recovered()`` holds (polled)."""
        wait_until(recovered, 60, "recovery from %s" % self.fault_name)
        self.recovery_s = round(time.monotonic() - self.fault_at, 2)

    def close(self):
        for client in self.clients:
            client.close()


@pytest.fixture
def run(make_cluster):
    runs = []

    def make(env=None):
        r = Run(make_cluster, env)
        runs.append(r)
        return r
    yield make
    for r in runs:
        r.close()


def _acks_now(r):
    return sum(len(c.acked) for c in r.clients)


@pytest.mark.timeout(240)
def test_kill_9_broker_and_restart(run):
    r = run()
    r.start_senders()
    r.wait_acks(30)
    r.fault("kill -9 broker")
    r.cluster.broker.kill()
    time.sleep(1.0)                 # the outage itself: senders hit `unavailable` meanwhile
    before = _acks_now(r)
    r.cluster.start_broker()
    r.measure_recovery(lambda: _acks_now(r) > before + 3)
    r.finish()


@pytest.mark.timeout(240)
def test_kill_9_one_node(run):
    r = run()
    r.start_senders()
    r.wait_acks(30)
    r.fault("kill -9 node2")
    victim = r.clients[1]
    reconnects = victim.reconnects
    r.cluster.nodes["node2"][0].kill()
    r.measure_recovery(lambda: victim.reconnects > reconnects and victim.acked)
    r.finish()


@pytest.mark.timeout(240)
def test_sigstop_one_node_for_10_seconds(run):
    r = run()
    r.start_senders()
    r.wait_acks(30)
    r.fault("SIGSTOP node3 10 s")
    node3 = r.cluster.nodes["node3"][0]
    node3.signal(signal.SIGSTOP)
    try:
        victim = r.clients[2]
        victim_before = len(victim.acked)
        others_before = len(r.clients[0].acked) + len(r.clients[1].acked)
        # node3's client fails over (after its ack timeout) while node3 is still frozen
        r.measure_recovery(lambda: len(victim.acked) > victim_before)
        # and the other nodes kept going meanwhile
        assert len(r.clients[0].acked) + len(r.clients[1].acked) > others_before
        time.sleep(max(0.0, 10 - (time.monotonic() - r.fault_at)))   # the fault lasts 10 s
    finally:
        node3.signal(signal.SIGCONT)
    r.finish()
    r.cluster.wait_healthy("node3")


@pytest.mark.timeout(240)
def test_a_client_that_never_reads(run):
    r = run({"CHAT_MAX_SEND_QUEUE": "100"})
    silent = SilentClient(r.cluster.url("node1"), r.room, "silent")
    try:
        r.fault("a client that never reads (on node1)")
        r.start_senders()
        r.finish()   # nobody else noticed; test_limits proves the cut-off itself
    finally:
        silent.close()
