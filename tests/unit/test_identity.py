"""Identity (PROTOCOL.md "Identity"): uids, nicks bound to accounts, nick_taken, and the
broker carrying uid through its buffer, store and snapshots."""
import json

import pytest

from broker.sequencer import Sequencer
from broker.store import SqliteStore
from chat.protocol.identity import GuestIdentities, Identity, account_uid, connection_uid, guest_uid
from chatstream import rules

from .link_twin import wait_for
from .test_broker_server import intake, make_broker, publish_frame
from .test_events import Node, broker  # noqa: F401 - broker is a fixture

SECRET = "k" * 50
ALICE = Identity(account_uid(SECRET, 7), "alice")


# --- uid derivation --------------------------------------------------------------

def test_an_account_uid_is_stable_per_user_and_differs_between_users_and_keys():
    assert account_uid(SECRET, 7) == account_uid(SECRET, 7) == ALICE.uid
    assert account_uid(SECRET, 8) != ALICE.uid
    assert account_uid("another key", 7) != ALICE.uid


def test_a_guest_uid_comes_from_its_session_and_never_shows_the_session_key():
    key = "q1w2e3r4t5y6u7i8o9p0asdfghjklzxc"
    uid = guest_uid(SECRET, key)
    assert uid == guest_uid(SECRET, key) != guest_uid(SECRET, key + "x")
    assert key[:8] not in uid
    assert uid != account_uid(SECRET, key)      # kinds never collide: the prefix differs


def test_a_guest_without_a_session_gets_a_fresh_uid_per_connection():
    assert len({connection_uid() for _ in range(100)}) == 100


@pytest.mark.parametrize("uid", [ALICE.uid, guest_uid(SECRET, "s"), connection_uid()])
def test_every_kind_of_uid_passes_the_uid_rule(uid):
    assert rules.uid(uid) == uid


@pytest.mark.parametrize("bad", ["", "a" + "0" * 19, "a" + "0" * 21, "x" + "0" * 20,
                                 "a" + "G" * 20, "a" + "0" * 19 + "\n", None, 5])
def test_the_uid_rule_refuses_anything_else(bad):
    with pytest.raises(rules.RuleError) as refused:
        rules.uid(bad)
    assert refused.value.code == "invalid_uid"


@pytest.mark.parametrize("nick,other", [("alice", "ALICE"), ("alice", "ａｌｉｃｅ"),
                                        ("Straße", "STRASSE"), ("ǅemal", "džemal")])
def test_nick_keys_compare_after_nfkc_and_case_folding(nick, other):
    assert rules.nick_key(nick) == rules.nick_key(other)


# --- the node: nicks bound to accounts, nick_taken, uid on acks and messages ----------

def nodes_with(broker, identities, count=2):
    made = [Node(broker, "n%d" % (i + 1), identities=identities) for i in range(count)]
    broker.heartbeat()
    for node in made:
        assert node.link.wait_synced(2.0)
    return made


def accounts():
    return GuestIdentities(usernames=["alice"], sessions={"alice-session": ALICE})


def test_a_logged_in_connection_chats_as_its_username_whatever_nick_it_sends(broker):
    a, b = nodes_with(broker, accounts())
    sid = a.connect({"HTTP_COOKIE": "io=x; sessionid=alice-session"})
    ack = a.events.on_join(sid, {"room": "r", "nick": "mallory"})
    assert (ack["nick"], ack["uid"]) == ("alice", ALICE.uid)
    assert a.events.on_join(sid, {"room": "s"})["nick"] == "alice"   # nick may be omitted
    assert a.events.on_message(sid, {"room": "r", "text": "hi"})["ok"]
    watcher = b.connect()
    history = b.events.on_join(watcher, {"room": "r", "nick": "bob"})["history"]
    assert [(m["nick"], m["uid"]) for m in history] == [("alice", ALICE.uid)]


@pytest.mark.parametrize("nick", ["alice", "ALICE", " Alice ", "ａｌｉｃｅ",
                                  "al\u0131ce", "\u0430lice", "AL\u0130CE", "alic\u0117"])
def test_a_guest_asking_for_an_accounts_name_or_its_lookalike_is_refused_nick_taken(broker, nick):
    [a] = nodes_with(broker, accounts(), count=1)
    ack = a.events.on_join(a.connect(), {"room": "r", "nick": nick})
    assert (ack["ok"], ack["error"]) == (False, "nick_taken")


