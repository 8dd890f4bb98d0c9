"""deploy.pairs: scripts/run's programs for broker pairs 2..N (var/pairs/pairK.conf)."""
import configparser
import json

from chatstream import config
from deploy import pairs, stores
from harness.processes import ROOT


def programs(path):
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=False)
    parser.read(path)
    return {section.split(":", 1)[1]: dict(parser[section]) for section in parser.sections()}


def test_a_second_pair_binds_where_the_nodes_of_chat_broker_pairs_2_connect(tmp_path):
    [path] = pairs.write(2, ROOT / "supervisord.conf", tmp_path, tmp_path / "brokers.json")
    found = {name: env for name, _, env in stores.broker_programs(path)}
    assert sorted(found) == ["broker3", "broker4"]
    [_, pair2] = config.broker_pairs({"CHAT_BROKER_PAIRS": "2", "CHAT_BROKER_PAIR": "1"})
    for env, endpoints in zip((found["broker3"], found["broker4"]), pair2.brokers):
        assert {name: env["CHAT_BROKER_%s_BIND" % name.upper()] for name in endpoints} == endpoints
    assert (found["broker3"]["CHAT_BROKER_ROLE"], found["broker4"]["CHAT_BROKER_ROLE"]) == (
        "primary", "backup")
    # each other's peers, a store, a log and metrics port of its own, the cluster's keys
    assert found["broker3"]["CHAT_BROKER_PEER"] == found["broker4"]["CHAT_BROKER_PEER_BIND"]
    assert found["broker4"]["CHAT_BROKER_PEER"] == found["broker3"]["CHAT_BROKER_PEER_BIND"]
    assert (found["broker3"]["CHAT_BROKER_METRICS_PORT"],
            found["broker4"]["CHAT_BROKER_METRICS_PORT"]) == ("5578", "5588")
    assert found["broker3"]["CHAT_BROKER_STATE"] != found["broker4"]["CHAT_BROKER_STATE"]
    assert found["broker3"]["CHAT_KEYS_DIR"] == str(ROOT / "var/keys")
    sections = programs(path)
    assert sections["broker4"]["stdout_logfile"] == str(ROOT / "var/log/broker4.log")
    assert "%(here)s" not in path.read_text()


def test_the_default_ops_targets_name_every_pair_s_brokers():
    targets = dict(config.ops_targets(config.default_ops_targets({"CHAT_BROKER_PAIRS": "2"})))
    assert (targets["broker3"], targets["broker4"]) == ("http://127.0.0.1:5578",
                                                        "http://127.0.0.1:5588")
    assert config.default_ops_targets({}) == config.OPS_TARGETS


def test_fewer_pairs_remove_the_programs_of_the_others(tmp_path):
    targets = tmp_path / "brokers.json"
    pairs.write(3, ROOT / "supervisord.conf", tmp_path / "pairs", targets)
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == ["pair2.conf", "pair3.conf"]
    assert sorted(programs(tmp_path / "pairs/pair3.conf")) == ["broker5", "broker6"]
    assert json.loads(targets.read_text()) == [{"targets": [
        "127.0.0.1:5578", "127.0.0.1:5588", "127.0.0.1:5598", "127.0.0.1:5608"]}]
    pairs.write(1, ROOT / "supervisord.conf", tmp_path / "pairs", targets)
    assert list((tmp_path / "pairs").iterdir()) == [] and json.loads(targets.read_text()) == []


def test_backups_and_upgrades_see_the_brokers_of_every_pair(tmp_path):
    from deploy import pair
    conf = tmp_path / "supervisord.conf"
    conf.write_text((ROOT / "supervisord.conf").read_text())
    pairs.write(2, conf)
    found = stores.broker_stores(conf, {})
    assert sorted(found) == ["broker", "broker2", "broker3", "broker4"]
    assert found["broker3"] == str(tmp_path / "var/broker3.sqlite3")
    assert sorted(pair.brokers(conf, {})) == ["broker", "broker2", "broker3", "broker4"]
    assert pair.brokers(conf, {})["broker4"].metrics_url == "http://127.0.0.1:5588"
    # an upgrade waits for the stopped active's own partner to take over, not another pair's
    assert [pair.partners(name) for name in ("broker2", "broker3")] == [
        ("broker", "broker2"), ("broker3", "broker4")]


def test_the_dashboard_counts_each_pair_s_rooms_once():
    from chat.operations import scrape
    rows = [{"kind": "broker", "name": name, "rooms_in_memory": rooms}
            for name, rooms in (("broker", 10), ("broker2", 9), ("broker3", 7), ("broker4", 7))]
    assert scrape.rooms_in_memory(rows + [{"kind": "node", "name": "node1"}]) == 17
    assert scrape.rooms_in_memory(rows[:2]) == 10
