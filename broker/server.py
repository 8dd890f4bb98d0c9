"""The broker's sockets and loop: intake -> sequencer -> store -> publish, plus snapshots.

One thread, one poller.  Every request is answered or logged; a malformed
frame is refused with an ``error`` reply and never stops the loop.

Group commit: the loop handles a batch of queued requests, commits the store
once, and only then sends what the batch produced (publishes and acks, in
order).  So nothing is published or acknowledged before it is durable.
"""
import logging
import math
import time

import zmq

from chatstream import rules, wire
from chatstream.config import ROOM_SWEEP_MS
from chatstream.clock import now_ms
from . import keys
from .presence import PresenceFull, PresenceRegistry
from .reports import ReportAssembler, ReportError
from .sequencer import DAY_MS, Sequencer
from .store import MemoryStore, SqliteStore

# Plain ints: pyzmq's send_multipart/recv_multipart combine its IntFlag
# constants per frame, which showed up at ~6 % of the broker's time flat out.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)


def open_store(config):
    """The store the configuration names: a SQLite file, or memory."""
    if config.state_path in ("", "memory"):
        log.warning("broker state is in memory only: a restart starts a new epoch")
        return MemoryStore()
    return SqliteStore(config.state_path, synchronous=config.state_sync)

log = logging.getLogger(__name__)


class RequestError(Exception):
    """A request the broker refuses; becomes an ``error`` reply."""


def _ruled(rule, value):
    """``rule(value)`` (chatstream.rules); a refusal names the contract's code."""
    try:
        return rule(value)
    except rules.RuleError as exc:
        raise RequestError("%s: %s" % (exc.code, exc.detail)) from None


def _field(body, name, types, optional=False):
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, types) or isinstance(value, bool):
        raise RequestError("field %r has the wrong type" % name)
    return value


