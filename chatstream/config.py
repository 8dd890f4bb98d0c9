"""The cluster's shared settings: every default once, one rule for the environment.

Stdlib only, so the broker (no Django) and the node's ``settings.py`` read the
same defaults; both read the environment once, at start-up, through the
functions below.  Everything below them takes keyword arguments whose
defaults are these constants.  Every ``CHAT_*`` variable is listed in
docs/CONFIGURATION.md.
"""
import os

# --- Where the broker is -------------------------------------------------------

# Loopback: the development cluster runs on one machine, and a broker reachable
# from elsewhere must be asked for (CHAT_BROKER_HOST=0.0.0.0).
BROKER_HOST = "127.0.0.1"
INTAKE_PORT = 5555      # node DEALER -> broker ROUTER: publish, relay, presence
PUBLISH_PORT = 5556     # broker PUB -> node SUB: messages, presence, heartbeats
SNAPSHOT_PORT = 5557    # node DEALER -> broker ROUTER: snapshot, history
BROKER_PORTS = {"intake": INTAKE_PORT, "publish": PUBLISH_PORT, "snapshot": SNAPSHOT_PORT}


def tcp_endpoint(host, port):
    """A ZeroMQ tcp endpoint; an IPv6 address gets its brackets."""
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "tcp://%s:%d" % (host, int(port))


INTAKE_ENDPOINT = tcp_endpoint(BROKER_HOST, INTAKE_PORT)
PUBLISH_ENDPOINT = tcp_endpoint(BROKER_HOST, PUBLISH_PORT)
SNAPSHOT_ENDPOINT = tcp_endpoint(BROKER_HOST, SNAPSHOT_PORT)

# --- The stream ----------------------------------------------------------------

# Messages kept per room: the replay buffer a resume is served from, and the
# window inside which a resent cid is recognised.  50 covers a reconnect of a
# few seconds in a busy room while a snapshot of many rooms stays small.
HISTORY_SIZE = 50
# Broker heartbeat period.  1 s keeps broker-down detection within a few
# seconds while costing one tiny PUB frame per second.
HEARTBEAT_MS = 1000
# Silence after which a node counts the broker as down (healthz 503): three
# missed heartbeats, so one late beat does not take a node out of the balancer.
DEAD_AFTER_MS = 3 * HEARTBEAT_MS
# A node reports its members every heartbeat; five missed reports and its
# members are gone (a dead node's users leave within ~5 s, while a node busy
# for a second or two keeps them).
NODE_TTL_MS = 5 * HEARTBEAT_MS
# How long a message may wait to be sequenced before the client hears
# `unavailable`: the client contract's default (PROTOCOL.md).
ACK_TIMEOUT_MS = 5000
# ZeroMQ high-water mark, messages queued per peer and socket before PUB drops
# or ROUTER/DEALER refuse: rides out several seconds of a burst at benchmark
# rates (docs/BENCHMARKS.md) while bounding memory.
ZMQ_HWM = 100_000
# A room without a message for this long loses its messages (in the broker's
# memory and store; its position stays): a month keeps any conversation people
# come back to, while abandoned rooms stop costing memory and disk.
ROOM_TTL_DAYS = 30
# Rooms the broker keeps in memory; beyond, the least recently used leave it
# and are loaded from the store on their next use.  10,000 rooms of 50 typical
# messages is ~100 MB; a room is one SELECT away when it comes back.
BROKER_ROOMS_IN_MEMORY = 10_000
# How often the broker looks for rooms past their TTL (one indexed query a sweep).
ROOM_SWEEP_MS = 3_600_000

# Rooms a node asks for in one snapshot request when it (re)syncs: a reply stays under
# the node's frame limit (this many rooms x HISTORY_SIZE messages), whatever it follows.
SNAPSHOT_ROOMS_PER_REQUEST = 20
# A room stays followed this long after its last local member left, at most this many
# such rooms per node (the oldest stops first): a member coming back needs no fetch.
FOLLOW_GRACE_S = 300
FOLLOW_GRACE_ROOMS = 5000

