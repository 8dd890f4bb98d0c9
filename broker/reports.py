"""Presence reports that arrive in parts, put together before they count.

No frame the broker reads is larger than one message (``ZMQ_MAXMSGSIZE``), so
a node sends a large report -- its whole member set, or one room with many
members -- in parts: ``part`` 0, 1, 2 ... with ``more`` true on all but the
last.  A report counts only once its last part is in, so a partial report
never empties rooms that a later part names.  What one node may have pending
is bounded by the same caps as a whole report.
"""


class ReportError(ValueError):
    """A part that does not continue its node's report, or a report over a cap."""


class ReportAssembler:
    """Parts of at most one pending report per node.

    :param max_rooms: rooms one report may name.
    :param max_nicks: nicks one report may list in one room.
    :param max_nodes: nodes with a report pending at once.
    """

    def __init__(self, max_rooms, max_nicks, max_nodes):
        self.max_rooms = max_rooms
        self.max_nicks = max_nicks
        self.max_nodes = max_nodes
        self.pending = {}    # node -> {"part": last part, "rooms": {room: [nick]}}

    def add(self, node, rooms, part, more):
        """Take one part; returns the whole report's rooms once its last part
        is in, else None.  Raises :class:`ReportError` (the node's pending
        report is dropped: its next full report heals the registry)."""
        if part == 0:
            self.pending.pop(node, None)
            if not more:
                return rooms
            if len(self.pending) >= self.max_nodes:
                raise ReportError("%d nodes have a report pending" % len(self.pending))
            self.pending[node] = {"part": 0, "rooms": {r: list(n) for r, n in rooms.items()}}
            self._check(node)
            return None
        report = self.pending.get(node)
        if report is None or part != report["part"] + 1:
            self.pending.pop(node, None)
            raise ReportError("presence part %d does not continue a report" % part)
        report["part"] = part
        for room, nicks in rooms.items():
            report["rooms"].setdefault(room, []).extend(nicks)
        self._check(node)
        if more:
            return None
        return self.pending.pop(node)["rooms"]

    def _check(self, node):
        rooms = self.pending[node]["rooms"]
        if len(rooms) > self.max_rooms:
            del self.pending[node]
            raise ReportError("presence of more than %d rooms in one report" % self.max_rooms)
        for room, nicks in rooms.items():
            if len(nicks) > self.max_nicks:
                del self.pending[node]
                raise ReportError("presence of more than %d nicks in room %s"
                                  % (self.max_nicks, room))
