"""How late the node's event loop gets round to what is due: a probe and its metric.

Everything on a node (websocket reads and writes, handlers, the broker link's
heartbeats, /healthz) waits while one piece of code holds the loop: a full garbage
collection (:mod:`.gcwatch` times those), a long handler, a storm's burst.  The
probe asks to be woken every :data:`PERIOD_S` and records how late it is woken
(``chat_loop_lag_seconds``); a lag of :data:`SLOW_S` or more is logged.  A stop
shows as a lag when it holds the loop across one of the probe's wake-ups, so the
period is short against the stops worth seeing.
"""
import logging
import time

import gevent

from .metrics import LOOP_LAG_SECONDS

log = logging.getLogger(__name__)

# Ten wake-ups a second: nothing against a node's traffic, and a stop of SLOW_S
# always spans a wake-up.
PERIOD_S = 0.1
SLOW_S = 0.1     # a stop a person notices in a chat, and the gc watch's threshold


class LoopLagProbe:
    """:param period_s: how often the probe asks to be woken.
    :param slow_s: a lag logged from this long on.
    :param clock: ``time.monotonic`` (tests pass their own)."""

    def __init__(self, period_s=PERIOD_S, slow_s=SLOW_S, clock=time.monotonic):
        self.period_s = period_s
        self.slow_s = slow_s
        self.clock = clock
        self.due = clock() + period_s
        self.worst_s = 0.0        # the longest lag seen
        self.greenlet = None

    def woke(self):
        """The probe is woken: record how late, and return how long to wait for the next."""
        now = self.clock()
        lag = max(0.0, now - self.due)
        LOOP_LAG_SECONDS.observe(lag)
        self.worst_s = max(self.worst_s, lag)
        if lag >= self.slow_s:
            log.warning("the event loop was held for %.2f s (nothing else ran meanwhile)", lag)
        self.due = now + self.period_s
        return self.period_s

    def start(self):
        """Probe from a greenlet of its own; returns the probe."""
        self.greenlet = gevent.spawn(self.run_forever)
        return self

    def stop(self):
        if self.greenlet is not None:
            self.greenlet.kill(block=False)

    def run_forever(self):
        wait = self.period_s
        while True:
            gevent.sleep(wait)
            try:
                wait = self.woke()
            except Exception:     # a long-lived loop: log and keep probing
                log.exception("loop lag probe")


def start(period_s=PERIOD_S, slow_s=SLOW_S):
    """A probe of this process's loop, running; returns it."""
    return LoopLagProbe(period_s, slow_s).start()
