"""Who is in each room, across every node.

Each node reports its own members (``presence`` on intake): the rooms that
changed at once, and its whole member set with every heartbeat, which also
keeps it alive here.  A node not heard for ``node_ttl_ms`` (dead, hung or cut
off) has its members removed, and the rooms hear who left.

Indexed both ways (node -> room -> nicks for reports and expiry, room -> node
-> nicks for lists), so a room's list costs the members of that room, not a
walk over every node.  Changes are not published one by one: a report marks
the rooms it changed dirty, and :meth:`PresenceRegistry.take_changes` (called
by the broker at most once per ``CHAT_PRESENCE_INTERVAL_MS``) gives each dirty
room's list once, only if it differs from the list last given.

A report names each member connection as ``[nick, uid]`` (a bare nick: a
member without a uid, from a node before uids), and the registry keeps, per node
and room, which uids speak under which nicks: the broker sequences a room event
only from a uid its node registered there (:meth:`PresenceRegistry.speaker`).
"""
from chatstream import config
from chatstream.clock import now_ms


_NOBODY = {}   # a room where a node registered no one


class PresenceFull(Exception):
    """A report from a new node while ``max_nodes`` nodes are registered."""


class PresenceRegistry:
    """Member nicks per room, per node, with node expiry and coalesced changes.

    :param node_ttl_ms: silence after which a node's members are dropped.
    :param clock_ms: returns Unix milliseconds (injectable for tests).
    :param max_nodes: distinct node names registered at once, at most.
    """

    def __init__(self, node_ttl_ms=config.NODE_TTL_MS, clock_ms=now_ms,
                 max_nodes=config.PRESENCE_MAX_NODES):
        self.node_ttl_ms = node_ttl_ms
        self.clock_ms = clock_ms
        self.max_nodes = max_nodes
        # node -> {"seen": ms, "rooms": {room: frozenset(nicks)},
        #          "speakers": {room: {uid: frozenset(nicks)}}, "whole": a full report came}
        self.nodes = {}
        self.rooms = {}      # room -> {node: frozenset(nicks)}, the same sets
        self.dirty = set()   # rooms whose list may differ from the one last taken
        self.taken = {}      # room -> the list take_changes last gave (non-empty)

    def members(self, room):
        """The room's nicks on every node, sorted, each once."""
        per_node = self.rooms.get(room)
        if not per_node:
            return []
        if len(per_node) == 1:
            return sorted(next(iter(per_node.values())))
        return sorted(frozenset().union(*per_node.values()))

    def touch(self, node):
        """``node`` was heard (a part of a report in parts): it is alive."""
        state = self.nodes.get(node)
        if state is not None:
            state["seen"] = self.clock_ms()

    def rooms_of(self, node):
        """{room: frozenset(nicks)} that ``node`` last reported (empty if unknown)."""
        state = self.nodes.get(node)
        return state["rooms"] if state is not None else {}

    def held(self, node, room):
        """The nicks ``node`` last reported in ``room`` (an empty set if none)."""
        return self.rooms_of(node).get(room, frozenset())

    def speakers_of(self, node):
        """{room: {uid: frozenset(nicks)}} that ``node`` last reported (empty if unknown)."""
        state = self.nodes.get(node)
        return state["speakers"] if state is not None else {}

    def speaker(self, node, room, uid, nick=None):
        """Is ``uid`` (under ``nick``, when given) one of ``node``'s member connections
        in ``room``?  True; False when not, though the node registered its whole
        membership here; None when it has not (yet) since this broker knows it --
        a broker restarted or taken over, a node expired -- so the node may simply
        not have re-registered yet.  Two dict lookups: it runs for every publish."""
        state = self.nodes.get(node)
        if state is None:
            return None
        nicks = state["speakers"].get(room, _NOBODY).get(uid)
        if nicks is not None and (nick is None or nick in nicks):
            return True
        return False if state["whole"] else None

    def snapshot(self):
        """{room: [nick...]} for every room with members.

        A room no report changed since the last :meth:`take_changes` has the list
        that gave, so a snapshot computes the changed rooms only (resyncing nodes
        each ask for one; at 100,000 members recomputing every list stalled the
        broker for seconds)."""
        taken, dirty = self.taken, self.dirty
        return {room: (self.members(room) if room in dirty or room not in taken else taken[room])
                for room in sorted(self.rooms)}

    def update(self, node, rooms, full):
        """Take a node's report; returns the rooms where this node's nicks changed
        (they are marked dirty).

        :param rooms: {room: [member...]}, a member ``[nick, uid]`` (or a bare nick:
            no uid); an empty list means nobody there.
        :param full: the report is the node's whole state (rooms not named are empty).
        :raises PresenceFull: ``node`` is new and ``max_nodes`` are registered.
        """
        state = self.nodes.get(node)
        if state is None:
            if len(self.nodes) >= self.max_nodes:
                raise PresenceFull("%d nodes registered, the limit" % len(self.nodes))
            state = self.nodes[node] = {"seen": 0, "rooms": {}, "speakers": {}, "whole": False}
        state["seen"] = self.clock_ms()
        held, speaking = state["rooms"], state["speakers"]
        changed = set()
        for room in (held.keys() | speaking.keys()) - rooms.keys() if full else ():
            speaking.pop(room, None)
            if room in held:
                self._set(node, room, None)
                changed.add(room)
        for room, members in rooms.items():
            speakers = _speakers(members)
            if speakers:
                speaking[room] = speakers
            else:
                speaking.pop(room, None)
            nicks = frozenset().union(*speakers.values()) if speakers else frozenset()
            if held.get(room, frozenset()) != nicks:
                self._set(node, room, nicks or None)
                changed.add(room)
        state["whole"] = state["whole"] or full
        self.dirty |= changed
        return changed

    def remove(self, node):
        """Drop a node (it said goodbye or expired).

        Returns {room: [nick...]}: nicks no longer anywhere in that room.  Every
        room the node was in is marked dirty.
        """
        state = self.nodes.pop(node, None)
        if state is None:
            return {}
        departed = {}
        for room, nicks in state["rooms"].items():
            per_node = self.rooms[room]
            del per_node[node]
            gone = sorted(n for n in nicks if not any(n in other for other in per_node.values()))
            if not per_node:
                del self.rooms[room]
            if gone:
                departed[room] = gone
            self.dirty.add(room)
        return departed

    def expire(self):
        """Remove every node silent for longer than the TTL; as :meth:`remove`."""
        limit = self.clock_ms() - self.node_ttl_ms
        departed = {}
        for node in [n for n, s in self.nodes.items() if s["seen"] < limit]:
            for room, nicks in self.remove(node).items():
                departed.setdefault(room, []).extend(nicks)
        return departed

    def take_changes(self):
        """{room: [nick...]} of the dirty rooms whose list differs from the last
        one taken (an empty list: the room emptied); clears the dirty set."""
        changes = {}
        for room in sorted(self.dirty):
            members = self.members(room)
            if members != self.taken.get(room, []):
                changes[room] = members
                if members:
                    self.taken[room] = members
                else:
                    del self.taken[room]
        self.dirty.clear()
        return changes

    def _set(self, node, room, nicks):
        """This node's nicks in a room (None: none), in both indexes."""
        held = self.nodes[node]["rooms"]
        if nicks:
            held[room] = nicks
            self.rooms.setdefault(room, {})[node] = nicks
            return
        held.pop(room, None)
        per_node = self.rooms.get(room)
        if per_node is not None:
            per_node.pop(node, None)
            if not per_node:
                del self.rooms[room]


def _speakers(members):
    """{uid: frozenset(nicks)} of a report's members (a bare nick's uid is None)."""
    speakers = {}
    for member in members:
        nick, uid = (member, None) if member.__class__ is str else member
        speakers.setdefault(uid, set()).add(nick)
    return {uid: frozenset(nicks) for uid, nicks in speakers.items()}
