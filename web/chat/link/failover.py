"""Following the active broker of a failover pair (broker/pair.py).

:class:`PairTransport` has the methods of
:class:`~chat.link.transport.ZmqTransport` over two of them (or two in-memory
twins): ``broker`` (primary) and ``broker2`` (backup).

- Requests go to the broker currently taken as active; replies of both are
  merged (requests are matched by rid, so a late one is simply dropped).
- Both SUB sockets are subscribed alike; only the active publishes.  Every
  heartbeat carries the active's Binary Star term (one above any term it had
  heard when it took over), and the nodes follow the **newest term**: a
  heartbeat of the other broker with a newer term makes it the one asked (with the
  same term too while the one asked sends no heartbeat: a passive asked when the
  active was slow, never followed back by a node no request of which failed), and
  whatever else the other broker publishes is dropped -- an old active cut off
  and back (older term) is ignored until its peer makes it exit.  The new
  active's heartbeat names a new broker instance: the link's usual resync
  runs, and with the same epoch no room reader restarts.
- :class:`FailoverChannel` (the link's request channel over a pair) retries a
  request until the request's own timeout, so a client's ack arrives across a
  failover.  It asks the other broker when the current one refuses
  ``not_active``, is not connected, or does not answer within ``attempt_s``
  *and* has been silent on PUB for :data:`SILENT_S`.  A broker still heard is
  waited for instead, on the same request (asking it again would only lengthen
  its queue): an active holding its acks while it waits for a passive cut off
  from it (up to 2 heartbeats) is alive, and asking the passive then would make
  it take over too (two actives, seen across hosts).  A publish
  without a cid gets one here, so its resend can never be sequenced twice.
"""
import logging
import time
import uuid

import gevent
from gevent.queue import Queue

from chatstream import wire
from .channel import BrokerUnavailable, NoReply, NotActive, NotMember, RequestChannel
from .transport import CLOSED, TURN_S, QueueReader, TransportClosed, take_turn

log = logging.getLogger(__name__)

# One attempt on one broker: longer than a healthy ack (ms) and short enough
# that a hung active still leaves the 5 s ack timeout room for the backup, which
# itself refuses for up to 2 broker heartbeats (its peer expiry) before serving.
ATTEMPT_S = 1.0
# A broker heard on PUB within this long is alive (the active heartbeats every second):
# a request it is slow to answer is asked of it again, never of the other broker.
SILENT_S = 1.5
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
                                       wait_more=lambda: self._wait_more(asked, deadline),
                                       **fields)
            except NotMember:
                raise        # the broker serves: the link registers and asks again
            except BrokerUnavailable as exc:
                if deadline - time.monotonic() <= 0:
                    raise
                self.transport.failed(asked, exc)
                gevent.sleep(min(REFUSED_PAUSE_S, max(0.0, deadline - time.monotonic())))


    def _wait_more(self, asked, deadline):
        """An attempt's time is up: how much longer to wait for the same reply.  A broker
        still taken as active and heard on PUB is slow, not gone: the request waits in its
        queue, and asking it again would only lengthen that queue (a storm's history
        fetches were asked up to five times each)."""
        transport = self.transport
        left = deadline - time.monotonic()
        if left <= 0 or asked != transport.current or transport.heard[asked] is None \
                or transport.silent(asked):
            return 0
        return min(transport.attempt_s, left)


class PairTransport(QueueReader):
    """Two transports seen as one: requests to the active broker, SUB from both.

    :param primary: the transport to ``broker``.
    :param backup: the transport to ``broker2``.
    :param attempt_s: how long one attempt waits before trying the other.
    """

    request_channel = FailoverChannel
    turn_s = TURN_S   # frames are forwarded this long, then the rest of the node runs

    def __init__(self, primary, backup, attempt_s=ATTEMPT_S):
        self.sides = (primary, backup)
        self.attempt_s = attempt_s
        self.current = 0
        self.heard = [None, None]   # when each side last published (monotonic s)
        self.beats = [None, None]   # ... and last heartbeat (only an active heartbeats)
        self.terms = [0, 0]         # each side's term, from its heartbeats
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

    def silent(self, index):
        """Heard on PUB before, but not for :data:`SILENT_S`: hung, dead or cut off."""
        heard = self.heard[index]
        return heard is not None and time.monotonic() - heard >= SILENT_S

    def _gone(self, index):
        """No heartbeat from it for :data:`SILENT_S` (a passive never heartbeats)."""
        beat = self.beats[index]
        return beat is None or time.monotonic() - beat >= SILENT_S

    def failed(self, index, why):
        """The broker at ``index`` did not serve (``why``: the exception or a reason):
        take the other one as active -- unless this one is still heard (it is slow, not
        gone), or it refused as passive while the other one is gone (it takes over
        once its peer expiry passes: asking the silent one again would only wait)."""
        if index != self.current:
            return
        if isinstance(why, NoReply) and self.heard[index] is not None and not self.silent(index):
            return
        if isinstance(why, NotActive) and self.silent(1 - index):
            return
        self._switch(1 - index, "broker %s did not serve (%s)" % (
            self.sides[index].endpoint("intake"), why))

    def _switch(self, index, why):
        self.current = index
        now = time.monotonic()
        # a failover asks back and forth until the backup serves: say so once
        level = logging.WARNING if now - self.last_switch > QUIET_S else logging.DEBUG
        self.last_switch = now
        log.log(level, "%s: asking %s", why, self.sides[index].endpoint("intake"))

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
        turn = time.monotonic()
        while True:
            try:
                item = side.recv_published() if channel == "publish" else side.recv(channel)
            except TransportClosed:
                return
            turn = take_turn(turn, self.turn_s)   # a burst is read without a switch
            if channel == "publish" and not self._follows(index, item):
                continue
            self.queues[channel].put(item)

    def _follows(self, index, frames):
        """Note a PUB frame of side ``index``; False drops it (not the newest active)."""
        self.heard[index] = time.monotonic()
        term = _heartbeat_term(frames)
        if term is not None:
            self.terms[index] = term
            self.beats[index] = self.heard[index]
        if index == self.current:
            return True
        current = self.current
        if term is None or term < self.terms[current] or (
                term == self.terms[current] and not self._gone(current)):
            return False     # an old active not gone yet, or frames before its heartbeat
        self._switch(index, "broker %s publishes with term %d" % (
            self.sides[index].endpoint("intake"), term))
        return True


def _heartbeat_term(frames):
    """The term a heartbeat frame carries, or None (not a heartbeat, no term)."""
    if len(frames) != 2 or frames[0] != wire.HEARTBEAT_TOPIC:
        return None
    try:
        term = wire.decode(frames[1]).get("term")
    except wire.WireError:
        return None
    return term if type(term) is int else None
