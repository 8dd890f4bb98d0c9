"""``edit`` and ``delete``: changing a message is a sequenced room event (PROTOCOL.md
"Conversation").

The node decides who may change a message: it finds the target in its mirror of the
room (the newest events) or else in the archive, and checks the author rule (same
``uid``; an edit within the edit window) or the room's moderator rule
(chat/protocol/access.py).  The broker then sequences the change like a message and
re-checks only that the target is still a live message wherever it holds it
(broker/sequencer.py: two nodes' changes of one message race there, nowhere else).
Every node hears the event and sends its members ``edit`` / ``delete``.
"""
import logging
import time

import gevent

from chatstream import room_events, uid_proofs

from ..link import BrokerUnavailable, Refused
from ..operations import metrics
from . import validation
from .acks import acked
from .history import current_messages
from .validation import ContractError

log = logging.getLogger(__name__)


def _target(payload):
    value = payload.get("seq")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ContractError("invalid_payload", "seq must be the positive seq of a message")
    return value


def edit_request(payload):
    payload = validation.payload_object(payload)
    return {"room": validation.room(payload), "seq": _target(payload),
            "text": validation.text(payload)}


def delete_request(payload):
    payload = validation.payload_object(payload)
    return {"room": validation.room(payload), "seq": _target(payload)}


# How long an edit, delete or report of a seq beyond what this node's mirror has waits
# for the mirror to reach it: the message is on its way on the broker's stream (ms); a
# seq that never comes (a client's guess) is refused after this.
CATCH_UP_S = 1.0
CATCH_UP_STEP_S = 0.005


class Conversation:
    """The ``edit`` and ``delete`` handlers of one node.

    :param events: the node's :class:`~chat.protocol.events.ChatEvents` (its
        connections, link, access rule and archive reader).
    :param edit_window_s: how long an author may edit a message (moderators: always).
    :param clock_ms: Unix milliseconds (injectable for tests).
    """

    def __init__(self, events, edit_window_s, clock_ms=lambda: int(time.time() * 1000)):
        self.events = events
        self.edit_window_s = edit_window_s
        self.clock_ms = clock_ms
        events.sio.on("edit", self.on_edit)
        events.sio.on("delete", self.on_delete)

    @property
    def limits(self):
        return self.events.limits

    @acked
    def on_edit(self, sid, payload):
        event = self._change(sid, room_events.EDIT, edit_request(payload))
        metrics.CHANGES.labels(room_events.EDIT).inc()
        return {"ok": True, "seq": event["seq"]}

    @acked
    def on_delete(self, sid, payload):
        event = self._change(sid, room_events.DELETE, delete_request(payload))
        metrics.CHANGES.labels(room_events.DELETE).inc()
        return {"ok": True, "seq": event["seq"]}

    def _change(self, sid, kind, req):
        conn = self.events._connection(sid)
        room, seq = req["room"], req["seq"]
        nick = conn.rooms.get(room)
        if nick is None:
            raise ContractError("not_joined", "join room %s first" % room)
        if not conn.bucket.allow():   # changes count as messages: one budget for both
            raise ContractError("rate_limited", "more than %g messages/s (burst %d)"
                                % (self.limits.rate_per_s, self.limits.rate_burst))
        epoch, target = self.find(room, seq)
        identity = conn.identity
        if not self.events.access.is_moderator(identity, room):
            if target.get("uid") != identity.uid:
                raise ContractError("forbidden", "only its author or a moderator may %s "
                                    "message #%d" % (kind, seq))
            age_s = (self.clock_ms() - target["ts"]) / 1000.0
            if kind == room_events.EDIT and age_s > self.edit_window_s:
                raise ContractError("edit_window_expired", "message #%d is older than %d s, "
                                    "the time its author may edit it; delete it instead, or "
                                    "ask a moderator" % (seq, self.edit_window_s))
        return self.sequence(room, epoch, kind, seq, identity.uid, nick, req.get("text"))

    def find(self, room, seq):
        """``(epoch, message)``: message ``seq`` of ``room`` in its current state, from
        the node's mirror or else the archive; not_found unless it is a live message."""
        view = self.view_with(room, seq)
        epoch = view["epoch"]
        target = next((e for e in view["history"] if e["seq"] == seq), None)
        if target is None and seq <= view["seq"]:
            find = getattr(self.events.history, "message", None)   # None: no archive
            target = find(room, epoch, seq) if find is not None else None
            if target is not None:   # with the mirror's changes the archive has not written yet
                target = current_messages([target], view)[0]
        if target is None or not room_events.is_live_message(target):
            raise ContractError("not_found", "room %s has no message #%d (or it was deleted); "
                                "reload the room" % (room, seq))
        return epoch, target

    def view_with(self, room, seq):
        """The node's view of ``room``, once it reaches ``seq`` (at most ``CATCH_UP_S``):
        a client's ack can come before this node's mirror has the message (an answered
        publish, a room being fetched), and a delete sent right behind its message must
        find it."""
        view = self.events.link.view(room)
        deadline = time.monotonic() + CATCH_UP_S
        while view["seq"] < seq and time.monotonic() < deadline:
            gevent.sleep(CATCH_UP_STEP_S)
            view = self.events.link.view(room)
        return view

    def sequence(self, room, epoch, kind, seq, uid, nick=None, text=None):
        """Have the broker sequence the change; the contract's refusal when it cannot."""
        try:
            return self.events.link.change(room, epoch, kind, seq, uid, nick=nick, text=text)
        except Refused as exc:
            raise ContractError(exc.code, "%s; reload the room" % exc.detail) from None
        except BrokerUnavailable as exc:
            log.warning("%s of %s #%d not sequenced: %s", kind, room, seq, exc)
            raise ContractError("unavailable", "the %s was not sequenced in time; retry"
                                % kind) from None


def delete_as_staff(room, epoch, seq, uid):
    """A staff member's delete from the Django admin, which runs inside a node process:
    sequenced through this node's broker link like a client's (every node sees it).
    Returns the delete's seq; raises ContractError (not_found, unavailable) or
    RuntimeError outside a node."""
    from chat.running import current_server   # the node's server; None outside a node
    sio = current_server()
    if sio is None:
        raise RuntimeError("not a chat node: no broker link to sequence the delete")
    from django.conf import settings
    key_file = settings.CHAT_UID_PROOF_KEY_FILE     # the broker takes the uid with its proof
    proof = uid_proofs.prove(uid_proofs.read_key(key_file), uid) if key_file else None
    try:
        return sio.manager.link.change(room, epoch, room_events.DELETE, seq, uid,
                                       staff=True, proof=proof)["seq"]
    except Refused as exc:
        raise ContractError(exc.code, exc.detail) from None
    except BrokerUnavailable as exc:
        raise ContractError("unavailable", "the delete was not sequenced in time (%s); "
                            "retry" % exc) from None
