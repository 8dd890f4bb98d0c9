"""The ``archiver`` program: follows the broker's stream of every room and writes each
room event into the archive, a batch per transaction.

It is a reader of the broker like a node, on the node's link parts (chat/link: the
sockets, the pair's failover, requests by rid) with a CURVE key of its own; unlike a
node it subscribes to every room.  Events go to the writer through a queue: the
reader never waits on the database, and what arrives while a batch is written makes
the next batch.  Nothing on the nodes' or the broker's path of a message waits for it.

Never missing: after each batch it reports the rooms' watermarks (``archived``), and
the broker keeps a room's events beyond its buffer until they are archived.  At start
and whenever another broker instance is heard, the broker's list of rooms with events
not yet archived (``archive_rooms``) says which to catch up; a seq jump, or a
heartbeat ahead of the archive, holds a room too.  A held room is read from the
broker's store (``archive_events``, a page at a time) since its position, then its
held live events follow (archive/streams.py).
"""
import logging
import string
import time

import gevent
from gevent.pool import Pool
from gevent.queue import Empty, Queue

from chat.link.channel import BrokerUnavailable, RequestChannel
from chat.link.transport import TransportClosed, take_turn
from chatstream import config, wire
from chatstream.clock import now_ms
from .streams import RoomStreams

log = logging.getLogger(__name__)

# Every room's topic starts with one of these (chatstream.rules.ROOM_RE): a prefix
# subscription each covers every room and leaves out presence.
ROOM_TOPIC_PREFIXES = [c.encode() for c in string.ascii_letters + string.digits + "_-"]
# Events written in one transaction at most: a catch-up of many rooms is several
# batches, each commit short enough for the nodes' readers of the same database.
BATCH_EVENTS = 2000
# A batch that failed (database away or locked) is tried again after this long, whole.
RETRY_PAUSE_S = 1.0
# A catch-up the broker did not answer (down, failing over) is asked again after this.
CATCHUP_RETRY_S = 0.5
# Rooms caught up at once after a start: a few requests in flight keep the broker's
# loop and the writer busy without queueing every room's backlog in memory.
CATCHUPS_IN_FLIGHT = 8
# Rooms or events asked for in one archive_rooms / archive_events request (the broker
# caps it too, broker/handlers.py ARCHIVE_PAGE).
PAGE = 1000
# An idle writer looks this often whether retention is due (it prunes between batches).
RETENTION_CHECK_S = 60.0


