"""Edits and deletes: room events that change an earlier message (PROTOCOL.md "Conversation").

Stdlib only: the broker's buffer and store, a node's mirror and the archive's readers
apply them the same way.  A change is a sequenced event of its own (its own ``seq``)
with ``kind`` ``"edit"`` or ``"delete"`` and the ``target`` message's seq; the replay
buffer holds the change *and* its target in its current state:

- edited: the latest text and ``"edited": ts`` (the edit's ts);
- deleted: a tombstone ``{id, seq, room, ts, deleted: true}`` (plus ``cid``, so a
  resent publish still finds its message and is not sequenced again) -- the text and
  nick are gone, and so is the text of every earlier edit of it (``redacted``).

A message stored before kinds existed has no ``kind``: it is a message.
"""

MESSAGE, EDIT, DELETE = "message", "edit", "delete"
CHANGES = frozenset({EDIT, DELETE})

# What a tombstone keeps of its message: its position, and its cid (see above).
TOMBSTONE_FIELDS = ("id", "seq", "room", "kind", "ts", "cid")


def kind(event):
    return event.get("kind") or MESSAGE


def is_change(event):
    return event.get("kind") in CHANGES


def is_live_message(event):
    """A message (not a change) that is not deleted: what an edit or delete may target."""
    return kind(event) == MESSAGE and not event.get("deleted")


def tombstone(message):
    """What is left of a deleted message."""
    kept = {name: message[name] for name in TOMBSTONE_FIELDS if name in message}
    kept["deleted"] = True
    return kept


def redacted(edit):
    """An edit of a message since deleted: its text goes with the message's."""
    return {name: value for name, value in edit.items() if name != "text"}


def changed(message, change):
    """``message`` with ``change`` applied (a new dict; the old one may be in flight)."""
    if change["kind"] == DELETE:
        return tombstone(message)
    if message.get("deleted"):
        return message            # a delete is final
    return dict(message, text=change["text"], edited=change["ts"])


def apply(events, change):
    """Apply ``change`` to ``events`` (a room's events in seq order, a list or deque,
    changed in place: its target, and for a delete the text of the target's earlier
    edits).  Returns the target's new state, or None when ``events`` does not hold it."""
    if not events:
        return None
    target = change["target"]
    index = target - events[0]["seq"]
    if not 0 <= index < len(events) or events[index]["seq"] != target:
        return None
    events[index] = state = changed(events[index], change)
    if change["kind"] == DELETE:
        for i in range(index + 1, len(events)):
            event = events[i]
            if event.get("kind") == EDIT and event.get("target") == target and "text" in event:
                events[i] = redacted(event)
    return state


def as_listed(event):
    """An item of ``join``'s or ``history``'s list: the event with its ``kind``."""
    return event if "kind" in event else dict(event, kind=MESSAGE)


def replay(view, since):
    """A join's answer from a room view {epoch, seq, history, gap}: without ``since``
    (or on a gap, when the reader starts over) the messages in their current state;
    with it, every event after ``since``, so the reader applies the changes too."""
    events = view["history"]
    if since is None or view["gap"]:
        events = [e for e in events if not is_change(e)]
    return dict(view, history=[as_listed(e) for e in events])
