"""The ``history`` event's handler (chat/protocol/events.py) over the link's twin, paged by
the mirror alone (chat/protocol/history.py): the archive's pages have their own tests."""
from chat.protocol.history import HistoryUnavailable

from .link_twin import wait_for
from .test_events import broker, live_nodes  # noqa: F401 - broker is a fixture


def joined(broker, count):
    node, = live_nodes(broker, count=1)
    sid = node.connect()
    assert node.events.on_join(sid, {"room": "r", "nick": "ann"})["ok"]
    for i in range(count):
        assert node.events.on_message(sid, {"room": "r", "text": "m%d" % i})["ok"]
    wait_for(lambda: len(node.messages("r")) == count)
    return node, sid


def test_pages_walk_back_to_the_first_message(broker):
    node, sid = joined(broker, 7)
    newest = node.events.on_history(sid, {"room": "r", "limit": 3})
    assert ([m["seq"] for m in newest["messages"]], newest["first"]) == ([5, 6, 7], False)
    assert newest["epoch"] == node.link.view("r")["epoch"]
    older = node.events.on_history(sid, {"room": "r", "before": 2, "limit": 3})
    assert ([m["seq"] for m in older["messages"]], older["first"]) == ([1], True)
    assert all(m["kind"] == "message" for m in newest["messages"] + older["messages"])


def test_history_of_a_room_not_joined_or_out_of_bounds_is_refused(broker):
    node, sid = joined(broker, 1)
    assert node.events.on_history(sid, {"room": "other"})["error"] == "not_joined"
    for bad in ({"room": "r", "limit": 0}, {"room": "r", "limit": 101}, {"room": "r", "before": 0},
                {"room": "r", "before": "3"}):
        assert node.events.on_history(sid, bad)["error"] == "invalid_payload"


def test_a_page_the_archive_cannot_give_whole_is_unavailable(broker):
    node, sid = joined(broker, 1)

    class Behind:
        def page(self, room, view, before, limit):
            raise HistoryUnavailable("the archive is behind")
    node.events.history = Behind()
    refused = node.events.on_history(sid, {"room": "r"})
    assert refused["error"] == "unavailable" and "behind" in refused["detail"]
