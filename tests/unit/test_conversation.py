"""chat.protocol.conversation: edit and delete on the node, over the link's twin (and, for the
target's lookup, a stub archive that lags behind the mirror)."""
from types import SimpleNamespace

import pytest

from chat.protocol.conversation import Conversation
from chat.protocol.events import Limits
from chat.protocol.validation import ContractError
from harness.twins import MemoryBroker

from .link_twin import wait_for
from .test_events import live_nodes

pytestmark = pytest.mark.timeout(20)

ANN = "a" + "1" * 20


def _finder(view, archived):
    events = SimpleNamespace(link=SimpleNamespace(view=lambda room: view), limits=Limits(),
                             history=SimpleNamespace(message=lambda r, e, seq: archived.get(seq)),
                             sio=SimpleNamespace(on=lambda *args: None))
    return Conversation(events, edit_window_s=3600)


def _message(seq, text="hi"):
    return {"id": "m%d" % seq, "seq": seq, "room": "r", "kind": "message", "nick": "ann",
            "text": text, "ts": 1000 + seq, "node": "n1", "uid": ANN}


def _view(*events):
    return {"epoch": "E", "seq": events[-1]["seq"], "history": list(events), "gap": False}


def test_a_target_older_than_the_mirror_is_read_from_the_archive_with_the_mirror_s_changes():
    edit = {"id": "e", "seq": 5, "room": "r", "kind": "edit", "target": 1, "text": "hello",
            "ts": 2000, "uid": ANN, "nick": "ann"}
    found = _finder(_view(_message(4), edit), {1: _message(1, "helo")})
    assert found.find("r", 1) == ("E", dict(_message(1, "hello"), edited=2000))


def test_a_delete_the_archive_has_not_written_yet_makes_its_target_not_found():
    delete = {"id": "d", "seq": 5, "room": "r", "kind": "delete", "target": 1, "ts": 2000,
              "uid": ANN}
    found = _finder(_view(_message(4), delete), {1: _message(1)})
    with pytest.raises(ContractError) as refused:
        found.find("r", 1)
    assert refused.value.code == "not_found"


def test_a_message_the_mirror_has_not_applied_yet_is_waited_for():
    """The client's ack came before this node's mirror applied its message: a delete sent
    right behind it finds the message once the mirror has it, within CATCH_UP_S."""
    import gevent
    views = {"now": _view(_message(4))}
    events = SimpleNamespace(link=SimpleNamespace(view=lambda room: views["now"]), limits=Limits(),
                             history=SimpleNamespace(message=lambda r, e, seq: None),
                             sio=SimpleNamespace(on=lambda *args: None))
    found = Conversation(events, edit_window_s=3600)
    gevent.spawn_later(0.05, views.update, now=_view(_message(4), _message(5)))
    assert found.find("r", 5) == ("E", _message(5))


@pytest.mark.parametrize("seq", [6, 5])    # beyond the room; a change, not a message
def test_what_is_not_a_message_of_the_room_is_not_found(seq):
    edit = {"id": "e", "seq": 5, "room": "r", "kind": "edit", "target": 4, "text": "x",
            "ts": 2000, "uid": ANN, "nick": "ann"}
    with pytest.raises(ContractError) as refused:
        _finder(_view(_message(4), edit), {}).find("r", seq)
    assert refused.value.code == "not_found"


def test_an_edit_reaches_every_node_as_an_edit_event_and_only_its_author_may_make_it():
    a, b = live_nodes(MemoryBroker())
    ann, bob = a.connect(), b.connect()
    a.events.on_join(ann, {"room": "r", "nick": "ann"})
    b.events.on_join(bob, {"room": "r", "nick": "bob"})
    seq = a.events.on_message(ann, {"room": "r", "text": "helo"})["seq"]
    edits = a.events.conversation
    assert b.events.conversation.on_edit(bob, {"room": "r", "seq": seq, "text": "mine"}) == {
        "ok": False, "error": "forbidden", "detail": "only its author or a moderator may edit "
        "message #1"}
    assert edits.on_edit(ann, {"room": "r", "seq": seq, "text": "hello"}) == {"ok": True, "seq": 2}
    for node in (a, b):
        wait_for(lambda node=node: [(e, d["target"], d["text"]) for e, d, _ in
                                    node.manager.delivered if e == "edit"] == [("edit", 1, "hello")],
                 what="the edit on node %s" % node.link.node)
    assert edits.on_delete(ann, {"room": "r", "seq": seq}) == {"ok": True, "seq": 3}
    history = b.events.on_join(b.connect(), {"room": "r", "nick": "cat"})["history"]
    assert history == [{"id": history[0]["id"], "seq": 1, "room": "r", "kind": "message",
                        "ts": history[0]["ts"], "deleted": True}]


def test_edits_and_deletes_share_the_message_budget_and_a_message_s_text_rules():
    a, = live_nodes(MemoryBroker(), 1, rate_per_s=0.001, rate_burst=3)
    ann = a.connect()
    a.events.on_join(ann, {"room": "r", "nick": "ann"})
    seq = a.events.on_message(ann, {"room": "r", "text": "one"})["seq"]
    edits = a.events.conversation
    assert edits.on_edit(ann, {"room": "r", "seq": seq, "text": "x" * 2001})["error"] == "invalid_text"
    assert edits.on_edit(ann, {"room": "r", "seq": seq, "text": "uno"})["ok"]
    assert edits.on_delete(ann, {"room": "r", "seq": seq})["ok"]
    refused = a.events.on_message(ann, {"room": "r", "text": "two"})     # the budget is spent
    assert refused["error"] == "rate_limited"
    assert edits.on_edit(ann, {"room": "r", "seq": seq, "text": "x"})["error"] == "rate_limited"
