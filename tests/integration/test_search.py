"""``search`` over real processes: messages sent on one node are found from another once
archived, in every room or one, newest first; an edited message by its new text only, a
deleted one never; the contract's bounds and the per-connection rate are refused with
their codes."""
import pytest

from harness.client import new_room
from harness.processes import wait_until

from .test_archiver import RATES, send, wait_archived

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def archiving(make_cluster):
    c = make_cluster(env=RATES)
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    c.start_archiver()
    return c


def test_messages_sent_on_one_node_are_found_from_another_once_archived(archiving, client):
    room, other = new_room(), new_room()
    author = client(archiving.url("node1"), name="ann")
    author.join(room), author.join(other)
    in_room = send(author, room, ["the kettle is boiling", "tea for two", "Kettles whistle"])
    elsewhere = send(author, other, ["a kettle elsewhere"])
    wait_archived(archiving, room, in_room)
    wait_archived(archiving, other, elsewhere)
    reader = client(archiving.url("node2"), name="bob")     # joins nothing: search needs no join
    everywhere = reader.call("search", {"q": "KETTLE"})
    assert everywhere["ok"], everywhere
    assert [(h["room"], h["text"]) for h in everywhere["hits"]] == [
        (other, "a kettle elsewhere"), (room, "Kettles whistle"), (room, "the kettle is boiling")]
    assert all(h["kind"] == "message" and h["nick"] == "ann" for h in everywhere["hits"])
    one = reader.call("search", {"q": "kettle", "room": room, "limit": 1})
    assert [(h["seq"], h["text"]) for h in one["hits"]] == [in_room[2]]
    older = reader.call("search", {"q": "kettle", "room": room, "before": in_room[2][0]})
    assert [(h["seq"], h["text"]) for h in older["hits"]] == [in_room[0]]
    assert reader.call("search", {"q": "kettle tea"})["hits"] == []


def test_a_search_out_of_bounds_or_too_fast_is_refused(archiving, client):
    reader = client(archiving.url("node1"), name="bob")
    for bad in ({"q": ""}, {"q": "x" * 201}, {"q": "a", "limit": 51}, {"q": "a", "room": "a b"}):
        assert reader.call("search", bad)["error"] in ("invalid_payload", "invalid_room"), bad
    answers = [reader.call("search", {"q": "anything"}) for _ in range(12)]
    assert answers[0]["ok"]
    assert answers[-1]["error"] == "rate_limited" and "search" in answers[-1]["detail"]


def test_an_edited_message_is_found_by_its_new_text_and_a_deleted_one_not_at_all(archiving, client):
    room = new_room()
    author = client(archiving.url("node1"), name="ann")
    author.join(room)
    (kept, _), (gone, _) = send(author, room, ["a pelican lands", "a pelican swims"])
    edit = author.call("edit", {"room": room, "seq": kept, "text": "a cormorant lands"})
    delete = author.call("delete", {"room": room, "seq": gone})
    assert edit["ok"] and delete["ok"], (edit, delete)
    reader = client(archiving.url("node2"), name="bob")

    def found(q):
        answer = reader.call("search", {"q": q, "room": room})
        if answer.get("error") == "rate_limited":     # polled faster than a person searches
            return None
        return [(h["seq"], h.get("text"), h.get("edited") is not None) for h in answer["hits"]]
    # Polled at the search rate (2/s); the edit comes before the delete in the archive.
    wait_until(lambda: found("cormorant") == [(kept, "a cormorant lands", True)], 30,
               "the edit archived and found", interval=0.5)
    wait_until(lambda: found("pelican") == [], 30, "the delete archived", interval=0.5)
    assert found("swims") == [] and found("lands") == [(kept, "a cormorant lands", True)]
