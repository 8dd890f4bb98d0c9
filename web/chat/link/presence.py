"""Who is in each room: this node's members, reported to the broker, and the
cluster-wide lists the broker sends back."""
import collections


class LocalMembers:
    """This node's members: room -> nick -> number of connections using it.

    :param send: sends one ``presence`` report to the broker (fire and forget).
    :param node: this node's name, on every report.
    """

    def __init__(self, send, node):
        self.send = send
        self.node = node
        self.rooms = collections.defaultdict(collections.Counter)
        self.stopping = False   # said goodbye: report no more members

    def __contains__(self, room):
        return room in self.rooms

    def joined(self, room, nick):
        self.rooms[room][nick] += 1
        self._report({room: self.nicks(room)})

    def left(self, room, nick):
        """Count one connection fewer; True when the room has no local member left."""
        members = self.rooms[room]
        members[nick] -= 1
        if members[nick] <= 0:
            del members[nick]
        empty = not members
        if empty:
            del self.rooms[room]
        self._report({room: self.nicks(room)})
        return empty

    def nicks(self, room):
        return sorted(self.rooms.get(room, ()))

    def report_all(self):
        """The whole member set: sent every heartbeat, it keeps this node alive
        in the broker's registry and heals any report that was lost."""
        self._report({room: self.nicks(room) for room in self.rooms}, full=True)

    def goodbye(self):
        """This node is stopping: the broker drops its members at once."""
        self._report({}, full=True, bye=True)

    def _report(self, rooms, full=False, bye=False):
        if self.stopping:
            return
        self.stopping = bye
        self.send("presence", node=self.node, rooms=rooms, full=full, bye=bye)


class ClusterPresence:
    """Members of every room across the cluster, as the broker last said."""

    def __init__(self):
        self.rooms = {}   # room -> [nick]

    def replace(self, rooms):
        """A snapshot's presence: {room: [nick]}."""
        self.rooms = {room: list(nicks) for room, nicks in rooms.items() if nicks}

    def update(self, room, members):
        if members:
            self.rooms[room] = members
        else:
            self.rooms.pop(room, None)

    def members(self, room):
        return list(self.rooms.get(room, ()))

    def active_rooms(self):
        """[(room, member count)] of rooms with members, most populated first."""
        return sorted(((room, len(nicks)) for room, nicks in self.rooms.items()),
                      key=lambda item: (-item[1], item[0]))
