"""broker.presence_registry.PresenceRegistry: the room -> node -> nicks index, expiry, coalesced changes."""
import pytest

from broker.presence_registry import PresenceFull, PresenceRegistry


def registry(**kwargs):
    clock = [1_000_000]
    reg = PresenceRegistry(clock_ms=lambda: clock[0], **kwargs)
    return reg, clock


def test_members_are_the_union_over_nodes_sorted_once():
    reg, _ = registry()
    reg.update("n1", {"r": ["bob", "alice"]}, full=False)
    reg.update("n2", {"r": ["alice", "carol"], "s": ["dave"]}, full=False)
    assert reg.members("r") == ["alice", "bob", "carol"]
    assert reg.members("s") == ["dave"]
    assert reg.members("empty") == []
    assert reg.snapshot() == {"r": ["alice", "bob", "carol"], "s": ["dave"]}


def test_the_room_index_holds_only_the_nodes_with_members_there():
    reg, _ = registry()
    for i in range(50):
        reg.update("n%d" % i, {"big%d" % i: ["u%d" % i]}, full=True)
    reg.update("n0", {"r": ["alice"]}, full=False)
    assert reg.rooms["r"] == {"n0": frozenset({"alice"})}    # one node to look at, not 50
    reg.update("n0", {"r": []}, full=False)
    assert "r" not in reg.rooms and "r" not in reg.nodes["n0"]["rooms"]


def test_update_returns_the_rooms_where_the_nodes_nicks_changed():
    reg, _ = registry()
    assert reg.update("n1", {"r": ["a"], "s": ["b"]}, full=True) == {"r", "s"}
    assert reg.update("n1", {"r": ["a"], "s": ["b"]}, full=True) == set()   # heartbeat report
    assert reg.update("n1", {"r": ["a", "c"]}, full=False) == {"r"}
    assert reg.update("n1", {"r": ["a", "c"]}, full=True) == {"s"}          # s not named: empty
    assert reg.members("s") == []
    assert reg.update("n1", {"x": []}, full=False) == set()


def test_take_changes_gives_each_dirty_room_once_and_only_when_its_list_changed():
    reg, _ = registry()
    for nicks in (["a"], ["a", "b"], ["a", "b", "c"]):     # three joins in one period
        reg.update("n1", {"r": nicks}, full=False)
    assert reg.take_changes() == {"r": ["a", "b", "c"]}
    assert reg.take_changes() == {}
    reg.update("n2", {"r": ["a"]}, full=False)        # same nick on another node: same list
    assert reg.take_changes() == {}
    reg.update("n1", {"r": ["a"]}, full=False)
    reg.update("n1", {"r": ["a", "b", "c"]}, full=False)   # changed and changed back
    assert reg.take_changes() == {}
    reg.update("n1", {"r": []}, full=False)
    reg.update("n2", {"r": []}, full=False)
    assert reg.take_changes() == {"r": []}             # emptied: said once
    assert reg.take_changes() == {}


def test_remove_returns_the_nicks_gone_from_each_room_and_marks_it_dirty():
    reg, _ = registry()
    reg.update("n1", {"r": ["alice", "bob"], "s": ["alice"]}, full=True)
    reg.update("n2", {"r": ["bob"]}, full=True)
    reg.take_changes()
    assert reg.remove("n1") == {"r": ["alice"], "s": ["alice"]}
    assert reg.members("r") == ["bob"] and "s" not in reg.rooms
    assert reg.take_changes() == {"r": ["bob"], "s": []}
    assert reg.remove("n1") == {} and reg.remove("never") == {}


def test_expire_removes_only_silent_nodes():
    reg, clock = registry(node_ttl_ms=5000)
    reg.update("n1", {"r": ["alice"]}, full=True)
    reg.update("n2", {"r": ["bob"]}, full=True)
    clock[0] += 4000
    reg.update("n2", {"r": ["bob"]}, full=True)
    clock[0] += 2000
    assert reg.expire() == {"r": ["alice"]}
    assert list(reg.nodes) == ["n2"] and reg.members("r") == ["bob"]


def test_a_new_node_beyond_max_nodes_is_refused_and_changes_nothing():
    reg, _ = registry(max_nodes=2)
    reg.update("n1", {"r": ["a"]}, full=True)
    reg.update("n2", {"r": ["b"]}, full=True)
    with pytest.raises(PresenceFull):
        reg.update("n3", {"r": ["ghost"]}, full=True)
    assert reg.members("r") == ["a", "b"] and set(reg.nodes) == {"n1", "n2"}
    reg.update("n2", {"r": ["b", "c"]}, full=True)    # known nodes still report
    reg.remove("n1")
    reg.update("n3", {"r": ["d"]}, full=True)         # a slot freed
    assert reg.members("r") == ["b", "c", "d"]


