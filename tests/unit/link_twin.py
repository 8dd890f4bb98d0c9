"""Links over the in-memory twin, and a listener that records what they deliver."""
import time

import gevent

from chat.link import BrokerLink
from harness.twins import MemoryBroker


# A deadline, not a wait: the twins answer in milliseconds, a machine busy with other
# suites (load 9 on two cores) took over 2 s for 500 announcements.
WAIT_S = 10.0


def wait_for(predicate, timeout=WAIT_S, what="condition"):
    """Let the link's greenlets run until ``predicate()`` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        gevent.sleep(0.001)


class Recorder:
    """The link's listener: keeps what it was asked to do."""

    def __init__(self):
        self.delivered = []    # (event, data, room)
        self.restarted = []    # rooms
        self.evicted = []      # (room, uid, reason, until)
        self.resyncs = 0

    def deliver(self, event, data, room):
        self.delivered.append((event, data, room))

    def restart_room(self, room):
        self.restarted.append(room)

    def evict(self, room, uid, reason, until):
        self.evicted.append((room, uid, reason, until))

    def resynced(self):
        self.resyncs += 1

    def announcements(self, room=None):
        return [data["text"] for event, data, r in self.delivered
                if event == "announcement" and (room is None or r == room)]

    def messages(self, room=None):
        return [data for event, data, r in self.delivered
                if event == "message" and (room is None or r == room)]

    def texts(self, room=None):
        return [m["text"] for m in self.messages(room)]


def start_link(broker, node="n1", **kwargs):
    """A started link on ``broker`` and its recorder (not synced yet)."""
    kwargs.setdefault("ack_timeout_s", 1.0)
    kwargs.setdefault("heartbeat_ms", 50)
    kwargs.setdefault("dead_after_ms", 150)
    link = BrokerLink(broker.transport(), node=node, **kwargs)
    recorder = Recorder()
    link.start(recorder)
    return link, recorder


def synced_links(count=2, broker=None, **kwargs):
    """A broker (new by default) and ``count`` live links on it."""
    broker = broker or MemoryBroker(history_size=kwargs.pop("history_size", 50))
    links = [start_link(broker, "n%d" % (i + 1), **kwargs) for i in range(count)]
    broker.heartbeat()
    for link, _ in links:
        assert link.wait_synced(2.0)
    return broker, links
