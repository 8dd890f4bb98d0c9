"""Socket.IO event handlers: join, leave, message, disconnect (PROTOCOL.md)."""
import logging
import time
from dataclasses import dataclass, field

from socketio import exceptions as sio_exceptions

from chatstream import config, room_events

from ..link import BrokerUnavailable
from ..operations import metrics
from . import validation
from .acks import acked as _acked
from .access import PublicRooms
from .eviction import Evictions
from .moderation import Moderation
from .conversation import Conversation
from .history import HistoryUnavailable, MirrorPages
from .identity import GuestIdentities
from .person_limit import PersonLimits
from .ratelimit import RateLimited, TokenBucket
from .search import SearchEvents
from .typing_notices import TypingNotices
from .unread import Unread
from .validation import ContractError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Per-connection limits (settings CHAT_*; see docs/CONFIGURATION.md)."""
    rate_per_s: float = config.RATE_PER_S              # sustained messages per second
    rate_burst: int = config.RATE_BURST                # messages allowed in a burst
    max_payload_bytes: int = config.MAX_PAYLOAD_BYTES  # a 2000-char text with escapes fits
    max_rooms: int = config.MAX_ROOMS_PER_CONNECTION   # rooms one connection may be in
    report_reason_max: int = config.REPORT_REASON_MAX  # a report's reason, in characters
    ban_minutes_max: int = config.BAN_MINUTES_MAX      # a ban's minutes (longer: for good)
    edit_window_s: int = config.EDIT_WINDOW_S          # how long an author may edit a message
    # join, leave, rooms, members: event -> (per second, burst), one bucket each per connection
    request_rates: dict = field(default_factory=lambda: dict(config.REQUEST_RATES))
    typing_interval_ms: int = config.TYPING_INTERVAL_MS   # a connection's typing passed on
    unread_max: int = config.UNREAD_MAX                   # unread counts exact up to this
    unread_rooms_max: int = config.UNREAD_ROOMS_MAX       # rooms a `rooms` answer counts in
    read_flush_ms: int = config.READ_FLUSH_MS             # read positions written this often


class Connection:
    """What the node knows of one client: who it is, its rooms (with the nick used in each)."""

    def __init__(self, bucket, identity, requests=None):
        self.rooms = {}   # room -> nick
        self.bucket = bucket
        self.requests = requests or {}   # event -> TokenBucket (Limits.request_rates), on first use
        self.identity = identity   # chat.protocol.identity.Identity, read once when it connected


class ChatEvents:
    """The chat's handlers, bound to one python-socketio Server.

    :param sio: the Server (events and rooms go through it).
    :param link: the node's :class:`~chat.link.BrokerLink` (what the handlers
        need of the broker: follow, release, view, sequence, members ...).
    :param limits: a :class:`Limits`.
    :param sync_timeout_s: how long a join waits for the node's first snapshot.
    :param connection_limit: the node's :class:`~chat.engine.limit.ConnectionLimit`,
        asked before a connection is taken (None: no limit).
    :param history: answers ``history`` (``page(room, view, before, limit)``): the
        archive's :class:`~archive.reader.ArchiveReader` on a node; by default the
        mirror alone (chat/protocol/history.py).
    :param identities: who connects (``identify(environ)``) and which nicks are
        accounts' (``nick_taken(nick)``): :class:`~chat.protocol.identity.SessionIdentities`
        on a node; by default every connection is a guest and no nick is taken.
    :param access: who may read a room and who moderates it (chat/protocol/access.py);
        by default every room is public and staff moderate.
    :param search: answers ``search`` (chat/protocol/search.py): the archive's
        :class:`~archive.search.ArchiveSearch` on a node; by default an empty one.
    :param moderation: bans, reports and the moderator log in the database
        (:class:`~moderation.store.DatabaseModeration` on a node); by default in memory.
    :param person_limits: a :class:`~chat.protocol.person_limit.PersonLimits` (requests
        per person across connections and nodes); by default config.PERSON_RATES.
    :param read_positions: where accounts' read positions are kept
        (:class:`reading.positions.ReadPositions` on a node; by default in memory).
    """

    def __init__(self, sio, link, limits=Limits(), sync_timeout_s=5.0, identities=None,
                 connection_limit=None, history=None, access=None, search=None,
                 moderation=None, person_limits=None, read_positions=None):
        self.sio = sio
        self.link = link
        self.limits = limits
        self.sync_timeout_s = sync_timeout_s
        self.identities = identities or GuestIdentities()
        self.connection_limit = connection_limit
        self.history = history or MirrorPages()
        self.access = access or PublicRooms()
        self.connections = {}   # sid -> Connection
        self.by_session = {}    # an account's session_ref -> its sids here (end_session)
        self.evictions = Evictions(self)   # a uid's connections leaving a room (ban, removal)
        self.moderation = Moderation(self, moderation, limits.report_reason_max,
                                     limits.ban_minutes_max)   # ban, report, the ban checks
        self.by_uid = {}        # a person's uid -> its sids here (read, typing: per person)
        self.person_limits = person_limits or PersonLimits()
        self.person_limits.start(link)
        self.conversation = Conversation(self, limits.edit_window_s)   # edit, delete
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on("join", self.on_join)
        sio.on("leave", self.on_leave)
        sio.on("message", self.on_message)
        sio.on("members", self.on_members)
        sio.on("history", self.on_history)
        sio.on("rooms", self.on_rooms)
        self.search = SearchEvents(self, search)
        self.typing = TypingNotices(self, limits.typing_interval_ms)
        self.unread = Unread(self, read_positions, limits.unread_max, limits.unread_rooms_max,
                             limits.read_flush_ms)

    def on_connect(self, sid, environ, auth=None):
        limit = self.connection_limit
        if limit is not None and limit.connections_full(len(self.connections)):
            log.warning("connection refused: %d connections is this node's limit",
                        limit.max_connections)
            # Socket.IO clients see connect_error with message "too_many_connections"
            # and data {error, detail}.
            raise sio_exceptions.ConnectionRefusedError("too_many_connections", {
                "error": "too_many_connections",
                "detail": "this node serves at most %d connections; try again or another node"
                          % limit.max_connections})
        try:
            identity = self.identities.identify(environ)
        except Exception:
            log.exception("connection refused: its session could not be read")
            raise sio_exceptions.ConnectionRefusedError("unavailable", {
                "error": "unavailable", "detail": "the session cannot be read now; try again"})
        self.connections[sid] = Connection(TokenBucket(self.limits.rate_per_s,
                                                       self.limits.rate_burst), identity)
        if identity.session is not None:
            self.by_session.setdefault(identity.session, set()).add(sid)
        self.by_uid.setdefault(identity.uid, set()).add(sid)

    def on_disconnect(self, sid, reason=None):
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        session = conn.identity.session
        if session is not None:
            sids = self.by_session.get(session, set())
            sids.discard(sid)
            if not sids:
                self.by_session.pop(session, None)
        sids = self.by_uid.get(conn.identity.uid, set())
        sids.discard(sid)
        if not sids:
            self.by_uid.pop(conn.identity.uid, None)
        for room, nick in conn.rooms.items():
            self.link.member_left(room, nick, conn.identity.uid)
            self._announce(room, "%s left" % nick)

    def end_session(self, session):
        """Disconnect this node's connections opened with a session that logged out
        (``session`` its session_ref); returns how many."""
        sids = list(self.by_session.get(session, ()))
        for sid in sids:
            self.sio.disconnect(sid, ignore_queue=True)
        return len(sids)

    def _connection(self, sid):
        conn = self.connections.get(sid)
        if conn is None:  # an event racing its own disconnect
            raise ContractError("not_joined", "connection is closing")
        return conn

    def _throttle(self, sid, event):
        """rate_limited when this connection asks for ``event`` faster than its bucket allows."""
        requests = self._connection(sid).requests
        bucket = requests.get(event)
        if bucket is None:
            # made on first use, full as it would be by then: most connections ask for few
            # kinds of request, and a bucket per kind was most of an idle connection's objects
            rate = self.limits.request_rates.get(event)
            if rate is None:
                return
            bucket = requests[event] = TokenBucket(*rate)
        if not bucket.allow():
            raise RateLimited("more than %g %s requests/s (burst %d); slow down"
                              % (bucket.rate_per_s, event, bucket.burst), bucket.retry_after_s())

    def person_limit(self, sid, event):
        """rate_limited when the person behind ``sid`` (an account, a guest's session or
        address) asks for ``event`` faster than one person may, on all of their
        connections and nodes (chat/protocol/person_limit.py)."""
        conn = self._connection(sid)
        environ = self.sio.get_environ(sid) or {}
        self.person_limits.check(conn.identity, event, environ.get("REMOTE_ADDR"))

    def _may_read(self, conn, room):
        """forbidden when the connection may not see ``room`` (a private room it is not in)."""
        if not self.access.may_read(conn.identity, room):
            raise ContractError("forbidden", "room %s is private and you are not a member; "
                                "its owner or staff can invite you" % room)

    def _announce(self, room, text):
        self.link.announce(room, text)   # the broker's announcement reaches this node too

    def _check_guest_nick(self, nick):
        """nick_taken when a guest asks for an account's username or one that looks like it (UTS #39 skeleton)."""
        try:
            taken = self.identities.nick_taken(nick)
        except Exception:
            log.exception("nick_taken check failed")
            raise ContractError("unavailable", "accounts cannot be checked now; retry") from None
        if taken:
            raise ContractError("nick_taken", "%s is a registered account's name; log in "
                                "as that account or choose another nick" % nick)

    @_acked
    def on_join(self, sid, payload):
        self._throttle(sid, "join")
        self.person_limit(sid, "join")
        conn = self._connection(sid)
        # an account chats as its username, whatever nick it sends
        req = validation.join_request(payload, account=conn.identity.username)
        if conn.identity.guest:
            self._check_guest_nick(req["nick"])
        if not self.link.wait_synced(self.sync_timeout_s):
            raise ContractError("unavailable", "the node has not reached the broker yet")
        room = req["room"]
        self._may_read(conn, room)
        previous = conn.rooms.get(room)
        if previous is None and len(conn.rooms) >= self.limits.max_rooms:
            raise ContractError("too_many_rooms", "a connection may be in at most %d rooms"
                                % self.limits.max_rooms)
        self.moderation.check_join(conn.identity, room)
        try:
            self.link.follow(room)
        except BrokerUnavailable:
            raise ContractError("unavailable", "the room's history cannot be fetched from "
                                "the broker right now; retry") from None
        if sid not in self.connections:   # disconnected while we fetched
            self.link.release(room)
            raise ContractError("not_joined", "connection is closing")
        try:
            self.moderation.check(conn.identity, room)   # a ban heard while we fetched
            self._may_read(conn, room)                   # a removal heard meanwhile
        except ContractError:
            self.link.release(room)
            raise
        conn.rooms[room] = req["nick"]
        self.sio.enter_room(sid, room)
        self.link.member_joined(room, req["nick"], conn.identity.uid, conn.identity.proof)
        if previous is not None:          # a re-join: count the new nick first, so the
            self.link.member_left(room, previous, conn.identity.uid)   # room stays followed
        self._announce(room, "%s joined" % req["nick"])
        view = room_events.replay(self.link.view(room, req["since"], req["epoch"]), req["since"])
        return {"ok": True, "room": room, "nick": req["nick"], "uid": conn.identity.uid,
                "node": self.link.node, "moderator": self.access.is_moderator(conn.identity, room),
                **view, **self.unread.join_fields(conn.identity, room, view)}

    @_acked
    def on_leave(self, sid, payload):
        self._throttle(sid, "leave")
        room = validation.leave_request(payload)["room"]
        conn = self._connection(sid)
        if self.leave_room(sid, conn, room) is None:
            raise ContractError("not_joined", "not in room %s" % room)
        return {"ok": True}

    def leave_room(self, sid, conn, room):
        """``conn`` leaves ``room`` (a ``leave``, an eviction); returns its nick there,
        None when it was not in the room."""
        nick = conn.rooms.pop(room, None)
        if nick is not None:
            self.sio.leave_room(sid, room)
            self.link.member_left(room, nick, conn.identity.uid)
            self._announce(room, "%s left" % nick)
        return nick

    @_acked
    def on_members(self, sid, payload):
        self._throttle(sid, "members")
        room = validation.members_request(payload)["room"]
        self._may_read(self._connection(sid), room)
        return {"ok": True, "room": room, "members": self._members(sid, room)}

    def _members(self, sid, room):
        """The broker's cluster-wide list, plus this connection itself when it
        is a member: its own join may still be on the way to the broker."""
        members = set(self.link.members(room))
        conn = self.connections.get(sid)
        if conn is not None and room in conn.rooms:
            members.add(conn.rooms[room])
        return sorted(members)

    @_acked
    def on_history(self, sid, payload):
        self._throttle(sid, "history")
        req = validation.history_request(payload)
        self._may_read(self._connection(sid), req["room"])
        if req["room"] not in self._connection(sid).rooms:
            raise ContractError("not_joined", "join room %s first" % req["room"])
        self.person_limit(sid, "history")
        view = self.link.view(req["room"])
        try:
            page = self.history.page(req["room"], view, req["before"], req["limit"])
        except HistoryUnavailable as exc:
            raise ContractError("unavailable", "%s; ask again shortly" % exc) from None
        return {"ok": True, "room": req["room"], **page}

    @_acked
    def on_rooms(self, sid, payload=None):
        self._throttle(sid, "rooms")
        validation.rooms_request(payload)
        active = self.link.active_rooms()
        identity = self._connection(sid).identity
        readable = set(self.access.readable(identity, [room for room, _ in active]))
        rooms = [{"room": room, "members": count} for room, count in active if room in readable]
        return {"ok": True, "rooms": self.unread.annotate(identity, rooms)}

    @_acked
    def on_message(self, sid, payload):
        arrived = time.perf_counter()
        req = validation.message_request(payload)
        conn = self._connection(sid)
        self.moderation.check(conn.identity, req["room"])
        nick = conn.rooms.get(req["room"])
        if nick is None:
            raise ContractError("not_joined", "join room %s first" % req["room"])
        if not conn.bucket.allow():
            raise RateLimited("more than %g messages/s (burst %d)" % (
                self.limits.rate_per_s, self.limits.rate_burst), conn.bucket.retry_after_s())
        self.person_limit(sid, "message")
        try:
            message, _ = self.link.sequence(req["room"], nick, req["text"], req["cid"],
                                            uid=conn.identity.uid)
        except BrokerUnavailable as exc:
            log.warning("message from %s not sequenced: %s", sid, exc,
                        extra={"room": req["room"], "cid": req["cid"], "uid": conn.identity.uid})
            raise ContractError("unavailable", "the message was not sequenced in time; "
                                "retry with the same cid") from None
        metrics.ACCEPTED.inc()
        metrics.ACK_SECONDS.observe(time.perf_counter() - arrived)
        return {"ok": True, "id": message["id"], "seq": message["seq"]}