# --- One node --------------------------------------------------------------------

NODE_NAME = "node1"
NODE_HOST = "127.0.0.1"   # behind the balancer on the same machine
NODE_PORT = 8001          # node1..node3 take 8001..8003; the balancer 8000

# Limits, each refused with the contract's error (docs/PROTOCOL-EXTENSIONS.md).
# Largest event payload a node accepts (payload_too_large): a 2000-character
# text whose every character is JSON-escaped still fits.
MAX_PAYLOAD_BYTES = 16384
# Per connection, sustained messages per second and the burst above it
# (rate_limited): far above anyone typing, far below a flooding script.
RATE_PER_S = 20.0
RATE_BURST = 40
MAX_ROOMS_PER_CONNECTION = 50       # too_many_rooms
MAX_CONNECTIONS = 10_000            # per node (connect_error too_many_connections)
# Packets queued for one client before it counts as not reading and is cut
# off: bounds a node's memory at this times its connections.
MAX_SEND_QUEUE = 1000
# Engine.IO heartbeat, whole seconds (the handshake sends int(s) * 1000 ms):
# python-socketio's defaults, so idle websockets cost one ping per 25 s.
PING_INTERVAL_S = 25
PING_TIMEOUT_S = 20

# --- Presence (the broker's registry) ----------------------------------------------

# A room's member list goes out at most once per this period, carrying every
# change since the last one: 200 ms still feels live in a member list, and 400
# joins to one room cost each member a few lists instead of 400
# (bench/studies/presence_storm.py; docs/FAULTS.md "Hostile peer").
PRESENCE_INTERVAL_MS = 200
# What one node's report may hold.  A real node never comes near: nicks per room
# are bounded by its connections (MAX_CONNECTIONS), and 10,000 distinct rooms
# with members on one node would mean nearly one room per connection at the
# node's limit.  The caps bound what a bad report costs the broker.
PRESENCE_MAX_ROOMS = 10_000
PRESENCE_MAX_NICKS = MAX_CONNECTIONS
# Distinct node names registered at once: far above any cluster we run (3-10
# nodes), low enough that invented names cannot grow the registry.  A report
# from one more new name is refused until a node expires or says goodbye.
PRESENCE_MAX_NODES = 64

LOG_LEVEL = "INFO"

# --- Accounts and sessions (nodes only) ---------------------------------------------

# The nodes' shared database when DATABASE_URL is unset: one SQLite file in WAL mode,
# for nodes on one host (PostgreSQL for several).  Relative to the repository.
DATABASE_PATH = "var/web.sqlite3"
# How long a SQLite write waits for another node's lock.  Writes are a session or an
# account saved (milliseconds), so 5 s is only reached when something is stuck; the
# wait blocks the node's gevent loop, so it must stay short.
DATABASE_TIMEOUT_S = 5
# Django's SECRET_KEY, made once by scripts/setup (DJANGO_SECRET_KEY overrides it).
SECRET_KEY_FILE = "var/secret_key"

# --- The backplane: CURVE keys and frame limits ---------------------------------------

