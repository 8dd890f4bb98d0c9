"""Replication between the brokers of the failover pair (the Guide's clonesrv6).

The active broker sends every message it sequences, with its seq, id, ts, cid
and uid, to the passive, which applies it to its own sequencer and durable
store and acknowledges by ``(room, seq)`` once committed.  The active holds
each committed batch's output (``published`` replies, PUB frames) until the
passive has acknowledged every message of the batch -- or until Binary Star
declares the passive dead, which releases everything held (the Guide: a pair
runs on alone).  So a publish a node saw acknowledged is in both stores
while both brokers are up, and a failover keeps epoch, seqs and cids.

Peer link (chatstream/wire.py's format and version), one JSON body per ZeroMQ message, each broker's DEALER
connected to the other's ROUTER on its peer port (``broker`` 5559,
``broker2`` 5569); every frame flows one way on one connection, so order holds::

    peer_state  {state, in_sync, term, instance, epoch, feeding}   both ways, every
                heartbeat; ``feeding``: the passive instance an active replicates to
    catchup     {instance, ask}                     passive -> active: send all
    rooms       {epoch, rooms: {room: RoomState}, after, more, ask}   active -> passive
    replicate   {room, epoch, message: Message}     active -> passive
    replicated  {acks: {room: seq}, ask?, parts?}   passive -> active, after commit
                (``parts``: catch-up parts of request ``ask`` stored so far)
    archived    {rooms: {room: [epoch, seq]}}       active -> passive: the archiver's
                watermarks, so the passive's store keeps what the archive lacks alike

A passive asks ``catchup`` (``ask`` numbers its requests) when it becomes
passive, again whenever a ``replicate`` does not follow its room's seq, a
``rooms`` part is missing, or no part came for a while, and whenever the
active's ``feeding`` does not name it (the active stopped replicating to it:
it was declared dead, or its acks were overdue).  The active streams its rooms
in bounded parts between its batches (broker/catchup.py: how parts and
``replicate`` frames interleave); the passive is ``in_sync`` -- allowed to take
over -- once the last part (``more`` false) is stored.  It adopts the active's
epoch, so rooms created after a failover share it too.
"""
import collections
import logging
import time

from chatstream import config, wire
from .catchup import CatchupStream, part_bytes

log = logging.getLogger(__name__)

PEER_TYPES = frozenset({"peer_state", "catchup", "rooms", "replicate", "replicated", "archived"})


PeerError = wire.WireError   # a malformed peer frame


def encode(type_, **fields):
    """A peer frame (chatstream/wire.py's format, version and checks)."""
    return wire.encode_typed(PEER_TYPES, type_, fields)


def decode(frame):
    return wire.decode(frame, PEER_TYPES)


class Replicator:
    """The active side: sends what is sequenced, holds output until acknowledged.

    :param send: sends one encoded peer frame to the passive.
    :param sequencer: the active's :class:`broker.sequencer.Sequencer`.
    :param clock: monotonic seconds (for the lag; injectable).
    :param max_part_bytes: a catch-up part's size bound (broker/catchup.py).
    """

    def __init__(self, send, sequencer, clock=time.monotonic, max_part_bytes=None):
        self.send = send
        self.sequencer = sequencer
        self.clock = clock
        self.max_part_bytes = max_part_bytes or part_bytes(sequencer.history_size,
                                                           config.BROKER_MAX_FRAME_BYTES)
        self.stream = None            # the catch-up being streamed (a CatchupStream)
        self.attached = None          # the passive instance being fed (it asked a catch-up)
        self.acked = {}               # room -> highest seq the passive has stored
        self.batch = {}               # room -> highest seq replicated in the open batch
        self.held = collections.deque()   # (needs {room: seq}, outbox, since) in commit order

    def replicate(self, room, epoch, message):
        """Called for every newly sequenced message (before the batch's commit)."""
        if self.attached is None:
            return
        if self.stream is not None and self.stream.pending(room):
            return    # the room's catch-up part, read after this batch's commit, holds it
        self.send(encode("replicate", room=room, epoch=epoch, message=message))
        self.batch[room] = message["seq"]

    def archived(self, rooms):
        """The archiver's watermarks {room: (epoch, seq)}, passed on to the passive."""
        if self.attached is not None:
            self.send(encode("archived", rooms={room: list(p) for room, p in rooms.items()}))

    def on_catchup(self, body):
        """The passive asks for everything: every room, in parts (:meth:`step`),
        with the live stream of the rooms already sent."""
        self.stream = CatchupStream(self.sequencer, self.send, encode, body.get("ask"),
                                    self.max_part_bytes)
        log.info("replication: passive %s catching up", body.get("instance"))
        self.attached = body.get("instance") or "?"
        self.acked = {}

    def step(self):
        """Right after a commit: the catch-up's next part, if one is being streamed."""
        if self.stream is not None and self.stream.ready() and self.stream.step():
            log.info("replication: passive %s sent %d rooms in %d parts", self.attached,
                     self.stream.rooms, self.stream.parts)
            self.stream = None

    def on_replicated(self, body):
        """Acks arrived; returns the held outboxes that may now go, in order."""
        if self.stream is not None and body.get("ask") == self.stream.ask:
            parts = body.get("parts")
            self.stream.on_ack(parts if isinstance(parts, int) else 0)
        for room, seq in body["acks"].items():
            if seq > self.acked.get(room, 0):
                self.acked[room] = seq
        return self._release()

    def hold(self, outbox):
        """After a commit: what of ``outbox`` (and earlier held output) may be
        sent now.  Output never overtakes earlier held output."""
        needs, self.batch = self.batch, {}
        if not needs and not self.held:
            return outbox
        self.held.append((needs, outbox, self.clock()))
        return self._release()

    def detach(self, why):
        """The passive is gone (dead by Binary Star, or restarted): release all."""
        if self.attached is not None or self.held:
            log.warning("replication: passive detached (%s); %d batches released unreplicated",
                        why, len(self.held))
        self.attached = None
        self.stream = None
        self.batch = {}
        released = [item for _, outbox, _ in self.held for item in outbox]
        self.held.clear()
        return released

    def _release(self):
        released = []
        while self.held:
            needs, outbox, _ = self.held[0]
            if any(self.acked.get(room, 0) < seq for room, seq in needs.items()):
                break
            self.held.popleft()
            released.extend(outbox)
        return released

    def lag_seconds(self):
        """How long the oldest output waiting for the passive has waited (metrics;
        read from the scrape thread, so a batch released meanwhile reads as 0)."""
        try:
            return self.clock() - self.held[0][2]
        except IndexError:
            return 0.0


