"""The node's link to the broker: a small state machine over the transport.

The link mirrors every room with local members in the broker's order: chat
messages go node -> broker -> every node (this one too) and reach local members
only once sequenced.  What must reach local connections goes to its
:class:`Listener` (the client manager).
"""
import enum
import logging
import time
import uuid
from typing import Protocol

import gevent
from gevent.event import Event

from chatstream import config, room_events, wire
from .acks import QuietAcks
from .channel import BrokerUnavailable, NotMember, RequestChannel
from .mirror import Mirror, Outcome
from .notices import NoticeLane
from .presence import ClusterPresence, LocalMembers
from .rooms import RoomFollowing
from .transport import TURN_S, TransportClosed, take_turn

log = logging.getLogger(__name__)

# Frames one turn of the reader handles before it counts as behind: from then on in the
# turn, announcements and member lists wait in the notice lane (link/notices.py) and the
# room events behind them go first.  Far above a quiet node's frames per turn.
BEHIND_AFTER_FRAMES = 32

# Tries of one publish that the broker refuses ``not_member``, each after this node's
# whole member set went to it: the first refusal is a broker that never had the
# set (restarted, taken over), a second one a failover between the two sends.
REGISTER_ATTEMPTS = 3


class LinkState(enum.Enum):
    CONNECTING = "connecting"   # no heartbeat heard yet
    SYNCING = "syncing"         # heartbeat heard, snapshot being installed
    LIVE = "live"               # the mirror follows the broker's stream
    DOWN = "down"               # heartbeats stopped: broker gone or unreachable


class Listener(Protocol):
    """What must reach local connections; the client manager implements it.

    The link knows nothing of Socket.IO: it calls these from its reader
    greenlet, in the broker's order; announcements and member lists, while the
    reader is behind, from the notice lane's greenlet after the room events
    (link/notices.py).
    """

    def deliver(self, event, data, room):
        """Emit to this node's members of a room: ``message``, ``edit`` and
        ``delete`` (in seq order), ``presence`` or ``announcement``."""

    def restart_room(self, room):
        """This node cannot continue a room's stream: disconnect its local
        members, so they resume with ``since`` and hear ``gap``."""

    def revoke(self, session):
        """A login session ended (its session_ref): disconnect its local connections."""

    def evict(self, room, uid, reason, until):
        """``uid``'s local connections leave ``room`` (None: every room) as a ``leave``
        would; ``until`` (Unix ms or None) is a ban's end."""

    def resynced(self):
        """The mirror was installed anew (at start, after the broker was away or failed
        over): what was published meanwhile (an ``evict``) may have been missed."""

    def access_changed(self, room):
        """Who may read ``room`` changed (a private room's members): forget cached answers."""


