"""What the broker does with each request: check it like a node would, then
sequence, announce, register presence, pass a logout or an eviction on, or answer
from the room state.

The server (broker/server.py: sockets, loop, group commit) composes one
:class:`IntakeHandlers` and one :class:`SnapshotHandlers` and dispatches by
``type`` through their ``by_type``.  Each handler takes one decoded body and
the peer's CURVE ``User-Id`` (None on plain sockets) and returns the reply frame (or
None), queueing what it publishes in the outbox; a refusal is a
:class:`RequestError`.  With CURVE, ``peer`` is the name of the node whose
key the request came with (broker/keys.py binds each authorised key to one
node name): a request that names another node (publish, presence, goodbye,
announce, revoke, evict) is refused, and so is a room event whose author (uid and nick)
is not one of the connections that node registered in that room
(:meth:`IntakeHandlers.own_member`).  A node registers a connection's uid only with
the uid's proof (chatstream/uid_proofs.py), which the broker checks once, when the uid
is first registered in a room: a node's CURVE key alone registers nobody.
"""
import functools
import itertools
import logging
import time

from chatstream import room_events, rules, uid_proofs, wire
from chatstream.clock import now_ms
from chatstream.config import ARCHIVER_NAME, HISTORY_SIZE, SNAPSHOT_ROOMS_PER_REQUEST
from . import metrics
from .fanout import FanoutHandlers
from .presence_registry import PresenceFull
from .reports import ReportError
from .sequencer import TargetNotFound

log = logging.getLogger(__name__)

# Rooms or events in one archive_rooms / archive_events reply at most: as many messages
# as the largest snapshot reply holds, so a page of the largest messages stays under the
# archiver's frame limit (a node's, chatstream/config.py), and a catch-up of a long
# backlog is few round-trips.
ARCHIVE_PAGE = SNAPSHOT_ROOMS_PER_REQUEST * HISTORY_SIZE

# Refused announcements are warned about at most this often: enough to see a
# misbehaving node in the log, too rarely for one to fill it.
REFUSAL_LOG_INTERVAL_S = 10.0

# An author's nick and node come again with every message: the verdict on a
# valid one is remembered (a refusal raises, and is never cached).
_clean_nick = functools.lru_cache(maxsize=4096)(rules.clean_nick)
_node_name = functools.lru_cache(maxsize=256)(rules.node_name)


class RequestError(Exception):
    """A request the broker refuses; becomes an ``error`` reply with ``code``
    (logged by the server unless ``logged``: the handler has, rate limited)."""
    code = "bad_request"
    logged = False


class NotMember(RequestError):
    """A room event from a uid that is not one of its node's registered connections
    in that room: the node registers (a presence report) and sends it again."""
    code = "not_member"
    logged = True


class NotArchiver(RequestError):
    """An archive request (``archive_rooms``, ``archive_events``, ``archived``) under a
    key other than the archiver's: the store's backlog is the whole conversation of every
    room, private ones too, and a watermark lets the store drop what the archive lacks,
    so no node's key reads one or moves the other."""
    code = "forbidden"


def archiver_only(type_, peer, archiver):
    """Raise :class:`NotArchiver` unless ``peer`` (the CURVE ``User-Id``; None on plain
    sockets, which carry no name) is ``archiver``."""
    if peer is not None and peer != archiver:
        raise NotArchiver("forbidden: %s is for the archiver's key (%r) only, not node %r's; "
                          "run the archiver under its own key (scripts/keys add-node %s)"
                          % (type_, archiver, peer, archiver))


class Refusal(RequestError):
    """A well-formed request the room's state refuses (a race between two nodes' changes
    of one message): its ``error`` is the contract's ``code`` (e.g. ``not_found``), which
    the node passes on to its client; no fault of anyone's, so not logged as one."""
    logged = True

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code


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