class Archiver:
    """Follow the broker and archive every room event.

    :param transport: a :class:`~chat.link.transport.ZmqTransport`, a pair's
        :class:`~chat.link.failover.PairTransport`, or an in-memory twin.
    :param positions: the archive's watermarks ``{room: (epoch, seq)}``.
    :param write: writes a batch ``[(epoch, Message)]``; default :func:`archive.writer.write`
        (imported on use: the models need Django set up).
    :param node: the name its reports go under (its key's, CHAT_NODE_NAME).
    :param request_timeout_s: how long a request to the broker waits.
    :param retention: an :class:`~archive.retention.Retention` (None: keep everything):
        the writer prunes old events between its batches, so only it writes the archive.
    """
    turn_s = 0.02

    def __init__(self, transport, positions=None, write=None, node="archiver",
                 request_timeout_s=config.ACK_TIMEOUT_MS / 1000.0, batch_events=BATCH_EVENTS,
                 retention=None):
        self.transport = transport
        self.node = node
        self.streams = RoomStreams(positions)
        if write is None:
            from .writer import write
        self.write = write
        self.request_timeout_s = request_timeout_s
        self.batch_events = batch_events
        self.retention = retention
        self.queue = Queue()           # lists of events, as they came (a frame, a page)
        self.queued = 0                # events in the queue
        self.broker_instance = None
        self.syncing = None
        self.snapshots = self.intake = None
        self.greenlets = []
        self.archived = 0              # events written (new ones)
        self.writing = []              # the batch being written
        self.arriving = []             # the events of the frame being read

    def start(self):
        """Connect and follow the broker."""
        self.transport.open()
        for topic in ROOM_TOPIC_PREFIXES + [wire.HEARTBEAT_TOPIC]:
            self.transport.subscribe(topic)
        channel = getattr(self.transport, "request_channel", RequestChannel)
        self.snapshots, self.intake = (channel(self.transport, c) for c in ("snapshot", "intake"))
        self.greenlets = [gevent.spawn(self._read_forever), gevent.spawn(self._write_forever)]
        log.info("archiver: broker publish %s, snapshot %s, %d rooms archived so far",
                 self.transport.endpoint("publish"), self.transport.endpoint("snapshot"),
                 len(self.streams.positions))

    def stop(self, flush_timeout_s=5.0):
        """Stop reading, write what is queued (within ``flush_timeout_s``), close."""
        self.greenlets[0].kill()
        self.queue.put(None)
        self.greenlets[1].join(flush_timeout_s)
        gevent.killall(self.greenlets, block=False)
        for channel in (self.snapshots, self.intake):
            if channel is not None:
                channel.close()
        self.transport.close()

    @property
    def lag_events(self):
        """Events received and not yet written (those of rooms being caught up too)."""
        return (len(self.writing) + self.queued
                + sum(len(held) for held in self.streams.held.values()))

    def lag_s(self):
        """How long the oldest event received and not yet written has waited since the
        broker sequenced it (0 when none waits)."""
        queued = self.queue.queue
        oldest = [events[0] for events in (self.writing, queued[0] if queued else None)
                  if events]
        oldest += [held[0] for held in self.streams.held.values() if held]
        if not oldest:
            return 0.0
        return max(0.0, (now_ms() - min(message["ts"] for _, message in oldest)) / 1000.0)

    # reading

    def _read_forever(self):
        turn = time.monotonic()
        while True:
            try:
                frames = self.transport.recv_published()
            except TransportClosed:
                return
            try:
                for body in wire.unbatch(wire.decode(frames[-1])):
                    handler = self.handlers.get(body["type"])
                    if handler is not None:
                        handler(self, body)
            except Exception:
                log.exception("archiver: bad frame from the broker")
            finally:
                # The frame's events go to the writer together (the streams' positions
                # already moved past them, so even a frame broken halfway queues them).
                arrived, self.arriving = self.arriving, []
                self._queue(arrived)
            turn = take_turn(turn, self.turn_s)

    def _on_message(self, body):
        events, needs = self.streams.offer(body["epoch"], body["message"])
        self.arriving += events
        if needs:
            self._catch_up(body["message"]["room"])

    def _on_heartbeat(self, body):
        if body.get("broker") != self.broker_instance and self.syncing is None:
            self.syncing = gevent.spawn(self._sync, body.get("broker"))
            return
        for room, seq in (body.get("seqs") or {}).items():
            if self.streams.behind(room, body.get("epoch"), seq):
                log.info("room %s: the broker is at %s, the archive behind; catching up", room, seq)
                self._catch_up(room)

    handlers = {"message": _on_message, "heartbeat": _on_heartbeat}

    def _queue(self, events):
        # A list at a time, not an event at a time: the queue's cost stays per frame.
        self.queued += len(events)
        for start in range(0, len(events), self.batch_events):
            self.queue.put(events[start:start + self.batch_events])

    # catching up

    def _sync(self, instance):
        """Every room the broker has events of that it has not heard are archived; the
        report, even of none, tells a broker an archive is kept (from then on its store
        keeps what the archive lacks)."""
        try:
            after, held, reports = "", [], {}
            while True:
                reply = self._ask("archive_rooms", after=after, limit=PAGE)
                for room, (epoch, seq, _) in sorted(reply["rooms"].items()):
                    if self.streams.behind(room, epoch, seq):
                        held.append(room)
                    elif self.streams.position(room)[0] == epoch:   # archived, not heard of
                        reports[room] = list(self.streams.position(room))
                if not reply["more"] or not reply["rooms"]:
                    break
                after = max(reply["rooms"])
            self._report(reports, always=True)
            self.broker_instance = instance
            log.info("archiver: following broker %s: %d rooms to catch up", instance, len(held))
            Pool(CATCHUPS_IN_FLIGHT).map(self._catch_up_room, held)
        finally:
            self.syncing = None

    def _ask(self, type_, **fields):
        """The broker's reply to a request, asked again until it comes."""
        while True:
            try:
                return self.snapshots.request(type_, self.request_timeout_s, **fields)
            except BrokerUnavailable as exc:
                log.warning("archiver: no %s reply from the broker (%s); asking again", type_, exc)
                gevent.sleep(CATCHUP_RETRY_S)

    def _catch_up(self, room):
        gevent.spawn(self._catch_up_room, room)

    def _catch_up_room(self, room):
        """Read a held room from the broker's store since its position, a page at a
        time, then release its held events; again while they leave a hole."""
        while True:
            epoch, seq = self.streams.position(room)
            reply = self._ask("archive_events", room=room, since=seq, epoch=epoch, limit=PAGE)
            events = reply["events"]
            last = events[-1]["seq"] if events else (seq if reply["epoch"] == epoch else 0)
            page = {"epoch": reply["epoch"], "seq": last, "history": events}
            if events and last < reply["seq"]:
                self._queue(self.streams.take(room, page))
                continue
            events, again = self.streams.fill(room, page)
            self._queue(events)
            if not again:
                return
            if not events:      # the next events are not stored yet: they are on their way
                gevent.sleep(CATCHUP_RETRY_S / 10)

    def _report(self, rooms, always=False):
        """Tell the broker the archive holds ``rooms`` {room: [epoch, seq]} (fire-and-forget:
        a lost report is sent again with the room's next batch or the next start)."""
        if (rooms or always) and not self.intake.send("archived", node=self.node, rooms=rooms):
            log.warning("archiver: broker unreachable, report of %d rooms not sent", len(rooms))

    # writing

    def _write_forever(self):
        while True:
            pruning = self.retention is not None and self.retention.step() > 0
            try:
                # Pruning goes on batch by batch while nothing waits; events always come first.
                first = self.queue.get(block=not pruning, timeout=RETENTION_CHECK_S
                                       if self.retention is not None else None)
            except Empty:
                continue
            if first is None:
                return
            batch = list(first)
            while not self.queue.empty():
                events = self.queue.peek()
                if events is not None and len(batch) + len(events) > self.batch_events:
                    break
                self.queue.get()
                if events is None:
                    self._write(batch)
                    return
                batch += events
            self._write(batch)

    def _write(self, batch):
        self.writing = batch
        self.queued -= len(batch)
        while True:
            try:
                done = self.write(batch)
                break
            except Exception:
                log.exception("archiver: writing %d events failed; trying again", len(batch))
                _reset_connections()
                gevent.sleep(RETRY_PAUSE_S)
        self.archived += done.new
        self.writing = []
        self._report({room: list(position) for room, position in done.watermarks.items()})


def _reset_connections():
    """Drop the database connection after an error: the next try opens a new one."""
    from django.db import connections
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


def archived_positions():
    """The archive's watermark of every room: ``{room: (epoch, seq)}``."""
    from .models import Room
    return {name: (epoch or None, seq) for name, epoch, seq in
            Room.objects.values_list("name", "epoch", "seq")}
