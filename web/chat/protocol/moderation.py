"""``ban`` and ``report``, and the ban check of ``join`` and ``message`` (PROTOCOL.md "People").

A ban is written to the database first, then sent as an eviction (chat/protocol/eviction.py):
every node makes the uid's connections leave the room within the second and records the
ban in its :class:`BanBook`, the per-node memory of bans that ``message`` asks (never the
database).  ``join`` reads the uid's bans from the database each time, so a node that missed
an eviction, a lifted ban and a ban made in the admin outside a node are all right at the
next join; a resync of the link reads them again for every local connection.

The database side is injected (``store``): :class:`moderation.store.DatabaseModeration` on a
node, :class:`MemoryModeration` (its twin, below) in unit tests.
"""
import logging
import time
from collections import OrderedDict, namedtuple

from chatstream import config, rules
from chatstream.clock import now_ms

from .acks import acked
from .eviction import BANNED
from . import validation
from .validation import ContractError, _typed

log = logging.getLogger(__name__)

# uids read from the database in one query when a resync re-checks this node's connections.
RECHECK_CHUNK = 500

Banned = namedtuple("Banned", "room until")   # room None: every room; until None: for good


class BannedError(ContractError):
    """``banned``, with the ban's end beside the detail (Unix ms, null for good)."""

    def __init__(self, room, ban):
        if ban.until is None:
            when = "for good"
        else:
            when = "until %s UTC" % time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ban.until / 1000))
        where = "every room" if ban.room is None else "room %s" % room
        super().__init__("banned", "you are banned from %s %s; a moderator may lift it"
                         % (where, when))
        self.until = ban.until

    def ack(self):
        return dict(super().ack(), until=self.until)


def _seq(payload):
    value = _typed(payload, "seq", int, "an integer")
    if value is None or value < 1:
        raise ContractError("invalid_payload", "seq must be the positive seq of a message")
    return value


def ban_request(payload, minutes_max=config.BAN_MINUTES_MAX):
    payload = validation.payload_object(payload)
    uid = _typed(payload, "uid", str, "a string")
    if uid is None or not rules.UID_RE.fullmatch(uid):
        raise ContractError("invalid_payload", "uid must be a member's uid (as its messages carry)")
    minutes = _typed(payload, "minutes", int, "an integer")
    if minutes is not None and not 1 <= minutes <= minutes_max:
        raise ContractError("invalid_payload", "minutes must be 1-%d; leave it out to ban for good"
                            % minutes_max)
    return {"room": validation.room(payload), "uid": uid, "minutes": minutes}


def report_request(payload, reason_max=config.REPORT_REASON_MAX):
    payload = validation.payload_object(payload)
    reason = _typed(payload, "reason", str, "a string")
    reason = (reason or "").strip()
    if not reason or len(reason) > reason_max:
        raise ContractError("invalid_payload", "reason must be 1-%d characters: say what is wrong"
                            % reason_max)
    validation._ruled(rules.text, reason)   # no control or bidi characters
    return {"room": validation.room(payload), "seq": _seq(payload), "reason": reason}


class BanBook:
    """One node's memory of bans: uid -> {room or None: until}, for the uids it has read
    (at their join) or heard evicted, at most ``max_uids`` (least recently read go first).

    :param store: reads a uid's active bans (``bans_of``, ``bans_of_many``).
    :param clock_ms: Unix milliseconds (injectable).
    """

    def __init__(self, store, max_uids=config.BAN_CACHE_UIDS, clock_ms=now_ms):
        self.store = store
        self.max_uids = max_uids
        self.clock_ms = clock_ms
        self.known = OrderedDict()

    def read(self, uid):
        """The uid's bans from the database, remembered."""
        self.replace(uid, self.store.bans_of(uid))

    def replace(self, uid, bans):
        self.known[uid] = dict(bans)
        self.known.move_to_end(uid)
        while len(self.known) > self.max_uids:
            self.known.popitem(last=False)

    def record(self, room, uid, until):
        """A ban heard (an eviction): kept with what is known of the uid; the later end wins."""
        bans = dict(self.known.get(uid) or {})
        held = bans.get(room, 0)
        bans[room] = None if until is None or held is None else max(until, held)
        self.replace(uid, bans)

    def ban(self, uid, room):
        """The ban in force on ``uid`` in ``room`` (:class:`Banned`), None when there is none."""
        bans = self.known.get(uid)
        if not bans:
            return None
        now = self.clock_ms()
        found = None
        for scope in (room, None):
            if scope in bans:
                until = bans[scope]
                if until is None:
                    return Banned(scope, None)
                if until > now and (found is None or until > found.until):
                    found = Banned(scope, until)
        return found