class IntakeHandlers:
    """``publish``, ``announce`` and ``presence`` from the nodes.

    :param config: the broker's :class:`chatstream.config.BrokerConfig` (presence caps).
    :param sequencer: the room state (broker/sequencer.py).
    :param presence: the cluster's :class:`broker.presence_registry.PresenceRegistry`.
    :param reports: the :class:`broker.reports.ReportAssembler` of reports in parts.
    :param outbox: where replies' publishes wait for the commit (broker/outbox.py).
    :param pair: this broker's :class:`broker.pair.BrokerPair`, or None when alone.
    """

    def __init__(self, config, sequencer, presence, reports, outbox, pair=None):
        self.config = config
        self.sequencer = sequencer
        self.presence = presence
        self.reports = reports
        self.outbox = outbox
        self.pair = pair
        self.refusals = RefusalLog()
        self.strangers = RefusalLog()    # uids a node never registered in the room: suspicious
        self.unregistered = RefusalLog(level=logging.INFO)   # a node not re-registered yet
        self.unproven = RefusalLog()     # members without a valid uid proof: dropped
        # The uid proof key (bytes; broker/keys.py reads it when CURVE is on): members of a
        # CURVE peer's reports need their uid's proof.  None: plain sockets, no names to bind.
        self.uid_proof_key = None
        self.by_type = {"publish": self.on_publish, "announce": self.on_announce,
                        "presence": self.on_presence, "revoke": self.on_revoke,
                        "evict": self.on_evict, "access": self.on_access,
                        "archived": self.on_archived, "change": self.on_change}
        self.by_type.update(FanoutHandlers(outbox, self.refusals, self._fields,
                                           self.own_member).by_type)

    def on_publish(self, body, peer=None):
        # The client contract's rules, as the node applied them: a node cannot have
        # sequenced what its clients could not send (chatstream.rules).
        room = _ruled(rules.room, _field(body, "room", str))
        nick = _ruled(_clean_nick, _field(body, "nick", str))
        text = _ruled(rules.text, _field(body, "text", str))
        node = self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
        cid = _field(body, "cid", str, optional=True)
        if cid is not None:
            _ruled(rules.cid, cid)
        uid = _field(body, "uid", str, optional=True)
        if uid is not None:
            _ruled(rules.uid, uid)
        self.own_member(peer, node, room, uid, nick)
        message, duplicate = self.sequencer.sequence(room, nick, text, node, cid, uid)
        if duplicate:
            metrics.DUPLICATES.inc()
        else:
            epoch = self.sequencer.rooms[room].epoch
            if self.pair is not None:
                self.pair.replicate(room, epoch, message)
            self.outbox.publish_message(room, epoch, message)
            if body.get("quiet") is True:
                return None   # the node takes the message on PUB as its ack (wire.py)
        return wire.encode("published", rid=body.get("rid"), message=message, duplicate=duplicate)

    def on_change(self, body, peer=None):
        """An edit or delete of a message (chatstream/room_events.py): sequenced and
        published like a message.  The node decided who may make it; the sequencer
        checks the target is still a live message (:meth:`Sequencer.sequence_change`)."""
        room = _ruled(rules.room, _field(body, "room", str))
        kind = _field(body, "kind", str)
        if kind not in room_events.CHANGES:
            raise RequestError("kind must be one of %s" % sorted(room_events.CHANGES))
        target = _field(body, "target", int)
        epoch = _field(body, "epoch", str)
        node = self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
        uid = _ruled(rules.uid, _field(body, "uid", str))
        cid = _ruled(rules.cid, _field(body, "cid", str))
        nick = text = None
        if kind == room_events.EDIT:
            nick = _ruled(_clean_nick, _field(body, "nick", str))
            text = _ruled(rules.text, _field(body, "text", str))
        if body.get("staff") is True and kind == room_events.DELETE:
            # A staff member's delete from the Django admin of that node: no connection
            # in the room to register; the node checked the account's staff flag, and
            # vouches for the uid with its proof, as for a registration.
            self.own_proof(peer, node, uid, body.get("proof"))
            log.info("node %s: a staff delete of #%d in %s by uid %s", node, target, room, uid)
        else:
            self.own_member(peer, node, room, uid, nick)
        try:
            event, duplicate = self.sequencer.sequence_change(
                room, epoch, kind, target, node, uid, nick=nick, text=text, cid=cid)
        except TargetNotFound as exc:
            log.info("node %s: %s refused: %s", node, kind, exc)
            raise Refusal("not_found", str(exc)) from None
        if not duplicate:
            if self.pair is not None:
                self.pair.replicate(room, epoch, event)
            self.outbox.publish_message(room, epoch, event)
        return wire.encode("published", rid=body.get("rid"), message=event, duplicate=duplicate)

    def on_announce(self, body, peer=None):
        """"<nick> joined" / "<nick> left" from a node: published to the room as the
        broker's ``announcement``, in order with its messages.  Fire-and-forget:
        never a reply; a refusal is counted and logged (at most every
        REFUSAL_LOG_INTERVAL_S)."""
        try:
            room = _ruled(rules.room, _field(body, "room", str))
            text = _ruled(rules.announcement, _field(body, "text", str))
            self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
        except RequestError as exc:
            metrics.ANNOUNCES_REFUSED.inc()
            self.refusals.note("announce refused: %s", exc)
            return None
        self.outbox.announce(room, text)
        return None

    def on_revoke(self, body, peer=None):
        """A logout: every node ends the Socket.IO connections of that Django session
        (published on REVOKE_TOPIC, which every node follows).  Fire-and-forget, as
        ``announce``: a refusal is logged, never answered."""
        try:
            session = _ruled(rules.session_ref, _field(body, "session", str))
            node = self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
        except RequestError as exc:
            self.refusals.note("revoke refused: %s", exc)
            return None
        log.info("node %s: a session logged out, its connections end on every node", node)
        self.outbox.publish(wire.REVOKE_TOPIC, wire.encode("revoke", session=session))
        return None

    def on_evict(self, body, peer=None):
        """A uid's connections leave a room (or every room: ``room`` null) on every node:
        a ban, a private room's removed member (published on EVICT_TOPIC, which every node
        follows).  Fire-and-forget, as ``revoke``: a refusal is logged, never answered."""
        try:
            room = _field(body, "room", str, optional=True)
            if room is not None:
                _ruled(rules.room, room)
            uid = _ruled(rules.uid, _field(body, "uid", str))
            reason = _ruled(rules.evict_reason, _field(body, "reason", str))
            until = _field(body, "until", int, optional=True)
            node = self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
        except RequestError as exc:
            self.refusals.note("evict refused: %s", exc)
            return None
        log.info("node %s: %s evicted from %s (%s)", node, uid, room or "every room", reason)
        self.outbox.publish(wire.EVICT_TOPIC, wire.encode(
            "evict", room=room, uid=uid, reason=reason, until=until))
        return None

    def on_access(self, body, peer=None):
        """Who may read a room changed: every node forgets its cached answer (published
        on ACCESS_TOPIC).  Fire-and-forget, as ``revoke``."""
        try:
            room = _ruled(rules.room, _field(body, "room", str))
            self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
        except RequestError as exc:
            self.refusals.note("access refused: %s", exc)
            return None
        self.outbox.publish(wire.ACCESS_TOPIC, wire.encode("access", room=room))
        return None

    def on_archived(self, body, peer=None):
        """The archiver's watermarks {room: [epoch, seq]}: the store may let those
        messages go once out of the buffer.  Fire-and-forget, as ``announce``."""
        try:
            archiver_only("archived", peer, self.config.archiver)
            self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
            rooms = _watermarks(_field(body, "rooms", dict))
        except RequestError as exc:
            self.refusals.note("archived refused: %s", exc)
            return None
        self.sequencer.store.record_archived(rooms, self.sequencer.history_size)
        if self.pair is not None:
            self.pair.archived(rooms)
        return None

    def on_presence(self, body, peer=None):
        """A node's members, maybe in parts (broker/reports.py); every part is
        checked, and the report counts once its last part is in."""
        node = self._own_node(_ruled(rules.node_name, _field(body, "node", str)), peer)
        rooms = _field(body, "rooms", dict)
        cfg = self.config
        if len(rooms) > cfg.presence_max_rooms:
            raise RequestError("presence of %d rooms; a report holds at most %d"
                               % (len(rooms), cfg.presence_max_rooms))
        # names, nicks and uids are checked when first reported, proofs when a uid is
        # first registered in the room: once per registration, never per message
        proof_key = self.uid_proof_key if peer is not None else None
        proofs = _field(body, "proofs", dict, optional=True) or {}
        held, speaking = self.presence.rooms_of(node), self.presence.speakers_of(node)
        unproven = {}
        for room, members in rooms.items():
            known = held.get(room)
            if known is None:
                _ruled(rules.room, room)
                known = frozenset()
            if not isinstance(members, list):
                raise RequestError("presence of room %r is not a list of members" % room)
            if len(members) > cfg.presence_max_nicks:
                raise RequestError("presence of %d nicks in room %s; at most %d per room"
                                   % (len(members), room, cfg.presence_max_nicks))
            uids = speaking.get(room, ())
            for index, member in enumerate(members):
                if member.__class__ is str:
                    nick, uid = member, None
                elif isinstance(member, list) and len(member) == 2:
                    nick, uid = member
                else:
                    raise RequestError("presence of room %r: a member is [nick, uid] or a nick"
                                       % room)
                if nick not in known:
                    _ruled(rules.clean_nick, nick)
                if uid is None or uid not in uids:
                    if uid is not None:
                        _ruled(rules.uid, uid)
                    if proof_key is not None and (
                            uid is None or not uid_proofs.verify(proof_key, uid, proofs.get(uid))):
                        unproven.setdefault(room, set()).add(index)
        if unproven:
            rooms = self._without_unproven(node, rooms, unproven, proofs)
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
            announce_departures(self.outbox, self.presence.remove(node))
            return None
        try:
            self.presence.update(node, rooms, full=body.get("full") is True)
        except PresenceFull as exc:
            raise RequestError("presence from new node %r refused: %s" % (node, exc)) from None
        return None

    def _without_unproven(self, node, rooms, unproven, proofs):
        """``rooms`` without the members at ``unproven``'s {room: indexes}: not registered,
        so they cannot speak, and not listed (a stolen key's ghosts); logged, rate limited.
        The rest of the report stands: one bad member does not unlist a node."""
        count = sum(len(indexes) for indexes in unproven.values())
        metrics.UNPROVEN_MEMBERS.inc(count)
        room, indexes = next(iter(unproven.items()))
        member = rooms[room][min(indexes)]
        if not proofs:
            self.unproven.note(
                "node %s: %d members (e.g. %r in %s) dropped from its report: it sends no uid "
                "proofs (a node older than this broker, or one without the uid proof key): "
                "they cannot speak until it does", node, count, member, room)
        else:
            self.unproven.note(
                "node %s: %d members (e.g. %r in %s) dropped from its report: no uid or a "
                "wrong uid proof (another uid proof key than this broker's, or a CURVE key "
                "used without the proof key)", node, count, member, room)
        return {room: ([m for i, m in enumerate(members) if i not in unproven[room]]
                       if room in unproven else members)
                for room, members in rooms.items()}

    def _fields(self, body, peer, **checks):
        """``{name: check(body[name])}`` of a request from its own node (``checks``:
        chatstream.rules functions); a missing field or a refusal is a RequestError."""
        self._own_node(_ruled(_node_name, _field(body, "node", str)), peer)
        return {name: _ruled(check, body.get(name)) for name, check in checks.items()}

    def own_proof(self, peer, node, uid, proof):
        """Refuse (:class:`NotMember`) a request naming ``uid`` outside any registration
        (a staff delete) unless ``proof`` is its uid proof: a CURVE key alone has none."""
        if peer is None or self.uid_proof_key is None:
            return
        if not uid_proofs.verify(self.uid_proof_key, uid, proof):
            metrics.NOT_MEMBER.inc()
            self.strangers.note("node %s: a request as uid %s without its uid proof refused",
                                node, uid)
            raise NotMember("not_member: node %s sent no valid uid proof for %s" % (node, uid))

    def own_member(self, peer, node, room, uid, nick=None):
        """Refuse (:class:`NotMember`) a room event -- a message, an edit, a delete --
        unless ``uid`` (under ``nick``, when given) is one of the connections ``node``
        registered in ``room`` (its presence reports, sent before the connection's
        first event on the same socket).  So a node's key acts only as that node's
        own connections can.  Plain sockets (``peer`` None) carry no name to bind."""
        if peer is None:
            return
        known = self.presence.speaker(node, room, uid, nick)
        if known:
            return
        metrics.NOT_MEMBER.inc()
        if known is None:
            self.unregistered.note("node %s has not registered its members here yet "
                                   "(it does, then resends): room event in %s refused", node, room)
        else:
            self.strangers.note("node %s: a room event in %s as uid %s (nick %r) refused: not "
                                "one of the connections it registered there", node, room, uid, nick)
        raise NotMember("not_member: uid %s%s is not one of node %s's connections in room %s"
                        % (uid, "" if nick is None else " as %r" % nick, node, room))

    def _own_node(self, node, peer):
        """``node``, when the request's CURVE ``User-Id`` (the name its key was
        authorised for, broker/keys.py) is that node: no key speaks for another node.
        Plain sockets (``peer`` None) carry no name to check."""
        if peer is not None and peer != node:
            raise RequestError("invalid_node: the key of node %r cannot speak for node %r"
                               % (peer, node))
        return node