class BrokerLink:
    """What the chat's event handlers need of the broker, and nothing else.

    :param transport: a :class:`~chat.link.transport.ZmqTransport`, or a
        :class:`harness.twins.MemoryTransport` in unit tests.
    :param node: this node's name, stamped on messages its clients author.
    :param history_size: messages kept per room (as on the broker).
    :param ack_timeout_s: how long a request waits for the broker.
    :param heartbeat_ms: the broker's heartbeat period (= this node's full presence report's).
    :param dead_after_ms: silence after which the broker counts as down.
    :param rooms_per_request: rooms asked for in one snapshot request.
    :param presence_interval_ms: how often changed local members are reported.
    :param follow_grace_s: how long a room stays followed after its last local
        member left (link/rooms.py), for at most ``follow_grace_rooms`` rooms.
    """
    turn_s = TURN_S   # SUB frames are read this long, then the rest of the node runs

    def __init__(self, transport, node="node1", history_size=config.HISTORY_SIZE,
                 ack_timeout_s=config.ACK_TIMEOUT_MS / 1000.0, heartbeat_ms=config.HEARTBEAT_MS,
                 dead_after_ms=config.DEAD_AFTER_MS,
                 rooms_per_request=config.SNAPSHOT_ROOMS_PER_REQUEST,
                 presence_interval_ms=config.PRESENCE_INTERVAL_MS,
                 follow_grace_s=config.FOLLOW_GRACE_S, follow_grace_rooms=config.FOLLOW_GRACE_ROOMS):
        self.transport = transport
        self.presence_interval_ms = presence_interval_ms
        self.rooms_per_request = rooms_per_request
        self.node = node
        self.ack_timeout_s = ack_timeout_s
        self.heartbeat_ms = heartbeat_ms
        self.dead_after_ms = dead_after_ms
        self.mirror = Mirror(history_size)
        self.following = RoomFollowing(transport, self.mirror, follow_grace_s, follow_grace_rooms)
        self.presence = ClusterPresence()
        self.state = LinkState.CONNECTING
        self.synced = Event()        # set once the first snapshot is installed
        self.broker_instance = None  # the broker instance the mirror was synced with
        self.last_heard = 0.0
        self.listener = self.intake = self.snapshots = self.local = self.acks = None
        self.notices = None   # announcements and member lists waiting (link/notices.py)
        self.turn_frames = 0  # frames the reader handled in its current turn
        self.greenlets = []
        self.frame_handlers = {name: getattr(self, "_on_" + name) for name in
                               ("message", "heartbeat", "presence", "announcement", "revoke",
                                "evict", "access")}

    # lifecycle

    def start(self, listener):
        """Connect and start following the broker (once, before serving).

        :param listener: a :class:`Listener`.
        """
        if self.listener is not None:
            return
        self.listener = listener
        self.transport.open()
        for topic in wire.CLUSTER_TOPICS:   # a room's topic only while it has local members
            self.transport.subscribe(topic)
        channel = getattr(self.transport, "request_channel", RequestChannel)   # pair: failover.py
        self.intake, self.snapshots = (channel(self.transport, c) for c in ("intake", "snapshot"))
        self.local = LocalMembers(self.intake.send, self.node)
        self.acks = QuietAcks(self.node, self.intake, self.following)
        self.notices = NoticeLane(listener.deliver, self.turn_s)
        self.greenlets = [gevent.spawn(f) for f in (self._read_forever, self._watch_heartbeats,
                                                    self._report_presence_forever,
                                                    self.notices.run_forever)]
        log.info("node %s: broker intake %s, publish %s, snapshot %s", self.node,
                 *(self.transport.endpoint(c) for c in ("intake", "publish", "snapshot")))

    def goodbye(self):
        """Tell the broker this node is stopping: its members leave at once."""
        if self.local is not None:
            self.local.goodbye()

    def close(self):
        """Stop reading and close the sockets (tests; a node just exits)."""
        gevent.killall(self.greenlets, block=False)
        for channel in (self.intake, self.snapshots):
            if channel is not None:
                channel.close()
        self.transport.close()

    @property
    def broker_up(self):
        """The link is live: what /healthz reports."""
        return self.state is LinkState.LIVE

    def wait_synced(self, timeout):
        """True once the mirror holds a broker snapshot."""
        return self.synced.wait(timeout)

    # what the event handlers ask

    def sequence(self, room, nick, text, cid=None, uid=None):
        """Have the broker sequence ``uid``'s message; returns ``(message, duplicate)``.

        Raises :class:`BrokerUnavailable` when it is not sequenced in time.
        """
        reply = self.as_member(room, lambda timeout: self.acks.publish(
            timeout, room=room, nick=nick, text=text, node=self.node, cid=cid, uid=uid))
        return reply["message"], reply["duplicate"]

    def as_member(self, room, request):
        """``request(timeout)``'s reply, for a room event (a message, an edit, a delete)
        of one of this node's connections in ``room``.  The broker takes one only from a
        connection this node registered in the room: the room's unreported change goes
        first, on the same socket; a broker that never had it (``not_member``: restarted,
        taken over) gets this node's whole member set, then the request again, all
        within ``ack_timeout_s``."""
        deadline = time.monotonic() + self.ack_timeout_s
        for attempt in range(REGISTER_ATTEMPTS):
            self.local.register(room)
            reports = self.local.full_reports
            try:
                return request(max(0.001, deadline - time.monotonic()))
            except NotMember as exc:
                if attempt == REGISTER_ATTEMPTS - 1 or time.monotonic() >= deadline:
                    raise
                log.info("room %s: %s; registering this node's members again", room, exc)
                if self.local.full_reports == reports:   # none sent meanwhile
                    self.local.report_all()

    def change(self, room, epoch, kind, target, uid, nick=None, text=None, staff=False,
               proof=None):
        """Have the broker sequence an edit (``nick``, ``text``) or delete of message
        ``target`` of ``(room, epoch)``, decided here to be allowed; returns the event.

        :param staff: a staff member's delete from the Django admin, who is no
            connection in the room (the broker takes it without one, see on_change).
        :param proof: with ``staff``, ``uid``'s uid proof (chatstream/uid_proofs.py).
        Raises :class:`~chat.link.channel.Refused` (``not_found``) when the broker
        finds the target gone, :class:`BrokerUnavailable` when it is not sequenced in time.
        """
        fields = {"nick": nick, "text": text} if kind == room_events.EDIT else {}
        # A cid of its own, so a request resent (to the other broker of the pair) is
        # sequenced once.
        fields.update(room=room, kind=kind, target=target, epoch=epoch, node=self.node, uid=uid,
                      cid="e-" + uuid.uuid4().hex)
        if staff:
            return self.intake.request("change", self.ack_timeout_s, staff=True, proof=proof,
                                       **fields)["message"]
        return self.as_member(room, lambda timeout: self.intake.request(
            "change", timeout, **fields))["message"]

    def follow(self, room):
        """Make sure this node follows a room's stream before a member joins it.

        Raises :class:`BrokerUnavailable` if the room's state cannot be fetched.
        """
        fetch = lambda: self.snapshots.request("history", self.ack_timeout_s, room=room)  # noqa: E731
        for body in self.following.follow(room, fetch, self.ack_timeout_s):
            self._on_message(body)

    def release(self, room):
        """Stop following a room that was fetched for a join that did not happen."""
        if room not in self.local:
            self.following.stop(room)

    def member_joined(self, room, nick, uid=None, proof=None):
        """A connection (``uid``, with its uid ``proof`` for the broker) joined ``room``
        as ``nick``; :meth:`member_left` takes the same first three when it leaves."""
        self.following.in_use(room)
        self.local.joined(room, nick, uid, proof)

    def member_left(self, room, nick, uid=None):
        if self.local.left(room, nick, uid):
            self.following.left_empty(room)

    def view(self, room, since=None, epoch=None):
        """A followed room as a join answers it: {epoch, seq, history, gap}."""
        return self.mirror.view(room, since, epoch)

    def position(self, room):
        """``(epoch, seq)`` of a room as this node mirrors it (seq 0: not followed, or empty)."""
        if not self.following.is_live(room):
            return self.mirror.epoch, 0
        return self.mirror.position(room)

    def members(self, room):
        """Cluster-wide nicks in a room, as the broker last reported them."""
        return self.presence.members(room)

    def active_rooms(self):
        """[(room, member count)] of rooms with members, most populated first."""
        return self.presence.active_rooms()

    def announce(self, room, text):
        """Have the broker announce ``text`` ("<nick> joined" / "<nick> left") to every
        node following ``room``, this one too: it comes back as an ``announcement``,
        in the room's order, like a message.  Fire-and-forget, as presence reports."""
        if not self.intake.send("announce", room=room, text=text, node=self.node):
            log.warning("broker unreachable, announcement in %s not sent", room)

    def revoke(self, session):
        """Tell every node (through the broker) that a login session ended."""
        if not self.intake.send("revoke", session=session, node=self.node):
            log.warning("broker unreachable: a logout reached only this node's connections")

    def evict(self, room, uid, reason, until=None):
        """Make ``uid``'s connections leave ``room`` (None: every room) on every node
        within the second: this node's at once, the others' through the broker (which
        sends it back here too; leaving twice is nothing).  ``reason`` is a short word
        ("banned", "removed"); ``until`` a ban's end in Unix ms (None: for good).
        Fire-and-forget: a node that misses it reads the database when it resyncs
        (:meth:`Listener.resynced`)."""
        self.listener.evict(room, uid, reason, until)
        if not self.intake.send("evict", room=room, uid=uid, reason=reason, until=until,
                                node=self.node):
            log.warning("broker unreachable: an eviction of %s reached only this node", uid)
    def fanout(self, type_, **fields):
        """Have the broker pass a ``typing``, ``read`` or ``usage`` body on to the nodes
        (chatstream/wire.py; this one too).  Fire-and-forget; False when not sent.  About a
        ``room``: its unreported members go first, as before a room event (the broker takes
        a typing notice only from a connection this node registered there)."""
        if "room" in fields and self.local is not None:
            self.local.register(fields["room"])
        if self.intake is None or not self.intake.send(type_, node=self.node, **fields):
            log.debug("broker unreachable: %s not passed on", type_)
            return False
        return True

    def on_published(self, type_, handler):
        """Hand the broker's published bodies of ``type_`` to ``handler(body)`` (the
        chat's own fan-outs: typing, read, usage), in the link's reader greenlet."""
        self.frame_handlers[type_] = handler

    def access_changed(self, room):
        """Tell every node (this one at once) that who may read ``room`` changed; sent
        before an eviction that follows it, so no node lets the evicted back in."""
        self.listener.access_changed(room)
        if not self.intake.send("access", room=room, node=self.node):
            log.warning("broker unreachable: a change of %s's members reached only this node", room)

    # the state machine

    def _read_forever(self):
        """Read and handle SUB frames, ``turn_s`` at a time; a bad frame stops nothing."""
        turn = time.monotonic()
        while True:
            try:
                self.handle_frames(self.transport.recv_published())
            except TransportClosed:
                return            # the link is stopping
            except Exception:
                log.exception("broker link error")
                gevent.sleep(0.1)
            started, self.turn_frames = take_turn(turn, self.turn_s), self.turn_frames + 1
            if started != turn:
                turn, self.turn_frames = started, 0

    def handle_frames(self, frames):
        """Handle one message from the broker's PUB socket."""
        if len(frames) != 2:
            log.warning("dropped frame with %d parts", len(frames))
            return
        self.last_heard = time.monotonic()
        try:
            bodies = wire.unbatch(wire.decode(frames[1]))   # a batch: its bodies in order
        except wire.WireError as exc:
            log.warning("bad frame on %r: %s", frames[0][:32], exc)
            return
        for body in bodies:
            handler = self.frame_handlers.get(body["type"])
            if handler is not None:
                handler(body)

    def _watch_heartbeats(self):
        period = min(self.heartbeat_ms, self.dead_after_ms) / 4000.0
        while True:
            due = time.monotonic() + period
            gevent.sleep(period)
            # woken late: our own loop was busy (a storm), the heartbeats wait unread
            self.last_heard += max(0.0, time.monotonic() - due - period)
            self.check_heartbeats()
            self.following.sweep()

    def check_heartbeats(self):
        """Mark the broker down after ``dead_after_ms`` without a frame from it."""
        silent_ms = (time.monotonic() - self.last_heard) * 1000
        if self.state in (LinkState.SYNCING, LinkState.LIVE) and silent_ms > self.dead_after_ms:
            self._set_state(LinkState.DOWN, "no heartbeat for %d ms" % silent_ms)

    def _report_presence_forever(self):
        self.local.report_forever(self.presence_interval_ms, self.heartbeat_ms)

    def _set_state(self, state, why):
        if state is not self.state:
            log.info("broker link %s -> %s (%s)", self.state.value, state.value, why)
            self.state = state

    def _on_heartbeat(self, body):
        if self.state is not LinkState.LIVE or body.get("broker") != self.broker_instance:
            self._sync(body.get("broker"))
            return
        for room, seq in (body.get("seqs") or {}).items():
            if not self.following.is_live(room):
                continue
            epoch, known = self.mirror.position(room)
            if epoch == body.get("epoch") and known < seq:
                log.warning("room %s: behind the broker (%d < %d), repairing", room, known, seq)
                self._repair(room)

    def _on_message(self, body):
        message = body["message"]
        self.acks.settle(message)
        if self.state is not LinkState.LIVE:
            return  # the snapshot that ends the sync covers it
        room = message["room"]
        if self.following.hold(room, body) or not self.following.is_live(room):
            return  # held for the fetch in progress, or sent before our unsubscribe took effect
        outcome = self.mirror.apply(message, body["epoch"])
        if outcome is Outcome.APPLIED:
            self._deliver(message, room)
        elif outcome is Outcome.GAP:
            self._repair(room)

    def _on_presence(self, body):
        room, members = body["room"], body["members"]
        self.presence.update(room, members)   # members() answers it at once; the emit may wait
        self.notices.presence(room, members, at_once=self.turn_frames < BEHIND_AFTER_FRAMES)

    def _on_announcement(self, body):
        announcement = {"room": body["room"], "text": body["text"], "ts": body["ts"]}
        self.notices.announce(body["room"], announcement,
                              at_once=self.turn_frames < BEHIND_AFTER_FRAMES)

    def _on_revoke(self, body):
        session = body.get("session")
        if isinstance(session, str):
            self.listener.revoke(session)

    def _on_evict(self, body):
        room, uid, reason, until = (body.get(k) for k in ("room", "uid", "reason", "until"))
        if (isinstance(uid, str) and isinstance(reason, str) and isinstance(room, (str, type(None)))
                and isinstance(until, (int, type(None)))):
            self.listener.evict(room, uid, reason, until)

    def _on_access(self, body):
        if isinstance(body.get("room"), str):
            self.listener.access_changed(body["room"])

    def _sync(self, instance):
        """Install a full snapshot (Clone pattern): SUB is connected first, and this reader
        handles nothing else meanwhile, so what is published after it waits, merged by seq."""
        self._set_state(LinkState.SYNCING, "broker %s" % instance)
        try:
            reply = self.following.snapshot(
                lambda rooms: self.snapshots.request("snapshot", self.ack_timeout_s, rooms=rooms),
                self.rooms_per_request)
        except BrokerUnavailable as exc:
            self._set_state(LinkState.DOWN, str(exc))
            return
        missed, broken = self.mirror.install(reply["epoch"], reply["rooms"])
        self.presence.replace(reply.get("presence") or {})
        self.broker_instance = reply["broker"]
        self.last_heard = time.monotonic()
        self._set_state(LinkState.LIVE, "snapshot of %d rooms" % len(reply["rooms"]))
        self.synced.set()
        self.local.report_all()
        self.listener.resynced()
        for room, messages in missed.items():   # sequenced while this node was not listening
            for message in messages:
                self._deliver(message, room)
        for room in broken:
            self.listener.restart_room(room)

    def _repair(self, room):
        """Fetch what this node missed of one room from the broker's buffer."""
        epoch, seq = self.mirror.position(room)
        try:
            reply = self.snapshots.request("history", self.ack_timeout_s,
                                           room=room, since=seq, epoch=epoch)
        except BrokerUnavailable as exc:
            self._set_state(LinkState.DOWN, "repair of %s failed: %s" % (room, exc))
            return
        if reply["gap"]:
            self.mirror.install_room(room, reply)
            self.listener.restart_room(room)
            return
        for message in reply["history"]:
            self.acks.settle(message)
            if self.mirror.apply(message, reply["epoch"]) is Outcome.APPLIED:
                self._deliver(message, room)

    def _deliver(self, event, room):
        """A room event to local members: ``message``, or the change's ``edit`` / ``delete``."""
        self.listener.deliver(event.get("kind") or room_events.MESSAGE, event, room)
