"""chat.operations.gcwatch: every collection timed, slow ones logged, full collections made rare."""
import gc
import logging

import pytest

from chat.operations import gcwatch
from chat.operations.metrics import REGISTRY

from .test_config import node_settings


@pytest.fixture
def watched():
    before_threshold, before_callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*before_threshold)
    gc.callbacks[:] = before_callbacks


def _count(generation):
    return REGISTRY.get_sample_value("chat_gc_seconds_count", {"generation": str(generation)}) or 0


def _seconds(generation):
    return REGISTRY.get_sample_value("chat_gc_seconds_sum", {"generation": str(generation)}) or 0


def test_full_collections_wait_for_many_middle_ones_and_every_collection_is_timed(watched, caplog):
    young, middle, _ = gc.get_threshold()
    gcwatch.install(slow_s=0.0, full_after=1234, spread=0)
    gcwatch.install(slow_s=0.0, full_after=1234, spread=0)   # once per process: one callback
    assert gc.get_threshold() == (young, middle, 1234)
    assert sum(getattr(cb, "__name__", "") == "watch" for cb in gc.callbacks) == 1
    before, before_s = _count(2), _seconds(2)
    with caplog.at_level(logging.WARNING, logger="chat.operations.gcwatch"):
        gc.collect()
    assert _count(2) == before + 1 and _seconds(2) > before_s
    assert "a full collection stopped the node" in caplog.text


def test_each_process_draws_its_own_count_so_nodes_started_together_do_not_collect_together():
    import random
    rng = random.Random(7)
    counts = [gcwatch.full_after_here(1000, 0.25, rng) for _ in range(6)]
    assert all(750 <= count <= 1250 for count in counts) and len(set(counts)) == 6
    assert gcwatch.full_after_here(40, spread=0) == 40


def test_the_count_is_a_setting_read_from_the_environment(monkeypatch):
    assert node_settings(monkeypatch)["CHAT_GC_FULL_AFTER"] == gcwatch.FULL_AFTER
    assert node_settings(monkeypatch, CHAT_GC_FULL_AFTER="40")["CHAT_GC_FULL_AFTER"] == 40
    with pytest.raises(ValueError, match="CHAT_GC_FULL_AFTER"):
        node_settings(monkeypatch, CHAT_GC_FULL_AFTER="many")