class Moderation:
    """The ``ban`` and ``report`` handlers of one node, and its ban checks.

    :param events: the node's :class:`~chat.protocol.events.ChatEvents` (connections, link,
        access rule, request buckets).
    :param store: bans, reports and the action log in the database (see the module's doc).
    :param reason_max: a report's reason, in characters.
    :param minutes_max: a ban's ``minutes`` at most.
    """

    def __init__(self, events, store=None, reason_max=config.REPORT_REASON_MAX,
                 minutes_max=config.BAN_MINUTES_MAX, clock_ms=now_ms):
        self.events = events
        self.limits = events.limits   # acked() reads the payload limit here
        self.store = store if store is not None else MemoryModeration()
        self.reason_max = reason_max
        self.minutes_max = minutes_max
        self.clock_ms = clock_ms
        self.bans = BanBook(self.store, clock_ms=clock_ms)
        events.evictions.watch(self._evicted)
        events.evictions.on_resync(self.recheck)
        events.sio.on("ban", self.on_ban)
        events.sio.on("report", self.on_report)

    # the checks of join and message

    def check_join(self, identity, room):
        """banned when the database says so (read at every join)."""
        try:
            self.bans.read(identity.uid)
        except Exception:
            log.exception("bans of %s could not be read", identity.uid)
            raise ContractError("unavailable", "bans cannot be checked now; retry") from None
        self.check(identity, room)

    def check(self, identity, room):
        """banned when this node knows of a ban (no database: the message path)."""
        ban = self.bans.ban(identity.uid, room)
        if ban is not None:
            raise BannedError(room, ban)

    # the handlers

    @acked
    def on_ban(self, sid, payload):
        events = self.events
        events._throttle(sid, "ban")
        req = ban_request(payload, self.minutes_max)
        identity = events._connection(sid).identity
        room, uid = req["room"], req["uid"]
        if not events.access.is_moderator(identity, room):
            raise ContractError("forbidden", "only a moderator of room %s may ban there" % room)
        if uid == identity.uid:
            raise ContractError("forbidden", "a moderator cannot ban itself")
        until = None if req["minutes"] is None else self.clock_ms() + req["minutes"] * 60_000
        try:
            self.store.ban(room, uid, until, identity, nick=self._nick_of(uid, room))
        except Exception:
            log.exception("ban of %s in %s not stored", uid, room)
            raise ContractError("unavailable", "the ban could not be stored; retry") from None
        events.link.evict(room, uid, BANNED, until)
        return {"ok": True}

    @acked
    def on_report(self, sid, payload):
        events = self.events
        events._throttle(sid, "report")
        events.person_limit(sid, "report")
        req = report_request(payload, self.reason_max)
        conn = events._connection(sid)
        room, seq = req["room"], req["seq"]
        if room not in conn.rooms:
            raise ContractError("not_joined", "join room %s first" % room)
        epoch, author = self.find(room, seq)
        try:
            self.store.report(room, epoch, seq, author, conn.identity, req["reason"])
        except Exception:
            log.exception("report of %s #%d not stored", room, seq)
            raise ContractError("unavailable", "the report could not be stored; retry") from None
        return {"ok": True}

    def find(self, room, seq):
        """``(epoch, {uid, nick})`` of message ``seq`` of a followed room: from the mirror,
        else the archive; not_found unless it is a message that is not deleted.  A seq
        beyond the mirror is waited for, as an edit's (Conversation.view_with)."""
        view = self.events.conversation.view_with(room, seq)
        epoch = view["epoch"]
        found = None
        for item in view["history"]:
            if item.get("kind", "message") == "message" and item["seq"] == seq:
                found = item
            elif item.get("kind") == "delete" and item.get("target") == seq:
                found = {"deleted": True}
        if found is None and seq <= view["seq"]:
            found = self.store.message(room, epoch, seq)
        if found is None or found.get("deleted"):
            raise ContractError("not_found", "room %s has no message #%d (or it was deleted)"
                                % (room, seq))
        return epoch, {"uid": found.get("uid") or "", "nick": found.get("nick") or ""}

    # evictions

    def _evicted(self, room, uid, reason, until):
        if reason == BANNED:
            self.bans.record(room, uid, until)

    def recheck(self):
        """After a resync: read the bans of this node's members again, and evict the
        banned ones here (evictions published while the link was away are not replayed)."""
        events = self.events
        uids = sorted({conn.identity.uid for conn in list(events.connections.values())
                       if conn.rooms})
        for start in range(0, len(uids), RECHECK_CHUNK):
            chunk = uids[start:start + RECHECK_CHUNK]
            found = self.store.bans_of_many(chunk)
            for uid in chunk:
                self.bans.replace(uid, found.get(uid, {}))
        for sid, conn in list(events.connections.items()):
            for room in list(conn.rooms):
                ban = self.bans.ban(conn.identity.uid, room)
                if ban is not None:
                    events.evictions.evict(room, conn.identity.uid, BANNED, ban.until)

    def _nick_of(self, uid, room):
        """The nick ``uid`` has in ``room`` here, or its latest message's in the mirror,
        for the log and the admin (else empty)."""
        for conn in list(self.events.connections.values()):
            if conn.identity.uid == uid and room in conn.rooms:
                return conn.rooms[room]
        if self.events.link.following.is_live(room):
            for item in reversed(self.events.link.view(room)["history"]):
                if item.get("uid") == uid and item.get("nick"):
                    return item["nick"]
        return ""


class MemoryModeration:
    """The database side in memory (unit tests): bans, reports and the action log as lists."""

    def __init__(self, clock_ms=now_ms):
        self.clock_ms = clock_ms
        self.banned = []    # (room or None, uid, until, actor uid, nick)
        self.reports = []   # (room, epoch, seq, author, reporter uid, reason)
        self.actions = []   # (actor uid, kind, room, target uid)
        self.messages = {}  # (room, epoch, seq) -> {uid, nick}: the archive

    def bans_of(self, uid):
        return self.bans_of_many([uid]).get(uid, {})

    def bans_of_many(self, uids):
        now, wanted, found = self.clock_ms(), set(uids), {}
        for room, uid, until, _, _ in self.banned:
            if uid in wanted and (until is None or until > now):
                bans = found.setdefault(uid, {})
                held = bans.get(room, 0)
                bans[room] = None if until is None or held is None else max(until, held)
        return found

    def ban(self, room, uid, until, actor, nick=""):
        self.banned.append((room, uid, until, actor.uid, nick))
        self.actions.append((actor.uid, "ban", room, uid))

    def report(self, room, epoch, seq, author, reporter, reason):
        self.reports.append((room, epoch, seq, author, reporter.uid, reason))

    def message(self, room, epoch, seq):
        return self.messages.get((room, epoch, seq))