def test_held_is_what_a_node_last_reported_in_a_room():
    reg, _ = registry()
    reg.update("n1", {"r": ["a", "b"]}, full=False)
    assert reg.held("n1", "r") == {"a", "b"}
    assert reg.held("n1", "s") == frozenset() and reg.held("n9", "r") == frozenset()


def test_a_snapshot_reuses_the_lists_last_taken_and_computes_only_changed_rooms(monkeypatch):
    reg, _ = registry()
    for i in range(100):
        reg.update("n%d" % (i % 3), {"r%d" % i: ["u%d" % i, "v%d" % i]}, full=False)
    reg.take_changes()
    reg.update("n0", {"r0": ["u0", "w0"]}, full=False)     # changed since the lists were taken
    reg.update("n1", {"new": ["x"]}, full=False)            # a room never taken
    reg.update("n2", {"r2": []}, full=False)                # emptied
    computed = []
    members = reg.members
    monkeypatch.setattr(reg, "members", lambda room: computed.append(room) or members(room))
    snap = reg.snapshot()
    assert sorted(computed) == ["new", "r0"]                # not 100 rooms
    monkeypatch.setattr(reg, "members", members)
    assert snap == {room: reg.members(room) for room in sorted(reg.rooms)}   # the same lists
    assert snap["r0"] == ["u0", "w0"] and "r2" not in snap and snap["new"] == ["x"]


def test_a_node_heard_in_a_part_of_a_long_report_is_not_expired_meanwhile():
    """A report in parts counts once its last part is in; every part says the node lives
    (a loaded node's paced whole set took longer than the TTL, and the broker expired it)."""
    reg, clock = registry(node_ttl_ms=5000)
    reg.update("n1", {"r": ["alice"]}, full=True)
    clock[0] += 4000
    reg.touch("n1")
    reg.touch("n9")                                   # unknown: nothing registered
    clock[0] += 4000
    assert reg.expire() == {} and list(reg.nodes) == ["n1"]
    clock[0] += 2000
    assert reg.expire() == {"r": ["alice"]}


ANN, BOB = "a" + "1" * 20, "g" + "2" * 20


def test_a_node_speaks_only_for_the_uids_and_nicks_it_registered_in_the_room():
    reg, _ = registry()
    assert reg.speaker("n1", "r", ANN, "ann") is None          # never reported: not yet known
    reg.update("n1", {"r": [["ann", ANN], "legacy"]}, full=True)
    assert reg.speaker("n1", "r", ANN, "ann") is True
    assert reg.speaker("n1", "r", ANN) is True                  # an edit or delete: uid only
    assert reg.speaker("n1", "r", ANN, "bob") is False          # another nick
    assert reg.speaker("n1", "r", BOB, "ann") is False          # another uid
    assert reg.speaker("n1", "s", ANN, "ann") is False          # another room
    assert reg.speaker("n2", "r", ANN, "ann") is None           # another node
    assert reg.speaker("n1", "r", None, "legacy") is True       # a member without a uid
    assert reg.members("r") == ["ann", "legacy"]                # lists stay nicks


def test_a_node_not_known_whole_yet_is_told_apart_from_a_stranger():
    reg, _ = registry()
    reg.update("n1", {"r": [["ann", ANN]]}, full=False)        # a change before the whole set
    assert reg.speaker("n1", "r", ANN, "ann") is True
    assert reg.speaker("n1", "r", BOB, "bob") is None
    reg.update("n1", {"r": [["ann", ANN]]}, full=True)
    assert reg.speaker("n1", "r", BOB, "bob") is False
    reg.remove("n1")                                            # goodbye or expiry
    assert reg.speaker("n1", "r", ANN, "ann") is None


def test_leaving_and_a_new_uid_under_the_same_nick_change_who_speaks():
    reg, _ = registry()
    reg.update("n1", {"r": [["ann", ANN]], "s": [["bob", BOB]]}, full=True)
    reg.take_changes()
    other = "c" + "3" * 20
    assert reg.update("n1", {"r": [["ann", other]]}, full=False) == set()   # same nicks
    assert reg.speaker("n1", "r", ANN, "ann") is False
    assert reg.speaker("n1", "r", other, "ann") is True
    assert reg.update("n1", {"r": []}, full=False) == {"r"}
    assert reg.speaker("n1", "r", other, "ann") is False
    reg.update("n1", {}, full=True)                             # s not named: nobody there
    assert reg.speaker("n1", "s", BOB, "bob") is False and reg.speakers_of("n1") == {}
