"""Which broker pair owns a room: rendezvous (highest-random-weight) hashing.

Every node, the archiver and every tool compute it alone from the same list of pair
names (chatstream.config.broker_pairs), so nothing is asked at run time.  A room
belongs to exactly one pair, which keeps its total order where it is; adding a pair
moves only the rooms that now hash to it (about 1/N of them), removing one only its own.
"""
import hashlib


def weight(pair, room):
    """The pair's score for the room: 64 bits of BLAKE2b over both names (stable across
    processes and versions, unlike ``hash()``)."""
    digest = hashlib.blake2b(("%s\0%s" % (pair, room)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(room, pairs):
    """The name in ``pairs`` (a non-empty sequence of pair names) that owns ``room``."""
    if len(pairs) == 1:
        return pairs[0]
    return max(pairs, key=lambda pair: weight(pair, room))
