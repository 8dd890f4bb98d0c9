"""Private rooms and direct conversations: ``dm``, ``create``, ``invite``, ``remove`` and
``private_rooms`` (PROTOCOL.md "People"; the lobby's list: docs/PROTOCOL-EXTENSIONS.md).

The membership is in the database (rooms.directory); the rule every handler asks is the
node's ``access`` (rooms.access.MembershipAccess).  A change of membership reaches
every node through the broker before anything else of it (``link.access_changed``):
each node forgets what it cached of the room.  A removed member's connections then
leave the room on every node (``link.evict``, the same path as a ban).
"""
import logging

import gevent

from chatstream import rules

from ..link import BrokerUnavailable
from . import validation
from .acks import acked
from .identity import Identity
from .validation import ContractError

log = logging.getLogger(__name__)

NOBODY = Identity("c" + "0" * 20)   # a guest: asks the rule about rooms, member of none
MEMBERS_PER_REQUEST = 100    # usernames one ``create`` may name (the room's bound applies too)


def username(payload, field):
    """A username as a client names an account: a non-empty string of at most the
    nick length (any spelling login accepts)."""
    value = payload.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > rules.NICK_MAX:
        raise ContractError("invalid_payload", "%s must be a username (1-%d characters)"
                            % (field, rules.NICK_MAX))
    return value.strip()


def create_request(payload):
    payload = validation.payload_object(payload)
    if payload.get("private") is not True:
        raise ContractError("invalid_payload", "create makes private rooms ('private': true); "
                            "a public room exists as soon as someone joins it")
    members = payload.get("members", [])
    if not isinstance(members, list) or len(members) > MEMBERS_PER_REQUEST:
        raise ContractError("invalid_payload", "members must be a list of at most %d usernames"
                            % MEMBERS_PER_REQUEST)
    return {"room": validation.room(payload),
            "members": [username({"user": name}, "user") for name in members]}


def member_request(payload):
    payload = validation.payload_object(payload)
    return {"room": validation.room(payload), "user": username(payload, "user")}


class PrivateRoomEvents:
    """The handlers of private rooms, on a :class:`~chat.protocol.events.ChatEvents`.

    :param events: the node's ChatEvents (``connections``, ``link``, ``access``, ``sio``).
    :param directory: a :class:`rooms.directory.Directory`.
    :param account_uid: ``account_uid(user_id) -> uid`` (chat.protocol.identity), to
        evict a removed account's connections.
    """

    def __init__(self, events, directory, account_uid):
        self.events = events
        self.directory = directory
        self.account_uid = account_uid
        self.limits = events.limits   # acked's payload bound
        sio = events.sio
        for name in ("dm", "create", "invite", "remove", "private_rooms"):
            sio.on(name, getattr(self, "on_" + name))
        events.evictions.on_resync(self.recheck)

    def changed(self, room):
        """Who may read ``room`` changed (this node or another said so: ``access``):
        forget it, and evict this node's connections in it that may no longer read it.
        The evict of a ``remove`` does that too; this also covers a public room made
        private while someone was in it (the broker's presence reaches ``create`` late)."""
        self.events.access.forget(room)
        gevent.spawn(self._recheck, [room])

    def recheck(self):
        """After the link resynced (it may have missed ``access`` and ``evict`` messages):
        forget every cached membership and check this node's connections again."""
        self.events.access.forget()
        self._recheck(None)

    def _recheck(self, rooms):
        """Evict this node's connections from the rooms among ``rooms`` (None: all)
        that they may no longer read."""
        events = self.events
        try:
            connections = list(events.connections.values())
            everyone = {room for conn in connections for room in conn.rooms
                        if rooms is None or room in rooms}
            # one read of all these rooms' members (a few queries), not one per connection
            events.access.readable(NOBODY, sorted(everyone))
            for conn in connections:
                joined = [room for room in conn.rooms if rooms is None or room in rooms]
                allowed = set(events.access.readable(conn.identity, joined)) if joined else ()
                for room in joined:
                    if room not in allowed:
                        events.evictions.evict(room, conn.identity.uid, "removed")
        except Exception:
            log.exception("re-check of private rooms' members failed")

    def _account(self, sid, event):
        self.events._throttle(sid, event)
        self.events.person_limit(sid, event)
        identity = self.events._connection(sid).identity
        if identity.guest:
            raise ContractError("forbidden", "only accounts have private rooms and direct "
                                "conversations; log in first")
        return identity

    def _changed(self, room):
        """Every node (this one at once) forgets what it cached of ``room``."""
        self.events.link.access_changed(room)

    @acked
    def on_dm(self, sid, payload):
        identity = self._account(sid, "dm")
        to = username(validation.payload_object(payload), "to")
        room, other, made = self.directory.open_direct(identity.user_id, to)
        if made:
            self._changed(room)
        return {"ok": True, "room": room, "with": other.get_username()}

    @acked
    def on_create(self, sid, payload):
        identity = self._account(sid, "create")
        req = create_request(payload)
        self.directory.create(identity.user_id, req["room"], req["members"])
        self._changed(req["room"])
        return {"ok": True, "room": req["room"]}

    def _moderated(self, sid, event, payload):
        identity = self._account(sid, event)
        req = member_request(payload)
        if self.events.access.private(req["room"]) is None or not (
                self.events.access.is_moderator(identity, req["room"])):
            raise ContractError("forbidden", "only a private room's owner or staff invite "
                                "and remove members")
        return req

    @acked
    def on_invite(self, sid, payload):
        req = self._moderated(sid, "invite", payload)
        self.directory.invite(req["room"], req["user"])
        self._changed(req["room"])
        return {"ok": True}

    @acked
    def on_remove(self, sid, payload):
        req = self._moderated(sid, "remove", payload)
        user = self.directory.remove(req["room"], req["user"])
        self._changed(req["room"])    # before the evict: no node lets them back in
        self.events.link.evict(req["room"], self.account_uid(user.pk), "removed")
        return {"ok": True}

    @acked
    def on_private_rooms(self, sid, payload=None):
        identity = self._account(sid, "private_rooms")
        validation.rooms_request(payload)
        rooms = self.directory.of_account(identity.user_id)
        return {"ok": True, "rooms": self.events.unread.annotate(identity, rooms, add_recent=False)}


def room_in_use(link, room):
    """True when some room has the name ``room`` already: it has members or messages
    (the broker's state), or the archive holds it.  For ``create`` and ``dm``, rare and
    rate-limited, so a fetch from the broker is affordable."""
    from archive.models import Room
    from rooms.access import closing_connections
    if link.members(room):
        return True
    with closing_connections():
        if Room.objects.filter(name=room).exists():
            return True
    try:
        link.follow(room)
    except BrokerUnavailable:
        raise ContractError("unavailable", "the broker cannot be asked whether %s is in use; "
                            "try again" % room) from None
    try:
        return link.view(room)["seq"] > 0
    finally:
        link.release(room)