# ZeroMQ CURVE keys of the broker's three sockets (scripts/keys makes them;
# scripts/run makes a development set here on first start).  Every file can
# also be named on its own by its variable (KEY_FILES); the folder's layout:
#   broker.key_secret        the broker's key pair       broker host only
#   broker.key               the broker's public key     every node host
#   node.key_secret          this host's node key pair   node host only
#   node.key                 its public key              -> the broker's authorized_nodes/
#   authorized_nodes/*.key   the node keys the broker accepts (nothing else connects)
# Under var/ (git-ignored) so a clone never carries keys.
KEYS_DIR = "var/keys"
KEY_FILES = {   # name -> (variable naming the file, its name in CHAT_KEYS_DIR)
    "broker_secret": ("CHAT_BROKER_SECRET_KEY", "broker.key_secret"),
    "authorized_nodes": ("CHAT_AUTHORIZED_NODES", "authorized_nodes"),
    "broker_public": ("CHAT_BROKER_PUBLIC_KEY", "broker.key"),
    "node_secret": ("CHAT_NODE_SECRET_KEY", "node.key_secret"),
}
# What a frame carries besides the client's payload: type, rid, room (64),
# nick (32 characters, up to 4 UTF-8 bytes each), node name, cid (64), the
# message id and JSON quoting, plus CURVE's 33 bytes of box and nonce per frame
# (ZMQ_MAXMSGSIZE counts the encrypted frame).  All of it is well under 1 KB;
# 4 KB leaves room for fields yet to come without letting a peer in much.
WIRE_ENVELOPE_BYTES = 4096
# Largest frame the broker reads (ZMQ_MAXMSGSIZE of its three sockets): one
# publish of the largest payload a node accepts.  A peer sending more is
# disconnected before the frame is buffered, so no peer can make the broker
# hold, sequence or store more than this per message (presence reports are
# sent in chunks that fit).
BROKER_MAX_FRAME_BYTES = MAX_PAYLOAD_BYTES + WIRE_ENVELOPE_BYTES
# Presence in a frame to a node: a `presence` frame lists one room's members,
# a snapshot reply every room's.  16 MiB holds ~400,000 memberships of 32-
# character nicks: far above a 3-node cluster at MAX_CONNECTIONS each.
PRESENCE_WIRE_BYTES = 16 * 2**20


def node_max_frame_bytes(history_size=HISTORY_SIZE, max_payload_bytes=MAX_PAYLOAD_BYTES,
                         rooms_per_request=SNAPSHOT_ROOMS_PER_REQUEST):
    """Largest frame a node reads from the (authenticated) broker: a snapshot reply.

    The largest reply is ``rooms_per_request`` rooms of ``history_size``
    messages each at most one broker frame, plus the cluster's presence; every
    other frame (a message, a room's member list, a history) is smaller.  With
    the defaults 20 x 50 x 20 KB + 16 MiB = ~36 MiB: no real frame is refused,
    while a broken or hostile peer cannot make the node buffer 200 MB.
    """
    return (rooms_per_request * history_size * (max_payload_bytes + WIRE_ENVELOPE_BYTES)
            + PRESENCE_WIRE_BYTES)


NODE_MAX_FRAME_BYTES = node_max_frame_bytes()

# --- The edge: what browsers and other clients reach (nodes and balancer) -----------

BALANCER_PORT = 8000        # the balancer's http port (scripts/run)
BALANCER_TLS_PORT = 8443    # its https port; 0 when the balancer serves no TLS
# The balancer connects to the nodes from this loopback address of its own
# (deploy/haproxy.cfg "source"), and a node believes X-Forwarded-For / X-Forwarded-Proto
# only from it: local processes connect from 127.0.0.1, and anyone else's are dropped,
# so a client cannot claim another address or TLS.
BALANCER_SOURCE = "127.0.0.254"
TRUSTED_PROXIES = (BALANCER_SOURCE,)
# An Engine.IO session without a Socket.IO connect this long is closed: a client
# sends its connect right after the handshake, so 5 s is generous even on a slow
# link, while 20,000 handshakes cannot pile up sessions.
HALF_OPEN_TIMEOUT_S = 5.0
# Engine.IO sessions a node at CHAT_MAX_CONNECTIONS still opens, only so that
# Socket.IO clients hear the contract's too_many_connections; beyond it the
# handshake itself is refused (HTTP 503).
SESSION_HEADROOM = 100
# Requests other than `message`, per connection: (sustained per second, burst).
# A real page never comes near: the lobby asks `rooms` every 3 s, a room page asks
# `members` once per join, and a client rejoining all its rooms after a reconnect
# needs at most MAX_ROOMS_PER_CONNECTION joins at once.
REQUEST_RATES = {
    "join": (5.0, MAX_ROOMS_PER_CONNECTION),
    "leave": (5.0, MAX_ROOMS_PER_CONNECTION),
    "rooms": (2.0, 10),
    "members": (5.0, 20),
}