class SnapshotHandlers:
    """``snapshot`` and ``history``: answered from the room state, nothing changes.

    :param sequencer: the room state.
    :param presence: the cluster's presence registry.
    :param instance: this broker's instance name, set once it is bound.
    :param archiver: the name of the archiver's key: the archive requests are its alone.
    """

    def __init__(self, sequencer, presence, instance=None, archiver=ARCHIVER_NAME):
        self.sequencer = sequencer
        self.presence = presence
        self.instance = instance
        self.archiver = archiver
        self.by_type = {"snapshot": self.on_snapshot, "history": self.on_history,
                        "archive_rooms": self.on_archive_rooms,
                        "archive_events": self.on_archive_events}

    def on_snapshot(self, body, peer=None):
        rooms = _field(body, "rooms", list, optional=True)
        if rooms is not None and not all(isinstance(r, str) for r in rooms):
            raise RequestError("rooms must be a list of room names")
        return wire.encode("snapshot", rid=body.get("rid"), broker=self.instance,
                           epoch=self.sequencer.epoch, rooms=self.sequencer.snapshot(rooms),
                           presence=self.presence.snapshot())

    def on_history(self, body, peer=None):
        room = _field(body, "room", str)
        if not wire.ROOM_RE.fullmatch(room):
            raise RequestError("invalid room name")
        since = _field(body, "since", int, optional=True)
        epoch = _field(body, "epoch", str, optional=True)
        return wire.encode("history", rid=body.get("rid"),
                           **self.sequencer.history(room, since, epoch))


    def on_archive_rooms(self, body, peer=None):
        """The stored rooms with events the archive lacks, a page at a time by name."""
        archiver_only("archive_rooms", peer, self.archiver)
        after = _field(body, "after", str, optional=True) or ""
        limit = min(_field(body, "limit", int, optional=True) or ARCHIVE_PAGE, ARCHIVE_PAGE)
        if self.sequencer.store.durable:
            rooms = self.sequencer.store.unarchived_rooms(after, limit)
        else:   # memory only: every room in it, none known archived
            rooms = dict(itertools.islice(((name, (h.epoch, h.seq, 0)) for name, h in sorted(
                self.sequencer.rooms.items()) if name > after and h.seq > 0), limit))
        return wire.encode("archive_rooms", rid=body.get("rid"), more=len(rooms) == limit,
                           rooms={room: list(position) for room, position in rooms.items()})

    def on_archive_events(self, body, peer=None):
        """A room's stored events after ``since`` (the archiver's catch-up, beyond the
        buffer); ``gap`` when the store no longer has the next one (or another epoch)."""
        archiver_only("archive_events", peer, self.archiver)
        room = _field(body, "room", str)
        if not wire.ROOM_RE.fullmatch(room):
            raise RequestError("invalid room name")
        since = _field(body, "since", int, optional=True) or 0
        epoch = _field(body, "epoch", str, optional=True)
        limit = min(_field(body, "limit", int, optional=True) or ARCHIVE_PAGE, ARCHIVE_PAGE)
        state = self.sequencer.find(room)
        if state is None:
            return wire.encode("archive_events", rid=body.get("rid"), room=room,
                               epoch=self.sequencer.epoch, seq=0, events=[], gap=False)
        if epoch is not None and epoch != state.epoch:
            since = 0                          # another stream: all of this one
        events = self.sequencer.store.events_after(room, since, limit)
        if not self.sequencer.store.durable:   # memory only: the buffer is all there is
            events = [m for m in state.buffer if m["seq"] > since][:limit]
        first = events[0]["seq"] if events else state.seq + 1
        return wire.encode("archive_events", rid=body.get("rid"), room=room, epoch=state.epoch,
                           seq=state.seq, events=events,
                           gap=first > since + 1 or (epoch is not None and epoch != state.epoch))


