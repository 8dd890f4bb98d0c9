"""scripts/bench's three socket.io systems: which workloads each takes part in, and the headline table."""
from bench import cli, report
from bench.systems.servers import SYSTEMS, NodeSystem, RedisSystem


def test_node_system_runs_every_socketio_workload_but_not_the_python_profile():
    args = cli.parse_args(["--systems", "ours,redis,node", "--quick"])
    planned = {(workload, system) for workload, _, system in cli.plan(args)}
    for workload in ("fanout", "burst", "ramp", "idle"):
        assert {(workload, s) for s in ("ours", "redis", "node")} <= planned
    assert ("profile", "node") not in planned and ("pipe", "node") not in planned


def test_node_system_shares_the_redis_harness_and_starts_node_processes():
    assert issubclass(NodeSystem, RedisSystem) and SYSTEMS["node"] is NodeSystem
    argv = NodeSystem.node_argv("node2", 41002, "redis://127.0.0.1:41000/0")
    assert argv[1].endswith("bench/systems/node_baseline/server.js")
    assert argv[2:] == ["--name", "node2", "--port", "41002", "--redis", "redis://127.0.0.1:41000/0"]


def test_headline_has_a_column_and_a_ratio_for_each_baseline():
    def burst(cpu):
        return {"figures": {"server_cpu_us_per_delivery": cpu}}
    by = {("ours", "burst"): burst(30.0), ("redis", "burst"): burst(60.0), ("node", "burst"): burst(24.0)}
    lines = report.headline(by).splitlines()
    assert "Node socket.io + redis adapter" in lines[0] and "ours / node" in lines[0]
    cpu = next(line for line in lines if line.startswith("| burst: server CPU"))
    assert [cell.strip() for cell in cpu.strip("| ").split("|")][-2:] == ["0.50×", "1.25×"]