def test_a_guest_without_a_nick_is_refused_invalid_nick(broker):
    [a] = nodes_with(broker, accounts(), count=1)
    assert a.events.on_join(a.connect(), {"room": "r"})["error"] == "invalid_nick"


def test_twin_guests_with_one_nick_are_told_apart_by_uid(broker):
    a, b = nodes_with(broker, accounts())
    first, second = a.connect(), b.connect()
    uids = [node.events.on_join(sid, {"room": "r", "nick": "bob"})["uid"]
            for node, sid in ((a, first), (b, second))]
    assert uids[0] != uids[1]
    a.events.on_message(first, {"room": "r", "text": "one"})
    b.events.on_message(second, {"room": "r", "text": "two"})
    wait_for(lambda: len(a.messages("r")) == 2, what="both messages on node a")
    delivered = [d for e, d, r in a.manager.delivered if e == "message" and r == "r"]
    assert [(m["nick"], m["uid"]) for m in delivered] == [("bob", uids[0]), ("bob", uids[1])]


def test_a_failing_account_check_refuses_the_join_unavailable(broker):
    class Broken(GuestIdentities):
        def nick_taken(self, nick):
            raise OSError("database is away")
    [a] = nodes_with(broker, Broken(), count=1)
    assert a.events.on_join(a.connect(), {"room": "r", "nick": "bob"})["error"] == "unavailable"


# --- the broker carries uid --------------------------------------------------------

def test_the_broker_puts_the_uid_in_the_message_and_refuses_a_bad_one():
    broker = make_broker()
    body = json.loads(publish_frame(rid=1))
    [reply] = intake(broker, json.dumps(dict(body, uid=ALICE.uid)).encode())
    assert reply["message"]["uid"] == ALICE.uid
    assert broker.sequencer.snapshot()["lobby"]["history"][0]["uid"] == ALICE.uid
    [refused] = intake(broker, json.dumps(dict(body, rid=2, uid="a<b>")).encode())
    assert refused["type"] == "error" and "invalid_uid" in refused["detail"]
    assert broker.sequencer.rooms["lobby"].seq == 1


def test_uid_survives_the_store_and_messages_stored_without_one_still_load(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    first = Sequencer(history_size=5, store=SqliteStore(path))
    first.sequence("r", "ann", "old, from before uids", "node1")
    first.sequence("r", "alice", "new", "node1", uid=ALICE.uid)
    first.commit()
    first.store.close()
    again = Sequencer(history_size=5, store=SqliteStore(path))
    history = again.snapshot(["r"])["r"]["history"]
    assert [m.get("uid") for m in history] == [None, ALICE.uid]


# --- the node's nick checks: one query for every check waiting at once -------------

def _batcher(taken=(), fail=False):
    from chat.protocol.identity import NickBatcher
    asked = []

    def query(keys):
        asked.append(list(keys))
        if fail:
            raise RuntimeError("database down")
        return {key for key in keys if key in taken}
    return NickBatcher(query), asked


@pytest.mark.timeout(10)
def test_a_join_storm_asks_the_database_once_per_batch_not_once_per_join():
    import gevent
    batcher, asked = _batcher(taken={"alice"})
    keys = ["alice"] + ["guest%d" % i for i in range(1199)] + ["alice"]   # alice twice
    jobs = [gevent.spawn(batcher.taken, key) for key in keys]
    gevent.joinall(jobs, raise_error=True)
    verdicts = [job.value for job in jobs]
    assert verdicts[0] is verdicts[-1] is True and not any(verdicts[1:-1])
    # 1,200 distinct keys: three queries of at most MAX_BATCH (500) keys, each key asked once
    assert [len(batch) for batch in asked] == [500, 500, 200]
    assert sorted(key for batch in asked for key in batch) == sorted(set(keys))
    assert not batcher.pending
    assert batcher.taken("alice") is True and len(asked) == 4   # quiet: one query per check


@pytest.mark.timeout(10)
def test_a_failed_nick_query_fails_its_waiting_checks_and_the_next_one_asks_again():
    import gevent
    batcher, asked = _batcher(fail=True)
    jobs = [gevent.spawn(batcher.taken, "n%d" % i) for i in range(3)]
    gevent.joinall(jobs)
    assert all(isinstance(job.exception, RuntimeError) for job in jobs) and len(asked) == 1
    batcher.query = lambda keys: {"n0"}
    assert batcher.taken("n0") is True and not batcher.worker.dead
