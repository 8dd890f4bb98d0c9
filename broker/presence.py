"""Who is in each room, across every node.

Each node reports its own members (``presence`` on intake): the rooms that
changed at once, and its whole member set with every heartbeat, which also
keeps it alive here.  A node not heard for ``node_ttl_ms`` (dead, hung or cut
off) has its members removed, and the rooms hear who left.
"""
from chatstream import config
from chatstream.clock import now_ms


class PresenceRegistry:
    """Member nicks per room, per node, with node expiry.

    :param node_ttl_ms: silence after which a node's members are dropped.
    :param clock_ms: returns Unix milliseconds (injectable for tests).
    """

    def __init__(self, node_ttl_ms=config.NODE_TTL_MS, clock_ms=now_ms):
        self.node_ttl_ms = node_ttl_ms
        self.clock_ms = clock_ms
        self.nodes = {}    # node -> {"seen": ms, "rooms": {room: frozenset(nicks)}}

    def members(self, room):
        """The room's nicks on every node, sorted, each once."""
        nicks = set()
        for state in self.nodes.values():
            nicks.update(state["rooms"].get(room, ()))
        return sorted(nicks)

    def snapshot(self):
        """{room: [nick...]} for every room with members."""
        rooms = set()
        for state in self.nodes.values():
            rooms.update(state["rooms"])
        return {room: self.members(room) for room in sorted(rooms)}

    def update(self, node, rooms, full):
        """Take a node's report; returns the rooms whose member list changed.

        :param rooms: {room: [nick...]}; an empty list means nobody there.
        :param full: the report is the node's whole state (rooms not named are empty).
        """
        state = self.nodes.setdefault(node, {"seen": 0, "rooms": {}})
        state["seen"] = self.clock_ms()
        touched = set(rooms) | (set(state["rooms"]) if full else set())
        before = {room: self.members(room) for room in touched}
        new_rooms = {} if full else dict(state["rooms"])
        for room, nicks in rooms.items():
            if nicks:
                new_rooms[room] = frozenset(nicks)
            else:
                new_rooms.pop(room, None)
        state["rooms"] = new_rooms
        return {room for room in touched if self.members(room) != before[room]}

    def remove(self, node):
        """Drop a node (it said goodbye or expired).

        Returns ``(changed, departed)``: rooms whose list changed, and
        {room: [nick...]} of nicks no longer anywhere in that room.
        """
        state = self.nodes.get(node)
        if state is None:
            return set(), {}
        before = {room: set(self.members(room)) for room in state["rooms"]}
        del self.nodes[node]
        departed = {}
        for room, nicks in before.items():
            gone = sorted(nicks - set(self.members(room)))
            if gone:
                departed[room] = gone
        return set(departed), departed

    def expire(self):
        """Remove every node silent for longer than the TTL; as :meth:`remove`."""
        limit = self.clock_ms() - self.node_ttl_ms
        changed, departed = set(), {}
        for node in [n for n, s in self.nodes.items() if s["seen"] < limit]:
            c, d = self.remove(node)
            changed |= c
            for room, nicks in d.items():
                departed.setdefault(room, []).extend(nicks)
        return changed, departed
