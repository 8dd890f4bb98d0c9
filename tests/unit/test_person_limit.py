"""chat.protocol.person_limit.PersonLimits: one allowance per person, shared by nodes."""
import pytest

from chat.protocol.identity import Identity
from chat.protocol.person_limit import PersonLimits, address_key
from chat.protocol.ratelimit import RateLimited
from chatstream import rules

from .test_ratelimit import FakeClock

ALICE = Identity("a" + "1" * 20, "alice", user_id=1)
GUEST = Identity("g" + "2" * 20)
ANONYMOUS = Identity("c" + "3" * 20)


class Wire:
    """Two nodes' limiters and the broker between them: a report reaches every node."""

    def __init__(self, *limits):
        self.limits = limits
        for i, limit in enumerate(limits):
            limit.link = self.Link(self, "n%d" % i)

    class Link:
        def __init__(self, wire, node):
            self.wire, self.node = wire, node

        def fanout(self, type_, **fields):
            for limit in self.wire.limits:
                limit.on_usage(dict(fields, node=self.node))
            return True


def allowed(limit, identity, event="message", address=None, tries=1000):
    for count in range(tries):
        try:
            limit.check(identity, event, address)
        except RateLimited as exc:
            return count, exc
    raise AssertionError("never refused")


def test_a_person_over_the_burst_is_refused_with_a_retry_hint():
    clock = FakeClock()
    limit = PersonLimits({"message": (2.0, 4)}, clock=clock)
    count, refusal = allowed(limit, ALICE)
    assert count == 4
    ack = refusal.ack()
    assert ack["error"] == "rate_limited" and ack["retry_after_ms"] == 500
    clock.advance(0.5)
    limit.check(ALICE, "message")      # one earned back


def test_a_report_from_another_node_is_charged_here():
    clock = FakeClock()
    one, two = (PersonLimits({"message": (1.0, 10)}, clock=clock) for _ in range(2))
    Wire(one, two)
    assert allowed(one, ALICE)[0] == 10
    one.share()
    assert allowed(two, ALICE)[0] == 0        # the same person, spent on node one
    assert allowed(two, Identity("a" + "9" * 20))[0] == 10   # another person is not


def test_a_node_does_not_charge_its_own_report_twice():
    clock = FakeClock()
    one = PersonLimits({"message": (1.0, 10)}, clock=clock)
    Wire(one)
    for _ in range(4):
        one.check(ALICE, "message")
    one.share()
    assert allowed(one, ALICE)[0] == 6


def test_guests_count_per_session_and_per_address():
    clock = FakeClock()
    limit = PersonLimits({"message": (1.0, 3)}, address_factor=2, secret="k", clock=clock)
    assert allowed(limit, GUEST, address="10.0.0.1")[0] == 3
    # anonymous guests are new people at each connection: their address bounds them
    others = sum(allowed(limit, Identity("c%020d" % i), address="10.0.0.1")[0] for i in range(5))
    assert others == 6 - 3
    assert allowed(limit, ANONYMOUS, address="10.0.0.2")[0] == 6
    assert allowed(limit, ALICE, address="10.0.0.1")[0] == 3     # accounts: per account only


def test_requests_without_a_person_rate_are_not_limited_and_keys_are_wire_safe():
    limit = PersonLimits({"message": (1.0, 1)}, secret="k")
    for _ in range(100):
        limit.check(ALICE, "rooms")
    assert rules.person_key(address_key("k", "2001:db8::1"))


def test_full_buckets_are_forgotten_and_the_table_is_bounded():
    clock = FakeClock()
    limit = PersonLimits({"message": (1.0, 2)}, clock=clock, max_tracked=3)
    for i in range(5):
        limit.check(Identity("a%020d" % i), "message")
    clock.advance(10)
    limit.check(Identity("a%020d" % 9), "message")
    limit.forget_full()
    assert list(limit.buckets) == [("a%020d" % 9, "message")]


def test_a_report_names_at_most_a_frame_of_persons():
    sent = []

    class Link:
        node = "n1"

        def fanout(self, type_, **fields):
            sent.append(fields["spent"])

    limit = PersonLimits({"message": (1.0, 2)})
    limit.link = Link()
    for i in range(450):
        limit.check(Identity("a%020d" % i), "message")
    limit.share()
    assert [len(s) for s in sent] == [200, 200, 50] and not limit.spent


@pytest.mark.parametrize("spent", [{"x": {"message": 1}}, {"a" + "1" * 20: {"message": 0}},
                                   {"a" + "1" * 20: {"Message!": 1}}])
def test_the_broker_refuses_a_bad_usage_report(spent):
    from broker.fanout import _spent
    with pytest.raises(rules.RuleError):
        _spent(spent)


def test_the_broker_passes_typing_on_only_from_a_connection_the_node_registered():
    from broker.fanout import FanoutHandlers
    from broker.handlers import RefusalLog
    from chatstream import wire
    published = []

    class Outbox:
        def publish(self, topic, frame):
            published.append((topic, wire.decode(frame)["uid"]))

    def checked(body, peer, **checks):
        return {name: check(body[name]) for name, check in checks.items()}

    def member(peer, node, room, uid, nick):
        if (node, room, uid, nick) != ("n1", "r", ALICE.uid, "alice"):
            raise ValueError("not_member")

    handlers = FanoutHandlers(Outbox(), RefusalLog(), checked, member)
    body = {"node": "n1", "room": "r", "nick": "alice", "uid": ALICE.uid}
    for typed in (body, dict(body, uid=GUEST.uid), dict(body, nick="mallory"), dict(body, room="s")):
        handlers.by_type["typing"](typed, "n1")
    assert published == [(wire.room_topic("r"), ALICE.uid)]
