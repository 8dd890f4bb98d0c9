"""New Engine.IO sessions per client address: a token bucket each."""
import collections

from ..protocol.ratelimit import TokenBucket

# Addresses remembered at most; beyond, the longest unseen is forgotten (a full bucket again:
# an address that rests that long has earned it anyway).
MAX_ADDRESSES = 10_000


class HandshakeRate:
    """Allows each client address ``rate_per_s`` new sessions a second, bursts of ``burst``.

    The address is the one the edge believes (``REMOTE_ADDR`` after ``edge.client_address``):
    behind the balancer, the client's, never the balancer's own.
    """

    def __init__(self, rate_per_s, burst, max_addresses=MAX_ADDRESSES):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_addresses = max_addresses
        self.buckets = collections.OrderedDict()

    def allow(self, address):
        bucket = self.buckets.pop(address, None)
        if bucket is None:
            bucket = TokenBucket(self.rate_per_s, self.burst)
            if len(self.buckets) >= self.max_addresses:
                self.buckets.popitem(last=False)
        self.buckets[address] = bucket      # the most recently seen last
        return bucket.allow()

    def retry_after_s(self):
        """Seconds until a refused address has a new session again."""
        return max(1, round(1.0 / self.rate_per_s)) if self.rate_per_s > 0 else 60
