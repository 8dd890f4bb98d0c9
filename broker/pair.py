"""One broker's half of the failover pair: Binary Star plus replication.

:class:`BrokerPair` composes :class:`broker.bstar.BinaryStar` (who serves)
with :class:`broker.replication.Replicator` (while active) and
:class:`broker.replication.Replica` (while passive); it knows no sockets: it
sends peer frames through ``send`` and is fed the peer's frames by
:meth:`on_peer_frame`.  The broker (server.py) asks it three things:

- ``accept()`` for every node request: False -> refuse ``not_active``;
- ``replicate(room, epoch, message)`` for every newly sequenced message;
- ``hold(outbox)`` after every commit: what may be sent now;
- ``step()`` after every commit: the next part of a catch-up being streamed
  (``streaming``: a part may go out now, so the loop does not wait for a socket).

and calls :meth:`tick` every heartbeat: it sends our state to the peer,
detaches a passive Binary Star declared dead, and flushes the replica's acks.
"""
import logging

from . import bstar
from .replication import PeerError, Replica, Replicator, decode, encode

log = logging.getLogger(__name__)


class BrokerPair:
    """:param primary: True for ``broker``, False for ``broker2``.
    :param send: sends one encoded frame to the peer.
    :param sequencer: this broker's sequencer.
    :param instance: this broker's instance name ("<epoch>-<start>").
    :param heartbeat_ms: peer heartbeat period (and expiry = twice it).
    :param clock: monotonic seconds (tests inject one).
    :param max_part_bytes: a catch-up part's size bound (broker/catchup.py).
    """

    def __init__(self, primary, send, sequencer, instance, heartbeat_ms=1000, clock=None,
                 max_part_bytes=None):
        kwargs = {"clock": clock} if clock is not None else {}
        self.star = bstar.BinaryStar(primary, heartbeat_ms=heartbeat_ms, **kwargs)
        self.send = send
        self.sequencer = sequencer
        self.instance = instance
        self.replicator = Replicator(send, sequencer, self.star.clock, max_part_bytes)
        self.replica = Replica(send, sequencer, instance, self.star.clock)
        self.peer_instance = None
        self.released = []   # outbox items released by acks or detach, for the server to send
        self.handlers = {"peer_state": self._on_peer_state, "catchup": self._on_catchup,
                         "rooms": self.replica.on_rooms, "replicate": self.replica.on_replicate,
                         "replicated": self._on_replicated, "archived": self.replica.on_archived}

    @property
    def state(self):
        return self.star.state

    @property
    def in_sync(self):
        return self.star.state in (bstar.PRIMARY, bstar.ACTIVE) or self.replica.in_sync

    def accept(self):
        """A node request arrived: may this broker serve it?"""
        self.star.set_in_sync(self.in_sync)
        return self.star.client_request()

    def archived(self, rooms):
        """The archiver's watermarks, for the passive's store too (store.py)."""
        if self.star.state == bstar.ACTIVE:
            self.replicator.archived(rooms)

    def replicate(self, room, epoch, message):
        if self.star.state == bstar.ACTIVE:
            self.replicator.replicate(room, epoch, message)

    def hold(self, outbox):
        return self.replicator.hold(outbox)

    @property
    def streaming(self):
        """A catch-up part may go out now (one is streamed and the passive keeps up)."""
        stream = self.replicator.stream
        return stream is not None and stream.ready()

    def step(self):
        self.replicator.step()

    def take_released(self):
        released, self.released = self.released, []
        return released

    def on_peer_frame(self, frame):
        """One frame from the peer; a malformed one is logged and dropped."""
        try:
            body = decode(frame)
            self.handlers[body["type"]](body)
        except (PeerError, KeyError, TypeError, ValueError) as exc:
            log.warning("peer frame refused: %s", exc)

    def flush(self):
        """After the peer's frames of one loop turn: commit and acknowledge what
        the replica applied (at once: the active holds node replies for it)."""
        self.replica.flush()

    def tick(self):
        """Every heartbeat: our state to the peer; output released from a passive
        that is dead or whose acks are overdue (bounded wait); a catch-up asked
        again when unanswered; acks out."""
        expiry_s = 2 * self.star.heartbeat_ms / 1000.0
        if self.star.state == bstar.ACTIVE:
            if not self.star.peer_alive():
                self.released.extend(self.replicator.detach("no peer heartbeat"))
            elif self.replicator.lag_seconds() > expiry_s:
                self.released.extend(self.replicator.detach("acks overdue"))
        elif self.star.state == bstar.PASSIVE and not self.replica.in_sync:
            if self.star.clock() - self.replica.asked_at > 2 * expiry_s:
                self.replica.start(self.star.clock())
        self.replica.flush()
        self.send(encode("peer_state", state=self.star.state, in_sync=self.in_sync,
                         term=self.star.term, instance=self.instance, epoch=self.sequencer.epoch,
                         feeding=self.replicator.attached))

    def _on_peer_state(self, body):
        instance = body.get("instance")
        if self.peer_instance is not None and instance != self.peer_instance:
            log.warning("peer restarted: %s -> %s", self.peer_instance, instance)
            self.released.extend(self.replicator.detach("peer restarted"))
        self.peer_instance = instance
        before = self.star.state
        self.star.set_in_sync(self.in_sync)
        term = body.get("term")
        self.star.peer_heartbeat(body["state"], peer_in_sync=body.get("in_sync") is True,
                                 peer_term=term if isinstance(term, int) else 0)
        if self.star.state == bstar.PASSIVE and before != bstar.PASSIVE:
            self.replica.start(self.star.clock())
        elif (self.star.state == bstar.PASSIVE and body["state"] == bstar.ACTIVE
              and self.replica.in_sync and body.get("feeding") != self.instance):
            log.warning("the active no longer replicates to this broker: catching up again")
            self.replica.start(self.star.clock())

    def _on_catchup(self, body):
        if self.star.state != bstar.ACTIVE:
            log.warning("catch-up asked of a %s broker: ignored", self.star.state)
            return
        self.released.extend(self.replicator.detach("passive catching up"))
        self.replicator.on_catchup(body)

    def _on_replicated(self, body):
        self.released.extend(self.replicator.on_replicated(body))
