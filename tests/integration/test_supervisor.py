"""supervisord.conf itself: the seven programs run, and `restart node3` is harmless."""
import pytest

from harness.client import new_room
from harness.processes import wait_until

from .supervised import SupervisedCluster, programs as supervised_programs


@pytest.fixture
def supervised(tmp_path):
    cluster = SupervisedCluster(tmp_path, env={"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"})
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop(timeout=30)


def test_supervisor_runs_the_cluster_and_restarts_node3(supervised, client):
    from harness.cluster import Cluster
    ports, ctl = supervised.ports, supervised.ctl
    programs = supervised_programs()
    wait_until(lambda: supervised.status() == {p: "RUNNING" for p in programs}, 30, "all programs RUNNING")
    url = {n: "http://127.0.0.1:%d" % ports[8000 + i] for i, n in enumerate(("balancer", "node1", "node2", "node3"))}
    for name, u in url.items():
        wait_until(lambda: Cluster.health(u) == 200, 20, "%s healthy" % name)
    room = new_room()
    c1, c2, c3 = (client(url[n], name=n + "-user") for n in ("node1", "node2", "node3"))
    for c in (c1, c2, c3):
        c.join(room)
    for i in range(5):
        assert c3.send(room, "before %d" % i)["ok"]
    c1.wait_messages(room, 5)

    restarted = ctl("restart", "node3")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "node3: started" in restarted.stdout
    assert c1.send(room, "during")["ok"] and c2.send(room, "during too")["ok"]
    wait_until(lambda: Cluster.health(url["node3"]) == 200, 20, "node3 back")
    back = client(url["node3"], name="back")
    ack = back.join(room)
    assert ack["history"] == c1.wait_messages(room, 7) == c2.wait_messages(room, 7)
    assert supervised.status() == {p: "RUNNING" for p in programs}
