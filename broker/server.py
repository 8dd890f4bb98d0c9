"""The broker's sockets and loop: intake -> sequencer -> store -> publish, plus snapshots.

One thread, one poller.  Every request is answered or logged; a malformed
frame is refused with an ``error`` reply and never stops the loop.

Group commit: the loop handles a batch of queued requests, commits the store
once, and only then sends what the batch produced (broker/outbox.py: publishes
and acks, in order).  So nothing is published or acknowledged before it is durable.

Natural batching: a batch is whatever queued while the previous commit and sends
ran, read to the end in one turn; the loop never waits to make a batch bigger.  At
a low rate a message is committed and sent alone at once; at a high rate the
commit and sends take longer, more queues meanwhile, and one commit and one PUB
frame per room carry it.  A message waits at most for the batch before it.

The broker composes its parts: the sequencer (room state and store), the
presence registry, the outbox, the request handlers (broker/handlers.py) and,
in a failover pair, its half of the pair (broker/pair.py).
"""
import logging
import math
import time

import zmq

from chatstream import wire
from chatstream.clock import now_ms
from chatstream.config import ROOM_SWEEP_MS
from . import catchup, keys, metrics, outbox as outbox_module
from .bstar import ACTIVE
from .handlers import IntakeHandlers, RequestError, SnapshotHandlers, announce_departures
from .outbox import Outbox
from .pair import BrokerPair
from .peer_link import PeerLink
from .presence_registry import PresenceRegistry
from .reports import ReportAssembler
from .sequencer import DAY_MS, Sequencer
from .store import open_store

# Plain ints: pyzmq combines its IntFlag constants per frame, a measurable share
# of the broker's time at high rates.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
# The most one turn of the loop spends on the requests of one socket (see _drain).
DRAIN_BUDGET_S = 0.1
log = logging.getLogger(__name__)


