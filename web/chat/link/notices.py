"""Announcements and member lists reach local members in a lane of their own, behind
the rooms' events.

In a reconnect storm the broker publishes a "joined" announcement per client and a
member list per changed room: many times the chat's own traffic, in the same PUB
stream.  Emitted as they are read, they held the link's reader, and every message and
ack behind them in the stream waited seconds.  So once the reader is behind (it has
read many frames in one turn), it only queues them here and goes on to the messages;
this lane's greenlet emits them in turns of its own.  While the reader keeps up and
nothing waits here, they are emitted at once, in the stream's order.

Neither is numbered nor replayed (docs/PROTOCOL.md), so coming after a later message is
within the contract.  A room's member list is its state, not an event: a newer one
replaces one still waiting.  The lane is bounded: past ``max_announcements`` waiting, a
new announcement is dropped (counted and logged), never a room event.
"""
import collections
import logging
import time

import gevent
from gevent.event import Event

from .transport import TURN_S, take_turn

log = logging.getLogger(__name__)

# Announcements waiting at most; a node that stays this far behind tells its members
# who came late, not who came at all.  About a storm's worth of joins for the rooms
# one node follows; a few MB at most.
MAX_ANNOUNCEMENTS = 20000
# How often dropped announcements are logged, at most (one line per storm, not per drop).
DROP_LOG_INTERVAL_S = 10.0


class NoticeLane:
    """The announcements and member lists read from the broker, waiting for their emit.

    :param deliver: ``deliver(event, data, room)``, the link listener's.
    :param turn_s: how long the lane emits before it lets the rest of the node run.
    :param max_announcements: announcements waiting at most (newer ones are dropped).
    """

    def __init__(self, deliver, turn_s=TURN_S, max_announcements=MAX_ANNOUNCEMENTS):
        self.deliver = deliver
        self.turn_s = turn_s
        self.max_announcements = max_announcements
        # ("announcement", data, room), or ("presence", None, room) whose list is in lists
        self.waiting = collections.deque()
        self.lists = {}           # room -> its newest member list not emitted yet
        self.announcements = 0    # announcements in waiting
        self.dropped = 0          # announcements dropped since the lane started
        self.logged_drops, self.next_drop_log = 0, 0.0
        self.ready = Event()

    def __len__(self):
        return len(self.waiting)

    def announce(self, room, announcement, at_once=False):
        """Queue an ``announcement`` for ``room``'s local members; with ``at_once`` (the
        reader keeps up), emit it now when nothing waits before it."""
        if at_once and not self.waiting:
            self.deliver("announcement", announcement, room)
            return
        if self.announcements >= self.max_announcements:
            self.dropped += 1
            return
        self.announcements += 1
        self.waiting.append(("announcement", announcement, room))
        self.ready.set()

    def presence(self, room, members, at_once=False):
        """Queue ``room``'s member list, replacing one still waiting, in its place; with
        ``at_once``, emit it now when nothing waits."""
        if at_once and not self.waiting:
            self.deliver("presence", {"room": room, "members": members}, room)
            return
        if room not in self.lists:
            self.waiting.append(("presence", None, room))
        self.lists[room] = members
        self.ready.set()

    def emit_waiting(self, limit=None):
        """Emit what waits (at most ``limit``), in turns of ``turn_s``; returns how many."""
        emitted, turn = 0, time.monotonic()
        while self.waiting and (limit is None or emitted < limit):
            event, data, room = self.waiting.popleft()
            if event == "presence":
                data = {"room": room, "members": self.lists.pop(room)}
            else:
                self.announcements -= 1
            try:
                self.deliver(event, data, room)
            except Exception:   # one member's failing emit stops nothing else
                log.exception("%s for %s not emitted", event, room)
            emitted += 1
            turn = take_turn(turn, self.turn_s)
        self._log_drops()
        return emitted

    def run_forever(self):
        """Emit what waits whenever something comes (the lane's greenlet)."""
        while True:
            self.ready.wait()
            self.ready.clear()
            self.emit_waiting()
            gevent.sleep(0)   # what came during the last emit waits its turn behind others

    def _log_drops(self):
        now = time.monotonic()
        if self.dropped > self.logged_drops and now >= self.next_drop_log:
            log.warning("%d announcements dropped: more than %d waited for their emit",
                        self.dropped - self.logged_drops, self.max_announcements)
            self.logged_drops, self.next_drop_log = self.dropped, now + DROP_LOG_INTERVAL_S
