"""The ``history`` event's pages (PROTOCOL.md "Conversation"): a room's older messages.

A node answers from the archive (archive/reader.py), joined with its mirror of the room;
without an archive (unit tests, a node with no database) :class:`MirrorPages` answers
from the mirror alone.
"""


class HistoryUnavailable(Exception):
    """The page cannot be given whole now (the archive is behind): ``unavailable``."""


class MirrorPages:
    """Pages of the node's mirror only: the replay buffer is all it knows."""

    def page(self, room, view, before=None, limit=50):
        older = [m for m in view["history"] if before is None or m["seq"] < before][-limit:]
        messages = [dict(m, kind=m.get("kind", "message")) for m in older]
        return {"epoch": view["epoch"], "messages": messages,
                "first": not messages or messages[0]["seq"] <= 1}
