"""The ``search`` event (PROTOCOL.md "Conversation"): messages holding every word of a
query, from one room or every room the connection may read.

A node answers from the archive's full-text index (archive/search/); :class:`MemorySearch`
is its in-memory twin for tests and nodes without a database.  Which rooms a connection
may read is the access rule's answer (access.py), asked on every search.
"""
import re

from . import validation
from .acks import acked
from .validation import ContractError

SEARCH_LIMIT = 20          # hits unless the client asks for fewer or more (contract: 1-50)
SEARCH_LIMIT_MAX = 50
QUERY_CHARS_MAX = 200      # the contract's bound on ``q``


class MemorySearch:
    """Search over messages held in memory: lower-cased whole words, no word forms.

    :param messages: Message dicts (current state), in any order.
    """

    def __init__(self, messages=()):
        self.messages = list(messages)

    def rooms(self):
        return sorted({m["room"] for m in self.messages})

    def search(self, q, rooms, before=None, limit=SEARCH_LIMIT):
        wanted = set(re.findall(r"\w+", q.lower()))
        if not wanted:
            return []
        hits = [m for m in self.messages if m["room"] in rooms and not m.get("deleted")
                and (before is None or m["seq"] < before)
                and wanted <= set(re.findall(r"\w+", m["text"].lower()))]
        hits.sort(key=lambda m: (m["ts"], m["seq"]), reverse=True)
        return [dict(m, kind="message") for m in hits[:limit]]


class SearchEvents:
    """The ``search`` handler of a :class:`~chat.protocol.events.ChatEvents`.

    :param events: the node's ChatEvents (its connections, access rule, throttles).
    :param search: answers ``rooms()`` and ``search(q, rooms, before, limit)``: the
        archive's :class:`~archive.search.ArchiveSearch` on a node.
    """

    def __init__(self, events, search=None):
        self.events = events
        self.limits = events.limits
        self.search = search if search is not None else MemorySearch()
        events.sio.on("search", self.on_search)

    @acked
    def on_search(self, sid, payload):
        self.events._throttle(sid, "search")
        self.events.person_limit(sid, "search")
        req = validation.search_request(payload, QUERY_CHARS_MAX, SEARCH_LIMIT_MAX, SEARCH_LIMIT)
        identity = self.events._connection(sid).identity
        access = self.events.access
        if req["room"] is not None:
            if not access.may_read(identity, req["room"]):
                raise ContractError("forbidden", "room %s is not one you may read; search "
                                    "without room for every room you may" % req["room"])
            rooms = [req["room"]]
        else:
            rooms = access.readable(identity, self.search.rooms())
        hits = self.search.search(req["q"], rooms, req["before"], req["limit"])
        return {"ok": True, "hits": hits}
