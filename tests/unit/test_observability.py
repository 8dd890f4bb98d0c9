"""The parts behind metrics, /ops/ and logs that need no socket: JSON log lines,
the histogram quantile, CHAT_OPS_TARGETS parsing and the sampler's rates."""
import json
import logging

import pytest

from chat.operations import scrape
from chatstream.config import ops_targets
from chatstream.jsonlog import JsonFormatter


def test_a_json_log_line_has_time_level_process_node_and_the_context_given():
    record = logging.LogRecord("chat.protocol.events", logging.WARNING, __file__, 1, "not sequenced: %s",
                               ("timeout",), None)
    record.room, record.seq, record.cid, record.uid = "general", 7, "c-1", "u-1"
    line = json.loads(JsonFormatter(process="node1", node="node1").format(record))
    assert line["level"] == "WARNING" and line["process"] == "node1" and line["node"] == "node1"
    assert line["message"] == "not sequenced: timeout" and line["time"].endswith("Z")
    assert (line["room"], line["seq"], line["cid"], line["uid"]) == ("general", 7, "c-1", "u-1")


def test_a_broker_json_line_has_no_node_and_no_absent_context():
    record = logging.LogRecord("broker", logging.INFO, __file__, 1, "up", (), None)
    line = json.loads(JsonFormatter(process="broker").format(record))
    assert "node" not in line and "room" not in line and line["process"] == "broker"


def test_quantile_interpolates_inside_the_bucket_like_prometheus():
    buckets = {0.001: 0, 0.01: 90, 0.1: 100, float("inf"): 100}
    assert scrape.quantile(0.5, buckets) == pytest.approx(0.001 + 0.009 * 50 / 90)
    assert scrape.quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 9 / 10)
    assert scrape.quantile(0.99, {0.1: 0, float("inf"): 0}) is None


def test_ops_targets_are_name_equals_url_and_anything_else_is_refused():
    assert ops_targets("node1=http://127.0.0.1:8001/, broker=http://h:5558") == [
        ("node1", "http://127.0.0.1:8001"), ("broker", "http://h:5558")]
    with pytest.raises(ValueError, match="name=http"):
        ops_targets("127.0.0.1:8001")


def test_the_sampler_turns_counters_into_rates_and_marks_unreachable_targets_down(monkeypatch):
    totals = iter([10.0, 40.0])
    def read(name, url, timeout_s):
        if name == "node2":
            return {"name": name, "kind": "node", "url": url, "up": False, "error": "refused"}
        value = next(totals)
        return {"name": name, "kind": "node", "url": url, "up": True, "error": None, "link": "live",
                "accepted": value, "deliveries": 2 * value, "connections": {"websocket": 2},
                "buckets": {0.01: value, float("inf"): value}}
    monkeypatch.setattr(scrape, "read_target", read)
    clock = iter([100.0, 102.0])
    monkeypatch.setattr(scrape.time, "monotonic", lambda: next(clock))
    sampler = scrape.ClusterSampler([("node1", "http://a"), ("node2", "http://b")], cache_s=0)
    sampler.sample()
    sample = sampler.sample()
    node1 = next(r for r in sample["targets"] if r["name"] == "node1")
    assert node1["accepted_per_s"] == 15.0 and node1["deliveries_per_s"] == 30.0
    assert sample["totals"]["nodes_up"] == 1 and sample["totals"]["down"] == ["node2"]
    assert sample["totals"]["connections"] == 2 and len(sample["history"]) == 2


def test_the_archivers_lag_is_read_from_its_metrics_and_shown_in_the_totals(monkeypatch):
    import io
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    from archive.metrics import ArchiverCollector
    archiver = SimpleNamespace(archived=12, lag_events=7, lag_s=lambda: 1.25,
                               streams=SimpleNamespace(lost=0))
    registry = CollectorRegistry()
    registry.register(ArchiverCollector(archiver))
    text = generate_latest(registry)
    monkeypatch.setattr(scrape.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(text))
    figures = scrape.read_target("archiver", "http://a")
    assert (figures["kind"], figures["archive_lag_events"], figures["archive_lag_s"]) == (
        "archiver", 7.0, 1.25)
    sampler = scrape.ClusterSampler([("archiver", "http://a")], cache_s=0)
    totals = sampler.sample()["totals"]
    assert (totals["archive_lag_events"], totals["archive_lag_s"]) == (7, 1.25)
    assert totals["nodes"] == 0 and totals["down"] == []
    monkeypatch.setattr(scrape.urllib.request, "urlopen", lambda url, timeout: (_ for _ in ()).throw(
        OSError("refused")))
    totals = scrape.ClusterSampler([("archiver", "http://a")], cache_s=0).sample()["totals"]
    assert totals["archive_lag_events"] is None and totals["down"] == ["archiver"]
