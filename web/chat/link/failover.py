"""Following the active broker of a failover pair (issue 15; broker/pair.py).

:class:`PairTransport` has the methods of
:class:`~chat.link.transport.ZmqTransport` over two of them (or two in-memory
twins): ``broker`` (primary) and ``broker2`` (backup).

- Requests go to the broker currently taken as active; replies of both are
  merged (requests are matched by rid, so a late one is simply dropped).
- Both SUB sockets are subscribed alike and merged: only the active publishes,
  so a frame from the other broker means it became active, and requests follow
  it.  Its heartbeat names a new broker instance: the link's usual resync runs,
  and with the same epoch no room reader restarts.
- :class:`FailoverChannel` (the link's request channel over a pair) retries a
  request on the other broker when the current one refuses ``not_active``, is
  not connected, or is silent for ``attempt_s``, until the request's own
  timeout: so a client's ack arrives across a failover.  A publish without a
  cid gets one here, so its resend can never be sequenced twice.
"""
import logging
import time
import uuid

import gevent
from gevent.queue import Queue

from .channel import BrokerUnavailable, RequestChannel
from .transport import CLOSED, QueueReader, TransportClosed

log = logging.getLogger(__name__)

# One attempt on one broker: longer than a healthy ack (ms) and short enough
# that a hung active still leaves the 5 s ack timeout room for the backup, which
# itself refuses for up to 2 broker heartbeats (its peer expiry) before serving.
ATTEMPT_S = 1.0
# Pause after a "not active" refusal before asking again (the backup waits
# out its peer expiry): bounds the retries to ~10 per second.
REFUSED_PAUSE_S = 0.1
# Switches within this long of the previous one are one failover (logged once).
QUIET_S = 10.0
CHANNELS = ("intake", "snapshot", "publish")


class FailoverChannel(RequestChannel):
    """A :class:`RequestChannel` that moves to the other broker of the pair."""

    def request(self, type_, timeout, **fields):
        if type_ == "publish" and fields.get("cid") is None:
            fields["cid"] = "n-" + uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            asked = self.transport.current
            try:
                return super().request(type_, max(0.001, min(self.transport.attempt_s, left)),
                                       **fields)
            except BrokerUnavailable as exc:
                if deadline - time.monotonic() <= 0:
                    raise
                self.transport.failed(asked, str(exc))
                gevent.sleep(min(REFUSED_PAUSE_S, max(0.0, deadline - time.monotonic())))


class PairTransport(QueueReader):
    """Two transports seen as one: requests to the active broker, SUB from both.

    :param primary: the transport to ``broker``.
    :param backup: the transport to ``broker2``.
    :param attempt_s: how long one attempt waits before trying the other.
    """

    request_channel = FailoverChannel

    def __init__(self, primary, backup, attempt_s=ATTEMPT_S):
        self.sides = (primary, backup)
        self.attempt_s = attempt_s
        self.current = 0
        self.last_switch = float("-inf")
        self.queues = {channel: Queue() for channel in CHANNELS}
        self.readers = []

    def open(self):
        if self.readers:
            return
        for index, side in enumerate(self.sides):
            side.open()
            for channel in CHANNELS:
                self.readers.append(gevent.spawn(self._forward, index, side, channel))

    def endpoint(self, channel):
        return self.sides[self.current].endpoint(channel)

    def failed(self, index, why):
        """The broker at ``index`` did not serve: take the other one as active."""
        if index == self.current:
            self.current = 1 - index
            now = time.monotonic()
            # a failover asks back and forth until the backup serves: say so once
            level = logging.WARNING if now - self.last_switch > QUIET_S else logging.DEBUG
            self.last_switch = now
            log.log(level, "broker %s did not serve (%s): asking %s", self.sides[index].endpoint(
                "intake"), why, self.sides[self.current].endpoint("intake"))

    def send(self, channel, data):
        """Send to the active broker; if it is not connected, to the other one."""
        if self.sides[self.current].send(channel, data):
            return True
        self.failed(self.current, "not connected")
        return self.sides[self.current].send(channel, data)

    def subscribe(self, topic):
        for side in self.sides:
            side.subscribe(topic)

    def unsubscribe(self, topic):
        for side in self.sides:
            side.unsubscribe(topic)

    def close(self):
        gevent.killall(self.readers, block=False)
        for side in self.sides:
            side.close()
        for queue in self.queues.values():
            queue.put(CLOSED)

    def _forward(self, index, side, channel):
        while True:
            try:
                item = side.recv_published() if channel == "publish" else side.recv(channel)
            except TransportClosed:
                return
            if channel == "publish" and index != self.current:
                log.warning("broker %s publishes: it is the active one now",
                            side.endpoint("intake"))
                self.current = index
            self.queues[channel].put(item)
