"""chat.operations.looplag: how late the event loop woke the probe, recorded and logged."""
import logging
import time

import gevent
import pytest

from chat.operations import looplag
from chat.operations.metrics import REGISTRY

pytestmark = pytest.mark.timeout(20)


def _lags_over(seconds):
    """Observations of chat_loop_lag_seconds above ``seconds`` (a bucket bound)."""
    total = REGISTRY.get_sample_value("chat_loop_lag_seconds_count") or 0
    within = REGISTRY.get_sample_value("chat_loop_lag_seconds_bucket", {"le": str(seconds)}) or 0
    return total - within


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


def test_a_wake_up_on_time_is_no_lag_and_a_late_one_is_its_lateness(caplog):
    clock = Clock()
    probe = looplag.LoopLagProbe(period_s=0.1, slow_s=0.1, clock=clock)
    clock.now += 0.1
    assert probe.woke() == 0.1 and probe.worst_s == 0.0
    clock.now += 0.1 + 0.3                               # the loop held 0.3 s past the due time
    with caplog.at_level(logging.WARNING, logger="chat.operations.looplag"):
        probe.woke()
    assert probe.worst_s == pytest.approx(0.3)
    assert "held for 0.30 s" in caplog.text


def test_a_stopped_loop_is_seen_by_the_running_probe():
    before = _lags_over(0.1)
    probe = looplag.start(period_s=0.01, slow_s=10)
    try:
        gevent.sleep(0.03)                               # the probe is running
        end = time.monotonic() + 0.25
        while time.monotonic() < end:                    # hold the loop, as a long collection does
            pass
        with gevent.Timeout(5):
            while probe.worst_s < 0.1:
                gevent.sleep(0.01)
    finally:
        probe.stop()
    assert _lags_over(0.1) > before
