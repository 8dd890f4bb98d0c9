"""Rooms over several broker pairs: one :class:`~chat.link.BrokerLink` per pair, behind
the interface the event handlers already use.

Each room belongs to exactly one pair (:func:`chatstream.shards.owner` of its name), so
its total order stays with one sequencer; a pair that fails over or is down touches only
its own rooms.  Each pair's link has its own transport, request channels, followed rooms,
mirror and presence: nothing of one pair's stream reaches another's.
"""
import logging

import gevent

from chatstream import shards
from .broker_link import LinkState
from .channel import BrokerUnavailable

log = logging.getLogger(__name__)

# Aggregate link state, least advanced first: a node shows the worst of its pairs'.
STATE_ORDER = (LinkState.DOWN, LinkState.CONNECTING, LinkState.SYNCING, LinkState.LIVE)


class ShardedLink:
    """Several pairs' links as one link to the event handlers.

    **Routing is generic for room-scoped methods**: any :class:`BrokerLink` method whose
    first argument (positional, or the keyword ``room``) is the room -- ``follow``,
    ``release``, ``view``, ``sequence``, ``member_joined``/``member_left``, ``members``,
    ``announce``, ``evict`` and whatever room-scoped method BrokerLink gains later -- is
    called on the link of the pair that owns the room, with no change here.  A room of
    ``None`` (``evict``'s "every room") goes to one live pair: every node follows every
    pair, so one pair's publication reaches them all.  Methods that are not room-scoped
    must be defined here (node-wide: merged over the pairs, or sent through one of them;
    ``fanout`` and ``on_published`` are): one that is not would be routed by whatever its
    first argument is.  A part of the link (``link.following``, ``link.mirror``) routes its methods the same
    way (``link.following.is_live(room)``); a plain attribute of a part is per pair.

    :param links: ``{pair name: BrokerLink}`` in the configured order
        (chatstream.config.broker_pairs).
    """

    def __init__(self, links):
        if not links:
            raise ValueError("a sharded link needs at least one pair")
        self.links = dict(links)
        self.pairs = tuple(self.links)
        first = self.links[self.pairs[0]]
        self.node = first.node
        self.ack_timeout_s = first.ack_timeout_s
        self.listener = None

    def link_for(self, room):
        """The link of the pair that owns ``room``."""
        return self.links[shards.owner(room, self.pairs)]

    def pair_of(self, room):
        """The name of the pair that owns ``room``."""
        return shards.owner(room, self.pairs)

    def __getattr__(self, name):
        # Only reached for what is not defined here: BrokerLink's room-scoped methods.
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self.links[self.pairs[0]], name)
        routed = (RoutedPart(self, name) if not callable(attribute)
                  else self.routing(lambda link: getattr(link, name), name))
        self.__dict__[name] = routed     # resolved once
        return routed

    def routing(self, method_of, name):
        """A function that calls ``method_of(link)`` of the link its room argument routes to."""
        def routed(*args, **kwargs):
            room = args[0] if args else kwargs.get("room")
            link = self.link_for(room) if room is not None else self._one_live()
            return method_of(link)(*args, **kwargs)
        routed.__name__ = name
        return routed

    def _one_live(self):
        """A live pair's link (the first configured if none is: it says it is unreachable)."""
        for link in self.links.values():
            if link.broker_up:
                return link
        return self.links[self.pairs[0]]

    # lifecycle (every pair)

    def start(self, listener):
        """Start every pair's link with the same listener (each delivers its own rooms)."""
        if self.listener is not None:
            return
        self.listener = listener
        for link in self.links.values():
            link.start(listener)

    def goodbye(self):
        for link in self.links.values():
            link.goodbye()

    def close(self):
        for link in self.links.values():
            link.close()

    # node-wide state, merged

    @property
    def broker_up(self):
        """Some pair is live: the node serves that pair's rooms (/healthz 200).  A pair down
        everywhere must not take every node out of the balancer: its rooms alone answer
        ``unavailable``; :meth:`pair_states` says which."""
        return any(link.broker_up for link in self.links.values())

    @property
    def state(self):
        """The least advanced of the pairs' states."""
        return min((link.state for link in self.links.values()), key=STATE_ORDER.index)

    @property
    def last_heard(self):
        """When the longest-silent pair was last heard (monotonic)."""
        return min(link.last_heard for link in self.links.values())

    def pair_states(self):
        """``{pair: LinkState}`` in the configured order."""
        return {pair: link.state for pair, link in self.links.items()}

    def local_rooms(self):
        """Rooms with members on this node, over every pair."""
        return set().union(*(link.local.rooms for link in self.links.values()))

    def wait_synced(self, timeout):
        """True once some pair's mirror holds its snapshot (:meth:`follow` waits for the
        room's own pair): a pair that is down does not hold up the other pairs' joins."""
        gevent.wait([link.synced for link in self.links.values()], timeout=timeout, count=1)
        return any(link.synced.is_set() for link in self.links.values())

    def follow(self, room):
        """Follow ``room`` on its pair, once that pair's snapshot is installed.

        Raises :class:`BrokerUnavailable` when the pair has none within the ack timeout.
        """
        link = self.link_for(room)
        if not link.wait_synced(self.ack_timeout_s):
            raise BrokerUnavailable("pair %s not synced" % self.pair_of(room))
        link.follow(room)

    def active_rooms(self):
        """[(room, member count)] over every pair, most populated first."""
        rooms = [item for link in self.links.values() for item in link.active_rooms()]
        return sorted(rooms, key=lambda item: (-item[1], item[0]))

    def revoke(self, session):
        """A logout to every node, through one live pair."""
        self._one_live().revoke(session)

    def fanout(self, type_, **fields):
        """A fan-out body (``typing``, ``read``, ``usage``) through the pair of its ``room``
        (a room's topic is followed only on its owner pair), else through one live pair
        (every node follows every pair's cluster topics)."""
        room = fields.get("room")
        link = self.link_for(room) if room is not None else self._one_live()
        return link.fanout(type_, **fields)

    def on_published(self, type_, handler):
        """``handler`` for the bodies of ``type_`` that any pair publishes."""
        for link in self.links.values():
            link.on_published(type_, handler)


class RoutedPart:
    """A part of every pair's link (``following``, ``mirror`` ...) whose methods take the
    room first: each call goes to the owner pair's part."""

    def __init__(self, sharded, name):
        self._sharded, self._name = sharded, name

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        first = getattr(getattr(self._sharded.links[self._sharded.pairs[0]], self._name), method)
        if not callable(first):
            raise AttributeError("%s.%s is per pair: ask ShardedLink.links[pair]"
                                 % (self._name, method))
        return self._sharded.routing(
            lambda link: getattr(getattr(link, self._name), method), method)