class Replica:
    """The passive side: applies the active's stream to its own store.

    :param send: sends one encoded peer frame to the active.
    :param sequencer: the passive's :class:`broker.sequencer.Sequencer`.
    :param instance: this broker's instance name (for the active's log).
    :param clock: monotonic seconds (injectable).
    """

    def __init__(self, send, sequencer, instance=None, clock=time.monotonic):
        self.send = send
        self.sequencer = sequencer
        self.instance = instance
        self.clock = clock
        self.in_sync = False
        self.catching_up = False
        self.asked_at = 0.0   # when the catch-up was asked or last moved (monotonic seconds)
        self.ask = 0          # the number of the last catch-up request
        self.cursor = None    # the last room of its parts so far (None: no part yet)
        self.parts = 0        # parts of this request stored
        self.parts_acked = 0  # ... and acknowledged
        self.applied = {}   # room -> seq applied since the last commit (to acknowledge)

    def start(self, now=None):
        """Ask the active for everything (on becoming passive, or out of step)."""
        self.in_sync = False
        self.catching_up = True
        self.asked_at = self.clock() if now is None else now
        self.applied = {}
        self.ask += 1
        self.cursor = None
        self.parts = self.parts_acked = 0
        self.send(encode("catchup", instance=self.instance, ask=self.ask))

    def on_rooms(self, body):
        if not self.catching_up or body.get("ask") != self.ask:
            return                  # an answer to an earlier request
        after, rooms, more = body.get("after", ""), body["rooms"], body.get("more") is True
        if after != (self.cursor or ""):
            log.warning("replication: a catch-up part is missing (one after %r came, %r "
                        "expected); asking again", after, self.cursor)
            self.start()
            return
        if self.sequencer.epoch != body["epoch"]:
            log.warning("replication: adopting the active's epoch %s (was %s)",
                        body["epoch"], self.sequencer.epoch)
            self.sequencer.adopt_epoch(body["epoch"])
        self.sequencer.restore_part(rooms, after, max(rooms) if more else None)
        self.sequencer.commit()
        self.cursor = max(rooms) if rooms else after
        self.asked_at = self.clock()   # the catch-up moves: no need to ask again
        self.parts += 1            # acknowledged by flush, once per loop turn
        if not more:
            self.catching_up = False
            self.in_sync = True
            log.info("replication: caught up with the active")

    def on_replicate(self, body):
        if self.catching_up and self.cursor is None:
            return    # sent before the active heard the request: the parts will hold it
        message = body["message"]
        if not self.sequencer.apply(body["room"], body["epoch"], message):
            log.warning("replication: room %s out of step at seq %d; catching up again",
                        body["room"], message["seq"])
            self.start()
            return
        self.applied[body["room"]] = message["seq"]

    def on_archived(self, body):
        rooms = {room: (epoch, seq) for room, (epoch, seq) in body["rooms"].items()}
        self.sequencer.store.record_archived(rooms, self.sequencer.history_size)

    def flush(self):
        """Commit what was applied, then acknowledge it (durable first), with the
        catch-up parts stored.  Once per loop turn: the active sends the next
        parts only then, so a passive's turn (and its heartbeat) waits for a few
        parts at most, never for a stream that keeps coming."""
        if not self.applied and self.parts == self.parts_acked:
            return
        self.sequencer.commit()
        applied, self.applied = self.applied, {}
        parts = {}
        if self.parts != self.parts_acked:
            parts = {"ask": self.ask, "parts": self.parts}
            self.parts_acked = self.parts
        self.send(encode("replicated", acks=applied, **parts))
