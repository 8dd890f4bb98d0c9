"""The node's periodic sweeps of its Engine.IO sessions, and how they cut a connection off.

Engine.IO gives every connection an unbounded outgoing queue; a client that
stops reading (a hung tab, a stalled network) would make it grow with every
room message.  :class:`SlowClientReaper` disconnects, every ``interval_s``, any
connection whose queue holds more than ``max_queue`` packets and drops what was
queued for it, so a node's memory stays bounded by max_queue x connections.  The
same sweep closes half-open sessions: an Engine.IO handshake with no Socket.IO
connect within ``half_open_timeout_s``.  :func:`service_forever` replaces
engineio's own sweep of pong deadlines.

The Engine.IO internals they rely on are rows of ``patches.PATCHES``
(``Socket.close``, ``Server.sockets``); the tables they read (``opened``,
``backlogged``) are kept by ``server.ChatSockets``, ``ChatSocket.send`` and ``WsConn``.
"""
import logging
import math
import socket as stdlib_socket
import time

import gevent

from chatstream import config
from ..operations import metrics

log = logging.getLogger(__name__)

SERVICE_TICK_S = 0.25   # how often service_forever looks at its next slice of sessions


def backlogs(sio):
    """``(eio_sid, packets queued)`` for every open connection of ``sio`` with a
    packet queued since the last look (drained ones are forgotten)."""
    sockets = sio.eio.sockets
    found = []
    for eio_sid in list(sockets.backlogged):
        socket = sockets.get(eio_sid)
        queued = 0 if socket is None or socket.closed else socket.queue.qsize()
        if queued:
            found.append((eio_sid, queued))
        else:
            sockets.backlogged.discard(eio_sid)
    return found


def cut_off(sio, eio_sid):
    """Abort a connection at once and drop what was queued for it.

    A CLOSE packet would only queue behind the backlog, so the socket is
    aborted: a websocket's connection closed with its unsent frames dropped; a
    long-poll's queue emptied, its writer let go (``None``) and its TCP connection
    shut down, as its response may be stuck in ``sendall``.
    """
    socket = sio.eio.sockets.get(eio_sid)
    if socket is None or socket.closed:
        return False
    socket.close(wait=False, abort=True)
    sio.eio.sockets.pop(eio_sid, None)
    if socket.conn is not None:
        socket.conn.abort()
        return True
    while not socket.queue.empty():
        socket.queue.get_nowait()
        socket.queue.task_done()
    socket.queue.put(None)
    _shutdown(socket.poll_connection)
    return True


def _shutdown(tcp):
    """Shut down a cut-off client's TCP connection: a websocket writer or a long-poll
    response may sit in ``sendall`` to a client that reads nothing, which only an
    error ends (no send timeout)."""
    if tcp is not None:
        try:
            tcp.shutdown(stdlib_socket.SHUT_RDWR)
        except OSError:
            pass                         # already gone


def open_sessions(sockets):
    """Engine.IO sessions in ``sockets`` (``Server.sockets``) not closed: the closed
    ones engineio has not removed yet are in its ``gone`` (a plain dict has none)."""
    return len(sockets) - len(getattr(sockets, "gone", ()))


def half_open(sio, older_than_s):
    """Engine.IO sids of ``sio`` open over ``older_than_s`` with no Socket.IO connection.

    Looks at the sessions not yet found connected, oldest first, and stops at the
    first one too young: each session is looked at about once."""
    sockets = sio.eio.sockets
    limit = time.monotonic() - older_than_s
    stale = []
    for eio_sid, opened_s in list(sockets.opened.items()):
        socket = sockets.get(eio_sid)
        if socket is None or socket.closed or sio.manager.sid_from_eio_sid(eio_sid, "/") is not None:
            del sockets.opened[eio_sid]              # gone, or connected: never half-open again
        elif opened_s >= limit:
            break
        else:
            stale.append(eio_sid)                    # forgotten once closed (cut_off)
    return stale


def service_forever(eio, tick_s=SERVICE_TICK_S):
    """engineio's service task (``Server._service_task``), woken every ``tick_s``.

    Like engineio's, a round looks at every session once per ``ping_timeout``: a
    closed one leaves the table, a live one's pong deadline is checked (overdue:
    closed).  engineio sleeps ``ping_timeout / sessions`` between any two sessions,
    hundreds of wake-ups a second on a full node; here each wake-up takes its
    round's next slice.  Ends when
    engineio sets ``service_task_event`` (its shutdown)."""
    event = eio.service_task_event = eio.create_event()
    round_, done, share = [], 0, 1
    while not event.wait(timeout=tick_s):
        if done >= len(round_):
            round_, done = list(eio.sockets.values()), 0
            share = max(1, math.ceil(len(round_) * tick_s / eio.ping_timeout))
        for socket in round_[done:done + share]:
            try:
                if socket.closed:
                    if eio.sockets.get(socket.sid) is socket:
                        del eio.sockets[socket.sid]
                elif not socket.closing:
                    socket.check_ping_timeout()
            except Exception:        # noqa: BLE001 - one session's failure stops no round
                log.exception("service task: session %s", socket.sid)
        done += share


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
        for eio_sid, queued in backlogs(self.sio):
            if queued <= self.max_queue:
                continue
            log.warning("connection %s stopped reading (%d packets queued): disconnecting",
                        eio_sid, queued)
            cut += cut_off(self.sio, eio_sid)
        if cut:
            metrics.SLOW_CLIENTS_CUT.inc(cut)
        return cut

    def sweep_half_open(self):
        """Close every session past the half-open timeout; returns how many."""
        stale = half_open(self.sio, self.half_open_timeout_s)
        if stale:
            log.info("closing %d Engine.IO sessions that never connected to Socket.IO",
                     len(stale))
        return sum(cut_off(self.sio, eio_sid) for eio_sid in stale)
