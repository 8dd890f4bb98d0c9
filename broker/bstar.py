"""Binary Star: which broker of the failover pair serves (the ZeroMQ Guide, bstar).

A pure state machine: no sockets, an injectable clock.  The broker composes it
(the peer link carries each side's state as a heartbeat; every node request is
a ``CLIENT_REQUEST``) rather than re-implementing it.

States: ``PRIMARY`` and ``BACKUP`` are where the two brokers start, ``ACTIVE``
serves nodes, ``PASSIVE`` refuses them (``not_active``) and keeps a replica.
Events: ``PEER_PRIMARY``, ``PEER_BACKUP``, ``PEER_ACTIVE``, ``PEER_PASSIVE``
(the peer's heartbeat, every ``heartbeat_ms``) and ``CLIENT_REQUEST``.

The guide's table, with two changes (marked *):

============  ==============  =====================================================
state         event           result
============  ==============  =====================================================
PRIMARY       PEER_BACKUP     ACTIVE (the backup is there, passive)
PRIMARY       PEER_ACTIVE     PASSIVE (a restarted primary whose backup took over)
PRIMARY       CLIENT_REQUEST  * ACTIVE once the peer expiry passed, else refused
BACKUP        PEER_ACTIVE     PASSIVE
BACKUP        CLIENT_REQUEST  refused
ACTIVE        PEER_ACTIVE     * the older term exits (:class:`DualActive`), see below
ACTIVE        any other       stays ACTIVE (requests served)
PASSIVE       PEER_PRIMARY    ACTIVE (the former active restarted) *if in sync
PASSIVE       PEER_BACKUP     ACTIVE (the former active restarted) *if in sync
PASSIVE       PEER_PASSIVE    fatal: two passives (:class:`DualPassive`)
PASSIVE       CLIENT_REQUEST  ACTIVE if the peer expired *and in sync, else refused
PRIMARY,      PEER_PASSIVE    * ACTIVE when that passive says it is not in sync (it
BACKUP                        cannot take over, so the restarted one, whose store
                              is whole, serves)
============  ==============  =====================================================

No split brain: a backup becomes active only when it has lost the primary
(no heartbeat for ``2 * heartbeat_ms``) *and* a node asks it, since nodes ask
the backup only once the primary stopped answering them.  The guide lets a
PRIMARY serve at once; here it waits for the peer expiry too, so a primary
restarted while its backup is active cannot serve before it heard that backup.
A passive serves only once it holds everything the active had
(``in_sync``: its catch-up snapshot applied, see broker/replication.py).

Two actives (the guide: fatal for both) happen when a hung active wakes up
after its backup took over.  Each activation takes a ``term`` one above any
term it has heard (heartbeats carry it), so the active that took over holds
the higher term: only the lower one exits (equal terms: the backup exits),
and the nodes, which follow the broker that publishes, lose nothing.
"""
import logging
import time

log = logging.getLogger(__name__)

PRIMARY, BACKUP, ACTIVE, PASSIVE = "PRIMARY", "BACKUP", "ACTIVE", "PASSIVE"
STATES = (PRIMARY, BACKUP, ACTIVE, PASSIVE)
PEER_PRIMARY, PEER_BACKUP, PEER_ACTIVE, PEER_PASSIVE = (
    "PEER_PRIMARY", "PEER_BACKUP", "PEER_ACTIVE", "PEER_PASSIVE")
CLIENT_REQUEST = "CLIENT_REQUEST"
PEER_EVENTS = {PRIMARY: PEER_PRIMARY, BACKUP: PEER_BACKUP, ACTIVE: PEER_ACTIVE,
               PASSIVE: PEER_PASSIVE}


class BStarError(Exception):
    """The pair is in a state the protocol forbids; the broker exits (supervisor
    restarts it as PRIMARY/BACKUP, and it comes back passive)."""


class DualActive(BStarError):
    pass


class DualPassive(BStarError):
    pass


