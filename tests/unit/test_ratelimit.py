"""chat.protocol.ratelimit.TokenBucket with a fake clock (no sleeps).

Clock steps are binary fractions (0.25, 0.5 ...) so the arithmetic is exact.
"""
import pytest

from chat.protocol.ratelimit import TokenBucket


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def drain(bucket, tries=1000):
    """Call allow() until refused; returns how many were allowed."""
    for allowed in range(tries):
        if not bucket.allow():
            return allowed
    raise AssertionError("bucket never refused")


@pytest.mark.parametrize("burst", [1, 2, 5, 20])
def test_a_burst_is_allowed_then_refused(burst):
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=1, burst=burst, clock=clock)
    assert [bucket.allow() for _ in range(burst)] == [True] * burst
    assert bucket.allow() is False
    assert bucket.allow() is False


def test_tokens_refill_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=4, burst=3, clock=clock)
    assert drain(bucket) == 3
    clock.advance(0.25)                 # one token at 4/s
    assert bucket.allow() is True
    assert bucket.allow() is False
    clock.advance(0.5)                  # two tokens
    assert drain(bucket) == 2


def test_a_partial_token_is_not_enough_but_is_kept():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=1, burst=1, clock=clock)
    assert bucket.allow() is True
    clock.advance(0.5)
    assert bucket.allow() is False      # half a token
    clock.advance(0.25)
    assert bucket.allow() is False      # three quarters
    clock.advance(0.25)
    assert bucket.allow() is True       # refused calls did not lose the partial tokens
    assert bucket.allow() is False


def test_refused_calls_do_not_consume_tokens():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2, burst=2, clock=clock)
    drain(bucket)
    for _ in range(50):
        assert bucket.allow() is False
    clock.advance(0.5)
    assert bucket.allow() is True


def test_idle_time_refills_at_most_to_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, burst=4, clock=clock)
    drain(bucket)
    clock.advance(3600)
    assert drain(bucket) == 4


def test_a_new_bucket_starts_full_without_waiting():
    clock = FakeClock(now=0.0)
    assert drain(TokenBucket(rate_per_s=1, burst=3, clock=clock)) == 3


def test_sustained_rate_equals_rate_per_s_after_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=4, burst=8, clock=clock)
    allowed = 0
    for _ in range(10 * 8):             # 10 s, two attempts per token interval
        allowed += bucket.allow()
        allowed += bucket.allow()
        clock.advance(0.125)
    assert allowed == 8 + 4 * 10 - 1    # the burst, then 4/s (the last interval not refilled)


def test_buckets_are_independent():
    clock = FakeClock()
    a = TokenBucket(rate_per_s=1, burst=2, clock=clock)
    b = TokenBucket(rate_per_s=1, burst=2, clock=clock)
    drain(a)
    assert b.allow() is True and b.allow() is True
    assert a.allow() is False
