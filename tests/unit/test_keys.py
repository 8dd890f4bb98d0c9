"""broker.keys (scripts/keys) and the CURVE settings: key files, the development
set, the rule for when CURVE is on, and the broker's refusal to go public without it."""
import logging
import stat

import pytest
import zmq.auth

from broker import keys
from chatstream.config import BrokerConfig, broker_config as from_env
from broker.server import Broker
from chatstream import config


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_create_makes_a_loadable_pair_whose_secret_only_its_owner_reads(tmp_path):
    public, secret = keys.create(tmp_path / "out", "node4")
    assert (public.name, secret.name) == ("node4.key", "node4.key_secret")
    assert (mode(public), mode(secret)) == (0o644, 0o600)
    pub_only, none = zmq.auth.load_certificate(public)
    pub, sec = zmq.auth.load_certificate(secret)
    assert none is None and pub == pub_only and len(pub) == len(sec) == 40


def test_create_never_overwrites_a_key(tmp_path):
    public, _ = keys.create(tmp_path, "broker")
    before = public.read_bytes()
    with pytest.raises(FileExistsError, match="broker.key"):
        keys.create(tmp_path, "broker")
    assert public.read_bytes() == before


def test_init_makes_the_development_set_once_with_a_key_per_node(tmp_path):
    made = keys.init(tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in made)
    assert names == sorted(["authorized_peers/broker.key", "broker.key", "broker.key_secret",
                            "uid_proof.secret"]
                           + ["authorized_nodes/%s.key" % n for n in config.LOCAL_NODES]
                           + ["nodes/%s.key%s" % (n, s) for n in config.LOCAL_NODES
                              for s in ("", "_secret")])
    assert (tmp_path / "authorized_peers/broker.key").read_bytes() == (tmp_path / "broker.key").read_bytes()
    publics = {(tmp_path / ("nodes/%s.key" % n)).read_bytes() for n in config.LOCAL_NODES}
    assert len(publics) == len(config.LOCAL_NODES)                  # no two nodes share a key
    for n in config.LOCAL_NODES:
        authorized, own = tmp_path / "authorized_nodes" / (n + ".key"), tmp_path / "nodes" / (n + ".key")
        assert authorized.read_bytes() == own.read_bytes()
        assert mode(tmp_path / ("nodes/%s.key_secret" % n)) == 0o600
    assert mode(tmp_path / "uid_proof.secret") == 0o600
    secret = (tmp_path / "broker.key_secret").read_bytes()
    proof_key = (tmp_path / "uid_proof.secret").read_bytes()
    assert keys.init(tmp_path) == []
    assert (tmp_path / "broker.key_secret").read_bytes() == secret
    assert (tmp_path / "uid_proof.secret").read_bytes() == proof_key


def test_init_retires_an_older_sets_shared_node_key_and_says_so(tmp_path, caplog):
    keys.create(tmp_path, "broker")
    keys.create(tmp_path, "node")                       # the old layout: one key for all nodes
    (tmp_path / "authorized_nodes").mkdir()
    (tmp_path / "authorized_nodes/node.key").write_bytes((tmp_path / "node.key").read_bytes())
    other = keys.create(tmp_path / "elsewhere", "host-b")[0]      # another host's own key stays
    (tmp_path / "authorized_nodes/host-b.key").write_bytes(other.read_bytes())
    with caplog.at_level(logging.WARNING, logger="broker.keys"):
        keys.init(tmp_path)
    assert sorted(p.name for p in (tmp_path / "authorized_nodes").iterdir()) == [
        "host-b.key", "node1.key", "node2.key", "node3.key"]
    assert "no longer authorised" in caplog.text and "scripts/keys node NAME" in caplog.text


def test_add_node_makes_and_authorises_one_key_and_refuses_a_bad_name(tmp_path):
    keys.init(tmp_path)
    made = keys.add_node(tmp_path, "node4")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in made) == [
        "authorized_nodes/node4.key", "nodes/node4.key", "nodes/node4.key_secret"]
    assert keys.add_node(tmp_path, "node4") == []
    with pytest.raises(ValueError):
        keys.add_node(tmp_path, "../node5")


def test_the_key_folder_names_each_key_after_its_file_and_reads_again_for_an_unknown_key(tmp_path):
    keys.init(tmp_path)
    now = [0.0]
    folder = keys.KeyFolder(tmp_path / "authorized_nodes", reload_after_s=1.0, clock=lambda: now[0])
    node2 = zmq.auth.load_certificate(tmp_path / "nodes/node2.key")[0]
    assert folder.callback("chat", node2) and folder.name_of(node2) == "node2"
    stranger = zmq.auth.load_certificate(keys.create(tmp_path / "elsewhere", "node4")[0])[0]
    assert not folder.callback("chat", stranger)
    keys.add_node(tmp_path, "node4")                     # a file added: read again at once
    node4 = zmq.auth.load_certificate(tmp_path / "nodes/node4.key")[0]
    assert folder.callback("chat", node4) and folder.name_of(node4) == "node4"
    (tmp_path / "authorized_nodes/node4.key").write_bytes(
        (tmp_path / "elsewhere/node4.key").read_bytes())  # edited in place: the folder unchanged
    assert not folder.callback("chat", stranger)         # read less than a second ago
    now[0] = 1.5
    assert folder.callback("chat", stranger) and folder.name_of(stranger) == "node4"
    # one key under two names speaks for neither
    (tmp_path / "authorized_nodes/node5.key").write_bytes((tmp_path / "elsewhere/node4.key").read_bytes())
    folder.reload()
    assert folder.name_of(stranger) is None and not folder.callback("chat", stranger)


