"""broker.bstar: the Binary Star table, event by event, with a fake clock."""
import pytest

from broker import bstar
from broker.bstar import ACTIVE, BACKUP, PASSIVE, PRIMARY, BinaryStar

HEARTBEAT_MS = 1000


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make(primary=True, state=None, in_sync=None):
    clock = Clock()
    star = BinaryStar(primary, heartbeat_ms=HEARTBEAT_MS, clock=clock)
    if state is not None:
        star.state = state
    if in_sync is not None:
        star.set_in_sync(in_sync)
    return star, clock


def expire(clock):
    clock.now += 2 * HEARTBEAT_MS / 1000.0 + 0.001


def test_brokers_start_primary_and_backup():
    assert make(True)[0].state == PRIMARY
    assert make(False)[0].state == BACKUP


def test_primary_hearing_the_backup_becomes_active():
    star, _ = make(True)
    star.peer_heartbeat(BACKUP)
    assert star.state == ACTIVE and star.client_request()


def test_restarted_primary_with_an_active_backup_goes_passive():
    star, _ = make(True)
    star.peer_heartbeat(ACTIVE)
    assert star.state == PASSIVE
    assert not star.client_request()


def test_primary_that_has_not_heard_its_peer_serves_only_after_the_peer_expiry():
    star, clock = make(True)
    assert not star.client_request()
    assert star.state == PRIMARY
    expire(clock)
    assert star.client_request()
    assert star.state == ACTIVE


def test_primary_ignores_a_passive_peer_in_sync():
    star, _ = make(True)
    star.peer_heartbeat(PASSIVE)
    assert star.state == PRIMARY


def test_primary_serves_when_the_passive_peer_is_not_in_sync():
    star, _ = make(True)
    star.peer_heartbeat(PASSIVE, peer_in_sync=False)
    assert star.state == ACTIVE


def test_backup_hearing_the_active_primary_goes_passive():
    star, _ = make(False)
    star.peer_heartbeat(ACTIVE)
    assert star.state == PASSIVE


@pytest.mark.parametrize("expired", [False, True])
def test_backup_refuses_client_requests(expired):
    star, clock = make(False)
    if expired:
        expire(clock)
    assert not star.client_request()
    assert star.state == BACKUP


@pytest.mark.parametrize("peer", [PRIMARY, BACKUP])
def test_backup_ignores_primary_or_backup_peer(peer):
    star, _ = make(False)
    star.peer_heartbeat(peer)
    assert star.state == BACKUP


def test_two_actives_the_older_term_exits():
    """A hung primary wakes up after its backup took over (term 2): it exits."""
    primary, _ = make(True)
    primary.peer_heartbeat(BACKUP)
    assert (primary.state, primary.term) == (ACTIVE, 1)
    backup, bclock = make(False, state=PASSIVE, in_sync=True)
    backup.peer_heartbeat(ACTIVE, peer_term=primary.term)
    expire(bclock)
    assert backup.client_request() and backup.term == 2
    backup.peer_heartbeat(ACTIVE, peer_term=primary.term)       # the woken primary: it exits
    assert backup.state == ACTIVE
    with pytest.raises(bstar.DualActive):
        primary.peer_heartbeat(ACTIVE, peer_term=backup.term)


def test_two_actives_with_equal_terms_the_backup_exits():
    primary, _ = make(True, state=ACTIVE)
    backup, _ = make(False, state=ACTIVE)
    primary.peer_heartbeat(ACTIVE)
    with pytest.raises(bstar.DualActive):
        backup.peer_heartbeat(ACTIVE)


@pytest.mark.parametrize("peer", [PRIMARY, BACKUP, PASSIVE])
def test_active_stays_active(peer):
    star, _ = make(True, state=ACTIVE)
    star.peer_heartbeat(peer)
    assert star.state == ACTIVE and star.client_request()


def test_active_keeps_serving_after_losing_the_peer():
    star, clock = make(True, state=ACTIVE)
    expire(clock)
    assert star.client_request() and not star.peer_alive()


@pytest.mark.parametrize("peer", [PRIMARY, BACKUP])
def test_passive_in_sync_takes_over_when_the_former_active_restarts(peer):
    star, _ = make(False, state=PASSIVE, in_sync=True)
    star.peer_heartbeat(peer)
    assert star.state == ACTIVE


def test_passive_not_in_sync_never_takes_over():
    star, clock = make(False, state=PASSIVE, in_sync=False)
    star.peer_heartbeat(PRIMARY)
    assert star.state == PASSIVE
    expire(clock)
    assert not star.client_request() and star.state == PASSIVE


def test_two_passives_is_fatal():
    star, _ = make(False, state=PASSIVE, in_sync=True)
    with pytest.raises(bstar.DualPassive):
        star.peer_heartbeat(PASSIVE)


def test_passive_with_a_client_request_before_the_peer_expiry_refuses():
    star, clock = make(False, state=PASSIVE, in_sync=True)
    star.peer_heartbeat(ACTIVE)
    clock.now += 2 * HEARTBEAT_MS / 1000.0 - 0.01
    assert not star.client_request()
    assert star.state == PASSIVE


def test_passive_with_a_client_request_after_losing_the_active_fails_over():
    star, clock = make(False, state=PASSIVE, in_sync=True)
    became = []
    star.on_active = lambda: became.append(star.state)
    star.peer_heartbeat(ACTIVE)
    expire(clock)
    assert star.peer_alive() is False
    assert star.client_request()
    assert star.state == ACTIVE and became == [ACTIVE]


def test_passive_that_lost_the_active_without_any_request_stays_passive():
    """The backup alone cannot tell a dead primary from a cut A-B link."""
    star, clock = make(False, state=PASSIVE, in_sync=True)
    expire(clock)
    star.peer_heartbeat(ACTIVE)   # heard again: nothing happened
    assert star.state == PASSIVE


def test_split_brain_refused_while_the_peer_heartbeat_arrives():
    """Primary active, backup passive, a node wrongly asks the backup: refused
    for as long as the primary's heartbeats arrive."""
    primary, pclock = make(True)
    backup, bclock = make(False)
    primary.peer_heartbeat(BACKUP)
    backup.peer_heartbeat(ACTIVE)
    backup.set_in_sync(True)
    for _ in range(10):
        pclock.now += 1.0
        bclock.now += 1.0
        primary.peer_heartbeat(backup.state)
        backup.peer_heartbeat(primary.state)
        assert not backup.client_request()
    assert (primary.state, backup.state) == (ACTIVE, PASSIVE)


def test_unknown_peer_state_is_refused():
    star, _ = make(True)
    with pytest.raises(ValueError):
        star.peer_heartbeat("LEADER")
