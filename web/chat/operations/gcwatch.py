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
connection's objects and freeing next to nothing (connections are freed by
reference counting).  :func:`install` asks for a full collection only after
:data:`FULL_AFTER` collections of the middle generation (CPython's default: 10),
i.e. after some 7 million net allocations (``CHAT_GC_FULL_AFTER``, each process
drawing its own count within 25 % of it); the young generations are collected
as before, so short-lived cycles are still freed at once.  Rare is not free: a
node that has served many connections still meets one.
"""
import gc
import logging
import random
import time

from .metrics import GC_SECONDS

log = logging.getLogger(__name__)

SLOW_S = 0.1
FULL_AFTER = 1000          # settings.CHAT_GC_FULL_AFTER's default
FULL_AFTER_SPREAD = 0.25   # each process draws its own count, within +-25 % of it


def full_after_here(full_after=FULL_AFTER, spread=FULL_AFTER_SPREAD, rng=random):
    """This process's count of middle collections between full ones.

    Drawn per process: nodes started together and loaded alike would reach the same
    count together and stop for their full collections at the same moment."""
    return max(1, round(full_after * rng.uniform(1 - spread, 1 + spread)))


def install(slow_s=SLOW_S, full_after=FULL_AFTER, spread=FULL_AFTER_SPREAD):
    """Time every collection from now on, and make full ones rare (once per process)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, full_after_here(full_after, spread))
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
