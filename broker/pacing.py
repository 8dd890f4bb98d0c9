"""When the broker's loop commits its batch: group commit paced at high rates.

Every commit costs about the same whatever it holds: a SQLite transaction and one
ZeroMQ send per room's PUB frame, each send waking libzmq's I/O thread here and on
every node.  Unpaced, a busy loop commits every few milliseconds, a couple of
messages at a time, and those fixed costs dominate a burst.  So, while the broker sequences at least ``above_per_s``
messages a second, a batch that comes less than ``linger_s`` after the last commit
waits until the commit is that old (Kafka's ``linger.ms``, Nagle's algorithm): one
commit and one PUB frame per room then carry what came meanwhile.  Below that rate,
and for a request after a quiet spell longer than the linger, the batch is
committed at once, so a lone message waits for nothing.  Nothing is sent before it
is committed either way: the linger only delays, by at most ``linger_s``.
"""
import math
import time

RATE_WINDOW_S = 0.5    # the sequencing rate is measured over about this long


class CommitPacer:
    """:param linger_s: the least time between two commits at a high rate (0: none).
    :param above_per_s: the sequencing rate (messages/s) from which it lingers.
    :param clock: ``time.monotonic`` (tests pass their own)."""

    def __init__(self, linger_s, above_per_s, clock=time.monotonic):
        self.linger_s = max(0.0, linger_s)
        self.above_per_s = above_per_s
        self.clock = clock
        self.last_commit = float("-inf")
        self.window_start = clock()
        self.window_messages = 0
        self.rate = 0.0          # messages/s sequenced over the last window
        self.lingering = False

    def timeout_ms(self, pending, timeout_ms):
        """The loop's poll timeout: no later than when a pending batch is due."""
        if not pending or not self.lingering:
            return timeout_ms
        wait = self.last_commit + self.linger_s - self.clock()
        return min(timeout_ms, max(0, math.ceil(wait * 1000)))

    def due(self, pending):
        """Commit now? Always when nothing is pending (presence and the pair's output
        go out every turn), below the rate, or once the last commit is old enough."""
        return (not pending or not self.lingering
                or self.clock() >= self.last_commit + self.linger_s)

    def committed(self, messages):
        """A commit that sequenced ``messages`` messages is done."""
        now = self.last_commit = self.clock()
        self.window_messages += messages
        elapsed = now - self.window_start
        if elapsed >= RATE_WINDOW_S:
            self.rate = self.window_messages / elapsed
            self.window_start, self.window_messages = now, 0
            self.lingering = self.linger_s > 0 and self.rate >= self.above_per_s
