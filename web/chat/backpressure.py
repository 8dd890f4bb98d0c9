"""Bounded per-connection send queues: a client that stops reading is cut off.

Engine.IO gives every connection an unbounded outgoing queue; a client that
stops reading (a hung tab, a stalled network) would make it grow with every
room message.  A sweep every ``interval_s`` disconnects any connection whose
queue holds more than ``max_queue`` packets, and drops what was queued for it,
so a node's memory stays bounded by max_queue x connections; its websocket is
shut down too, so a writer blocked on the full TCP buffer ends at once.

The same sweep closes half-open sessions: an Engine.IO handshake with no
Socket.IO connect within ``half_open_timeout_s`` (20,000 bare handshakes would
otherwise each hold a session).  The Engine.IO internals this takes (the queue,
an aborting close, the session table) are ``patches.cut_off``'s and
``patches.half_open``'s.
"""
import logging

import gevent

from chatstream import config
from . import metrics, patches

log = logging.getLogger(__name__)


class SlowClientReaper:
    """Disconnects connections whose outgoing queue is over the limit.

    :param sio: the python-socketio Server.
    :param max_queue: packets a connection may have waiting.
    :param interval_s: how often queues are checked.
    :param half_open_timeout_s: how long a session may wait for its Socket.IO connect.
    """

    def __init__(self, sio, max_queue=1000, interval_s=1.0,
                 half_open_timeout_s=config.HALF_OPEN_TIMEOUT_S):
        self.sio = sio
        self.max_queue = max_queue
        self.interval_s = interval_s
        self.half_open_timeout_s = half_open_timeout_s

    def start(self):
        return self.sio.start_background_task(self._run)

    def _run(self):
        while True:
            gevent.sleep(self.interval_s)
            try:
                self.sweep()
                self.sweep_half_open()
            except Exception:
                log.exception("slow-client sweep failed")

    def sweep(self):
        """Check every connection once; returns how many were cut off."""
        cut = 0
        for eio_sid, queued in patches.backlogs(self.sio):
            if queued <= self.max_queue:
                continue
            log.warning("connection %s stopped reading (%d packets queued): disconnecting",
                        eio_sid, queued)
            cut += patches.cut_off(self.sio, eio_sid)
        if cut:
            metrics.SLOW_CLIENTS_CUT.inc(cut)
        return cut

    def sweep_half_open(self):
        """Close every session past the half-open timeout; returns how many."""
        stale = patches.half_open(self.sio, self.half_open_timeout_s)
        if stale:
            log.info("closing %d Engine.IO sessions that never connected to Socket.IO",
                     len(stale))
        return sum(patches.cut_off(self.sio, eio_sid) for eio_sid in stale)
