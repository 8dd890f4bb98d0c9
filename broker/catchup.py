"""The active's side of a catch-up: every room, streamed in bounded parts.

A passive that asks ``catchup`` gets the active's rooms in name order, a part
at a time, read straight from the store (``Sequencer.peek``: a room in memory
as it is there, any other from SQLite without loading it), so the active's
memory stays within its LRU bound however many rooms the store holds.  The
broker's loop sends one part after each commit (server.py) and keeps serving
nodes in between, so no part holds the loop for more than one part's work.

Order against the live stream (the peer link keeps the order of frames):
every part is read right after a commit, so it holds everything sequenced so
far; a message in a room the parts have not reached yet is not sent as a
``replicate`` (its room's part, read later, carries it), and one in a room
already sent follows that part as a ``replicate``.  Each part names the room it
continues ``after``: the passive makes the rooms of ``(after, last room]``
(the last part: everything after ``after``) exactly the part, and asks again
when a part is missing.

Flow: the passive acknowledges every part it stored (``replicated`` with
``ask`` and ``parts``, how many so far) and the active keeps at most
``PARTS_IN_FLIGHT`` parts unacknowledged, so neither broker queues the store in its
socket buffers and the passive's loop, applying a few parts per turn, keeps its
heartbeat on time.

Sizes: a part holds at most ``ROOMS_PER_PART`` rooms and :func:`part_bytes`
bytes, and the peer link reads frames of up to twice that
(:func:`peer_max_frame_bytes`); a single room larger than a part (messages
stored under a larger frame limit) goes alone with its oldest messages left out.
"""
import logging

from chatstream import fastjson

log = logging.getLogger(__name__)

ROOMS_PER_PART = 200      # rooms in one part, at most (besides PART_BYTES)
# Parts sent and not yet acknowledged, at most: enough to keep the link busy, few
# enough that neither broker queues the store in its socket buffers.
PARTS_IN_FLIGHT = 4
PART_BYTES = 1 << 20       # 1 MiB: a few ms of work per part, many rooms per frame
ENVELOPE_BYTES = 1024      # a part's other fields (type, epoch, after, ask, more)


def part_bytes(history_size, max_frame_bytes):
    """A part's size bound: 1 MiB, or more when one room's whole buffer of the
    largest messages (each at most one broker frame) needs more."""
    return max(PART_BYTES, history_size * max_frame_bytes + ENVELOPE_BYTES)


def peer_max_frame_bytes(history_size, max_frame_bytes):
    """The peer link's ``ZMQ_MAXMSGSIZE``: twice the largest part."""
    return 2 * part_bytes(history_size, max_frame_bytes)


def _room_bytes(name, state):
    return len(fastjson.dumpb(state)) + len(name.encode("utf-8")) + 4   # "name":{...},


def _fit(name, state, budget):
    """The room with only as many of its newest messages as fit ``budget``."""
    size = _room_bytes(name, dict(state, history=[]))
    kept = []
    for message in reversed(state["history"]):
        size += len(fastjson.dumpb(message)) + 1
        if size > budget:
            break
        kept.append(message)
    log.warning("catch-up: room %s is larger than a part (%d bytes); sent with its newest %d of "
                "%d messages", name, _room_bytes(name, state), len(kept), len(state["history"]))
    return dict(state, history=kept[::-1])


class CatchupStream:
    """One passive's catch-up in progress.

    :param sequencer: the active's sequencer (read with ``names_after`` and
        ``peek``; nothing is loaded into its memory).
    :param send: sends one peer frame.
    :param encode: builds a peer frame (broker/replication.py's ``encode``).
    :param ask: the passive's request number, echoed in every part.
    :param max_bytes: a part's size bound (:func:`part_bytes`).
    :param rooms_per_part: a part's room bound.
    """

    def __init__(self, sequencer, send, encode, ask, max_bytes, rooms_per_part=ROOMS_PER_PART):
        self.sequencer = sequencer
        self.send = send
        self.encode = encode
        self.ask = ask
        self.budget = max_bytes - ENVELOPE_BYTES
        self.rooms_per_part = max(1, rooms_per_part)
        self.cursor = ""       # the last room sent; the rooms after it are still to come
        self.parts = self.rooms = 0
        self.acked = 0         # parts the passive has stored

    def ready(self):
        """True while fewer than ``PARTS_IN_FLIGHT`` parts wait for the passive."""
        return self.parts - self.acked < PARTS_IN_FLIGHT

    def on_ack(self, parts):
        self.acked = max(self.acked, parts)

    def pending(self, room):
        """True while ``room``'s part is still to come (it will hold what the room has then)."""
        return room > self.cursor

    def step(self):
        """Send the next part (call it right after a commit); True once the last went."""
        names = self.sequencer.names_after(self.cursor, self.rooms_per_part)
        rooms, size = {}, 0
        for name in names:
            state = self.sequencer.peek(name)   # names_after's rooms exist
            room_size = _room_bytes(name, state)
            if rooms and size + room_size > self.budget:
                break
            if room_size > self.budget:
                state = _fit(name, state, self.budget)
                room_size = _room_bytes(name, state)
            rooms[name] = state
            size += room_size
        last = len(names) < self.rooms_per_part and len(rooms) == len(names)
        after, self.cursor = self.cursor, max(rooms) if rooms else self.cursor
        self.send(self.encode("rooms", epoch=self.sequencer.epoch, rooms=rooms, after=after,
                              more=not last, ask=self.ask))
        self.parts += 1
        self.rooms += len(rooms)
        return last
