"""The node's Prometheus metrics (``GET /metrics``, prometheus_client's text format).

Counters move on the hot path, so each costs one ``inc()`` (a lock and an add);
deliveries are counted once per room broadcast with its member count
(chat/engine/fanout.py), not once per member.  Gauges that describe state
(connections by transport, rooms with local members, the broker link) are read
at scrape time from the node's objects: nothing to keep up to date.  No label
names a room, a user or a connection (cardinality); ``error`` and ``event``
take the contract's few codes and event names.
"""
import os
import time

from prometheus_client import (CollectorRegistry, Counter, Histogram, ProcessCollector,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily



class ProcessMetrics(ProcessCollector):
    """prometheus_client's process metrics (CPU, memory, start time: a restart shows),
    with ``process_open_fds`` read by one ``stat``.

    The library counts open files by listing ``/proc/<pid>/fd``, one name per
    connection: tens of ms with the node's loop stopped, every scrape.  Linux (6.2 on)
    gives the count as that directory's size; where it gives 0, the library's own
    count stands."""

    def collect(self):
        fd_dir = os.path.join(self._proc, str(self._pid()).strip(), "fd")
        try:
            count = os.stat(fd_dir).st_size
        except OSError:
            count = 0
        if not count:
            return super().collect()
        listdir = os.listdir
        try:   # the base class's one listdir, answered by the count (no greenlet runs meanwhile)
            os.listdir = lambda path: range(count) if path == fd_dir else listdir(path)
            return super().collect()
        finally:
            os.listdir = listdir


REGISTRY = CollectorRegistry(auto_describe=True)
ProcessMetrics(registry=REGISTRY)

ACCEPTED = Counter("chat_messages_accepted", "Messages sequenced and acknowledged ok",
                   registry=REGISTRY)
REFUSED = Counter("chat_messages_refused", "Messages refused, by the contract's error code",
                  ["error"], registry=REGISTRY)
DELIVERIES = Counter("chat_deliveries", "Events sent to local members (one per member)",
                     registry=REGISTRY)
ACK_SECONDS = Histogram(
    "chat_ack_seconds", "From a message's arrival to its ack (sequenced by the broker)",
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RATE_LIMITED = Counter("chat_rate_limited", "Requests refused rate_limited, by event",
                       ["event"], registry=REGISTRY)
GC_SECONDS = Histogram("chat_gc_seconds", "Time the cyclic garbage collector stopped the "
                       "node, per collection, by generation", ["generation"],
                       buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=REGISTRY)
LOOP_LAG_SECONDS = Histogram("chat_loop_lag_seconds", "How late the event loop woke a probe "
                             "due every 0.1 s: the node held by one piece of code",
                             buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
                             registry=REGISTRY)
SLOW_CLIENTS_CUT = Counter("chat_slow_clients_cut", "Connections cut for not reading",
                           registry=REGISTRY)
CHANGES = Counter("chat_changes_accepted", "Edits and deletes sequenced and acknowledged ok",
                  ["kind"], registry=REGISTRY)

LINK_STATES = ("connecting", "syncing", "live", "down")


class NodeState:
    """Gauges read at scrape time from the node's server and broker link."""

    def __init__(self, sio, link):
        self.sio = sio
        self.link = link

    def describe(self):
        return []

    def collect(self):
        by_transport = self.sio.eio.sessions_by_transport()
        connections = GaugeMetricFamily("chat_connections", "Engine.IO sessions, by transport",
                                        labels=["transport"])
        for transport, count in by_transport.items():
            connections.add_metric([transport], count)
        yield connections
        pairs = getattr(self.link, "pair_states", None)   # several pairs (link/sharded.py)
        local_rooms = self.link.local_rooms() if pairs else self.link.local.rooms
        yield GaugeMetricFamily("chat_rooms_local", "Rooms with members on this node",
                                value=len(local_rooms))
        state = GaugeMetricFamily("chat_link_state", "1 for the broker link's current state"
                                  " (with several pairs, the least advanced pair's)",
                                  labels=["state"])
        for name in LINK_STATES:
            state.add_metric([name], 1 if self.link.state.value == name else 0)
        yield state
        if pairs:
            pair_state = GaugeMetricFamily(
                "chat_link_pair_state", "1 for each broker pair's link state (the pair named)",
                labels=["pair", "state"])
            for pair, current in pairs().items():
                for name in LINK_STATES:
                    pair_state.add_metric([pair, name], 1 if current.value == name else 0)
            yield pair_state
        yield GaugeMetricFamily("chat_link_up", "1 while the link follows the broker (live)",
                                value=1 if self.link.broker_up else 0)
        yield GaugeMetricFamily("chat_heartbeat_age_seconds", "Since the broker was last heard",
                                value=max(0.0, time.monotonic() - self.link.last_heard))


def watch(sio, link):
    """Serve ``sio``'s and ``link``'s state on this process's /metrics (once per process)."""
    REGISTRY.register(NodeState(sio, link))


def exposition():
    """This process's metrics in the Prometheus text format (bytes)."""
    return generate_latest(REGISTRY)
