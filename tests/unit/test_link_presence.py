"""Presence through the link: local members reported, cluster lists received."""
import pytest

from harness.twins import MemoryBroker

from .link_twin import synced_links, wait_for

pytestmark = pytest.mark.timeout(20)


def presence_events(recorder, room):
    return [data["members"] for event, data, r in recorder.delivered
            if event == "presence" and r == room]


def test_members_of_every_node_are_listed_once_on_every_node():
    broker, ((a, rec_a), (b, rec_b)) = synced_links()
    a.member_joined("r", "alice")
    b.member_joined("r", "bob")
    b.member_joined("r", "alice")          # the same nick on another node counts once
    wait_for(lambda: a.members("r") == b.members("r") == ["alice", "bob"])
    assert presence_events(rec_b, "r")[-1] == ["alice", "bob"]
    a.member_joined("s", "carol")
    wait_for(lambda: len(b.active_rooms()) == 2)
    assert b.active_rooms() == [("r", 2), ("s", 1)]


def test_a_nick_stays_while_one_of_its_connections_does():
    broker, ((a, _), (b, _)) = synced_links()
    a.member_joined("r", "alice")
    a.member_joined("r", "alice")
    a.member_left("r", "alice")
    wait_for(lambda: b.members("r") == ["alice"])
    a.member_left("r", "alice")
    wait_for(lambda: b.members("r") == [] and b.active_rooms() == [])


def test_goodbye_announces_the_nodes_members_as_gone():
    broker, ((a, rec_a), (b, rec_b)) = synced_links()
    b.follow("r")
    b.member_joined("r", "bob")
    a.member_joined("r", "alice")
    wait_for(lambda: b.members("r") == ["alice", "bob"])
    a.goodbye()
    wait_for(lambda: b.members("r") == ["bob"])
    assert ("announcement", "alice left") in [(e, d.get("text")) for e, d, _ in rec_b.delivered]
    a.member_joined("r", "late")           # said goodbye: reports nothing more
    broker.heartbeat()
    assert broker.presence.members("r") == ["bob"]


def test_a_silent_node_expires_and_a_reporting_one_does_not():
    clock = [1_000_000]
    broker = MemoryBroker(node_ttl_ms=5000, clock_ms=lambda: clock[0])
    broker, ((a, _), (b, rec_b)) = synced_links(broker=broker)
    b.follow("r")
    a.member_joined("r", "alice")
    b.member_joined("r", "bob")
    wait_for(lambda: b.members("r") == ["alice", "bob"])
    a.close()                               # a hangs: no more reports
    clock[0] += 4000
    b.local.report_all()                    # b's heartbeat report keeps it alive
    clock[0] += 2000
    broker.heartbeat()
    wait_for(lambda: b.members("r") == ["bob"], what="a's members to expire")
    assert ("announcement", "alice left") in [(e, d.get("text")) for e, d, _ in rec_b.delivered]


def test_a_broker_that_lost_its_state_hears_every_nodes_members_again():
    broker, ((a, _), (b, _)) = synced_links()
    a.member_joined("r", "alice")
    wait_for(lambda: broker.presence.members("r") == ["alice"])
    broker = broker.restart(keep_state=False)
    assert broker.presence.members("r") == []
    broker.heartbeat()                      # a new instance: nodes resync and report all
    wait_for(lambda: broker.presence.members("r") == ["alice"])
    wait_for(lambda: b.members("r") == ["alice"])


def test_a_large_member_set_travels_in_parts_that_fit_the_brokers_frame_limit():
    broker, ((a, _), (b, _)) = synced_links()
    nicks = ["😀%s" % ("x" * 29 + "%05d" % i)[-30:] for i in range(1500)]   # 4-byte first char
    for nick in nicks:
        a.member_joined("big", nick)
    for i in range(300):
        a.member_joined("room-%03d" % i, "someone")
    wait_for(lambda: len(b.members("big")) == 1500, what="the big room's members")
    wait_for(lambda: len(b.active_rooms()) == 301, what="every room")
    a.local.report_all()
    assert broker.oversize == []
    parts = [len(body) for channel, body in broker.frames_seen if b'"presence"' in body]
    assert max(parts) <= broker.max_frame_bytes and len(parts) > 10
    assert broker.presence.members("big") == sorted(nicks)


def test_the_twin_drops_a_frame_over_the_limit_like_zeromq():
    broker = MemoryBroker(max_frame_bytes=1000)
    broker, ((a, _),) = synced_links(1, broker=broker)
    a.follow("r")
    with pytest.raises(Exception):
        a.sequence("r", "alice", "x" * 2000)        # no reply: BrokerUnavailable
    assert broker.oversize and broker.oversize[0][0] == "intake"


