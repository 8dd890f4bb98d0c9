"""Retention's schedule (web/archive/retention.py) and the archiver's writer running it
between batches: at start, batch by batch while old events are left, then once a period;
a failed batch tried again later; nothing with 0 days."""
import pytest

from archive.retention import DAY_MS, Retention

from .link_twin import wait_for
from .test_archiver import Recorded, broker, publish, started  # noqa: F401 - broker is a fixture

pytestmark = pytest.mark.timeout(20)


class Old:
    """The prune stand-in: ``left`` old events, removed ``batch`` at a time; records cutoffs."""

    def __init__(self, left, fail=0):
        self.left, self.fail, self.cutoffs = left, fail, []

    def __call__(self, older_than_ms, batch):
        self.cutoffs.append(older_than_ms)
        if self.fail:
            self.fail -= 1
            raise OSError("database locked")
        done = min(batch, self.left)
        self.left -= done
        return done


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_old_events_go_at_start_a_batch_at_a_time_then_once_a_period():
    old, clock = Old(25), Clock()
    retention = Retention(7, prune=old, period_s=3600, batch=10, clock=clock,
                          now_ms=lambda: 30 * DAY_MS)
    assert [retention.step() for _ in range(4)] == [10, 10, 5, 0]
    assert old.cutoffs == [23 * DAY_MS] * 3 and retention.pruned == 25
    clock.now += 3599
    assert retention.step() == 0 and len(old.cutoffs) == 3
    clock.now += 1
    old.left = 3
    assert retention.step() == 3 and len(old.cutoffs) == 4


def test_zero_days_keeps_everything_and_a_failed_batch_is_tried_again_later():
    old, clock = Old(5), Clock()
    assert Retention(0, prune=old, clock=clock).step() == 0 and old.cutoffs == []
    retention = Retention(1, prune=Old(5, fail=1), batch=10, clock=clock)
    assert retention.step() == 0 and not retention.due()
    clock.now += 3600
    assert retention.step() == 5


def test_the_archivers_writer_prunes_when_idle_and_between_batches(broker):
    old, write = Old(2500), Recorded()
    archiver = started(broker, write, retention=Retention(30, prune=old, batch=1000))
    wait_for(lambda: old.left == 0, what="every old event pruned while idle")
    publish(broker, broker.transport(), "r", 3)
    wait_for(lambda: write.seqs("r") == [1, 2, 3], what="events written after pruning")
    assert len(old.cutoffs) == 3
    archiver.stop()
