"""A real Prometheus (Debian's ``prometheus`` package) scrapes a running cluster:
every node and the broker are ``up`` and the delivery rate is above zero after
traffic; deploy/alerts.yml and deploy/prometheus.yml pass ``promtool``."""
import shutil
import subprocess

import pytest
import requests

from harness.processes import ROOT, Proc, base_env, free_port, wait_until

from .traffic import send_across

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="Debian's prometheus package is not installed (scripts/setup --test installs it as root)")


def test_alert_rules_and_the_default_config_pass_promtool():
    for argv in (["check", "rules", "deploy/alerts.yml"], ["check", "config", "deploy/prometheus.yml"]):
        done = subprocess.run([PROMTOOL, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def _config(cluster):
    """deploy/prometheus.yml's jobs and rules, with this cluster's ports and a 1 s scrape."""
    nodes = ", ".join('"127.0.0.1:%d"' % port for _, port in cluster.nodes.values())
    return ("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [\"%s\"]\n"
            "scrape_configs:\n"
            "  - {job_name: chat-node, static_configs: [{targets: [%s]}]}\n"
            "  - {job_name: chat-broker, static_configs: [{targets: [\"127.0.0.1:%d\"]}]}\n"
            % (ROOT / "deploy/alerts.yml", nodes, cluster.metrics_port))


def _query(url, expr):
    answer = requests.get(url + "/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_every_node_and_the_broker(cluster, client, tmp_path):
    (tmp_path / "prometheus.yml").write_text(_config(cluster))
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    prom = Proc("prometheus", [PROMETHEUS, "--config.file=%s" % (tmp_path / "prometheus.yml"),
                               "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                               "--web.listen-address=127.0.0.1:%d" % port], base_env(), tmp_path).start()
    try:
        def all_up():
            assert prom.alive(), prom.log()[-3000:]
            targets = requests.get(url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
            return len(targets) == 4 and all(t["health"] == "up" for t in targets)
        wait_until(lambda: _ok(all_up), 30, "every target up in Prometheus")

        send_across(cluster, client, 20)

        def delivering():
            result = _query(url, "sum(rate(chat_deliveries_total[15s]))")
            return bool(result) and float(result[0]["value"][1]) > 0
        wait_until(delivering, 30, "a delivery rate above zero", interval=0.5)
        assert {r["metric"]["job"] for r in _query(url, "up == 1")} == {"chat-node", "chat-broker"}
        assert len(_query(url, "up == 1")) == 4
    finally:
        prom.stop()


def _ok(predicate):
    try:
        return predicate()
    except requests.RequestException:
        return False
