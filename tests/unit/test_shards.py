"""Rooms over broker pairs: the owner of a room (rendezvous hashing) and the list of
pairs read from the environment (chatstream.config.broker_pairs)."""
import hashlib

import pytest

from chatstream import config, shards

ROOMS = ["room-%d" % i for i in range(4000)]


def owners(pairs):
    return {room: shards.owner(room, pairs) for room in ROOMS}


def test_one_pair_owns_every_room():
    assert set(owners(["pair1"]).values()) == {"pair1"}


def test_the_owner_is_the_same_whatever_the_order_of_the_list():
    assert owners(["pair1", "pair2", "pair3"]) == owners(["pair3", "pair1", "pair2"])


def test_the_owner_is_fixed_by_the_names_alone():
    # No per-process hash seed: every node computes the same owner.
    assert shards.weight("pair1", "lobby") == int.from_bytes(
        hashlib.blake2b(b"pair1\0lobby", digest_size=8).digest(), "big")


@pytest.mark.parametrize("count", [2, 3, 4])
def test_rooms_spread_evenly_over_the_pairs(count):
    pairs = ["pair%d" % (k + 1) for k in range(count)]
    spread = list(owners(pairs).values())
    for pair in pairs:
        assert abs(spread.count(pair) / len(ROOMS) - 1 / count) < 0.04


@pytest.mark.parametrize("count", [1, 2, 3])
def test_adding_a_pair_moves_about_one_room_in_n_and_only_to_it(count):
    before = owners(["pair%d" % (k + 1) for k in range(count)])
    new = "pair%d" % (count + 1)
    after = owners(["pair%d" % (k + 1) for k in range(count + 1)])
    moved = [room for room in ROOMS if before[room] != after[room]]
    assert all(after[room] == new for room in moved)
    assert abs(len(moved) / len(ROOMS) - 1 / (count + 1)) < 0.04


def test_removing_a_pair_moves_only_its_rooms():
    before = owners(["pair1", "pair2", "pair3"])
    after = owners(["pair1", "pair3"])
    assert [room for room in ROOMS if before[room] != after[room]] == [
        room for room in ROOMS if before[room] == "pair2"]


# the list of pairs

def test_without_environment_there_is_one_pair_as_today():
    assert config.broker_pairs({}) == [config.BrokerPairEndpoints(
        "pair1", (config.broker_endpoints({}),))]


def test_one_pair_with_its_backup_is_today_s_pair():
    environ = {"CHAT_BROKER_PAIR": "1"}
    assert config.broker_pairs(environ) == [config.BrokerPairEndpoints(
        "pair1", (config.broker_endpoints(environ), config.broker2_endpoints(environ)))]


def test_broker_pairs_2_adds_the_contract_s_second_pair():
    pairs = config.broker_pairs({"CHAT_BROKER_PAIRS": "2", "CHAT_BROKER_PAIR": "1"})
    assert [pair.name for pair in pairs] == ["pair1", "pair2"]
    assert pairs[1].brokers == (
        {"intake": "tcp://127.0.0.1:5575", "publish": "tcp://127.0.0.1:5576",
         "snapshot": "tcp://127.0.0.1:5577"},
        {"intake": "tcp://127.0.0.1:5585", "publish": "tcp://127.0.0.1:5586",
         "snapshot": "tcp://127.0.0.1:5587"})


def test_a_second_pair_has_a_backup_only_when_the_first_has():
    pairs = config.broker_pairs({"CHAT_BROKER_PAIRS": "2", "CHAT_BROKER_HOST": "10.0.0.7"})
    assert pairs[1].brokers == ({"intake": "tcp://10.0.0.7:5575", "publish": "tcp://10.0.0.7:5576",
                                 "snapshot": "tcp://10.0.0.7:5577"},)


def test_chat_brokers_lists_every_pair_and_its_brokers():
    pairs = config.broker_pairs({"CHAT_BROKERS": (
        "tcp://a:1,tcp://a:2,tcp://a:3|tcp://b:1,tcp://b:2,tcp://b:3; tcp://c:1,tcp://c:2,tcp://c:3")})
    assert [(pair.name, [b["intake"] for b in pair.brokers]) for pair in pairs] == [
        ("pair1", ["tcp://a:1", "tcp://b:1"]), ("pair2", ["tcp://c:1"])]
    assert pairs[1].brokers[0] == {"intake": "tcp://c:1", "publish": "tcp://c:2",
                                   "snapshot": "tcp://c:3"}


@pytest.mark.parametrize("environ", [
    {"CHAT_BROKER_PAIRS": "0"},
    {"CHAT_BROKERS": "tcp://a:1,tcp://a:2"},
    {"CHAT_BROKERS": "a:1,a:2,a:3"},
    {"CHAT_BROKERS": "tcp://a:1,tcp://a:2,tcp://a:3", "CHAT_BROKER_PAIRS": "2"},
])
def test_a_list_of_pairs_that_does_not_add_up_is_refused(environ):
    with pytest.raises(ValueError):
        config.broker_pairs(environ)
