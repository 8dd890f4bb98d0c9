"""``typing`` (PROTOCOL.md "People"): "alice is typing…" to the room's other members.

A connection's ``typing`` {room} is acknowledged ``ok``; at most one per ``interval_ms``
per connection is passed on, the others are acknowledged and dropped (a page sends one
per 2 s while keys are pressed, so nothing a page sends is lost).  What is passed on goes
node -> broker -> the nodes following the room (the ``typing`` fan-out,
chatstream/wire.py), each of which emits ``typing`` {room, nick, uid} to its members of
the room but the typist's own connections.  Not sequenced, not stored.
"""
import time

from chatstream import config
from . import validation
from .acks import acked
from .validation import ContractError

# Connections whose last notice is remembered before the old ones are dropped: a sweep
# of the table, at most once per this many notices.
SWEEP_AT = 1000


class TypingNotices:
    """The ``typing`` event and its fan-out.

    :param events: the node's :class:`~chat.protocol.events.ChatEvents`.
    :param interval_ms: a connection's notices are passed on at most once per this.
    """

    def __init__(self, events, interval_ms=config.TYPING_INTERVAL_MS, clock=time.monotonic):
        self.events = events
        self.limits = events.limits     # acked: the payload size
        self.interval_s = interval_ms / 1000.0
        self.clock = clock
        self.passed = {}    # sid -> when its last notice was passed on
        self.sweep_at = SWEEP_AT
        events.sio.on("typing", self.on_typing)
        events.link.on_published("typing", self.on_published)

    @acked
    def on_typing(self, sid, payload):
        self.events._throttle(sid, "typing")
        room = validation.typing_request(payload)["room"]
        conn = self.events._connection(sid)
        nick = conn.rooms.get(room)
        if nick is None:
            raise ContractError("not_joined", "join room %s first" % room)
        now = self.clock()
        if now - self.passed.get(sid, float("-inf")) >= self.interval_s:
            self._sweep(now)
            self.passed[sid] = now
            self.events.link.fanout("typing", room=room, nick=nick, uid=conn.identity.uid)
        return {"ok": True}

    def on_published(self, body):
        """A notice from the broker: to this node's members of the room but the typist's."""
        uid = body["uid"]
        self.events.sio.emit("typing", {"room": body["room"], "nick": body["nick"], "uid": uid},
                             to=body["room"], skip_sid=list(self.events.by_uid.get(uid, ())))

    def _sweep(self, now):
        if len(self.passed) >= self.sweep_at:
            self.passed = {sid: at for sid, at in self.passed.items()
                           if now - at < self.interval_s and sid in self.events.connections}
            self.sweep_at = max(SWEEP_AT, 2 * len(self.passed))
