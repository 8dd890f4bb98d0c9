"""Limits per person, not per connection, over real processes: 20 connections of one
account on three nodes get one person's message rate between them, and guests of one
address a few persons' (PROTOCOL-EXTENSIONS.md "Limits per person")."""
import threading
import time

import pytest

from harness.client import new_room
from harness.cluster import process_errors, start_cluster

from .test_identity import logged_in
from .test_unread import create_accounts

pytestmark = pytest.mark.timeout(120)

RATE_PER_S, BURST, ADDRESS_FACTOR = 5, 10, 2
NODES = ("node1", "node2", "node3")
FLOOD_S = 3.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # each connection alone may send 1000/s: only the per-person limit holds them back
    c = start_cluster(tmp_path_factory.mktemp("person-limits"), balancer=False, env={
        "CHAT_RATE_PER_S": "1000", "CHAT_RATE_BURST": "1000",
        "CHAT_REQUEST_RATES": "join=1000/1000",
        "CHAT_PERSON_RATES": "message=%d/%d" % (RATE_PER_S, BURST),
        "CHAT_ADDRESS_RATE_FACTOR": str(ADDRESS_FACTOR)})
    try:
        create_accounts(c, "alice", "bob")
        yield c
    finally:
        c.stop()
    errors = process_errors(c)
    assert not errors, "tracebacks or errors in process logs:\n%s" % errors


def flood(clients, room, seconds):
    """Every client sends as fast as its acks come, for ``seconds``; returns the acks."""
    acks, lock = [], threading.Lock()
    deadline = time.monotonic() + seconds

    def run(c, i):
        n = 0
        while time.monotonic() < deadline and n < 2000:
            ack = c.send(room, "%s %d" % (c.name, n))
            n += 1
            with lock:
                acks.append(ack)
            if not ack["ok"]:
                time.sleep(0.01)    # a refused client retries soon, as a script would
    threads = [threading.Thread(target=run, args=(c, i)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return acks


def most_allowed(persons_allowance, seconds, nodes=len(NODES)):
    """One person's burst on each node it uses (before the nodes hear of each other), its
    rate for the whole time, and one report period's worth more per node."""
    per_s, burst = persons_allowance
    return nodes * burst + per_s * (seconds + 1) + nodes * per_s


def test_twenty_connections_of_one_account_on_three_nodes_share_one_persons_rate(cluster, client):
    cookies = {"sessionid": logged_in(cluster.url("node1"), "alice").cookies["sessionid"]}
    room = new_room()
    alices = [client(cluster.url(NODES[i % 3]), name="alice%d" % i, cookies=cookies)
              for i in range(20)]
    for c in alices:
        c.join(room, nick=False)
    bob = client(cluster.url("node2"), name="bob", cookies={
        "sessionid": logged_in(cluster.url("node2"), "bob").cookies["sessionid"]})
    bob.join(room, nick=False)
    started = time.monotonic()
    acks = flood(alices, room, FLOOD_S)
    elapsed = time.monotonic() - started
    accepted = [a for a in acks if a["ok"]]
    refused = [a for a in acks if not a["ok"]]
    assert len(accepted) <= most_allowed((RATE_PER_S, BURST), elapsed), (len(accepted), elapsed)
    assert len(accepted) >= BURST                       # the person is limited, not blocked
    assert refused and {a["error"] for a in refused} == {"rate_limited"}
    # at most a burst overdrawn (what other nodes admitted meanwhile) and one more to earn
    assert all(0 < a["retry_after_ms"] <= 1000 * (BURST + 1) / RATE_PER_S for a in refused)
    assert "from one person" in refused[0]["detail"]
    assert bob.send(room, "another person is not limited")["ok"]
    # the allowance comes back: after its hint, one message goes through
    wait_ms = max(a["retry_after_ms"] for a in refused[-5:])
    time.sleep(wait_ms / 1000 + 0.5)      # the limit's own clock: waiting is the behaviour
    assert alices[0].send(room, "after the wait")["ok"]


def test_guests_without_a_session_share_their_addresss_allowance(cluster, client):
    room = new_room()
    guests = [client(cluster.url(NODES[i % 3]), name="guest%d" % i) for i in range(6)]
    for c in guests:
        c.join(room)
    started = time.monotonic()
    acks = flood(guests, room, FLOOD_S)
    elapsed = time.monotonic() - started
    accepted = [a for a in acks if a["ok"]]
    allowance = (RATE_PER_S * ADDRESS_FACTOR, BURST * ADDRESS_FACTOR)
    assert len(accepted) <= most_allowed(allowance, elapsed), (len(accepted), elapsed)
    assert any(a.get("error") == "rate_limited" for a in acks)
