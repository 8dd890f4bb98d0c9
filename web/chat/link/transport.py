"""The broker link's sockets, on ``zmq.green``: the only web module that imports zmq.

Three sockets per node (frames in :mod:`chatstream.wire`):

- ``intake`` DEALER -> broker ROUTER: publishes (acked once sequenced),
  presence reports and announcements to make;
- ``publish`` SUB <- broker PUB: sequenced messages, presence, announcements and
  heartbeats, on the topics this node subscribed to;
- ``snapshot`` DEALER -> broker ROUTER: room snapshots and history repairs.

:class:`harness.twins.MemoryTransport` has the same five methods over an
in-process broker, for unit tests.

With ``curve_keys`` every socket is a CURVE client: the node's key pair and
the broker's public key (the broker admits only authorised node keys).  Every
socket reads frames of at most ``max_frame_bytes`` (the broker's largest reply).
"""
import logging
import time

import gevent

import zmq.green as zmq
from zmq.auth import load_certificate

from chatstream import config

log = logging.getLogger(__name__)


class TransportClosed(Exception):
    """The transport was closed while a reader waited on it."""


CLOSED = object()   # put in a queue of a QueueReader: its reader hears TransportClosed
# How long a reader reads before it lets the rest of the node run: zmq.green's recv and a
# gevent Queue's get return without a switch while something waits, so a burst (a
# reconnect storm's announcements) would be read in one go, the node deaf meanwhile.
# A turn of a few frames was too short: the link then waited behind every other greenlet
# after each, and messages behind the burst waited seconds.
TURN_S = 0.02


def take_turn(started, turn_s=TURN_S):
    """A reader's turn began at ``started`` (monotonic s): past ``turn_s``, let the rest
    of the node run.  Returns when the reader's current turn began."""
    if time.monotonic() - started < turn_s:
        return started
    gevent.sleep(0)
    return time.monotonic()


class QueueReader:
    """``recv`` and ``recv_published`` over ``self.queues`` ({channel: gevent
    Queue}): the transports that are fed by greenlets (memory.py, failover.py)."""

    queues = None

    def recv(self, channel):
        item = self.queues[channel].get()
        if item is CLOSED:
            raise TransportClosed(channel)
        return item

    def recv_published(self):
        return self.recv("publish")


class ZmqTransport:
    """The node side of the three broker sockets.

    :param intake: the broker's intake endpoint.
    :param publish: the broker's publish endpoint.
    :param snapshot: the broker's snapshot endpoint.
    :param hwm: high-water mark of every socket (messages queued per peer).
    :param context: the ZeroMQ context (the process's shared one by default).
    :param curve_keys: ``{"broker_public": path, "node_secret": path}`` (certificate
        files, :data:`chatstream.config.KEY_FILES`), or None for plain sockets.
    :param max_frame_bytes: largest frame read; a larger one drops the connection.
    """

    def __init__(self, intake=config.INTAKE_ENDPOINT, publish=config.PUBLISH_ENDPOINT,
                 snapshot=config.SNAPSHOT_ENDPOINT, hwm=config.ZMQ_HWM, context=None,
                 curve_keys=None, max_frame_bytes=config.NODE_MAX_FRAME_BYTES):
        self.endpoints = {"intake": intake, "publish": publish, "snapshot": snapshot}
        self.hwm = hwm
        self.context = context
        self.curve_keys = curve_keys
        self.max_frame_bytes = max_frame_bytes
        self.curve = None     # (server public, own public, own secret) once open
        self.sockets = {}

    def open(self):
        """Create and connect the sockets (once)."""
        if self.sockets:
            return
        self.context = self.context or zmq.Context.instance()
        self.curve = self._load_curve()
        for channel in ("intake", "snapshot"):
            sock = self._socket(zmq.DEALER)
            # A broker that is not connected refuses sends at once instead of
            # queueing them for a peer that may never come.
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.connect(self.endpoints[channel])
            self.sockets[channel] = sock
        sub = self.sockets["publish"] = self._socket(zmq.SUB)
        sub.connect(self.endpoints["publish"])

    def _load_curve(self):
        if not self.curve_keys:
            log.warning("CURVE is off: no node keys; a broker with keys will not admit this node")
            return None
        server_public, _ = load_certificate(self.curve_keys["broker_public"])
        public, secret = load_certificate(self.curve_keys["node_secret"])
        if secret is None:
            raise ValueError("%s holds no secret key" % self.curve_keys["node_secret"])
        return server_public, public, secret

    def _socket(self, kind):
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.RCVHWM, self.hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)
        if self.curve:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.curve
        return sock

    def endpoint(self, channel):
        return self.endpoints[channel]

    def send(self, channel, data):
        """Queue one frame on ``intake`` or ``snapshot``; False if it cannot be."""
        try:
            self.sockets[channel].send(data, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def recv(self, channel):
        """The next reply on ``intake`` or ``snapshot`` (blocks this greenlet)."""
        try:
            return self.sockets[channel].recv()
        except zmq.ZMQError:
            raise TransportClosed(channel) from None

    def recv_published(self):
        """The next frames from the broker's PUB socket (blocks this greenlet)."""
        try:
            return self.sockets["publish"].recv_multipart()
        except zmq.ZMQError:
            raise TransportClosed("publish") from None

    def subscribe(self, topic):
        self.sockets["publish"].setsockopt(zmq.SUBSCRIBE, topic)

    def unsubscribe(self, topic):
        self.sockets["publish"].setsockopt(zmq.UNSUBSCRIBE, topic)

    def close(self):
        for sock in self.sockets.values():
            sock.close(0)
