"""The ``history`` event's pages (PROTOCOL.md "Conversation"): a room's older messages.

A node answers from the archive (archive/reader.py), joined with its mirror of the room;
without an archive (unit tests, a node with no database) :class:`MirrorPages` answers
from the mirror alone.
"""


from chatstream import room_events


def current_messages(messages, view):
    """``messages`` (a page, oldest first) with the edits and deletes of the mirror's
    ``view`` applied: the archive may not have written the newest ones yet."""
    page = {m["seq"]: i for i, m in enumerate(messages)}
    for event in view["history"]:
        i = page.get(event.get("target")) if room_events.is_change(event) else None
        if i is not None:
            messages[i] = room_events.as_listed(room_events.changed(messages[i], event))
    return messages


class HistoryUnavailable(Exception):
    """The page cannot be given whole now (the archive is behind): ``unavailable``."""


class MirrorPages:
    """Pages of the node's mirror only: the replay buffer is all it knows."""

    def page(self, room, view, before=None, limit=50):
        older = [m for m in view["history"] if (before is None or m["seq"] < before)
                 and not room_events.is_change(m)][-limit:]
        messages = [room_events.as_listed(m) for m in older]
        return {"epoch": view["epoch"], "messages": messages,
                "first": not messages or messages[0]["seq"] <= 1}
