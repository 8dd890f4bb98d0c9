"""Limits per person, not per connection (PROTOCOL-EXTENSIONS.md "Limits per person").

A person -- an account, a guest's browser session -- has one allowance of each limited
request (``message``, ``join``, ``history``, ``search``, ``dm``, ``create``, ``report``)
across all of its connections on every node; a guest's address has
``address_factor`` persons' allowance, shared by every guest behind it (guests without
a session are a new person at each connection: their address is what bounds them).

Each node holds a token bucket per person and request, and charges to it what the
person does here, at once.  Every ``share_ms`` it tells the other nodes, through the
broker (the ``usage`` fan-out, chatstream/wire.py), what each person spent here
meanwhile, and charges what the others report to its own buckets.  So every node's
bucket of a person follows the person's spending on all nodes: over any period a
person gets their rate, plus at most one burst per node they use at once (what a node
may admit before it hears of the others).  No request waits for another process: a
check is a dictionary look-up, and the broker sees a small frame per node and period,
only while somebody spends.
"""
import hashlib
import hmac
import logging

import gevent

from chatstream import config, wire
from .ratelimit import RateLimited, TokenBucket

log = logging.getLogger(__name__)

# Buckets are looked at for forgetting this often (share periods): forgetting a full
# bucket changes nothing, and the sweep is one pass over them.
SWEEP_EVERY_SHARES = 300


def address_key(secret, address):
    """The key of a guest's address in limits and on the wire: never the address."""
    digest = hmac.new(secret.encode("utf-8"), ("address:%s" % address).encode("utf-8"),
                      hashlib.sha256).hexdigest()
    return "i" + digest[:20]


class PersonLimits:
    """Per-person token buckets, shared with the other nodes.

    :param rates: request -> (per second, burst) per person (config.PERSON_RATES);
        a request not in it is not limited per person.
    :param address_factor: a guest address's allowance in persons' (0: none).
    :param secret: keys guest addresses (the nodes' SECRET_KEY: the same key everywhere).
    :param share_ms: how often this node reports what it let persons spend.
    :param max_tracked: buckets kept at most; beyond, the full ones are forgotten first.
    """

    def __init__(self, rates=None, address_factor=config.ADDRESS_RATE_FACTOR, secret="",
                 share_ms=config.USAGE_SHARE_MS, max_tracked=config.PERSONS_TRACKED_MAX,
                 clock=None):
        self.rates = dict(config.PERSON_RATES if rates is None else rates)
        self.address_factor = address_factor
        self.secret = secret
        self.share_s = share_ms / 1000.0
        self.max_tracked = max_tracked
        self.clock = clock
        self.buckets = {}   # (person key, request) -> TokenBucket, oldest first
        self.spent = {}     # person key -> {request: count} not reported yet
        self.link = None
        self.sharer = None

    def start(self, link):
        """Report to and hear from the other nodes over ``link`` (a BrokerLink)."""
        self.link = link
        link.on_published("usage", self.on_usage)
        if self.rates and self.sharer is None:
            self.sharer = gevent.spawn(self._share_forever)

    def keys(self, identity, address=None):
        """Whom a request of ``identity`` (chat.protocol.identity.Identity) from ``address``
        counts against: (key, allowance factor) pairs."""
        keys = []
        if identity.uid[:1] in "ag":        # an account, a guest with a browser session
            keys.append((identity.uid, 1))
        if identity.guest and address and self.address_factor > 0:
            keys.append((address_key(self.secret, address), self.address_factor))
        return keys

    def check(self, identity, event, address=None):
        """Spend one ``event`` of the person's allowance, or raise :class:`RateLimited`
        with how long to wait (nothing is spent then)."""
        rate = self.rates.get(event)
        if rate is None:
            return
        keys = self.keys(identity, address)
        buckets = [self._bucket(key, event, rate, factor) for key, factor in keys]
        waits = [bucket.retry_after_s() for bucket in buckets]
        if any(waits):
            per_s, burst = rate
            raise RateLimited("more than %g %s requests/s (burst %d) from one person, on all "
                              "of their connections; wait and retry" % (per_s, event, burst),
                              max(waits))
        for (key, _), bucket in zip(keys, buckets):
            bucket.tokens -= 1
            counts = self.spent.setdefault(key, {})
            counts[event] = counts.get(event, 0) + 1

    def on_usage(self, body):
        """Another node's report (the link's reader): charge it here."""
        if body.get("node") == getattr(self.link, "node", None):
            return                       # spent here, charged when it was allowed
        for key, counts in (body.get("spent") or {}).items():
            factor = self.address_factor if key.startswith("i") else 1
            for event, count in counts.items():
                rate = self.rates.get(event)
                if rate is not None:
                    self._bucket(key, event, rate, factor).charge(count)

    def share(self):
        """Report what persons spent here since the last report (several frames if many)."""
        spent, self.spent = self.spent, {}
        items = list(spent.items())
        for start in range(0, len(items), wire.USAGE_KEYS_PER_FRAME):
            self.link.fanout("usage", spent=dict(items[start:start + wire.USAGE_KEYS_PER_FRAME]))

    def forget_full(self, keep=None):
        """Forget full buckets (and, above ``keep``, the oldest others): nothing changes for
        a person whose bucket is full, and the table stays bounded."""
        keep = self.max_tracked if keep is None else keep
        for key in [k for k, bucket in self.buckets.items() if bucket.full()]:
            del self.buckets[key]
        while len(self.buckets) > keep:
            del self.buckets[next(iter(self.buckets))]

    def _bucket(self, key, event, rate, factor):
        bucket = self.buckets.get((key, event))
        if bucket is None:
            per_s, burst = rate
            kwargs = {} if self.clock is None else {"clock": self.clock}
            bucket = self.buckets[(key, event)] = TokenBucket(per_s * factor, burst * factor,
                                                              **kwargs)
        return bucket

    def _share_forever(self):
        shares = 0
        while True:
            gevent.sleep(self.share_s)
            try:
                if self.spent:
                    self.share()
                shares += 1
                if shares % SWEEP_EVERY_SHARES == 0 or len(self.buckets) > self.max_tracked:
                    self.forget_full()
            except Exception:
                log.exception("sharing per-person usage failed")
