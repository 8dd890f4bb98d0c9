"""The discovery file (chatstream/discovery.py): Prometheus' file_sd layout, whole files only."""
import json

from chatstream import discovery


def test_the_file_is_prometheus_file_sd_one_group_per_node(tmp_path):
    path = tmp_path / "targets" / "nodes.json"
    discovery.write(path, {"node4": "127.0.0.1:8004", "node1": "127.0.0.1:8001"})
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:8001"], "labels": {"node": "node1"}},
        {"targets": ["127.0.0.1:8004"], "labels": {"node": "node4"}}]
    assert discovery.read(path) == [("node1", "http://127.0.0.1:8001"), ("node4", "http://127.0.0.1:8004")]
    discovery.write(path, {"node1": "127.0.0.1:8001"})     # node4 removed
    assert discovery.read(path) == [("node1", "http://127.0.0.1:8001")]
    assert [p.name for p in path.parent.iterdir()] == ["nodes.json"]   # no partial file left


def test_discovered_nodes_join_the_static_targets_and_a_missing_file_adds_none(tmp_path):
    path = tmp_path / "nodes.json"
    static = [("node1", "http://127.0.0.1:9001"), ("broker", "http://127.0.0.1:5558")]
    assert discovery.merged(static, path) == static
    discovery.write(path, {"node1": "127.0.0.1:8001", "node5": "10.0.0.5:8001"})
    assert discovery.merged(static, path) == [
        ("node1", "http://127.0.0.1:8001"), ("broker", "http://127.0.0.1:5558"),
        ("node5", "http://10.0.0.5:8001")]


def test_the_default_file_is_read_only_when_no_targets_are_set_by_hand():
    from chatstream.config import OPS_TARGETS_FILE, ops_targets_file
    assert ops_targets_file({}, "/repo") == "/repo/" + OPS_TARGETS_FILE
    assert ops_targets_file({"CHAT_OPS_TARGETS": "node1=http://h:1"}, "/repo") is None
    assert ops_targets_file({"CHAT_OPS_TARGETS": "node1=http://h:1",
                             "CHAT_OPS_TARGETS_FILE": "/srv/nodes.json"}, "/repo") == "/srv/nodes.json"
