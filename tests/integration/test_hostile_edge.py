"""Hostile clients at the edges: /metrics through the balancer, forged forwarding headers,
idle connections to the broker's metrics server."""
import socket
import time
from pathlib import Path

import pytest
import requests

from harness.cluster import start_cluster
from harness.processes import wait_until

from .hostile import connect

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


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """Broker, three nodes and HAProxy; Django in https mode, so a believed X-Forwarded-Proto shows."""
    c = start_cluster(tmp_path_factory.mktemp("edge"), env={"DJANGO_HTTPS": "1"})
    try:
        yield c
    finally:
        c.stop()


def test_metrics_are_refused_through_the_balancer_and_served_on_the_nodes_port(edge):
    for path in ("/metrics", "//metrics", "/%6detrics", "/METRICS", "/metrics?format=x"):
        refused = requests.get(edge.balancer_url + path, timeout=5)
        assert refused.status_code == 403, (path, refused.status_code)
    scraped = requests.get(edge.url("node1") + "/metrics", timeout=5)
    assert scraped.status_code == 200 and "chat_" in scraped.text


def _refused_as(cluster, url, headers):
    """The client address a node logs when it refuses a foreign Host on /socket.io/."""
    def logs():
        return {name: proc.log() for name, (proc, _) in cluster.nodes.items()}
    before = logs()
    sock = connect(url)
    sock.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: rebound.example\r\n"
                 + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
                 + b"\r\n")
    assert b" 400 " in sock.recv(4096)
    sock.close()

    def added():
        return "".join(log[len(before[name]):] for name, log in logs().items())
    wait_until(lambda: "refused " in added(), 5, "the refusal logged")
    return added().split("refused ", 1)[1].split(":", 1)[0]


def test_a_client_cannot_choose_its_address_or_tls_through_the_balancer_or_at_a_node(edge):
    forged = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    assert _refused_as(edge, edge.balancer_url, forged) == "127.0.0.1"
    assert _refused_as(edge, edge.url("node1"), forged) == "127.0.0.1"   # a local process
    for url in (edge.balancer_url, edge.url("node1")):   # https mode: plain http is redirected
        page = requests.get(url + "/accounts/login/", headers=forged, allow_redirects=False,
                            timeout=5)
        assert page.status_code == 301 and page.headers["Location"].startswith("https://"), url
