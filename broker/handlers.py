"""What the broker does with each request: check it like a node would, then
sequence, relay, register presence, or answer from the room state.

:class:`RequestHandlers` is the request side of :class:`broker.server.Broker`
(which holds the sockets, the loop and the group commit): each handler takes
one decoded body and returns the reply frame (or None), queueing what it
publishes with ``_publish``; a refusal is a :class:`RequestError`.  A node's
name belongs to the CURVE key that registered it while that node is present:
another key cannot report, say goodbye or publish under it.
"""
import functools
import logging
import time

from chatstream import rules, wire
from chatstream.clock import now_ms
from chatstream.config import ROOM_SWEEP_MS
from . import metrics
from .presence_registry import PresenceFull
from .reports import ReportError

log = logging.getLogger(__name__)

# An author's nick and node come again with every message: the verdict on a
# valid one is remembered (a refusal raises, and is never cached).
_clean_nick = functools.lru_cache(maxsize=4096)(rules.clean_nick)
_node_name = functools.lru_cache(maxsize=256)(rules.node_name)


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


class RequestHandlers:
    """The broker's handlers (a mixin of :class:`broker.server.Broker`).

    ``peer`` is the CURVE public key (Z85) of the peer whose request is being
    served, or None on plain sockets.
    """

    peer = None
    pair = None   # a broker.pair.BrokerPair when this broker is one of a failover pair
    batch_sequenced = 0   # messages sequenced since the last commit (metrics)
    node_keys = {}   # node name -> the key that registered it (replaced per instance)

    def on_publish(self, body):
        # The client contract's rules, as the node applied them: a node cannot have
        # sequenced what its clients could not send (chatstream.rules).
        room = _ruled(rules.room, _field(body, "room", str))
        nick = _ruled(_clean_nick, _field(body, "nick", str))
        text = _ruled(rules.text, _field(body, "text", str))
        node = self._own_node(_ruled(_node_name, _field(body, "node", str)))
        cid = _field(body, "cid", str, optional=True)
        if cid is not None:
            _ruled(rules.cid, cid)
        uid = _field(body, "uid", str, optional=True)
        message, duplicate = self.sequencer.sequence(
            room, nick, text, node, cid, uid if uid is None else _ruled(rules.uid, uid))
        if duplicate:
            metrics.DUPLICATES.inc()
        else:
            self.batch_sequenced += 1
            epoch = self.sequencer.rooms[room].epoch
            if self.pair is not None:
                self.pair.replicate(room, epoch, message)
            self._publish_message(room, epoch, message)
            if body.get("quiet") is True:
                return None   # the node takes the message on PUB as its ack (wire.py)
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
        node = self._own_node(_ruled(rules.node_name, _field(body, "node", str)))
        rooms = _field(body, "rooms", dict)
        cfg = self.config
        if len(rooms) > cfg.presence_max_rooms:
            raise RequestError("presence of %d rooms; a report holds at most %d"
                               % (len(rooms), cfg.presence_max_rooms))
        held = self.presence.rooms_of(node)   # names and nicks checked when first reported
        for room, nicks in rooms.items():
            known = held.get(room)
            if known is None:
                _ruled(rules.room, room)
                known = frozenset()
            if not isinstance(nicks, list):
                raise RequestError("presence of room %r is not a list of nicks" % room)
            if len(nicks) > cfg.presence_max_nicks:
                raise RequestError("presence of %d nicks in room %s; at most %d per room"
                                   % (len(nicks), room, cfg.presence_max_nicks))
            for nick in nicks:
                if nick not in known:
                    _ruled(rules.clean_nick, nick)
        part = _field(body, "part", int, optional=True) or 0
        try:
            rooms = self.reports.add(node, rooms, part, body.get("more") is True)
        except ReportError as exc:
            raise RequestError(str(exc)) from None
        if rooms is None:                           # more parts to come; the node is alive
            self.presence.touch(node)
            return None
        if body.get("bye") is True:
            log.info("node %s said goodbye", node)
            self._announce_departures(self.presence.remove(node))
            return None
        try:
            self.presence.update(node, rooms, full=body.get("full") is True)
        except PresenceFull as exc:
            raise RequestError("presence from new node %r refused: %s" % (node, exc)) from None
        self._bind_node(node)
        return None

    def _own_node(self, node):
        """``node``, unless that name is present and bound to another peer's key."""
        owner = self.node_keys.get(node)
        if owner is not None and owner != self.peer and node in self.presence.nodes:
            raise RequestError("invalid_node: node %r belongs to another key" % node)
        return node

    def _bind_node(self, node):
        """The name now belongs to this peer's key (while the node is present)."""
        if self.peer is None:
            return
        if len(self.node_keys) >= 2 * self.config.presence_max_nodes:   # drop the gone ones
            self.node_keys = {n: k for n, k in self.node_keys.items() if n in self.presence.nodes}
        self.node_keys[node] = self.peer

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
        for frame in wire.encode_presences(self.presence.take_changes()):
            self._publish(wire.PRESENCE_TOPIC, frame)

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

    # When the intake was last left with requests unread (None: read to the end); see heartbeat.
    intake_behind_since = None

    def heartbeat(self):
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
        self._announce_departures(departed)
        self._publish(wire.HEARTBEAT_TOPIC, self.heartbeat_body(self.sequencer.take_changes()))

    def heartbeat_body(self, seqs):
        """A heartbeat frame's body; a pair's term: nodes follow the newest active."""
        pair = getattr(self, "pair", None)
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

    def _publish(self, topic, frame):
        """Queue a frame for PUB, sent once the batch is committed (broker/server.py)."""
        self.batches.pop(topic, None)   # what follows on this topic stays after this frame
        self.outbox.append((self.publisher, [topic, frame]))

    def _publish_message(self, room, epoch, message):
        """A sequenced message, in one PUB frame with the room's others of this batch
        (wire.encode_messages): one send, and one wake-up of each node, per room."""
        topic = wire.room_topic(room)
        batch = self.batches.get(topic)
        if batch is not None and batch[0] == epoch and len(batch[1]) < wire.MESSAGES_PER_FRAME:
            return batch[1].append(message)
        self.batches[topic] = batch = (epoch, [message])
        self.outbox.append((self.publisher, [topic, batch]))
