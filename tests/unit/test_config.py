"""chatstream.config: one default per key, one endpoint rule for broker and nodes,
and ``runnode --name`` applied before the settings (and the log format) load."""
import os
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatstream import config

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_shared_defaults():
    assert (config.INTAKE_ENDPOINT, config.PUBLISH_ENDPOINT, config.SNAPSHOT_ENDPOINT) == (
        "tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557")
    assert (config.HISTORY_SIZE, config.HEARTBEAT_MS, config.DEAD_AFTER_MS,
            config.ACK_TIMEOUT_MS, config.ZMQ_HWM, config.MAX_PAYLOAD_BYTES) == (
        50, 1000, 3000, 5000, 100_000, 16384)


def test_without_environment_both_sides_use_the_default_endpoints():
    expected = {"intake": config.INTAKE_ENDPOINT, "publish": config.PUBLISH_ENDPOINT,
                "snapshot": config.SNAPSHOT_ENDPOINT}
    assert config.broker_endpoints({}) == expected
    assert config.broker_endpoints({}, bind=True) == expected


def test_host_and_ports_make_the_broker_bind_where_nodes_connect():
    environ = {"CHAT_BROKER_HOST": "10.0.0.7", "CHAT_BROKER_INTAKE_PORT": "6001",
               "CHAT_BROKER_PUBLISH_PORT": "6002", "CHAT_BROKER_SNAPSHOT_PORT": "6003"}
    expected = {"intake": "tcp://10.0.0.7:6001", "publish": "tcp://10.0.0.7:6002",
                "snapshot": "tcp://10.0.0.7:6003"}
    assert config.broker_endpoints(environ) == expected
    assert config.broker_endpoints(environ, bind=True) == expected


def test_explicit_endpoints_belong_to_their_side():
    environ = {"CHAT_BROKER_INTAKE": "tcp://broker:7000",
               "CHAT_BROKER_PUBLISH_BIND": "tcp://0.0.0.0:7001"}
    node, broker = config.broker_endpoints(environ), config.broker_endpoints(environ, bind=True)
    assert (node["intake"], node["publish"]) == ("tcp://broker:7000", config.PUBLISH_ENDPOINT)
    assert (broker["intake"], broker["publish"]) == (config.INTAKE_ENDPOINT, "tcp://0.0.0.0:7001")


def test_an_ipv6_host_gets_brackets():
    assert config.tcp_endpoint("::1", 5555) == "tcp://[::1]:5555"


def test_env_int_names_the_variable_it_cannot_read():
    assert config.env_int("X_MS", 7, {}) == 7
    assert config.env_int("X_MS", 7, {"X_MS": "9"}) == 9
    with pytest.raises(ValueError, match="X_MS"):
        config.env_int("X_MS", 7, {"X_MS": "soon"})


def test_broker_config_defaults_are_the_shared_ones():
    cfg = config.broker_config({})
    assert cfg == config.BrokerConfig()
    assert (cfg.intake, cfg.history_size, cfg.heartbeat_ms, cfg.sndhwm, cfg.rcvhwm) == (
        config.INTAKE_ENDPOINT, config.HISTORY_SIZE, config.HEARTBEAT_MS,
        config.ZMQ_HWM, config.ZMQ_HWM)


def test_broker_config_reads_bind_endpoints_and_its_own_keys():
    cfg = config.broker_config({"CHAT_BROKER_HOST": "0.0.0.0", "CHAT_BROKER_SNAPSHOT_BIND": "ipc://s",
                                  "CHAT_HISTORY_SIZE": "7", "CHAT_BROKER_SYNC": "full"})
    assert (cfg.intake, cfg.snapshot, cfg.history_size, cfg.state_sync) == (
        "tcp://0.0.0.0:5555", "ipc://s", 7, "FULL")


def node_settings(monkeypatch, **environ):
    for name in [n for n in os.environ if n.startswith("CHAT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DJANGO_SECRET_KEY", "test-secret")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_module("chatsite.settings")


def test_node_settings_default_to_the_shared_values(monkeypatch):
    s = node_settings(monkeypatch)
    assert (s["CHAT_BROKER_INTAKE"], s["CHAT_BROKER_PUBLISH"], s["CHAT_BROKER_SNAPSHOT"]) == (
        config.INTAKE_ENDPOINT, config.PUBLISH_ENDPOINT, config.SNAPSHOT_ENDPOINT)
    assert (s["CHAT_HISTORY_SIZE"], s["CHAT_BROKER_HEARTBEAT_MS"], s["CHAT_BROKER_DEAD_AFTER_MS"],
            s["CHAT_ACK_TIMEOUT_MS"], s["CHAT_ZMQ_HWM"], s["CHAT_MAX_PAYLOAD_BYTES"]) == (
        50, 1000, 3000, 5000, 100_000, 16384)
    assert (s["CHAT_NODE_NAME"], s["CHAT_NODE_HOST"], s["CHAT_NODE_PORT"]) == ("node1", "127.0.0.1", 8001)


def test_node_settings_connect_where_the_broker_config_binds(monkeypatch):
    environ = {"CHAT_BROKER_HOST": "10.1.2.3", "CHAT_BROKER_PUBLISH_PORT": "6100"}
    s = node_settings(monkeypatch, **environ)
    broker = config.broker_config(environ)
    assert (s["CHAT_BROKER_INTAKE"], s["CHAT_BROKER_PUBLISH"], s["CHAT_BROKER_SNAPSHOT"]) == (
        broker.intake, broker.publish, broker.snapshot)


def test_runnode_options_go_into_the_environment():
    from chat.management.commands.runnode import options_to_env
    environ = {"CHAT_NODE_NAME": "node1"}
    options_to_env(["--name", "node4", "--port=8104", "--verbosity", "2"], environ)
    assert environ == {"CHAT_NODE_NAME": "node4", "CHAT_NODE_PORT": "8104"}


# --- a real node process ---------------------------------------------------------

# The development cluster's ports (scripts/run) may be in use on this machine.
_RESERVED_PORTS = {8000, 8001, 8002, 8003, 5555, 5556, 5557}


def _free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _RESERVED_PORTS:
            return port


def test_runnode_name_option_names_the_node_in_its_log_lines(tmp_path):
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    environ.update(PYTHONUNBUFFERED="1", DJANGO_SECRET_KEY="test-secret",
                   CHAT_NODE_NAME="node1",      # the option must win over the environment
                   # no broker there: the node starts and waits for one
                   CHAT_BROKER_INTAKE_PORT=str(_free_port()),
                   CHAT_BROKER_PUBLISH_PORT=str(_free_port()),
                   CHAT_BROKER_SNAPSHOT_PORT=str(_free_port()))
    log_path = tmp_path / "node4.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "web/manage.py", "runnode", "--name", "node4",
                                 "--port", str(port)], cwd=ROOT, env=environ,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "serving on" not in log_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(10)
    lines = [line for line in log_path.read_text().splitlines() if " chat.runnode: " in line]
    assert any(" INFO node4 chat.runnode: node node4 serving on http://127.0.0.1:%d/" % port in line
               for line in lines), log_path.read_text()