def _watermarks(rooms):
    """{room: (epoch, seq)} from an ``archived`` report, each checked."""
    checked = {}
    for room, position in rooms.items():
        if (not wire.ROOM_RE.fullmatch(room) or not isinstance(position, list)
                or len(position) != 2 or not isinstance(position[0], str)
                or not isinstance(position[1], int) or isinstance(position[1], bool)):
            raise RequestError("rooms must map room names to [epoch, seq]")
        checked[room] = (position[0], position[1])
    return checked


class RefusalLog:
    """Warnings about refused fire-and-forget requests, at most one per
    ``interval_s`` with the count of those not logged: a node sending bad ones
    in a loop cannot flood the log."""

    def __init__(self, interval_s=REFUSAL_LOG_INTERVAL_S, clock=time.monotonic,
                 level=logging.WARNING):
        self.interval_s = interval_s
        self.clock = clock
        self.level = level
        self.next_at = float("-inf")
        self.suppressed = 0

    def note(self, message, *args):
        now = self.clock()
        if now < self.next_at:
            self.suppressed += 1
            return
        if self.suppressed:
            message += " (and %d more refused since the last warning)"
            args += (self.suppressed,)
        log.log(self.level, message, *args)
        self.next_at = now + self.interval_s
        self.suppressed = 0


def announce_departures(outbox, departed):
    """"<nick> left" at once for the members of a node that is gone."""
    ts = now_ms()
    for room, nicks in sorted(departed.items()):
        for nick in nicks:
            outbox.announce(room, "%s left" % nick, ts)
