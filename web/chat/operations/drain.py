"""A node moving its clients to the other nodes on request (``scripts/node drain``).

The balancer already sends the node no new sessions (``set server ... state drain``,
deploy/balancer.py); the node then closes its sessions in batches spread over the
plan's time, and each client reconnects through the balancer to another node and
resumes with ``since`` and ``epoch``.

The request is SIGUSR1, the plan a file (``CHAT_DRAIN_PLAN``, ``var/drain/<node>.json``):
``{"over_s": 30, "batch": 100}`` (``batch`` null: one second's share of the sessions
per batch).  A signal and a file rather than an HTTP endpoint: only the node's owner
(or root) can signal it or write under var/ (umask 077), and nothing new listens.
The node's port is reached by the balancer from a loopback address too
(``BALANCER_SOURCE``), so an endpoint "for loopback only" would be the public's,
behind one more secret.

A session is closed without Engine.IO's CLOSE packet (``close(abort=True)``): a
websocket gets what was queued for it, then a close frame; a waiting long-poll gets
what was queued (or an empty answer), its next request 400.  python-socketio's and
socket.io-client's clients take that as the transport lost and reconnect.  The server's
goodbyes would keep them away: socket.io-client after a Socket.IO DISCONNECT ("io
server disconnect"), python-socketio's client after an Engine.IO CLOSE packet too.
"""
import json
import logging
import math
import time

import gevent

from ..engine.sweeps import open_sessions

log = logging.getLogger(__name__)

TICK_S = 1.0            # between two batches when the plan gives no batch size
MAX_OVER_S = 3600.0     # a plan longer than an hour is a typo
YIELD_EVERY = 50        # closes between two yields: each runs the session's disconnect handler
# Past its plan, a drain goes on closing what is left (sessions that came straight to
# the node's port) this long, then stops: a node put back in the rotation
# (scripts/node undrain) must keep its new sessions.  scripts/node gives up as long after.
LATE_S = 30.0


class PlanError(ValueError):
    """The plan file is missing or not a plan."""


def read_plan(path):
    """``(over_s, batch)`` from the plan file at ``path`` (batch None: one second's share)."""
    try:
        with open(path, "rb") as f:
            plan = json.loads(f.read())
        over_s, batch = float(plan["over_s"]), plan.get("batch")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PlanError("%s: %s" % (path, exc)) from exc
    if not 0 <= over_s <= MAX_OVER_S:
        raise PlanError("%s: over_s %r is not 0-%d" % (path, over_s, MAX_OVER_S))
    if batch is not None and (type(batch) is not int or batch < 1):
        raise PlanError("%s: batch %r is not a positive integer" % (path, batch))
    return over_s, batch


def pace(sessions, over_s, batch=None, tick_s=TICK_S):
    """``(batch, interval_s)``: close ``batch`` sessions every ``interval_s`` so the
    last of ``sessions`` leaves about ``over_s`` after the first."""
    if batch is None:
        batch = max(1, math.ceil(sessions * tick_s / over_s)) if over_s else max(1, sessions)
    rounds = max(1, math.ceil(sessions / batch))
    return batch, (over_s / (rounds - 1) if rounds > 1 else tick_s)


class Drain:
    """Closes ``sio``'s sessions in batches when told (:meth:`start`), until none is open.

    :param sio: the node's python-socketio server.
    :param plan_path: the plan file :meth:`on_signal` reads.
    """

    def __init__(self, sio, plan_path):
        self.sio = sio
        self.plan_path = plan_path
        self.task = None

    @property
    def active(self):
        return self.task is not None and not self.task.dead

    def on_signal(self):
        """SIGUSR1: drain by the plan file (a bad plan is logged and changes nothing)."""
        try:
            over_s, batch = read_plan(self.plan_path)
        except PlanError as exc:
            log.error("drain requested, but no plan: %s", exc)
            return
        self.start(over_s, batch)

    def start(self, over_s, batch=None):
        """Drain by this plan from now on (a drain under way is replaced)."""
        if self.active:
            self.task.kill(block=False)
        self.task = gevent.spawn(self.run, over_s, batch)
        return self.task

    def open_count(self):
        return open_sessions(self.sio.eio.sockets)

    def run(self, over_s, batch=None):
        sessions = self.open_count()
        batch, interval_s = pace(sessions, over_s, batch)
        log.info("draining %d sessions: %d every %.2f s", sessions, batch, interval_s)
        began = time.monotonic()
        while True:
            closed = self.close_batch(batch)
            left = self.open_count()
            if not left:
                break
            if closed:
                log.info("drain: %d sessions closed, %d left", closed, left)
            if time.monotonic() - began > over_s + LATE_S:
                log.warning("drain stopped %.0f s past its plan: %d sessions left", LATE_S, left)
                return
            gevent.sleep(interval_s)
        log.info("drained: no session left after %.1f s", time.monotonic() - began)

    def close_batch(self, count):
        """Close up to ``count`` open sessions, oldest first; returns how many."""
        eio = self.sio.eio
        closed = 0
        for socket in list(eio.sockets.values()):
            if closed >= count:
                break
            if socket.closed or socket.closing:
                continue
            try:
                socket.close(wait=False, abort=True, reason=eio.reason.SERVER_DISCONNECT)
            except Exception:    # noqa: BLE001 - one session's handler failure stops no drain
                log.exception("drain: closing session %s failed", socket.sid)
            closed += 1
            if closed % YIELD_EVERY == 0:
                gevent.sleep(0)
        return closed
