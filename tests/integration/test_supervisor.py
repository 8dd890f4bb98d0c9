"""supervisord.conf itself: the seven programs run, and `restart node3` is harmless."""
import re
import subprocess

import pytest

from harness.client import new_room
from harness.processes import ROOT, Proc, base_env as _base_env, free_port, wait_until

SUPERVISORCTL = str(ROOT / ".venv/bin/supervisorctl")
SUPERVISORD = str(ROOT / ".venv/bin/supervisord")


def _relocated_config(tmp_path, ports):
    """supervisord.conf with its ports and var/ moved, so it can run beside a live cluster."""
    text = (ROOT / "supervisord.conf").read_text()
    text = text.replace("%(here)s/var", str(tmp_path / "var")).replace("%(here)s", str(ROOT))
    for default, port in ports.items():
        text = re.sub(r"(?<=[ :\"])%d\b" % default, str(port), text)
    path = tmp_path / "supervisord.conf"
    path.write_text(text)
    (tmp_path / "var" / "log").mkdir(parents=True)
    return path


@pytest.fixture
def supervised(tmp_path):
    ports = {p: free_port() for p in (8000, 8001, 8002, 8003, 8443,
                                      5559, 5565, 5566, 5567, 5568, 5569)}   # 55xx: the pair
    conf = _relocated_config(tmp_path, ports)
    # What scripts/run makes in var/ before it starts supervisord: the balancer's certificate.
    subprocess.run([str(ROOT / "scripts/tls-cert"), str(tmp_path / "var/tls/chat.pem")],
                   check=True, capture_output=True, timeout=60)
    env = _base_env({"CHAT_BROKER_%s_PORT" % k: str(free_port()) for k in ("INTAKE", "PUBLISH", "SNAPSHOT", "METRICS")})
    # the broker's store in this folder (broker2's is relocated with var/; broker's default is
    # the repository's var/broker.sqlite3)
    env.update(CHAT_RATE_PER_S="10000", CHAT_RATE_BURST="10000",
               CHAT_BROKER_STATE=str(tmp_path / "var" / "broker.sqlite3"))
    sup = Proc("supervisord", [SUPERVISORD, "-n", "-c", str(conf)], env, tmp_path).start()

    def ctl(*args):
        return subprocess.run([SUPERVISORCTL, "-c", str(conf), *args], capture_output=True,
                              text=True, timeout=60, env=env)
    try:
        yield conf, ports, ctl
    finally:
        sup.stop(timeout=30)


def _status(ctl):
    out = ctl("status").stdout
    return dict(re.findall(r"^(\S+)\s+(\S+)", out, re.M))


def test_supervisor_runs_the_cluster_and_restarts_node3(supervised, client):
    from harness.cluster import Cluster
    conf, ports, ctl = supervised
    programs = {"broker", "broker2", "archiver", "node1", "node2", "node3", "balancer"}
    wait_until(lambda: _status(ctl) == {p: "RUNNING" for p in programs}, 30, "all programs RUNNING")
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
    assert _status(ctl) == {p: "RUNNING" for p in programs}