def test_the_command_line_makes_keys_for_another_host_and_refuses_to_replace_them(tmp_path, capsys):
    assert keys.main(["node", "node4", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "node4.key_secret") in out and "authorized_nodes" in out
    assert keys.main(["node", "node4", "--out", str(tmp_path)]) == 1
    assert "exists" in capsys.readouterr().err
    assert keys.main(["init", str(tmp_path / "dev"), "--nodes", "node1", "node7"]) == 0
    assert sorted(p.name for p in (tmp_path / "dev" / "authorized_nodes").iterdir()) == [
        "node1.key", "node7.key"]
    assert keys.main(["add-node", "node8", str(tmp_path / "dev")]) == 0
    assert (tmp_path / "dev" / "nodes" / "node8.key_secret").exists()


def _paths(tmp_path, names=("broker_public", "node_secret"), named=()):
    return {n: config.key_path(n, str(tmp_path), str(tmp_path / n) if n in named else "")
            for n in names}


def test_curve_is_on_with_every_file_off_with_none_and_refused_in_between(tmp_path):
    assert config.curve_files(_paths(tmp_path)) is None
    keys.init(tmp_path)
    assert config.curve_files(_paths(tmp_path)) == {
        "broker_public": str(tmp_path / "broker.key"),
        "node_secret": str(tmp_path / "nodes" / ("%s.key_secret" % config.NODE_NAME))}
    (tmp_path / "broker.key").unlink()
    with pytest.raises(ValueError, match="broker.key missing"):
        config.curve_files(_paths(tmp_path))
    with pytest.raises(ValueError, match="node_secret missing"):      # named, so meant
        config.curve_files(_paths(tmp_path / "empty", named=("node_secret",)))


def test_broker_config_reads_the_key_settings():
    cfg = from_env({"CHAT_KEYS_DIR": "/k", "CHAT_AUTHORIZED_NODES": "/a", "CHAT_BROKER_INSECURE": "1",
                    "CHAT_MAX_PAYLOAD_BYTES": "1000"})
    assert (cfg.keys_dir, cfg.secret_key, cfg.authorized_nodes, cfg.insecure) == ("/k", "", "/a", True)
    assert cfg.max_frame_bytes == 1000 + config.WIRE_ENVELOPE_BYTES
    assert from_env({"CHAT_BROKER_MAX_FRAME_BYTES": "5000"}).max_frame_bytes == 5000
    assert BrokerConfig().max_frame_bytes == config.MAX_PAYLOAD_BYTES + config.WIRE_ENVELOPE_BYTES


def test_the_node_frame_limit_holds_a_full_snapshot_batch():
    one_message = config.MAX_PAYLOAD_BYTES + config.WIRE_ENVELOPE_BYTES
    assert config.NODE_MAX_FRAME_BYTES == (config.SNAPSHOT_ROOMS_PER_REQUEST * config.HISTORY_SIZE
                                           * one_message + config.PRESENCE_WIRE_BYTES)
    assert config.node_max_frame_bytes(history_size=100) > config.NODE_MAX_FRAME_BYTES


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5555", True), ("tcp://localhost:5555", True), ("tcp://[::1]:5555", True),
    ("ipc:///tmp/b", True), ("inproc://x", True), ("tcp://0.0.0.0:5555", False),
    ("tcp://*:5555", False), ("tcp://10.0.0.7:5555", False), ("tcp://[::]:5555", False)])
def test_only_loopback_ipc_and_inproc_count_as_local(endpoint, local):
    assert keys.is_local_endpoint(endpoint) is local


def test_without_keys_the_broker_refuses_a_public_address_before_binding(tmp_path):
    cfg = BrokerConfig(intake="tcp://0.0.0.0:1", keys_dir=str(tmp_path), state_path="memory")
    broker = Broker(cfg, context=object())      # any socket would fail: none is made
    with pytest.raises(keys.InsecureBind, match="CHAT_BROKER_INSECURE=1"):
        broker.bind()


def test_insecure_is_allowed_but_logged_as_an_error_and_loopback_as_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="broker.keys"):
        keys.check_plain(["tcp://0.0.0.0:1"], insecure=True)
        keys.check_plain(["tcp://127.0.0.1:1"], insecure=False)
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("ERROR", "INSECURE"), ("WARNING", "CURVE is off")]


def test_a_half_configured_broker_refuses_to_start(tmp_path):
    keys.create(tmp_path, "broker")        # no authorized_nodes folder
    broker = Broker(BrokerConfig(keys_dir=str(tmp_path), state_path="memory"), context=object())
    with pytest.raises(ValueError, match="authorized_nodes missing"):
        broker.bind()
