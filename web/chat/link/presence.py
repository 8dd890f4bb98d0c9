"""Who is in each room: this node's members, reported to the broker, and the
cluster-wide lists the broker sends back."""
import collections
import logging
import random
import time

import gevent

from chatstream import config, fastjson, uid_proofs

log = logging.getLogger(__name__)

# The whole member set, however unchanged, at least this often (anti-entropy).
FULL_REPORT_MS = 30_000
# A member's uid (21 characters) and its proof in a report's ``proofs``, as JSON
# ("<uid>":"<proof>",), counted per member: a uid in several rooms is counted each time.
PROOF_ENTRY_BYTES = 21 + uid_proofs.PROOF_HEX_DIGITS + 6
# Each node's first periodic whole set comes at a random point of its period: nodes
# started together would send theirs in the same instant, and every publish would
# wait behind them at the broker.


class LocalMembers:
    """This node's members: room -> (nick, uid) -> number of connections using it.

    A join or leave marks its room dirty; :meth:`flush` (every presence
    interval) reports the dirty rooms' lists at once, so a burst of joins costs
    one report, not one per join.  A report names each member as ``[nick, uid]``
    (the broker sequences a room event only from a uid its node registered in
    the room) and carries ``proofs``, {uid: proof} of its members' uids (the broker
    registers no uid without its proof, chatstream/uid_proofs.py; a separate field, so
    a broker older than the node ignores it), so before a connection's event goes out
    :meth:`register` sends its room's pending change first, on the same socket.
    Every report is sent in frames of at most ``max_report_bytes`` of rooms and nicks (``part`` 0, 1 ... with ``more``
    on all but the last), which the broker puts together before applying: the
    broker reads no frame larger than one message.

    :param send: sends one ``presence`` frame to the broker (fire and forget).
    :param node: this node's name, on every report.
    :param max_report_bytes: rooms and nicks per frame, at most (JSON bytes).
    """

    def __init__(self, send, node, max_report_bytes=config.MAX_PAYLOAD_BYTES):
        self.send = send
        self.node = node
        self.max_report_bytes = max_report_bytes
        self.rooms = collections.defaultdict(collections.Counter)
        self.dirty = set()      # rooms whose members changed since the last report
        self.stopping = False   # said goodbye: report no more members
        self.full_reports = 0   # whole member sets sent so far
        self.proofs = {}        # uid -> [its proof, memberships holding it]

    def __contains__(self, room):
        return room in self.rooms

    def joined(self, room, nick, uid=None, proof=None):
        members = self.rooms[room]
        members[nick, uid] += 1
        if members[nick, uid] == 1:
            self.dirty.add(room)
        if proof is not None:
            held = self.proofs.setdefault(uid, [proof, 0])
            held[0] = proof
            held[1] += 1

    def left(self, room, nick, uid=None):
        """Count one connection fewer (the ``nick`` and ``uid`` it joined with);
        True when the room has no local member left."""
        members = self.rooms[room]
        if (nick, uid) not in members:
            log.warning("room %s: %r (uid %s) left without having joined", room, nick, uid)
        members[nick, uid] -= 1
        if members[nick, uid] <= 0:
            del members[nick, uid]
            self.dirty.add(room)
        held = self.proofs.get(uid)
        if held is not None:
            held[1] -= 1
            if held[1] <= 0:
                del self.proofs[uid]
        empty = not members
        if empty:
            del self.rooms[room]
        return empty

    def nicks(self, room):
        """The room's local nicks, sorted, each once."""
        return sorted({nick for nick, _ in self.rooms.get(room, ())})

    def members(self, room):
        """The room's members as a report names them: ``[nick, uid]``, sorted."""
        return [[nick, uid] if uid is not None else nick
                for nick, uid in sorted(self.rooms.get(room, ()), key=_member_order)]

    def register(self, room):
        """The room's unreported change, reported now: a connection's event that
        follows on the same socket finds it registered at the broker."""
        if room in self.dirty:
            self.dirty.discard(room)
            self._report({room: self.members(room)})

    def flush(self, alive=False):
        """Report the rooms whose nicks changed since the last report (with ``alive``,
        an empty report when none did); True when a report went."""
        if not (self.dirty or alive):
            return False
        dirty, self.dirty = self.dirty, set()
        self._report({room: self.members(room) for room in sorted(dirty)})
        return True

    def report_all(self):
        """The whole member set: it heals any report that was lost (sent after every
        resync and every ``full_every_ms``)."""
        self.dirty.clear()
        self.full_reports += 1
        self._report({room: self.members(room) for room in self.rooms}, full=True)

    def report_forever(self, interval_ms, alive_every_ms, full_every_ms=FULL_REPORT_MS):
        """Changed rooms every ``interval_ms``; at least one report (an empty one when
        nothing changed) every ``alive_every_ms``, which keeps this node alive in the
        broker's registry; everything every ``full_every_ms``, not every heartbeat:
        the whole set of a busy node is large for the broker to parse and diff."""
        now = time.monotonic()
        next_full = now + random.uniform(0.5, 1.0) * full_every_ms / 1000.0
        next_alive = now
        while True:
            gevent.sleep(min(interval_ms, alive_every_ms) / 1000.0)
            now = time.monotonic()
            # silent for half the broker's node TTL (this node's loop was stalled): the
            # broker may have expired its members, and only the whole set brings them back
            stalled = now - next_alive > config.NODE_TTL_MS / 2000.0
            if now >= next_full or stalled:
                next_full = now + full_every_ms / 1000.0
                self.report_all()
            elif not self.flush(alive=now >= next_alive):
                continue
            next_alive = now + alive_every_ms / 1000.0

    def goodbye(self):
        """This node is stopping: the broker drops its members at once."""
        self._report({}, full=True, bye=True)

    def _report(self, rooms, full=False, bye=False):
        if self.stopping:
            return
        self.stopping = bye
        proofs = self.proofs
        parts = list(split_report(rooms, self.max_report_bytes,
                                  PROOF_ENTRY_BYTES if proofs else 0))
        for part, chunk in enumerate(parts):
            fields = {}
            if proofs:
                fields["proofs"] = {member[1]: proofs[member[1]][0] for members in chunk.values()
                                    for member in members
                                    if member.__class__ is list and member[1] in proofs}
            self.send("presence", node=self.node, rooms=chunk, full=full, bye=bye,
                      part=part, more=part < len(parts) - 1, **fields)


def _member_order(member):
    nick, uid = member
    return nick, uid or ""


def split_report(rooms, max_bytes, member_extra_bytes=0):
    """{room: [nick]} as chunks of at most ``max_bytes`` of JSON each; a room
    too large for one chunk continues in the next (the broker joins its lists).
    Always at least one chunk, possibly empty.

    :param member_extra_bytes: what else each member adds to its chunk's frame
        (its uid's entry in ``proofs``)."""
    chunk, size = {}, 0
    for room, nicks in rooms.items():
        room_bytes = len(fastjson.dumpb(room)) + 4      # "room":[], separators
        if size + room_bytes > max_bytes and chunk:
            yield chunk
            chunk, size = {}, 0
        listed = chunk[room] = []
        size += room_bytes
        for nick in nicks:
            nick_bytes = len(fastjson.dumpb(nick)) + 1 + member_extra_bytes
            if size + nick_bytes > max_bytes and (listed or len(chunk) > 1):
                if not listed:
                    del chunk[room]
                yield chunk
                listed = []
                chunk, size = {room: listed}, room_bytes
            listed.append(nick)
            size += nick_bytes
    yield chunk


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
