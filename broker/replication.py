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
    catchup     {instance}                          passive -> active: send all
    rooms       {epoch, rooms: {room: RoomState}, more}   active -> passive
    replicate   {room, epoch, message: Message}     active -> passive
    replicated  {acks: {room: seq}}                 passive -> active, after commit

A passive asks ``catchup`` when it becomes passive, again whenever a
``replicate`` does not follow its room's seq or its request got no answer, and
whenever the active's ``feeding`` does not name it (the active stopped
replicating to it: it was declared dead, or its acks were overdue); it is
``in_sync`` -- allowed to take over -- once the last ``rooms`` part is stored.  It adopts the active's
epoch, so rooms created after a failover share it too.
"""
import collections
import logging
import time

from chatstream import wire

log = logging.getLogger(__name__)

PEER_TYPES = frozenset({"peer_state", "catchup", "rooms", "replicate", "replicated"})
CATCHUP_ROOMS_PER_PART = 200   # a part stays well under a frame limit of a few MB


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
    """

    def __init__(self, send, sequencer, clock=time.monotonic):
        self.send = send
        self.sequencer = sequencer
        self.clock = clock
        self.attached = None          # the passive instance being fed (it asked a catch-up)
        self.acked = {}               # room -> highest seq the passive has stored
        self.batch = {}               # room -> highest seq replicated in the open batch
        self.held = collections.deque()   # (needs {room: seq}, outbox, since) in commit order

    def replicate(self, room, epoch, message):
        """Called for every newly sequenced message (before the batch's commit)."""
        if self.attached is None:
            return
        self.send(encode("replicate", room=room, epoch=epoch, message=message))
        self.batch[room] = message["seq"]

    def on_catchup(self, body):
        """The passive asks for everything: every room, in parts, then the live stream."""
        names = sorted(set(self.sequencer.store.room_names()) | set(self.sequencer.rooms))
        epoch = self.sequencer.epoch
        if not names:
            self.send(encode("rooms", epoch=epoch, rooms={}, more=False))
        for start in range(0, len(names), CATCHUP_ROOMS_PER_PART):
            part = names[start:start + CATCHUP_ROOMS_PER_PART]
            self.send(encode("rooms", epoch=epoch, rooms=self.sequencer.snapshot(part),
                             more=start + CATCHUP_ROOMS_PER_PART < len(names)))
        log.info("replication: passive %s catching up on %d rooms", body.get("instance"), len(names))
        self.attached = body.get("instance") or "?"
        self.acked = {}

    def on_replicated(self, body):
        """Acks arrived; returns the held outboxes that may now go, in order."""
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
    """

    def __init__(self, send, sequencer, instance=None):
        self.send = send
        self.sequencer = sequencer
        self.instance = instance
        self.in_sync = False
        self.catching_up = False
        self.asked_at = 0.0   # when the last catch-up was asked (monotonic seconds)
        self.applied = {}   # room -> seq applied since the last commit (to acknowledge)

    def start(self, now=None):
        """Ask the active for everything (on becoming passive, or out of step)."""
        self.in_sync = False
        self.catching_up = True
        self.asked_at = time.monotonic() if now is None else now
        self.applied = {}
        self.send(encode("catchup", instance=self.instance))

    def on_rooms(self, body):
        if not self.catching_up:
            return
        if self.sequencer.epoch != body["epoch"]:
            log.warning("replication: adopting the active's epoch %s (was %s)",
                        body["epoch"], self.sequencer.epoch)
            self.sequencer.adopt_epoch(body["epoch"])
        for room, state in body["rooms"].items():
            self.sequencer.restore(room, state)
        if not body.get("more"):
            self.sequencer.commit()
            self.catching_up = False
            self.in_sync = True
            log.info("replication: caught up with the active")

    def on_replicate(self, body):
        message = body["message"]
        if not self.sequencer.apply(body["room"], body["epoch"], message):
            log.warning("replication: room %s out of step at seq %d; catching up again",
                        body["room"], message["seq"])
            self.start()
            return
        self.applied[body["room"]] = message["seq"]

    def flush(self):
        """Commit what was applied, then acknowledge it (durable first)."""
        if not self.applied:
            return
        self.sequencer.commit()
        applied, self.applied = self.applied, {}
        self.send(encode("replicated", acks=applied))
