"""The ``search`` event's handler (chat/protocol/search.py) over the link's twin and the
in-memory search: only rooms the access rule lets the connection read, the contract's
bounds on q and limit, a rate per connection.  The archive's index has its own tests
(tests/integration/test_archive_search.py)."""
from chat.protocol.search import MemorySearch

from .test_events import broker, live_nodes  # noqa: F401 - broker is a fixture


def message(room, seq, text, ts, deleted=False):
    return {"id": "%s%d" % (room, seq), "seq": seq, "room": room, "nick": "ann", "text": text,
            "ts": ts, "uid": "u", "node": "n1", "deleted": deleted}


class NoSecrets:
    """A stub access rule: room ``secret`` is nobody's to read."""

    def may_read(self, identity, room):
        return room != "secret"

    def readable(self, identity, rooms):
        return [room for room in rooms if self.may_read(identity, room)]


def searching(broker, **limits):
    node, = live_nodes(broker, count=1, **limits)
    node.events.access = NoSecrets()
    node.events.search.search = MemorySearch([
        message("a", 1, "hello world", 1000), message("b", 1, "Hello there", 1001),
        message("secret", 1, "hello secret world", 1002),
        message("a", 2, "hello gone", 1003, deleted=True)])
    return node, node.connect()


def hits(ack):
    assert ack["ok"], ack
    return [(hit["room"], hit["seq"]) for hit in ack["hits"]]


def test_every_room_searched_is_one_the_connection_may_read(broker):
    node, sid = searching(broker)
    search = node.events.search.on_search
    assert hits(search(sid, {"q": "hello"})) == [("b", 1), ("a", 1)]
    assert hits(search(sid, {"q": "world"})) == [("a", 1)]
    assert hits(search(sid, {"q": "hello", "room": "b"})) == [("b", 1)]
    refused = search(sid, {"q": "hello", "room": "secret"})
    assert refused["error"] == "forbidden" and "may read" in refused["detail"]


def test_a_search_out_of_the_contracts_bounds_is_refused(broker):
    node, sid = searching(broker)
    search = node.events.search.on_search
    assert hits(search(sid, {"q": "x" * 200})) == []
    assert hits(search(sid, {"q": "hello", "limit": 50, "before": 2})) == [("b", 1), ("a", 1)]
    assert hits(search(sid, {"q": "hello", "limit": 1})) == [("b", 1)]
    for bad in ({}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}, {"q": 3}, {"q": "a", "limit": 0},
                {"q": "a", "limit": 51}, {"q": "a", "before": 0}, {"q": "a", "room": "no such"},
                "hello"):
        refused = search(sid, bad)
        assert refused["ok"] is False and refused["error"] in ("invalid_payload", "invalid_room"), bad


def test_searching_faster_than_the_connections_rate_is_refused(broker):
    node, sid = searching(broker, request_rates={"search": (0.001, 3)})
    search = node.events.search.on_search
    assert all(search(sid, {"q": "hello"})["ok"] for _ in range(3))
    refused = search(sid, {"q": "hello"})
    assert refused["error"] == "rate_limited" and "search" in refused["detail"]
    assert search(node.connect(), {"q": "hello"})["ok"]     # per connection
