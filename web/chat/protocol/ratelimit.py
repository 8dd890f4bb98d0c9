"""A token bucket (per connection, per person), and the refusal it leads to."""
import time

from .validation import ContractError


class RateLimited(ContractError):
    """``rate_limited``, with the ack's retry hint ``retry_after_ms``: how long until the
    request would be allowed (PROTOCOL-EXTENSIONS.md "Limits per person")."""

    def __init__(self, detail, retry_after_s):
        super().__init__("rate_limited", detail)
        self.retry_after_ms = max(1, int(retry_after_s * 1000 + 0.999))

    def ack(self):
        return dict(super().ack(), retry_after_ms=self.retry_after_ms)


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

    def refill(self):
        """Tokens now (what the time since the last look earned, up to ``burst``)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        return self.tokens

    def allow(self):
        if self.refill() >= 1:
            self.tokens -= 1
            return True
        return False

    def charge(self, count):
        """Take ``count`` tokens spent elsewhere (another node), allowed or not: the bucket
        may go below zero, at most one burst, and then refuses until it earned them back."""
        self.refill()
        self.tokens = max(-float(self.burst), self.tokens - count)

    def retry_after_s(self):
        """Seconds until one token is there again (0 when there is one now)."""
        missing = 1 - self.refill()
        if missing <= 0:
            return 0.0
        return missing / self.rate_per_s if self.rate_per_s > 0 else float("inf")

    def full(self):
        """True when the bucket holds its whole burst: forgetting it changes nothing."""
        return self.refill() >= self.burst
