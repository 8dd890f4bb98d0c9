"""Hostile clients at the edges: idle connections to the broker's metrics server."""
import socket
import time
from pathlib import Path

import requests

from harness.processes import wait_until

IDLE_CONNECTIONS = 100


def status(url):
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def threads(pid):
    status = Path("/proc/%d/status" % pid).read_text()
    return int(status.split("Threads:")[1].split()[0])


def test_idle_connections_to_the_brokers_metrics_are_closed_and_free_their_threads(make_cluster):
    cluster = make_cluster()
    broker = cluster.start_broker()
    url = cluster.broker_metrics_url + "/metrics"
    wait_until(lambda: status(url) == 200, 20, "broker metrics")
    before = threads(broker.pid)
    idle = [socket.create_connection(("127.0.0.1", cluster.metrics_port), timeout=30)
            for _ in range(IDLE_CONNECTIONS)]
    try:
        idle[0].sendall(b"GET /metr")           # a request that trickles, then stops
        wait_until(lambda: threads(broker.pid) >= before + IDLE_CONNECTIONS // 2, 10,
                   "a thread per connection")
        started = time.monotonic()
        for conn in idle:                        # the server closes each: EOF, no answer
            assert conn.recv(1024) == b""
        closed_s = time.monotonic() - started
        wait_until(lambda: threads(broker.pid) <= before, 10, "the threads gone")
        print("\n%d idle connections closed within %.1f s" % (IDLE_CONNECTIONS, closed_s))
        assert requests.get(url, timeout=5).status_code == 200
        assert "Traceback" not in broker.log()
    finally:
        for conn in idle:
            conn.close()