class BinaryStar:
    """One broker's view of the pair.

    :param primary: True for ``broker`` (starts PRIMARY), False for ``broker2``.
    :param heartbeat_ms: the peer heartbeat period; the peer is lost after two
        missed ones (the guide's rule: one lost packet is not a failover).
    :param clock: returns monotonic seconds (injectable for tests).
    """

    def __init__(self, primary, heartbeat_ms=1000, clock=time.monotonic):
        self.state = PRIMARY if primary else BACKUP
        self.heartbeat_ms = heartbeat_ms
        self.clock = clock
        self.peer_expiry = clock() + 2 * heartbeat_ms / 1000.0
        self.peer_state = None     # last state the peer announced
        self.peer_in_sync = True
        self.primary = primary
        self.term = 0              # raised on every activation (see the module docstring)
        self.peer_term = 0
        self.in_sync = primary     # a backup has nothing to lose; see set_in_sync
        self.on_active = None      # called with no argument when we become ACTIVE

    @property
    def serving(self):
        return self.state == ACTIVE

    def peer_alive(self):
        """The peer was heard within ``2 * heartbeat_ms``."""
        return self.clock() < self.peer_expiry

    def peer_heartbeat(self, peer_state, peer_in_sync=True, peer_term=0):
        """The peer announced ``peer_state`` (one of STATES), whether its
        replica is whole, and its term."""
        if peer_state not in PEER_EVENTS:
            raise ValueError("unknown peer state %r" % (peer_state,))
        self.peer_state = peer_state
        self.peer_in_sync = peer_in_sync
        self.peer_term = peer_term
        self.peer_expiry = self.clock() + 2 * self.heartbeat_ms / 1000.0
        self._execute(PEER_EVENTS[peer_state])

    def client_request(self):
        """A node asks this broker; True when it may be served (maybe after
        becoming ACTIVE), False when it must be refused ``not_active``."""
        return self._execute(CLIENT_REQUEST)

    def set_in_sync(self, in_sync):
        """The replica holds everything the active had (or no longer does)."""
        self.in_sync = in_sync

    def _become(self, state, why):
        log.warning("bstar: %s -> %s (%s)", self.state, state, why)
        self.state = state
        if state == ACTIVE:
            self.term = max(self.term, self.peer_term) + 1
        if state == ACTIVE and self.on_active is not None:
            self.on_active()

    def _execute(self, event):
        """Apply one event; True if a client request may be served."""
        state = self.state
        expired = not self.peer_alive()
        if state == PRIMARY:
            if event == PEER_BACKUP:
                self._become(ACTIVE, "connected to the backup (passive), ready as active")
            elif event == PEER_ACTIVE:
                self._become(PASSIVE, "connected to the backup (active), ready as passive")
            elif event == CLIENT_REQUEST and expired:
                self._become(ACTIVE, "no peer within its expiry, serving alone")
            elif event == PEER_PASSIVE and not self.peer_in_sync:
                self._become(ACTIVE, "the passive backup is not in sync, ready as active")
        elif state == BACKUP:
            if event == PEER_ACTIVE:
                self._become(PASSIVE, "connected to the primary (active), ready as passive")
            elif event == PEER_PASSIVE and not self.peer_in_sync and self.in_sync:
                self._become(ACTIVE, "the passive primary is not in sync, ready as active")
        elif state == ACTIVE:
            if event == PEER_ACTIVE and (self.term, self.primary) < (self.peer_term, True):
                raise DualActive("both brokers are active, the peer since term %d, this one "
                                 "since %d: exiting" % (self.peer_term, self.term))
            if event == PEER_ACTIVE:
                log.warning("bstar: the peer is active too, with an older term: it will exit")
        elif state == PASSIVE:
            if event in (PEER_PRIMARY, PEER_BACKUP) and self.in_sync:
                self._become(ACTIVE, "the former active restarted, ready as active")
            elif event == PEER_PASSIVE:
                raise DualPassive("both brokers are passive: exiting")
            elif event == CLIENT_REQUEST and expired and self.in_sync:
                self._become(ACTIVE, "the active is lost and a node asks: failover")
        return event == CLIENT_REQUEST and self.state == ACTIVE
