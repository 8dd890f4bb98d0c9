"""Retention: the archive forgets room events older than ``CHAT_RETENTION_DAYS``.

One archiver's writer asks :class:`Retention` between its own batches (never inside
one), a batch of old events at a time until none is left, then again a day later; a
batch is short, so the writers of the other pairs' rooms wait little for it.  A room
keeps its position (the watermark in :class:`~archive.models.Room`): the archiver goes
on from there, and ``history`` pages end at the oldest event kept.  The search index follows the rows (archive/search/).
"""
import logging
import time

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
# Events deleted in one transaction: short enough that the batch after it is not held back.
PRUNE_BATCH = 1000
# How often the old events are looked for: retention counts in days, once a day is plenty.
PRUNE_PERIOD_S = 24 * 3600.0
# After a failed batch (database away or locked): the archive's own writes come first.
RETRY_PAUSE_S = 60.0


def prune(older_than_ms, using="default", batch=PRUNE_BATCH):
    """Delete up to ``batch`` events with ``ts < older_than_ms`` (their edit history goes
    with them); returns how many."""
    from .models import RoomEvent      # on use: the archiver's schedule runs without Django in tests
    ids = list(RoomEvent.objects.using(using).filter(ts__lt=older_than_ms)
               .order_by("ts").values_list("id", flat=True)[:batch])
    if ids:
        RoomEvent.objects.using(using).filter(id__in=ids).delete()
    return len(ids)


class Retention:
    """When to prune, and how much at a time.

    :param days: events older than this many days go; 0 keeps everything.
    :param prune: deletes a batch older than a Unix-ms time and says how many.
    :param clock: monotonic seconds; :param now_ms: the wall clock in Unix ms.
    """

    def __init__(self, days, prune=prune, period_s=PRUNE_PERIOD_S, batch=PRUNE_BATCH,
                 clock=time.monotonic, now_ms=None):
        self.days = days
        self.prune = prune
        self.period_s = period_s
        self.batch = batch
        self.clock = clock
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.due_at = clock()        # at start: a restart after a long stop prunes at once
        self.pruned = 0

    def due(self):
        return self.days > 0 and self.clock() >= self.due_at

    def step(self):
        """One batch of old events, if due; a batch short of full ends this round."""
        if not self.due():
            return 0
        try:
            done = self.prune(self.now_ms() - self.days * DAY_MS, batch=self.batch)
        except Exception:
            log.exception("retention: removing old events failed; trying again later")
            self.due_at = self.clock() + RETRY_PAUSE_S
            return 0
        self.pruned += done
        if done < self.batch:
            self.due_at = self.clock() + self.period_s
            log.info("retention: events older than %d days removed (%d so far)", self.days,
                     self.pruned)
        return done
