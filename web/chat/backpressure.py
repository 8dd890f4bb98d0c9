"""Bounded per-connection send queues: a client that stops reading is cut off.

Engine.IO gives every connection an unbounded outgoing queue; a client that
stops reading (a hung tab, a stalled network) would make it grow with every
room message.  A sweep every ``interval_s`` disconnects any connection whose
queue holds more than ``max_queue`` packets, and drops what was queued for it,
so a node's memory stays bounded by max_queue x connections.  The Engine.IO
internals this takes (the queue, an aborting close) are ``patches.cut_off``'s.
"""
import logging

import gevent

from . import patches

log = logging.getLogger(__name__)


class SlowClientReaper:
    """Disconnects connections whose outgoing queue is over the limit.

    :param sio: the python-socketio Server.
    :param max_queue: packets a connection may have waiting.
    :param interval_s: how often queues are checked.
    """

    def __init__(self, sio, max_queue=1000, interval_s=1.0):
        self.sio = sio
        self.max_queue = max_queue
        self.interval_s = interval_s

    def start(self):
        return self.sio.start_background_task(self._run)

    def _run(self):
        while True:
            gevent.sleep(self.interval_s)
            try:
                self.sweep()
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
        return cut
