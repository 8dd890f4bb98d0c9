"""Fan-outs: what a node tells every other node through the broker, not sequenced.

``typing`` (to the room's nodes), ``read`` (an account's read position, to every node)
and ``usage`` (what each person spent of their per-person limits, to every node) are
checked like every intake request -- a node speaks only for itself, what it names
follows the contract's rules, and a typist is one of the connections the node registered
in the room (as the author of a room event is) -- then published at once, never stored nor replicated:
a lost one costs a typing notice, a moment's delay of a read mark on another tab (the
database still has it), or a moment of a person's allowance.  Fire-and-forget, as
``announce``: a refusal is logged (at most every few seconds), never answered.
"""
from chatstream import rules, wire

# Events a ``usage`` report names at most per person, and the largest count of one:
# a node reports every few hundred milliseconds, so any real count is far below.
USAGE_EVENTS_MAX = 16
USAGE_COUNT_MAX = 1_000_000


class FanoutHandlers:
    """``typing``, ``read`` and ``usage`` from the nodes.

    :param outbox: where the batch's publishes wait (broker/outbox.py).
    :param refusals: the intake's :class:`broker.handlers.RefusalLog`.
    :param checked: ``checked(body, peer)`` -> the body's fields by the intake's rules
        (broker/handlers.py ``IntakeHandlers._fields``), raising RequestError.
    :param member: ``member(peer, node, room, uid, nick)`` raises unless ``uid`` under ``nick``
        is one of ``node``'s connections in ``room`` (``IntakeHandlers.own_member``; it logs).
    """

    def __init__(self, outbox, refusals, checked, member=None):
        self.outbox = outbox
        self.refusals = refusals
        self.checked = checked
        self.member = member
        self.by_type = {"typing": self.on_typing, "read": self.on_read, "usage": self.on_usage}

    def on_typing(self, body, peer=None):
        fields = self._checked(body, peer, room=rules.room, nick=rules.clean_nick, uid=rules.uid)
        if fields is not None and self._member(peer, body["node"], fields):
            self.outbox.publish(wire.room_topic(fields["room"]), wire.encode("typing", **fields))

    def on_read(self, body, peer=None):
        fields = self._checked(body, peer, room=rules.room, uid=rules.uid, epoch=_epoch,
                               seq=_seq)
        if fields is not None:
            self.outbox.publish(wire.READ_TOPIC, wire.encode("read", **fields))

    def on_usage(self, body, peer=None):
        fields = self._checked(body, peer, spent=_spent)
        if fields is not None:   # the node's name: it skips its own report
            self.outbox.publish(wire.USAGE_TOPIC, wire.encode("usage", node=body["node"],
                                                              **fields))

    def _member(self, peer, node, fields):
        if self.member is None:
            return True
        try:
            self.member(peer, node, fields["room"], fields["uid"], fields["nick"])
        except Exception:   # noqa: BLE001 - NotMember, counted and logged by own_member
            return False
        return True

    def _checked(self, body, peer, **fields):
        try:
            return self.checked(body, peer, **fields)
        except Exception as exc:   # noqa: BLE001 - RequestError: logged, never answered
            self.refusals.note("%s refused: %s", body.get("type"), exc)
            return None


def _epoch(value):
    if not isinstance(value, str) or len(value) > 64:
        raise rules.RuleError("invalid_epoch", "epoch must be a string of at most 64 characters")
    return value


def _seq(value):
    if type(value) is not int or value < 0:
        raise rules.RuleError("invalid_seq", "seq must be a non-negative integer")
    return value


def _spent(value):
    """{person key: {event: count}}: at most wire.USAGE_KEYS_PER_FRAME persons."""
    if not isinstance(value, dict) or len(value) > wire.USAGE_KEYS_PER_FRAME:
        raise rules.RuleError("invalid_usage", "spent must map at most %d persons"
                              % wire.USAGE_KEYS_PER_FRAME)
    for key, events in value.items():
        rules.person_key(key)
        if not isinstance(events, dict) or len(events) > USAGE_EVENTS_MAX:
            raise rules.RuleError("invalid_usage", "a person's usage maps events to counts")
        for event, count in events.items():
            if (not rules.USAGE_EVENT_RE.fullmatch(event) or type(count) is not int
                    or not 0 < count <= USAGE_COUNT_MAX):
                raise rules.RuleError("invalid_usage", "event %r: count %r" % (event, count))
    return value
