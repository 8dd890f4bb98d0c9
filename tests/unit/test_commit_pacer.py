"""broker/pacing.py: when the broker's loop commits (a fake clock, no sleeps)."""
import pytest

from chatstream.config import broker_config as from_env
from broker.pacing import RATE_WINDOW_S, CommitPacer


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def busy_pacer(clock, linger_s=0.008, above=500, rate=1000):
    """A pacer that measured ``rate`` messages/s over one window."""
    pacer = CommitPacer(linger_s, above, clock)
    clock.now += RATE_WINDOW_S
    pacer.committed(int(rate * RATE_WINDOW_S))
    return pacer


def test_at_a_high_rate_a_batch_right_after_a_commit_waits_for_the_linger():
    clock = Clock()
    pacer = busy_pacer(clock)
    assert pacer.lingering and pacer.rate == 1000
    clock.now += 0.003
    assert not pacer.due(pending=True)
    assert pacer.timeout_ms(True, 500) == 5      # the poll wakes when the batch is due
    clock.now += 0.005
    assert pacer.due(pending=True)


def test_after_a_quiet_spell_a_batch_is_committed_at_once():
    clock = Clock()
    pacer = busy_pacer(clock)
    clock.now += 0.050                            # longer than the linger
    assert pacer.due(pending=True)
    assert pacer.timeout_ms(True, 500) == 0


def test_below_the_rate_every_batch_is_committed_at_once():
    clock = Clock()
    pacer = busy_pacer(clock, rate=200)
    assert not pacer.lingering
    clock.now += 0.001
    assert pacer.due(pending=True)
    assert pacer.timeout_ms(True, 500) == 500


def test_the_rate_is_measured_again_each_window_so_lingering_stops_when_traffic_slows():
    clock = Clock()
    pacer = busy_pacer(clock)
    for _ in range(11):                           # 0.55 s at 20 messages/s
        clock.now += RATE_WINDOW_S / 10
        pacer.committed(1)
    assert not pacer.lingering and pacer.rate == pytest.approx(20)


def test_nothing_pending_keeps_the_poll_timeout_and_runs_the_turn():
    clock = Clock()
    pacer = busy_pacer(clock)
    assert pacer.timeout_ms(False, 500) == 500
    assert pacer.timeout_ms(True, 1) == 1
    assert pacer.due(pending=False)               # presence and the pair's output every turn


def test_a_zero_linger_never_lingers():
    clock = Clock()
    pacer = busy_pacer(clock, linger_s=0)
    assert not pacer.lingering and pacer.due(pending=True)


def test_the_linger_setting_is_bounded():
    assert from_env({}).commit_linger_ms == 8
    assert from_env({"CHAT_BROKER_LINGER_MS": "0"}).commit_linger_ms == 0
    with pytest.raises(ValueError, match="CHAT_BROKER_LINGER_MS must be 0-100"):
        from_env({"CHAT_BROKER_LINGER_MS": "5000"})
    with pytest.raises(ValueError, match="CHAT_BROKER_LINGER_MS"):
        from_env({"CHAT_BROKER_LINGER_MS": "-1"})
