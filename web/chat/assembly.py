"""One chat node: Socket.IO (gevent mode) around the Django app, on our broker manager."""
import logging

import socketio
from django.conf import settings

from chatstream import fastjson
from . import running
from .edge import EdgeApp, OriginPolicy
from .engine import patches
from .engine.manager import LinkManager
from .engine.server import ChatServer
from .engine.sweeps import SlowClientReaper
from .link import BrokerLink, ZmqTransport
from .link.failover import PairTransport
from .link.sharded import ShardedLink
from .operations import metrics
from .protocol.events import ChatEvents, Limits
from .protocol.identity import SessionIdentities
from .protocol.person_limit import PersonLimits

log = logging.getLogger(__name__)

def broker_transport(hwm=None, pair=None):
    """One pair's broker sockets; with its backup configured, both brokers' (link/failover.py).

    :param hwm: each socket's high-water mark (default CHAT_ZMQ_HWM; the archiver's is larger).
    :param pair: a :class:`chatstream.config.BrokerPairEndpoints` (default: the first pair).
    """
    def zmq_transport(endpoints):
        return ZmqTransport(**endpoints, hwm=hwm or settings.CHAT_ZMQ_HWM,
                            curve_keys=settings.CHAT_CURVE_KEYS,
                            max_frame_bytes=settings.CHAT_NODE_MAX_FRAME_BYTES)
    pair = pair or settings.CHAT_BROKER_PAIRS[0]
    transports = [zmq_transport(endpoints) for endpoints in pair.brokers]
    return transports[0] if len(transports) == 1 else PairTransport(*transports)


def broker_link():
    """The node's link: one pair's :class:`BrokerLink`, or with several pairs a
    :class:`ShardedLink` of one link per pair (each room's requests go to its owner)."""
    def pair_link(pair):
        return BrokerLink(
            broker_transport(pair=pair),
            node=settings.CHAT_NODE_NAME,
            history_size=settings.CHAT_HISTORY_SIZE,
            ack_timeout_s=settings.CHAT_ACK_TIMEOUT_MS / 1000.0,
            heartbeat_ms=settings.CHAT_BROKER_HEARTBEAT_MS,
            dead_after_ms=settings.CHAT_BROKER_DEAD_AFTER_MS,
            follow_grace_s=settings.CHAT_FOLLOW_GRACE_S,
            follow_grace_rooms=settings.CHAT_FOLLOW_GRACE_ROOMS,
        )
    pairs = settings.CHAT_BROKER_PAIRS
    if len(pairs) == 1:
        return pair_link(pairs[0])
    return ShardedLink({pair.name: pair_link(pair) for pair in pairs})


