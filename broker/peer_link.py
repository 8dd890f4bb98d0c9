"""The sockets of the link between the two brokers of the pair.

Each broker binds a ROUTER on its peer endpoint (what its partner says
arrives there) and connects a DEALER to its partner's (what it says goes
there): one direction per connection, so frames keep their order.  The
DEALER is ``IMMEDIATE``: while the partner is down nothing queues for it, so a
restarted partner never reads a dead instance's backlog (it catches up).
The frames are broker/replication.py's.

With the broker's keys, both sockets use CURVE (:func:`broker.keys.make_peer`):
the ROUTER admits only ``authorized_peers/`` keys, under its own ZAP domain, so
a node's key cannot reach it.  Without keys: local endpoints only.
"""
import logging

import zmq

from . import keys

log = logging.getLogger(__name__)
_NOBLOCK = int(zmq.NOBLOCK)


class PeerLink:
    """:param context: the broker's ZeroMQ context.
    :param bind: this broker's peer endpoint.
    :param connect: the partner's.
    :param hwm: high-water mark both ways (a full queue drops: the partner
        then catches up because the seqs no longer follow).
    :param curve: ``(authenticator, broker secret file, keys folder)``, or None.
    :param max_frame_bytes: the largest frame read (``ZMQ_MAXMSGSIZE``; a larger one
        drops the connection): a catch-up part is at most half of it (broker/catchup.py).
    """

    def __init__(self, context, bind, connect, hwm=100_000, insecure=False, curve=None,
                 max_frame_bytes=-1):
        if curve is None:
            keys.check_plain((bind, connect), insecure)
        self.inbox = context.socket(zmq.ROUTER)
        self.inbox.setsockopt(zmq.LINGER, 0)
        self.inbox.setsockopt(zmq.RCVHWM, hwm)
        self.inbox.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
        self.outbox = context.socket(zmq.DEALER)
        self.outbox.setsockopt(zmq.LINGER, 0)
        self.outbox.setsockopt(zmq.SNDHWM, hwm)
        self.outbox.setsockopt(zmq.IMMEDIATE, 1)
        if curve is not None:
            keys.make_peer(self.inbox, self.outbox, *curve)
        self.inbox.bind(bind)
        self.outbox.connect(connect)
        log.info("peer link: listening on %s, partner at %s, %s", bind, connect,
                 "CURVE" if curve else "no CURVE")

    def send(self, frame):
        try:
            self.outbox.send(frame, _NOBLOCK)
        except zmq.Again:   # partner down or its queue full: it will catch up
            pass

    def drain(self, handle, limit=1000):
        """Hand each queued frame (without the ROUTER's identity) to ``handle``."""
        for _ in range(limit):
            try:
                frames = self.inbox.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            if len(frames) == 2:
                handle(frames[1])

    def close(self):
        self.inbox.close(0)
        self.outbox.close(0)
