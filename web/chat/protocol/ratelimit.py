"""A token bucket per connection."""
import time


class TokenBucket:
    """Allows ``rate_per_s`` events per second on average and bursts of ``burst``.

    :param clock: returns seconds, monotonic (injectable for tests).
    """

    def __init__(self, rate_per_s, burst, clock=time.monotonic):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def allow(self):
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