def build_server():
    """Create the process's Socket.IO server and its broker link from settings."""
    link = broker_link()
    manager = LinkManager(link)
    sio = ChatServer(
        async_mode="gevent",
        client_manager=manager,
        # The balancer keeps a long-polling session on one node by this cookie
        # (see deploy/haproxy.cfg); browsers and clients need nothing special.
        cookie={"name": "io", "path": "/", "samesite": "Lax", "httponly": True},
        # Browsers' Origin must be one of ours (PROTOCOL.md "Origin"): engineio refuses
        # any other with 400 before a session exists; requests without Origin pass.
        cors_allowed_origins=OriginPolicy(settings.CHAT_ALLOWED_ORIGINS),
        # Engine.IO drops a connection that sends more than this in one packet;
        # below it, payloads over CHAT_MAX_PAYLOAD_BYTES get a clear error.
        max_http_buffer_size=max(1_000_000, 4 * settings.CHAT_MAX_PAYLOAD_BYTES),
        logger=False,
        engineio_logger=False,
        json=fastjson,
        ping_interval=settings.CHAT_PING_INTERVAL_S,
        ping_timeout=settings.CHAT_PING_TIMEOUT_S,
        max_connections=settings.CHAT_MAX_CONNECTIONS,
        handshake_rate=settings.CHAT_HANDSHAKE_RATE,
    )
    limits = Limits(rate_per_s=settings.CHAT_RATE_PER_S, rate_burst=settings.CHAT_RATE_BURST,
                    max_payload_bytes=settings.CHAT_MAX_PAYLOAD_BYTES,
                    max_rooms=settings.CHAT_MAX_ROOMS_PER_CONNECTION,
                    report_reason_max=settings.CHAT_REPORT_REASON_MAX,
                    ban_minutes_max=settings.CHAT_BAN_MAX_MINUTES,
                    edit_window_s=settings.CHAT_EDIT_WINDOW_S,
                    request_rates=settings.CHAT_REQUEST_RATES,
                    typing_interval_ms=settings.CHAT_TYPING_INTERVAL_MS,
                    unread_max=settings.CHAT_UNREAD_MAX,
                    unread_rooms_max=settings.CHAT_UNREAD_ROOMS_MAX,
                    read_flush_ms=settings.CHAT_READ_FLUSH_MS)
    patches.install(sio)
    from archive.reader import ArchiveReader   # its models need the apps loaded
    from archive.search import ArchiveSearch
    from moderation.store import DatabaseModeration
    from reading.positions import ReadPositions
    from rooms.access import MembershipAccess
    access = MembershipAccess(cache_s=settings.CHAT_ACCESS_CACHE_S)
    person_limits = PersonLimits(settings.CHAT_PERSON_RATES, settings.CHAT_ADDRESS_RATE_FACTOR,
                                 secret=settings.SECRET_KEY, share_ms=settings.CHAT_USAGE_SHARE_MS)
    events = ChatEvents(sio, link, limits=limits, sync_timeout_s=settings.CHAT_ACK_TIMEOUT_MS / 1000.0,
                        identities=SessionIdentities(), connection_limit=sio.eio.limit,
                        history=ArchiveReader(), search=ArchiveSearch(), access=access,
                        moderation=DatabaseModeration(), person_limits=person_limits,
                        read_positions=ReadPositions())
    manager.end_session = events.end_session   # a logout's connections (protocol/revocation.py)
    manager.evict_uid = events.evictions.evict   # a ban's, a removal's (protocol/eviction.py)
    manager.after_resync = events.evictions.resynced
    manager.forget_access = private_rooms(events, link).changed   # a room's members changed
    metrics.watch(sio, link)
    SlowClientReaper(sio, max_queue=settings.CHAT_MAX_SEND_QUEUE,
                     half_open_timeout_s=settings.CHAT_HALF_OPEN_TIMEOUT_S).start()
    # Start the broker link now, not at the first client: /healthz depends on it.
    sio.manager_initialized = True
    manager.initialize()
    running.set_server(sio)
    return sio


def private_rooms(events, link):
    """The ``dm``, ``create``, ``invite`` and ``remove`` handlers on the node's events."""
    from rooms.directory import Directory
    from .protocol.identity import account_uid
    from .protocol.private_rooms import PrivateRoomEvents, room_in_use
    directory = Directory(settings.SECRET_KEY, in_use=lambda room: room_in_use(link, room),
                          max_members=settings.CHAT_PRIVATE_ROOM_MAX_MEMBERS,
                          rooms_per_account=settings.CHAT_PRIVATE_ROOMS_PER_ACCOUNT)
    return PrivateRoomEvents(events, directory, lambda user_id: account_uid(settings.SECRET_KEY,
                                                                            user_id))


def build_app(sio, django_app):
    """The WSGI app of a node: /socket.io/ to Socket.IO, the rest to Django, behind
    the edge checks (client address, Host on /socket.io/; chat/edge.py)."""
    return EdgeApp(socketio.WSGIApp(sio, django_app), allowed_hosts=settings.ALLOWED_HOSTS,
                   trusted_proxies=settings.CHAT_TRUSTED_PROXIES,
                   allowed_origins=sio.eio.cors_allowed_origins,
                   full=sio.eio.limit.sessions_full)