class Broker:
    """Sequences room messages from nodes and publishes them to every node.

    :param config: a :class:`broker.config.BrokerConfig`.
    :param context: the ZeroMQ context (a new one by default).
    :param sequencer: the room state (a new :class:`Sequencer` by default).
    """

    def __init__(self, config, context=None, sequencer=None, presence=None):
        self.config = config
        self.context = context or zmq.Context.instance()
        self.sequencer = sequencer or Sequencer(
            history_size=config.history_size, store=open_store(config),
            rooms_in_memory=config.rooms_in_memory,
            room_ttl_ms=config.room_ttl_days * DAY_MS)
        self.presence = presence or PresenceRegistry(node_ttl_ms=config.node_ttl_ms,
                                                     max_nodes=config.presence_max_nodes)
        self.reports = ReportAssembler(config.presence_max_rooms, config.presence_max_nicks,
                                       config.presence_max_nodes)
        self.next_presence = 0.0   # time.monotonic() before which no presence goes out
        self.instance = None  # "<epoch>-<start time>", set by bind()
        self.intake = self.publisher = self.snapshots = None
        self.running = False
        self.outbox = []   # (socket, frames) to send once the batch is committed
        self.next_room_sweep_ms = 0
        self.intake_handlers = {"publish": self.on_publish, "relay": self.on_relay,
                                "presence": self.on_presence}
        self.snapshot_handlers = {"snapshot": self.on_snapshot, "history": self.on_history}

    curve = None   # {"broker_secret", "authorized_nodes"} paths while CURVE is on (bind)
    auth = None    # its authenticator (broker.keys.start_authenticator)

    def bind(self):
        """Create and bind the three sockets: CURVE servers that admit only the
        authorised node keys when the broker has keys (else local addresses only,
        unless ``insecure``), a frame size limit and explicit high-water marks."""
        cfg = self.config
        endpoints = (cfg.intake, cfg.snapshot, cfg.publish)
        # inproc (the unit tests' loop) never leaves the process: libzmq does no handshake there
        if not all(ep.startswith("inproc://") for ep in endpoints):
            self.curve = keys.server_files(cfg)
            if self.curve is None:
                keys.check_plain(endpoints, cfg.insecure)
            else:
                self.auth = keys.start_authenticator(self.context, self.curve["authorized_nodes"])
        self.intake = self._socket(zmq.ROUTER, cfg.intake)
        self.snapshots = self._socket(zmq.ROUTER, cfg.snapshot)
        self.publisher = self._socket(zmq.PUB, cfg.publish)
        self.instance = "%s-%d" % (self.sequencer.epoch, int(time.time()))
        log.info("broker %s listening: intake %s, publish %s, snapshot %s, %s, frames up to %d "
                 "bytes, history %d, state %s (rooms load on first use, at most %d in memory)",
                 self.instance, cfg.intake, cfg.publish, cfg.snapshot,
                 "CURVE" if self.curve else "no CURVE", cfg.max_frame_bytes, cfg.history_size,
                 cfg.state_path or "memory", cfg.rooms_in_memory)

    def _socket(self, kind, endpoint):
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, self.config.sndhwm)
        sock.setsockopt(zmq.RCVHWM, self.config.rcvhwm)
        # A peer sending a larger frame is disconnected before it is buffered
        # (a PUB socket reads only subscriptions, which are tiny).
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_frame_bytes)
        if self.curve:
            keys.make_server(sock, self.curve["broker_secret"])
        sock.bind(endpoint)
        return sock

    def close(self):
        for sock in (self.intake, self.snapshots, self.publisher):
            if sock is not None:
                sock.close(0)
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        self.sequencer.store.close()

    def stop(self, *_):
        self.running = False

    def run(self):
        """Serve until :meth:`stop` is called."""
        poller = zmq.Poller()
        poller.register(self.intake, zmq.POLLIN)
        poller.register(self.snapshots, zmq.POLLIN)
        interval = self.config.heartbeat_ms / 1000.0
        next_beat = time.monotonic()
        self.running = True
        while self.running:
            now = time.monotonic()
            if now >= next_beat:
                self.heartbeat()
                self._flush()
                next_beat = now + interval
            wake = min(next_beat, self.next_presence) if self.presence.dirty else next_beat
            timeout_ms = max(0, math.ceil((wake - now) * 1000))
            try:
                events = dict(poller.poll(timeout_ms))
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EINTR:
                    continue
                raise
            if self.intake in events:
                self._drain(self.intake, self.intake_handlers)
            if self.snapshots in events:
                self._drain(self.snapshots, self.snapshot_handlers)
            self._flush()

    def _drain(self, sock, handlers, limit=1000):
        """Handle what is queued on a ROUTER socket, at most ``limit`` at a time."""
        for _ in range(limit):
            try:
                frames = [sock.recv(_NOBLOCK)]
                while sock.getsockopt(_RCVMORE):
                    frames.append(sock.recv(_NOBLOCK))
            except zmq.Again:
                return
            self._serve(sock, handlers, frames)

    def _flush(self):
        """Commit the batch, then send what it produced (and presence, when due)."""
        self._publish_presence_when_due()
        if not self.outbox:
            return
        try:
            self.sequencer.commit()
        except Exception:
            # Sequenced in memory but not durable: nobody may hear of it.  Exit
            # and let the supervisor restart us from the last commit; nodes see
            # `unavailable` and retry with the same cid.
            log.critical("cannot commit broker state; exiting without acknowledging", exc_info=True)
            raise SystemExit(3)
        outbox, self.outbox = self.outbox, []
        for sock, (first, last) in outbox:   # every outgoing message has two frames
            try:
                sock.send(first, _NOBLOCK | _SNDMORE)
                sock.send(last, _NOBLOCK)
            except zmq.Again:   # PUB never blocks; a full peer queue drops, nodes repair by seq
                log.warning("send queue full, frame dropped")
            except zmq.ZMQError as exc:
                log.warning("send failed: %s", exc)

    def _serve(self, sock, handlers, frames):
        identity = frames[0]
        rid = None
        try:
            if len(frames) != 2:
                raise RequestError("expected 1 body frame, got %d" % (len(frames) - 1))
            body = wire.decode(frames[1])
            rid = body.get("rid")
            handler = handlers.get(body["type"])
            if handler is None:
                raise RequestError("type %r not accepted on this socket" % body["type"])
            reply = handler(body)
        except (wire.WireError, RequestError) as exc:
            log.warning("refused request from %r: %s", identity[:16], exc)
            reply = wire.encode("error", rid=rid if isinstance(rid, (str, int)) else None,
                                error="bad_request", detail=str(exc))
        except Exception:  # a bug must not take the cluster's order down with it
            log.exception("error serving request")
            reply = wire.encode("error", rid=rid if isinstance(rid, (str, int)) else None,
                                error="internal", detail="broker error")
        if reply is not None:
            self.outbox.append((sock, [identity, reply]))

    # intake handlers

    def on_publish(self, body):
        # The client contract's rules, as the node applied them: a node cannot have
        # sequenced what its clients could not send (chatstream.rules).
        room = _ruled(rules.room, _field(body, "room", str))
        nick = _ruled(rules.clean_nick, _field(body, "nick", str))
        text = _ruled(rules.text, _field(body, "text", str))
        node = _ruled(rules.node_name, _field(body, "node", str))
        cid = _field(body, "cid", str, optional=True)
        if cid is not None:
            _ruled(rules.cid, cid)
        uid = _field(body, "uid", str, optional=True)
        message, duplicate = self.sequencer.sequence(
            room, nick, text, node, cid, uid if uid is None else _ruled(rules.uid, uid))
        if not duplicate:
            epoch = self.sequencer.rooms[room].epoch
            self._publish(wire.room_topic(room), wire.encode("message", message=message, epoch=epoch))
        return wire.encode("published", rid=body.get("rid"), message=message, duplicate=duplicate)

    def on_relay(self, body):
        """Only the relay nodes send: an "<nick> joined/left" announcement to its room."""
        topic = _field(body, "topic", str)
        room = _ruled(rules.announcement_relay, body.get("data"))
        if topic != room:
            raise RequestError("invalid_relay: topic %r is not the relay's room %r" % (topic, room))
        frame = wire.encode("relay", topic=topic, data=body["data"])
        self._publish(wire.room_topic(topic), frame)
        return None  # relays are fire-and-forget, like python-socketio's pub/sub

    def on_presence(self, body):
        """A node's members, maybe in parts (broker/reports.py); every part is
        checked, and the report counts once its last part is in."""
        node = _ruled(rules.node_name, _field(body, "node", str))
        rooms = _field(body, "rooms", dict)
        cfg = self.config
        if len(rooms) > cfg.presence_max_rooms:
            raise RequestError("presence of %d rooms; a report holds at most %d"
                               % (len(rooms), cfg.presence_max_rooms))
        for room, nicks in rooms.items():
            _ruled(rules.room, room)
            if not isinstance(nicks, list):
                raise RequestError("presence of room %r is not a list of nicks" % room)
            if len(nicks) > cfg.presence_max_nicks:
                raise RequestError("presence of %d nicks in room %s; at most %d per room"
                                   % (len(nicks), room, cfg.presence_max_nicks))
            known = self.presence.held(node, room)   # checked when first reported
            for nick in nicks:
                if nick not in known:
                    _ruled(rules.clean_nick, nick)
        part = _field(body, "part", int, optional=True) or 0
        try:
            rooms = self.reports.add(node, rooms, part, body.get("more") is True)
        except ReportError as exc:
            raise RequestError(str(exc)) from None
        if rooms is None:
            return None                             # more parts to come
        if body.get("bye") is True:
            log.info("node %s said goodbye", node)
            self._announce_departures(self.presence.remove(node))
            return None
        try:
            self.presence.update(node, rooms, full=body.get("full") is True)
        except PresenceFull as exc:
            raise RequestError("presence from new node %r refused: %s" % (node, exc)) from None
        return None

    def _announce_departures(self, departed):
        """"<nick> left" at once for the members of a node that is gone."""
        ts = now_ms()
        for room, nicks in sorted(departed.items()):
            for nick in nicks:
                self._publish(wire.room_topic(room), wire.encode(
                    "announcement", room=room, text="%s left" % nick, ts=ts))

    def _publish_presence_when_due(self):
        """Each changed room's list, at most once per ``presence_interval_ms``:
        400 joins in a burst cost every member a few lists, not 400."""
        now = time.monotonic()
        if not self.presence.dirty or now < self.next_presence:
            return
        self.next_presence = now + self.config.presence_interval_ms / 1000.0
        for room, members in self.presence.take_changes().items():
            self._publish(wire.PRESENCE_TOPIC, wire.encode("presence", room=room,
                                                           members=members))

    # snapshot handlers

    def on_snapshot(self, body):
        rooms = _field(body, "rooms", list, optional=True)
        if rooms is not None and not all(isinstance(r, str) for r in rooms):
            raise RequestError("rooms must be a list of room names")
        return wire.encode("snapshot", rid=body.get("rid"), broker=self.instance,
                           epoch=self.sequencer.epoch, rooms=self.sequencer.snapshot(rooms),
                           presence=self.presence.snapshot())

    def on_history(self, body):
        room = _field(body, "room", str)
        if not wire.ROOM_RE.fullmatch(room):
            raise RequestError("invalid room name")
        since = _field(body, "since", int, optional=True)
        epoch = _field(body, "epoch", str, optional=True)
        return wire.encode("history", rid=body.get("rid"),
                           **self.sequencer.history(room, since, epoch))

    def heartbeat(self):
        self._expire_rooms()
        departed = self.presence.expire()
        if departed:
            log.warning("nodes expired; gone from rooms: %s", departed)
        self._announce_departures(departed)
        self._publish(wire.HEARTBEAT_TOPIC, wire.encode(
            "heartbeat", broker=self.instance, epoch=self.sequencer.epoch,
            ts=now_ms(), seqs=self.sequencer.take_changes()))

    def _expire_rooms(self):
        """At most every ROOM_SWEEP_MS: rooms idle past their TTL lose their messages."""
        now = now_ms()
        if now < self.next_room_sweep_ms:
            return
        self.next_room_sweep_ms = now + ROOM_SWEEP_MS
        expired = self.sequencer.expire()
        if expired:
            log.info("%d rooms idle for %d days: their messages expired", expired,
                     self.config.room_ttl_days)

    def _publish(self, topic, frame):
        self.outbox.append((self.publisher, [topic, frame]))
