"""rooms.access.MembershipAccess: the rule over private-room membership and its cache."""
from chat.protocol.identity import Identity
from rooms.access import MembershipAccess, Private

ALICE = Identity("a1", "alice", user_id=1)
BOB = Identity("a2", "bob", user_id=2)
CAROL = Identity("a3", "carol", user_id=3)
STAFF = Identity("a9", "root", user_id=9, staff=True)
GUEST = Identity("g1")


class Database:
    """The rooms' membership as the rule loads it, counting the loads."""

    def __init__(self, rooms):
        self.rooms = dict(rooms)
        self.loads = 0

    def load(self, names):
        self.loads += 1
        return {name: self.rooms[name] for name in names if name in self.rooms}


def rule(db, **kwargs):
    return MembershipAccess(load=db.load, **kwargs)


def test_public_rooms_are_read_by_all_private_ones_by_members_only():
    access = rule(Database({"team": Private(1, frozenset({1, 2}))}))
    assert all(access.may_read(who, "lobby") for who in (ALICE, CAROL, GUEST, STAFF))
    assert access.may_read(ALICE, "team") and access.may_read(BOB, "team")
    assert not any(access.may_read(who, "team") for who in (CAROL, GUEST, STAFF))
    assert access.readable(CAROL, ["lobby", "team", "x"]) == ["lobby", "x"]


def test_moderators_are_staff_everywhere_and_the_owner_in_their_room():
    access = rule(Database({"team": Private(1, frozenset({1, 2}))}))
    assert access.is_moderator(STAFF, "team") and access.is_moderator(STAFF, "lobby")
    assert access.is_moderator(ALICE, "team") and not access.is_moderator(ALICE, "lobby")
    assert not access.is_moderator(BOB, "team") and not access.is_moderator(GUEST, "team")


def test_answers_come_from_the_cache_until_the_room_is_forgotten():
    db = Database({"team": Private(1, frozenset({1, 2}))})
    access = rule(db)
    for _ in range(5):
        assert access.may_read(BOB, "team") and access.may_read(CAROL, "lobby")
    assert db.loads == 2
    db.rooms["team"] = Private(1, frozenset({1}))       # bob removed
    assert access.may_read(BOB, "team")                  # not told yet
    access.forget("team")
    assert not access.may_read(BOB, "team")


def test_a_refusal_is_read_again_so_an_invite_elsewhere_counts_at_once():
    db = Database({"team": Private(1, frozenset({1}))})
    access = rule(db)
    assert not access.may_read(CAROL, "team")
    db.rooms["team"] = Private(1, frozenset({1, 3}))    # invited on another node
    assert access.may_read(CAROL, "team")


def test_lists_and_guests_are_answered_from_the_cache():
    db = Database({"team": Private(1, frozenset({1}))})
    access = rule(db)
    for _ in range(3):
        assert access.readable(CAROL, ["team", "lobby"]) == ["lobby"]
        assert not access.may_read(GUEST, "team")
    assert db.loads == 1


def test_a_room_made_private_is_seen_once_forgotten_and_entries_expire():
    now = [0.0]
    db = Database({})
    access = rule(db, cache_s=10, clock=lambda: now[0])
    assert access.may_read(CAROL, "team")
    db.rooms["team"] = Private(1, frozenset({1}))
    now[0] = 11.0                                        # expired: read again
    assert not access.may_read(CAROL, "team")


def test_the_cache_is_bounded():
    db = Database({})
    access = rule(db, max_rooms=10)
    access.readable(ALICE, ["r%d" % i for i in range(25)])
    assert len(access.entries) <= 25 and len(access.entries) >= 1
    access.readable(ALICE, ["s%d" % i for i in range(5)])
    assert len(access.entries) <= 10


def test_a_change_during_a_read_keeps_that_read_out_of_the_cache():
    db = Database({"team": Private(1, frozenset({1, 2}))})
    access = rule(db)

    def load_then_change(names):
        found = db.load(names)
        db.rooms["team"] = Private(1, frozenset({1}))   # bob removed meanwhile ...
        access.forget("team")                             # ... and the node told
        return found
    access.load = load_then_change
    assert access.may_read(BOB, "team")                   # this read began before
    access.load = db.load
    assert not access.may_read(BOB, "team")
