"""The broker pair's faults across hosts (issue 15): broker on a, broker2 on b, node1 +
node2 on c, node3 on d, the clients on f (conftest.py), CURVE on.

tests/integration/test_failover.py's test runs here unchanged (two nodes on c).  Then,
under a steady stream from a client on every node: kill -9 of the active broker; host a
cut off (its switch port down), so the nodes lose the active and broker2 takes over;
the a-b link alone cut (blackhole routes) while both still reach the nodes, which must
never give two active brokers.  Each: every acknowledged message exactly once in the
same order at every client, the same epoch, nobody disconnected, and the time from the
fault to the first ack (printed, and appended to var/fault-results.jsonl).
"""
import threading
import time

import pytest

from harness.client import new_room
from harness.processes import wait_until
from tests.integration import test_failover
from tests.integration.test_failover import (  # noqa: F401  (collected here, across hosts)
    FAST, Sender, _first_ack_after, _more, check_stream, record,
    test_losing_the_active_broker_loses_nothing_and_disconnects_nobody)

pytestmark = pytest.mark.timeout(240)
NODES = ("node1", "node2", "node3")
TOOK_OVER = "-> ACTIVE"            # broker/bstar.py logs every change of state
CAUGHT_UP = "caught up with the active"
FAULTS = {"kill": "kill -9 of the active broker",
          "cut": "host a (the active broker) cut off",
          "cut-and-back": "host a (the active broker) cut off, then back",
          "partition": "the a-b link cut, both brokers reaching the nodes, then healed"}
# Found by this test, fixed in web/chat/link/failover.py: (1) when host a came back, its
# broker (still active, the older term) published to the nodes before it heard broker2,
# and the nodes followed it, restarting their rooms' members, until it exited; nodes now
# follow the newest term.  (2) With a-b cut, the active holds its acks until it declares
# broker2 dead (2 heartbeats), longer than one node attempt (1 s): the nodes asked
# broker2, which had lost its peer too and took over (two actives); nodes now ask the
# other broker only once this one has been silent on PUB for 1.5 s.


@pytest.fixture(autouse=True)
def _loopback_rows_stay_loopback(request, monkeypatch, tmp_path):
    """The imported loopback test's rows would read as loopback figures: not in var/."""
    if request.function.__module__ == test_failover.__name__:
        monkeypatch.setattr(test_failover, "RESULTS", tmp_path / "fault-results.jsonl")


def _broker2(cluster):
    return next(p for p in reversed(cluster.procs) if p.name == "broker2")


class TwoActives:
    """Watches both brokers' logs in the background: fails if broker2 takes over (while
    the active still serves, that makes two) or the active hears a second active."""

    def __init__(self, cluster):
        self.cluster, self.seen, self.stop = cluster, [], threading.Event()
        self.before = _broker2(cluster).log().count(TOOK_OVER)
        self.caught_up = _broker2(cluster).log().count(CAUGHT_UP)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.05):
            if _broker2(self.cluster).log().count(TOOK_OVER) > self.before:
                self.seen.append("broker2 became active")
            if "is active too" in self.cluster.broker.log():
                self.seen.append("broker heard a second active")

    def check(self):
        self.stop.set()
        self.thread.join(5)
        assert not self.seen, "two active brokers: %s" % self.seen[0]


def _partition(c, hosts, senders, watch):
    """a-b stays cut past broker2's peer expiry (2 heartbeats) while the stream goes on;
    healed, broker2 catches up afresh; then kill -9 of broker: broker2 serves what it has."""
    wait_until(lambda: "passive detached" in c.broker.log(), 15, "the active to drop broker2")
    until = time.monotonic() + 3.0    # an observation window past broker2's peer expiry
    while time.monotonic() < until:
        _more(senders, 5, "the stream during the partition")
    hosts.heal()
    wait_until(lambda: _broker2(c).log().count(CAUGHT_UP) > watch.caught_up, 30,
               "broker2 to catch up again after the partition")
    _more(senders, 10, "the stream after the partition")
    watch.check()
    c.broker.kill()
    back = time.monotonic()
    _first_ack_after(senders, back)
    _more(senders, 20, "the stream on broker2 after the kill")


def _cut(c, hosts, senders, back):
    """Host a stays off until broker2 serves.  ``back``: then on again, and broker (the
    older term) steps down: it goes passive, or exits and, restarted as supervisor does,
    comes back passive; either way it catches up."""
    wait_until(lambda: TOOK_OVER in _broker2(c).log(), 15, "broker2 to take over")
    _more(senders, 20, "the stream on broker2")
    if not back:
        return
    caught_up = c.broker.log().count(CAUGHT_UP)
    hosts.mend("a")
    wait_until(lambda: not c.broker.alive() or "-> PASSIVE" in c.broker.log(), 30,
               "the cut-off broker to step down")
    if not c.broker.alive():
        caught_up = 0
        c.start_pair_broker("broker")
    wait_until(lambda: c.broker.log().count(CAUGHT_UP) > caught_up, 30,
               "the former active to catch up as passive")
    _more(senders, 20, "the stream with broker back as passive")


def _longest_pause(senders, fault_at):
    """The longest time without any ack from the fault on (the clients' stall)."""
    times = sorted(t for s in senders for _, t in s.acked.values())
    return max(b - max(a, fault_at) for a, b in zip(times, times[1:]) if b > fault_at)


# Back on the network, the older active may exit (supervisor restarts it; _cut does).
OLDER_ACTIVE_EXITS = pytest.mark.allow_log_errors(
    r"CRITICAL broker broker: both brokers are active, the peer since term \d+, this one since \d+: exiting")


@pytest.mark.parametrize("fault", ["kill", "cut", pytest.param("cut-and-back", marks=OLDER_ACTIVE_EXITS),
                                   "partition"])
def test_a_broker_fault_under_a_stream_from_every_node(make_cluster, hosts, fault):
    c = make_cluster(FAST)
    c.start_pair()
    c.start_nodes(NODES, timeout=60)
    room = new_room("across")
    senders = [Sender(c.url(name), room, name) for name in NODES]
    for s in senders:
        s.thread.start()
    wait_until(lambda: all(len(s.acked) >= 20 for s in senders), 30, "a steady stream")
    watch = TwoActives(c) if fault == "partition" else None
    fault_at = time.monotonic()
    if fault == "kill":
        c.broker.kill()
    elif fault.startswith("cut"):
        hosts.cut("a")
    else:
        hosts.partition("a", "b")
    try:
        first_ack_s = _first_ack_after(senders, fault_at)
        _more(senders, 20, "the stream after the fault")
        pause_s = _longest_pause(senders, fault_at)
        if fault.startswith("cut"):
            _cut(c, hosts, senders, back=fault == "cut-and-back")
        elif fault == "partition":
            _partition(c, hosts, senders, watch)
        total = check_stream(senders, room)
    except AssertionError:
        if watch is not None:
            watch.check()          # two actives explain any failure above
        raise
    record({"fault": FAULTS[fault] + " (across hosts)",
            "first_ack_after_fault_s": round(first_ack_s, 2),
            "longest_ack_pause_s": round(pause_s, 2), "acked": total,
            "refused_then_resent": sum(s.refused for s in senders),
            "disconnects": 0, "same_epoch": True})
    for s in senders:
        s.client.close()
    assert pause_s < 5.0