def own_origins(node_port=NODE_PORT, balancer_port=BALANCER_PORT,
                tls_port=BALANCER_TLS_PORT):
    """The default CHAT_ALLOWED_ORIGINS: the balancer's (http, and https when
    ``tls_port``) and this node's own, as 127.0.0.1 and as localhost."""
    origins = []
    for scheme, port in (("http", balancer_port), ("https", tls_port), ("http", node_port)):
        if port:
            origins += ["%s://127.0.0.1:%d" % (scheme, port), "%s://localhost:%d" % (scheme, port)]
    return origins


def request_rates(text="", defaults=None):
    """REQUEST_RATES with the overrides of ``text``: ``"join=5/50,rooms=2/10"``
    (event=per second/burst); an unknown event or a bad number raises ValueError."""
    rates = dict(REQUEST_RATES if defaults is None else defaults)
    for item in filter(None, (part.strip() for part in text.split(","))):
        event, _, rate = item.partition("=")
        per_s, _, burst = rate.partition("/")
        if event not in rates:
            raise ValueError("CHAT_REQUEST_RATES: no request %r (have %s)"
                             % (event, ", ".join(sorted(rates))))
        try:
            rates[event] = (float(per_s), int(burst))
        except ValueError:
            raise ValueError("CHAT_REQUEST_RATES: %r is not event=per_second/burst"
                             % item) from None
    return rates


# --- Operations: metrics, /ops/, log format (chatstream/config_ops.py) -----------
from .config_ops import *  # noqa: E402,F401,F403  (one import: every default stays here)

# --- Reading the environment ------------------------------------------------------

def env_str(name, default, environ=None):
    """``environ[name]`` (default ``os.environ``), or ``default`` when unset."""
    return (os.environ if environ is None else environ).get(name, default)


def env_int(name, default, environ=None):
    """An integer variable; a value that is not one raises ValueError naming the variable."""
    value = env_str(name, None, environ)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError("%s must be an integer, not %r" % (name, value)) from None


def broker_endpoints(environ=None, bind=False):
    """The broker's three endpoints, {"intake", "publish", "snapshot"}.

    One rule for both sides: ``CHAT_BROKER_<SOCKET>`` (nodes connect to it) or,
    with ``bind``, ``CHAT_BROKER_<SOCKET>_BIND`` (the broker binds it) when set;
    otherwise ``tcp://CHAT_BROKER_HOST:CHAT_BROKER_<SOCKET>_PORT``.  So setting
    only the host and ports makes the broker bind where the nodes connect.
    """
    host = env_str("CHAT_BROKER_HOST", BROKER_HOST, environ)
    endpoints = {}
    for socket_name, default_port in BROKER_PORTS.items():
        prefix = "CHAT_BROKER_%s" % socket_name.upper()
        port = env_int(prefix + "_PORT", default_port, environ)
        explicit = prefix + "_BIND" if bind else prefix
        endpoints[socket_name] = env_str(explicit, tcp_endpoint(host, port), environ)
    return endpoints


def key_path(name, keys_dir=KEYS_DIR, named=""):
    """``(path, named)`` of one CURVE file of KEY_FILES: the path its variable
    named (``named``), else its place in ``keys_dir``."""
    if named:
        return named, True
    return os.path.join(keys_dir, KEY_FILES[name][1]), False


def curve_files(paths):
    """The CURVE files to use, ``{name: path}``, or None when CURVE is off.

    :param paths: ``{name: (path, named)}`` as :func:`key_path` gives them.
    On when every file exists; off when none exists and none was named by its
    variable; anything between (a named file missing, half a set) is a
    mistake and raises ValueError naming what is missing.
    """
    missing = [path for path, _ in paths.values() if not os.path.exists(path)]
    if not missing:
        return {name: path for name, (path, _) in paths.items()}
    if len(missing) == len(paths) and not any(named for _, named in paths.values()):
        return None
    raise ValueError("CURVE keys incomplete: %s missing (scripts/keys makes them; "
                     "docs/OPERATIONS.md \"Running a node on another host\")" % ", ".join(missing))