class Broker:
    """Sequences room messages from nodes and publishes them to every node.

    :param config: a :class:`chatstream.config.BrokerConfig`.
    :param context: the ZeroMQ context (a new one by default).
    :param sequencer: the room state (a new :class:`Sequencer` by default).
    :param presence: the presence registry (a new one by default).
    """

    def __init__(self, config, context=None, sequencer=None, presence=None):
        self.config = config
        self.context = context or zmq.Context.instance()
        self.sequencer = sequencer or Sequencer(
            history_size=config.history_size, store=open_store(config),
            rooms_in_memory=config.rooms_in_memory,
            room_ttl_ms=config.room_ttl_days * DAY_MS, cid_window_ms=config.cid_window_s * 1000)
        self.presence = presence or PresenceRegistry(node_ttl_ms=config.node_ttl_ms,
                                                     max_nodes=config.presence_max_nodes)
        self.outbox = Outbox()
        self.requests = IntakeHandlers(
            config, self.sequencer, self.presence,
            ReportAssembler(config.presence_max_rooms, config.presence_max_nicks,
                            config.presence_max_nodes), self.outbox)
        self.queries = SnapshotHandlers(self.sequencer, self.presence, archiver=config.archiver)
        self.intake_handlers = self.requests.by_type
        self.snapshot_handlers = self.queries.by_type
        self.next_presence = 0.0   # time.monotonic() before which no presence goes out
        self.next_beat = 0.0       # time.monotonic() of the next heartbeat
        self.next_room_sweep_ms = 0
        # When the intake was last left with requests unread (None: read to the end).
        self.intake_behind_since = None
        self.intake = self.snapshots = None
        self.curve = None   # {"broker_secret", "authorized_nodes"} paths while CURVE is on
        self.auth = None    # its authenticator (broker.keys.start_authenticator)
        self.peer_link = None   # broker/peer_link.py, in a failover pair
        self.running = False

    # Known once bound (or given by a test harness); the handlers hold them too.
    @property
    def pair(self):
        """This broker's half of the failover pair (broker/pair.py), or None when alone."""
        return self.requests.pair

    @pair.setter
    def pair(self, pair):
        self.requests.pair = pair

    @property
    def instance(self):
        """"<epoch>-<start time>", set by bind()."""
        return self.queries.instance

    @instance.setter
    def instance(self, instance):
        self.queries.instance = instance

    @property
    def publisher(self):
        """The PUB socket (the outbox's)."""
        return self.outbox.publisher

    @publisher.setter
    def publisher(self, sock):
        self.outbox.publisher = sock

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
                self.requests.uid_proof_key = keys.uid_proof_key(cfg)
                self.auth = keys.start_authenticator(self.context, self.curve["authorized_nodes"])
        self.intake = self._socket(zmq.ROUTER, cfg.intake)
        self.snapshots = self._socket(zmq.ROUTER, cfg.snapshot)
        self.publisher = self._socket(zmq.PUB, cfg.publish)
        self.instance = "%s-%d" % (self.sequencer.epoch, int(time.time()))
        if cfg.pair_role:
            curve = self.curve and (self.auth, self.curve["broker_secret"], cfg.keys_dir)
            self.peer_link = PeerLink(
                self.context, cfg.peer_bind, cfg.peer, insecure=cfg.insecure, curve=curve or None,
                max_frame_bytes=catchup.peer_max_frame_bytes(cfg.history_size, cfg.max_frame_bytes))
            self.pair = BrokerPair(cfg.pair_role == "primary", self.peer_link.send,
                                   self.sequencer, self.instance, cfg.heartbeat_ms,
                                   max_part_bytes=catchup.part_bytes(cfg.history_size,
                                                                     cfg.max_frame_bytes))
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
        if self.peer_link is not None:
            self.peer_link.close()
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
        if self.peer_link is not None:
            poller.register(self.peer_link.inbox, zmq.POLLIN)
        self.next_beat = time.monotonic()
        self.running = True
        while self.running:
            self.turn(poller)

    def turn(self, poller):
        """One turn: the heartbeat when due, a wait for requests (none while some are
        queued), everything queued read, then one commit and its sends (:meth:`_flush`)."""
        now = time.monotonic()
        if now >= self.next_beat:
            self.beat()
            self.next_beat = now + self.config.heartbeat_ms / 1000.0
        wake = min(self.next_beat, self.next_presence) if self.presence.dirty else self.next_beat
        timeout_ms = max(0, math.ceil((wake - now) * 1000))
        if self.pair is not None and self.pair.streaming:
            timeout_ms = 0     # a catch-up part goes out every turn (_flush)
        try:
            events = dict(poller.poll(timeout_ms))
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EINTR:
                return
            raise
        if self.intake in events:
            self._drain(self.intake, self.intake_handlers)
        if self.snapshots in events:
            self._drain(self.snapshots, self.snapshot_handlers)
        if self.peer_link is not None and self.peer_link.inbox in events:
            self._hear_peer()
        self._flush()

    def _drain(self, sock, handlers, limit=1000, budget_s=DRAIN_BUDGET_S):
        """Handle what is queued on a ROUTER socket, at most ``limit`` requests and
        about ``budget_s`` at a time: the loop's heartbeats (to nodes and to the
        peer, which takes over after two missed) wait for nothing longer.

        With CURVE, the last frame is read as a Frame for its ``User-Id``: the
        name of the node whose key the peer holds (broker/keys.py), which the
        handlers hold each request's node name to."""
        curve = self.curve is not None
        deadline = time.monotonic() + budget_s
        peer = None
        for _ in range(limit):
            try:
                frames = [sock.recv(_NOBLOCK)]
                while sock.getsockopt(_RCVMORE):
                    if curve:
                        frame = sock.recv(_NOBLOCK, copy=False)
                        frames.append(frame.bytes)
                        peer = frame.get("User-Id")
                    else:
                        frames.append(sock.recv(_NOBLOCK))
            except zmq.Again:
                if sock is self.intake:
                    self.intake_behind_since = None
                return
            self._serve(sock, handlers, frames, peer)
            if time.monotonic() > deadline:
                break
        if sock is self.intake and self.intake_behind_since is None:
            self.intake_behind_since = time.monotonic()   # requests left unread (heartbeat)

    def _hear_peer(self):
        """The peer's frames waiting on the link, then what the replica applied, acked."""
        self.peer_link.drain(self.pair.on_peer_frame)
        self.pair.flush()

    def beat(self):
        """Every heartbeat: the pair's tick, the heartbeat (a passive says nothing on PUB:
        nodes follow the active), the batch out.  While output waits for the passive, a
        heartbeat without seqs goes straight out too: an active waiting for its passive
        is alive, and nodes that heard nothing would ask the backup, which, cut off from
        this broker, would take over as well (two actives, seen across hosts)."""
        pair = self.pair
        if pair is not None:
            if self.peer_link is not None:
                self._hear_peer()   # what came while this loop was busy: then judge silence
            pair.tick()
        if pair is None or pair.state == ACTIVE:
            self.heartbeat()
        self._flush()
        if pair is not None and pair.state == ACTIVE and pair.replicator.held:
            try:
                self.publisher.send(wire.HEARTBEAT_TOPIC, _NOBLOCK | _SNDMORE)
                self.publisher.send(self.heartbeat_body({}), _NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("heartbeat not sent: %s", exc)

    def _flush(self):
        """Commit the batch, then send what it produced (and presence, when due).

        In a failover pair the output waits for the passive's acks
        (broker/pair.py); what they released goes first.  A catch-up being
        streamed sends its next part right after the commit (broker/catchup.py)."""
        self._publish_presence_when_due()
        pair = self.pair
        if not len(self.outbox) and not (pair is not None and (pair.released or pair.streaming)):
            return
        started = time.perf_counter()
        try:
            self.sequencer.commit()
        except Exception:
            # Sequenced in memory but not durable: nobody may hear of it.  Exit
            # and let the supervisor restart us from the last commit; nodes see
            # `unavailable` and retry with the same cid.
            log.critical("cannot commit broker state; exiting without acknowledging", exc_info=True)
            raise SystemExit(3)
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        items, sequenced = self.outbox.take()
        if sequenced:
            metrics.BATCH_MESSAGES.observe(sequenced)
            metrics.SEQUENCED.inc(sequenced)
        if pair is not None:
            pair.step()
            items = pair.take_released() + pair.hold(items)
        outbox_module.send(items)

    def heartbeat(self):
        """Expire idle rooms and silent nodes (their members leave), then queue the heartbeat."""
        self._expire_rooms()
        behind = self.intake_behind_since
        if behind is not None and time.monotonic() - behind < 3 * self.presence.node_ttl_ms / 1000.0:
            departed = {}       # a node's report may be waiting behind them: not judged silent
        else:
            departed = self.presence.expire()
        if departed:
            log.warning("nodes expired: %d members gone from %d rooms (e.g. %s)",
                        sum(len(nicks) for nicks in departed.values()), len(departed),
                        dict(list(departed.items())[:3]))
        announce_departures(self.outbox, departed)
        self.outbox.publish(wire.HEARTBEAT_TOPIC, self.heartbeat_body(self.sequencer.take_changes()))

    def heartbeat_body(self, seqs):
        """A heartbeat frame's body; a pair's term: nodes follow the newest active."""
        pair = self.pair
        return wire.encode("heartbeat", broker=self.instance, epoch=self.sequencer.epoch,
                           term=pair.star.term if pair is not None else 0, ts=now_ms(), seqs=seqs)

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

    def _publish_presence_when_due(self):
        """Each changed room's list, at most once per ``presence_interval_ms``:
        a burst of joins costs every member a few lists, not one per join."""
        now = time.monotonic()
        if not self.presence.dirty or now < self.next_presence:
            return
        self.next_presence = now + self.config.presence_interval_ms / 1000.0
        for frame in wire.encode_presences(self.presence.take_changes()):
            self.outbox.publish(wire.PRESENCE_TOPIC, frame)

    def _serve(self, sock, handlers, frames, peer=None):
        """Serve one request; its reply (or error) waits in the outbox for the commit.

        :param peer: the sender's node name (its CURVE ``User-Id``), or None on plain sockets.
        """
        identity = frames[0]
        rid = None
        try:
            if len(frames) != 2:
                raise RequestError("expected 1 body frame, got %d" % (len(frames) - 1))
            body = wire.decode(frames[1])
            rid = body.get("rid")
            if self.pair is not None and not self.pair.accept():
                reply = wire.encode("error", rid=rid if isinstance(rid, (str, int)) else None,
                                    error="not_active", detail="this broker is %s" % self.pair.state)
                self.outbox.reply(sock, identity, reply)
                return
            handler = handlers.get(body["type"])
            if handler is None:
                raise RequestError("type %r not accepted on this socket" % body["type"])
            reply = handler(body, peer)
        except (wire.WireError, RequestError) as exc:
            if not getattr(exc, "logged", False):
                log.warning("refused request from %r: %s", identity[:16], exc)
            reply = wire.encode("error", rid=rid if isinstance(rid, (str, int)) else None,
                                error=getattr(exc, "code", "bad_request"), detail=str(exc))
        except Exception:  # a bug must not take the cluster's order down with it
            log.exception("error serving request")
            reply = wire.encode("error", rid=rid if isinstance(rid, (str, int)) else None,
                                error="internal", detail="broker error")
        if reply is not None:
            self.outbox.reply(sock, identity, reply)
