"""The ``archiver`` program: follows the broker's stream of every room and writes each
room event into the archive, a batch per transaction.

It is a reader of the broker like a node, on the node's link parts (chat/link: the
sockets, the pair's failover, requests by rid) with a CURVE key of its own; unlike a
node it subscribes to every room.  Events go to the writer through a queue: the
reader never waits on the database, and what arrives while a batch is written makes
the next batch.  Nothing on the nodes' or the broker's path of a message waits for it.

Catching up: at start and whenever another broker instance is heard, a snapshot of the
broker's rooms gives each what the archive lacks; a seq jump, or a heartbeat ahead of
the archive, holds the room and asks the broker's ``history`` since its position
(archive/streams.py).
"""
import logging
import string
import time

import gevent
from gevent.queue import Queue

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
BATCH_EVENTS = 1000
# A batch that failed (database away or locked) is tried again after this long, whole.
RETRY_PAUSE_S = 1.0
# A catch-up the broker did not answer (down, failing over) is asked again after this.
CATCHUP_RETRY_S = 0.5


class Archiver:
    """Follow the broker and archive every room event.

    :param transport: a :class:`~chat.link.transport.ZmqTransport`, a pair's
        :class:`~chat.link.failover.PairTransport`, or an in-memory twin.
    :param positions: the archive's watermarks ``{room: (epoch, seq)}``.
    :param write: writes a batch ``[(epoch, Message)]``; default :func:`archive.writer.write`
        (imported on use: the models need Django set up).
    :param request_timeout_s: how long a snapshot or history request waits.
    """
    turn_s = 0.02

    def __init__(self, transport, positions=None, write=None,
                 request_timeout_s=config.ACK_TIMEOUT_MS / 1000.0, batch_events=BATCH_EVENTS):
        self.transport = transport
        self.streams = RoomStreams(positions)
        if write is None:
            from .writer import write
        self.write = write
        self.request_timeout_s = request_timeout_s
        self.batch_events = batch_events
        self.queue = Queue()
        self.broker_instance = None
        self.syncing = None
        self.snapshots = None
        self.greenlets = []
        self.archived = 0              # events written (new ones)
        self.newest_ts = None          # ts of the newest event written (Unix ms)

    def start(self):
        self.transport.open()
        for topic in ROOM_TOPIC_PREFIXES + [wire.HEARTBEAT_TOPIC]:
            self.transport.subscribe(topic)
        channel = getattr(self.transport, "request_channel", RequestChannel)
        self.snapshots = channel(self.transport, "snapshot")
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
        if self.snapshots is not None:
            self.snapshots.close()
        self.transport.close()

    @property
    def lag_events(self):
        """Events received and not yet written."""
        return self.queue.qsize()

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
            turn = take_turn(turn, self.turn_s)

    def _on_message(self, body):
        events, needs = self.streams.offer(body["epoch"], body["message"])
        self._queue(events)
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
        for event in events:
            self.queue.put(event)

    # catching up

    def _sync(self, instance):
        """Every room of the broker's snapshot: what the archive lacks of it."""
        try:
            while True:
                try:
                    reply = self.snapshots.request("snapshot", self.request_timeout_s, rooms=None)
                    break
                except BrokerUnavailable as exc:
                    log.warning("archiver: no snapshot from the broker (%s); asking again", exc)
                    gevent.sleep(CATCHUP_RETRY_S)
            count = 0
            for room, state in sorted(reply["rooms"].items()):
                events = self.streams.install(room, state)
                count += len(events)
                self._queue(events)
            self.broker_instance = reply.get("broker", instance)
            log.info("archiver: synced with broker %s: %d rooms, %d events to archive",
                     self.broker_instance, len(reply["rooms"]), count)
        finally:
            self.syncing = None

    def _catch_up(self, room):
        gevent.spawn(self._catch_up_room, room)

    def _catch_up_room(self, room):
        while True:
            epoch, seq = self.streams.position(room)
            try:
                reply = self.snapshots.request("history", self.request_timeout_s, room=room,
                                               since=seq if epoch is not None else None,
                                               epoch=epoch)
            except BrokerUnavailable as exc:
                log.warning("room %s: no history from the broker (%s); asking again", room, exc)
                gevent.sleep(CATCHUP_RETRY_S)
                continue
            events, again = self.streams.fill(room, reply)
            self._queue(events)
            if not again:
                return

    # writing

    def _write_forever(self):
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_events and not self.queue.empty():
                event = self.queue.get()
                if event is None:
                    self._write(batch)
                    return
                batch.append(event)
            self._write(batch)

    def _write(self, batch):
        while True:
            try:
                done = self.write(batch)
                break
            except Exception:
                log.exception("archiver: writing %d events failed; trying again", len(batch))
                _reset_connections()
                gevent.sleep(RETRY_PAUSE_S)
        self.archived += done.new
        self.newest_ts = batch[-1][1].get("ts", self.newest_ts)

    def lag_s(self):
        """Seconds between the newest event written and now (None before the first)."""
        return None if self.newest_ts is None else max(0.0, (now_ms() - self.newest_ts) / 1000.0)


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