class VirtualClock:
    """presence's ``time.monotonic`` and ``gevent.sleep``: a sleep moves the clock at once,
    so ``report_forever`` runs in virtual milliseconds, the same every run.

    :param until_ms: the loop ends (``Stop``) at the first sleep past this time.
    :param at_ms: ``{time: action}`` run by the first sleep that reaches the time.
    :param stall_at_ms: ``{time: ms}`` the loop stalls for (a sleep that oversleeps).
    """

    class Stop(Exception):
        pass

    def __init__(self, until_ms, at_ms=None, stall_at_ms=None):
        self.ms, self.until_ms = 0, until_ms
        self.at_ms, self.stall_at_ms = dict(at_ms or {}), dict(stall_at_ms or {})

    def monotonic(self):
        return self.ms / 1000.0

    def sleep(self, seconds):
        self.ms += round(seconds * 1000)
        for when in sorted(self.stall_at_ms):
            if self.ms >= when:
                self.ms += self.stall_at_ms.pop(when)
        for when in sorted(self.at_ms):
            if self.ms >= when:
                self.at_ms.pop(when)()
        if self.ms > self.until_ms:
            raise self.Stop()

    def run(self, monkeypatch, local, *args):
        """``local.report_forever(*args)`` on this clock, until ``until_ms``."""
        import types
        from chat.link import presence
        monkeypatch.setattr(presence, "time", types.SimpleNamespace(monotonic=self.monotonic))
        monkeypatch.setattr(presence, "gevent", types.SimpleNamespace(sleep=self.sleep))
        with pytest.raises(self.Stop):
            local.report_forever(*args)


def reporting(clock, room_members):
    """A LocalMembers of ``room_members`` whose reports are kept as (virtual ms, report)."""
    from chat.link.presence import LocalMembers
    sent = []
    local = LocalMembers(lambda type_, **report: sent.append((clock.ms, report)), "n1")
    for room, nick in room_members:
        local.joined(room, nick)
    local.report_all()
    sent.clear()
    return local, sent


def test_unchanged_members_cost_a_small_keepalive_and_the_whole_set_only_now_and_then(monkeypatch):
    from chat.link import presence
    monkeypatch.setattr(presence.random, "uniform", lambda a, b: b)   # the first whole set at 300 ms
    clock = VirtualClock(until_ms=370)
    local, sent = reporting(clock, [("room-%d" % i, "nick-%d" % i) for i in range(50)])
    clock.at_ms[200] = lambda: local.joined("room-0", "late")        # one change: its room only
    clock.run(monkeypatch, local, 10, 40, 300)
    full = [(ms, r) for ms, r in sent if r["full"]]
    alive = [ms for ms, r in sent if not r["full"] and not r["rooms"]]
    changed = [(ms, r["rooms"]) for ms, r in sent if not r["full"] and r["rooms"]]
    assert [ms for ms, _ in full] == [300] and len(full[0][1]["rooms"]) == 50   # at 300 ms, not every beat
    assert changed == [(200, {"room-0": ["late", "nick-0"]})]
    # a keepalive when 40 ms passed without a report, never more often
    times = [ms for ms, _ in sent]
    assert times == sorted(times) and len(alive) >= 6
    assert all(0 < later - earlier <= 40 + 10 for earlier, later in zip(times, times[1:])), times
    assert all(later - earlier >= 40 for earlier, later in zip(alive, alive[1:])), alive


def test_a_node_whose_loop_stalled_sends_the_whole_set_at_once(monkeypatch):
    """Stalled past half the broker's node TTL, it may have been expired there: only the
    whole set brings its members back (changes alone would wait for the next full report)."""
    from chatstream import config
    stall_ms = config.NODE_TTL_MS // 2 + 100
    clock = VirtualClock(until_ms=stall_ms + 200, stall_at_ms={50: stall_ms})
    local, sent = reporting(clock, [("r", "alice")])
    clock.run(monkeypatch, local, 10, 20, 60_000)
    before = [r for ms, r in sent if ms <= 50]
    after = [r for ms, r in sent if ms > 50]
    assert before and not any(r["full"] for r in before)
    assert after[0]["full"] and after[0]["rooms"] == {"r": ["alice"]}


def test_each_nodes_first_whole_set_comes_at_its_own_point_of_the_period(monkeypatch):
    """Six nodes started together sent their whole sets in the same instant every 30 s."""
    firsts = []
    for _ in range(8):
        clock = VirtualClock(until_ms=1000)
        local, sent = reporting(clock, [("r", "alice")])
        clock.run(monkeypatch, local, 5, 1000, 400)
        firsts.append(min(ms for ms, r in sent if r["full"]))
    assert all(200 <= ms <= 400 + 5 for ms in firsts), firsts     # within [0.5, 1.0] of the period
    assert len(set(firsts)) > 1, firsts                            # not all at the same point
