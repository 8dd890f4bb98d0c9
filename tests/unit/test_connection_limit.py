"""chat.engine.limit.ConnectionLimit: the one place a node decides whether it takes a client."""
from chat.engine.limit import ConnectionLimit


def limit_with(sessions, max_connections=4, headroom=2):
    return ConnectionLimit(lambda: sessions[0], max_connections, headroom)


def test_sessions_are_refused_only_past_the_headroom_above_the_connection_limit():
    sessions = [5]
    limit = limit_with(sessions)
    assert limit.max_sessions == 6 and not limit.sessions_full()
    sessions[0] = 6
    assert limit.sessions_full()


def test_a_connection_is_refused_at_the_limit_counting_half_open_sessions_but_not_its_own():
    sessions = [4]                          # 3 others + the session of the one connecting
    limit = limit_with(sessions)
    assert not limit.connections_full(connected=3)
    assert limit.connections_full(connected=4)
    sessions[0] = 5                         # a half-open session holds a place too
    assert limit.connections_full(connected=3)


def test_without_a_limit_nothing_is_refused():
    limit = ConnectionLimit(lambda: 10**6)
    assert limit.max_sessions is None
    assert not limit.sessions_full() and not limit.connections_full(10**6)
