"""The cyclic garbage collector of a node, watched.

A node holding thousands of connections holds millions of objects (every
connection's greenlets, frames, sockets and Engine.IO / Socket.IO state).  A
full collection walks all of them with the whole process stopped: no greenlet
runs, no /healthz answers, no broker heartbeat is read.  This module times every
collection (``chat_gc_seconds{generation}``) and logs each that stops the node
for :data:`SLOW_S` or more, so a stall has a name in the logs and on the
dashboard.

It also makes full collections rare.  CPython runs one whenever the objects that
survived into the oldest generation grew by a quarter since the last one: while
a node takes on clients, that is every second or two, each walking every
connection's objects (~100 per connection; 0.4 s at 12,000 connections on one
core) and freeing next to nothing (0-31 objects measured; connections are freed
by reference counting).  :func:`install` asks for a full collection only after
:data:`FULL_AFTER` collections of the middle generation (CPython's default: 10),
i.e. after some 7 million net allocations; the young generations are collected
as before, so short-lived cycles are still freed at once.
"""
import gc
import logging
import time

from .metrics import GC_SECONDS

log = logging.getLogger(__name__)

SLOW_S = 0.1
FULL_AFTER = 1000


def install(slow_s=SLOW_S, full_after=FULL_AFTER):
    """Time every collection from now on, and make full ones rare (once per process)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, full_after)
    started = []

    def watch(phase, info):
        if phase == "start":
            started.append(time.perf_counter())
            return
        took = time.perf_counter() - started.pop() if started else 0.0
        GC_SECONDS.labels(str(info["generation"])).observe(took)
        if took >= slow_s and info["generation"] == 2:   # young ones: the histogram
            log.warning("gc: a full collection stopped the node for %.2f s (%d objects freed)",
                        took, info["collected"])

    if not any(getattr(cb, "__name__", "") == "watch" for cb in gc.callbacks):
        gc.callbacks.append(watch)
