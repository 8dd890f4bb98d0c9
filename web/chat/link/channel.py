"""Requests to the broker with many in flight, matched to replies by ``rid``."""
import itertools
import logging

import gevent
from gevent.event import AsyncResult

from chatstream import wire
from .transport import TransportClosed

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not answer in time (or cannot be reached at all)."""


class NotActive(BrokerUnavailable):
    """The broker is the passive one of a failover pair (link/failover.py)."""


class NotMember(BrokerUnavailable):
    """The broker refused a room event: its author is not registered there as one of
    this node's connections (yet: a broker restarted or taken over has not had
    this node's report; broker_link.py registers and sends it again)."""


class NoReply(BrokerUnavailable):
    """The broker took the request but did not answer in time."""


class Refused(Exception):
    """The broker served the request and refused it by the room's state (an ``error``
    whose code is the contract's, e.g. ``not_found``): asking again, or asking the other
    broker of the pair, would get the same answer.  ``code`` and ``detail`` are for the client."""

    def __init__(self, code, detail):
        super().__init__("%s: %s" % (code, detail))
        self.code = code
        self.detail = detail


# The broker's error codes that are such verdicts (broker/handlers.py Refusal).
VERDICTS = frozenset({"not_found"})


class RequestChannel:
    """One of the transport's request sockets (``intake`` or ``snapshot``).

    Sends never block: a broker that is not connected refuses at once (the
    transport's ``send`` returns False) and the caller hears
    :class:`BrokerUnavailable`.

    :param transport: a :class:`~chat.link.transport.ZmqTransport` or its
        in-memory twin.
    :param channel: which of its request sockets this is.
    """

    def __init__(self, transport, channel):
        self.transport = transport
        self.channel = channel
        self.rids = itertools.count(1)
        self.pending = {}       # rid -> AsyncResult
        self.tags = {}          # tag -> rid of a request that may be answered another way
        self.reader = gevent.spawn(self._read)

    def send(self, type_, **fields):
        """Fire and forget; False when the frame could not be queued."""
        return self.transport.send(self.channel, wire.encode(type_, **fields))

    def request(self, type_, timeout, tag=None, wait_more=None, **fields):
        """Send a request and wait for its reply body (or what :meth:`settle`
        gives for ``tag``).  When ``timeout`` passes, ``wait_more()`` (if given)
        says how much longer to wait for the same reply (0: give up)."""
        rid = next(self.rids)
        result = self.pending[rid] = AsyncResult()
        if tag is not None:
            self.tags[tag] = rid
        where = self.transport.endpoint(self.channel)
        try:
            if not self.send(type_, rid=rid, **fields):
                raise BrokerUnavailable("broker not connected at %s" % where)
            reply = self._wait(result, timeout, wait_more)
        except gevent.Timeout:
            raise NoReply("no reply from %s in time" % where) from None
        finally:
            self.pending.pop(rid, None)
            if tag is not None and self.tags.get(tag) == rid:
                del self.tags[tag]
        if reply["type"] == "error":
            if reply.get("error") in VERDICTS:
                raise Refused(reply["error"], reply.get("detail") or "")
            refused = _REFUSALS.get(reply.get("error"), BrokerUnavailable)
            raise refused("broker refused: %s" % reply.get("detail"))
        return reply

    @staticmethod
    def _wait(result, timeout, wait_more):
        while True:
            try:
                return result.get(timeout=timeout)
            except gevent.Timeout:
                timeout = wait_more() if wait_more is not None else 0
                if timeout <= 0:
                    raise

    def settle(self, tag, body):
        """Answer the request in flight under ``tag`` with ``body``, as if replied."""
        result = self.pending.get(self.tags.get(tag))
        if result is not None and not result.ready():
            result.set(body)

    def close(self):
        self.reader.kill(block=False)

    def _read(self):
        while True:
            try:
                data = self.transport.recv(self.channel)
            except TransportClosed:
                return
            try:
                body = wire.decode(data)
            except wire.WireError as exc:
                log.warning("bad reply on %s: %s", self.channel, exc)
                continue
            result = self.pending.get(body.get("rid"))
            if result is None:
                log.debug("late reply on %s dropped: %s", self.channel, body.get("type"))
            else:
                result.set(body)


_REFUSALS = {"not_active": NotActive, "not_member": NotMember}
