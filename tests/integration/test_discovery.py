"""Nodes added and removed with scripts/node are found without hand edits: the discovery
file it writes (chatstream/discovery.py) feeds a real Prometheus running
deploy/prometheus.yml itself, /ops/ and scripts/status.  The cluster is
supervisord.conf itself, relocated to free ports, as test_supervisor.py runs it."""
import json
import shutil
import subprocess

import pytest
import requests

from harness.processes import ROOT, Proc, base_env, free_port, wait_until

from .supervised import SupervisedCluster

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="Debian's prometheus package is not installed (scripts/setup --test installs it as root)")
STAFF = {"DJANGO_SUPERUSER_USERNAME": "olga", "DJANGO_SUPERUSER_PASSWORD": "ops-horse-battery-7",
         "DJANGO_SUPERUSER_EMAIL": "olga@example.org"}
SHOWN_WITHIN_S = 15     # "within seconds": Prometheus' file watch plus a 1 s scrape, under load


def _prometheus_config(tmp_path, broker_ports):
    """deploy/prometheus.yml with a 1 s scrape and this cluster's broker ports, in
    ``tmp_path/deploy`` so its ``../var/targets/nodes.json`` is this cluster's file."""
    text = (ROOT / "deploy/prometheus.yml").read_text().replace(": 5s", ": 1s")
    for default, port in broker_ports.items():
        text = text.replace("127.0.0.1:%d" % default, "127.0.0.1:%d" % port)
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "deploy/alerts.yml", tmp_path / "deploy/alerts.yml")
    path = tmp_path / "deploy/prometheus.yml"
    path.write_text(text)
    return path


def _nodes_in_prometheus(url):
    """{node: health} of the chat-node job's active targets."""
    try:
        targets = requests.get(url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    except requests.RequestException:
        return {}
    return {t["labels"].get("node"): t["health"] for t in targets if t["labels"]["job"] == "chat-node"}


def _status_nodes(supervised):
    """{node: its line} of scripts/status, run as an operator does on that cluster."""
    done = subprocess.run([str(ROOT / "scripts/status"), "--supervisor-conf", str(supervised["conf"]),
                           "--interval", "0.3"], env=supervised["env"], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.splitlines()[-1].startswith("status"), done.stdout + done.stderr
    return {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("node")}


def _staff_session(base):
    """A requests session logged in as the staff account (Django's login form)."""
    session = requests.Session()
    session.get(base + "/accounts/login/", timeout=10)
    answer = session.post(base + "/accounts/login/", timeout=10, data={
        "username": STAFF["DJANGO_SUPERUSER_USERNAME"], "password": STAFF["DJANGO_SUPERUSER_PASSWORD"],
        "csrfmiddlewaretoken": session.cookies["csrftoken"], "next": "/ops/"})
    assert answer.ok and "sessionid" in session.cookies, answer.status_code
    return session


def _ops_nodes(session, base):
    """{node: state} in /ops/'s sample."""
    sample = session.get(base + "/ops/sample", timeout=10).json()
    return {row["name"]: row["state"] for row in sample["targets"] if row["kind"] == "node"}


@pytest.fixture
def supervised(tmp_path):
    """supervisord.conf's cluster on free ports with its own database and discovery file."""
    cluster = SupervisedCluster(tmp_path)
    metrics = int(cluster.env["CHAT_BROKER_METRICS_PORT"])
    cluster.env["CHAT_OPS_TARGETS"] = "broker=http://127.0.0.1:%d,broker2=http://127.0.0.1:%d" % (
        metrics, cluster.ports[5568])
    cluster.manage("migrate", "--noinput")
    cluster.manage("createsuperuser", "--noinput", env=STAFF)
    cluster.start()
    try:
        cluster.node("ready")
        yield {"tmp": tmp_path, "var": cluster.var, "env": cluster.env, "run": cluster.node,
               "conf": cluster.conf, "node1": cluster.node_url("node1"),
               "brokers": {5558: metrics, 5568: cluster.ports[5568]}}
    finally:
        cluster.stop(timeout=30)


@pytest.mark.timeout(300)
def test_an_added_node_shows_on_ops_in_status_and_in_prometheus_and_a_removed_one_leaves(supervised):
    var, run = supervised["var"], supervised["run"]
    targets = var / "targets/nodes.json"
    written = json.loads(targets.read_text())   # by `ready`, as scripts/run has it
    assert [g["labels"]["node"] for g in written] == ["node1", "node2", "node3"]
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    prom = Proc("prometheus", [PROMETHEUS, "--config.file=%s" % _prometheus_config(
        supervised["tmp"], supervised["brokers"]), "--storage.tsdb.path=%s" % (supervised["tmp"] / "tsdb"),
        "--web.listen-address=127.0.0.1:%d" % port], base_env(), supervised["tmp"]).start()
    try:
        wait_until(lambda: _nodes_in_prometheus(url) == dict.fromkeys(("node1", "node2", "node3"), "up"),
                   30, "node1..node3 up in Prometheus", interval=0.5)
        staff = _staff_session(supervised["node1"])
        assert _ops_nodes(staff, supervised["node1"]) == dict.fromkeys(("node1", "node2", "node3"), "up")
        assert set(_status_nodes(supervised)) == {"node1", "node2", "node3"}
        node4 = free_port()
        run("add", "node4", "--port", str(node4))
        assert {"targets": ["127.0.0.1:%d" % node4], "labels": {"node": "node4"}} in json.loads(
            targets.read_text())
        wait_until(lambda: _ops_nodes(staff, supervised["node1"]).get("node4") == "up", SHOWN_WITHIN_S,
                   "node4 up on /ops/", interval=0.5)
        assert " up " in _status_nodes(supervised)["node4"]
        wait_until(lambda: _nodes_in_prometheus(url).get("node4") == "up", SHOWN_WITHIN_S,
                   "node4 up in Prometheus", interval=0.5)
        run("remove", "node4")
        assert "node4" not in targets.read_text()
        assert set(_status_nodes(supervised)) == {"node1", "node2", "node3"}
        wait_until(lambda: set(_ops_nodes(staff, supervised["node1"])) == {"node1", "node2", "node3"},
                   SHOWN_WITHIN_S, "node4 gone from /ops/", interval=0.5)
        wait_until(lambda: set(_nodes_in_prometheus(url)) == {"node1", "node2", "node3"},
                   SHOWN_WITHIN_S, "node4 gone from Prometheus", interval=0.5)
    finally:
        prom.stop()
