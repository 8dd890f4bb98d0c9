"""scripts/status against a running cluster: every node and the broker listed with
their figures, exit 0; a node that is down is named and the exit status is 1."""
import subprocess

from harness.processes import ROOT, free_port


def _status(*args):
    return subprocess.run([str(ROOT / "scripts/status"), "--no-supervisor", "--interval", "0.3", *args],
                          capture_output=True, text=True, timeout=60)


def test_status_of_a_healthy_cluster_exits_zero(cluster):
    done = _status("--targets", cluster.ops_targets())
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in ("node1", "node2", "node3"):
        line = next(line for line in lines if line.startswith(name))
        assert " up " in line and "/healthz 200" in line and "link live" in line, line
    assert any(line.startswith("broker") and "primary, 3 nodes" in line for line in lines), lines
    assert lines[-2].startswith("cluster  3/3 nodes up") and lines[-1] == "status   OK"


def test_status_names_a_node_that_is_down_and_exits_one(cluster):
    gone = "node9=http://127.0.0.1:%d" % free_port()
    done = _status("--targets", cluster.ops_targets() + "," + gone)
    assert done.returncode == 1, done.stdout + done.stderr
    assert any(line.startswith("node9") and "DOWN" in line for line in done.stdout.splitlines())
    assert done.stdout.splitlines()[-1] == "status   SOMETHING IS DOWN"


def test_status_counts_a_supervisor_that_is_not_running_as_down(cluster, tmp_path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisorctl]\nserverurl=unix://%s\n" % (tmp_path / "none.sock"))
    done = subprocess.run([str(ROOT / "scripts/status"), "--supervisor-conf", str(conf),
                           "--targets", cluster.ops_targets(), "--interval", "0.2"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.startswith("supervisor: "), done.stdout
