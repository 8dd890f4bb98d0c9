"""The cluster's shared settings: every default once, one rule for the environment.

Stdlib only, so the broker (no Django) and the node's ``settings.py`` read the
same defaults; both read the environment once, at start-up, through the
functions below.  Everything below them takes keyword arguments whose
defaults are these constants.  Every ``CHAT_*`` variable is listed in
docs/CONFIGURATION.md.
"""
import os
import re
from dataclasses import dataclass

# --- Where the broker is -------------------------------------------------------

# Loopback: the development cluster runs on one machine, and a broker reachable
# from elsewhere must be asked for (CHAT_BROKER_HOST=0.0.0.0).
BROKER_HOST = "127.0.0.1"
INTAKE_PORT = 5555      # node DEALER -> broker ROUTER: publish, announce, presence
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

# The failover pair: ``broker`` (primary) serves nodes on the ports above,
# ``broker2`` (backup) on the same ports plus BROKER2_PORT_OFFSET; each binds
# its peer port for the other broker's link (broker/replication.py).
PEER_PORT = 5559          # broker's ROUTER for broker2's peer DEALER
BROKER2_PORT_OFFSET = 10  # broker2's ports: 5565-5567 and 5569
BROKER2_PEER_PORT = PEER_PORT + BROKER2_PORT_OFFSET
PAIR_ROLES = ("primary", "backup")
# Rooms over several pairs (chatstream/shards.py): CHAT_BROKER_PAIRS=N adds pairs 2..N
# on CHAT_BROKER_HOST, pair k's brokers this many ports after pair k-1's (broker3 on
# 5575-5577, metrics 5578, peer 5579; broker4 10 above), clear of pair one's 5555-5569.
PAIR_PORT_STRIDE = 20
BROKER_PAIRS = 1

# --- The stream ----------------------------------------------------------------

# Messages kept per room: the replay buffer a resume is served from, and the
# window inside which a resent cid is recognised.  50 covers a reconnect of a
# few seconds in a busy room while a snapshot of many rooms stays small.
HISTORY_SIZE = 50
# How long a resent cid is still recognised after its message left the replay buffer:
# a node resends a publish whose ack is late (after 1 s, until the ack timeout) and a
# client may retry after `unavailable`; in a busy room the 50 buffered messages are a
# fraction of a second, and an ack a loaded broker answers in 2 s would be sequenced
# twice.  30 s is six ack timeouts; at most CID_WINDOW_MAX cids per room are kept
# beyond the buffer (an id and a seq each), which bounds the memory of a flat-out room.
CID_WINDOW_S = 30
CID_WINDOW_MAX = 20_000
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
# How long an author may edit a message (edit_window_expired; moderators any time):
# long enough to fix a typo or a link, short enough that what was read stays as read.
EDIT_WINDOW_S = 3600
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
#   broker.key_secret           the broker's key pair       broker host only
#   broker.key                  the broker's public key     every node host
#   nodes/NAME.key_secret       node NAME's key pair        NAME's host only
#   nodes/NAME.key              its public key              -> the broker's authorized_nodes/
#   authorized_nodes/NAME.key   the node keys the broker accepts, each for the node
#                               its file is named after (nothing else connects)
#   uid_proof.secret            the uid proof key (chatstream/uid_proofs.py): not a
#                               CURVE key; every node host and broker host
# Under var/ (git-ignored) so a clone never carries keys.
KEYS_DIR = "var/keys"
KEY_FILES = {   # name -> (variable naming the file, its name in CHAT_KEYS_DIR)
    "broker_secret": ("CHAT_BROKER_SECRET_KEY", "broker.key_secret"),
    "authorized_nodes": ("CHAT_AUTHORIZED_NODES", "authorized_nodes"),
    "broker_public": ("CHAT_BROKER_PUBLIC_KEY", "broker.key"),
    "node_secret": ("CHAT_NODE_SECRET_KEY", "nodes/{node}.key_secret"),
    "uid_proof": ("CHAT_UID_PROOF_KEY", "uid_proof.secret"),
}
# The nodes of scripts/run (supervisord.conf): scripts/keys init makes a key for each.
LOCAL_NODES = ("node1", "node2", "node3")
# Both brokers of a pair hold the same key pair (broker.key_secret), so nodes trust
# one broker key; a broker's peer ROUTER admits only the public keys in this folder
# of CHAT_KEYS_DIR (scripts/keys init puts broker.key there), never a node's.
AUTHORIZED_PEERS = "authorized_peers"
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
# New Engine.IO sessions per client address and node, per second and burst (HTTP 429 beyond):
# a page opens one per load or reconnect, a household or office behind one address a few
# at once; one script from one address opened thousands a second and filled a node.
HANDSHAKE_RATE = (20.0, 100)

REQUEST_RATES = {
    "join": (5.0, MAX_ROOMS_PER_CONNECTION),
    "leave": (5.0, MAX_ROOMS_PER_CONNECTION),
    "rooms": (2.0, 10),
    "members": (5.0, 20),
    "history": (10.0, 20),     # a reader scrolling back quickly, a page per request
    # a reader typing a query (the page waits for a pause); each one reads an index
    "search": (2.0, 10),
    # private rooms: a person starts a few conversations a minute, a lobby lists its
    # own rooms on load and after each change; each costs database writes
    "dm": (0.5, 10), "create": (0.2, 5), "invite": (1.0, 10), "remove": (1.0, 10),
    "private_rooms": (1.0, 10),
    "ban": (1.0, 10),          # a moderator clearing out a raid bans a handful at once
    "report": (0.2, 5),        # a few reports in a row, then one per 5 s: no flooding staff
    "read": (10.0, 50),        # a page sends one a second per room at most; 50 rooms at once
    "typing": (5.0, 20),       # a page sends one per 2 s; only one per 2 s is passed on anyway
}

# Moderation (PROTOCOL.md "People"): a report's reason is a sentence or two, and a ban's
# `minutes` at most a year (longer is "for good": no `minutes`).
REPORT_REASON_MAX = 500
BAN_MINUTES_MAX = 525_600

# Private rooms (PROTOCOL.md "People"): a private room is a team, a bigger audience is a
# public room; what one account owns bounds what it makes the database and lobbies hold.
PRIVATE_ROOM_MAX_MEMBERS = 100     # owner included
PRIVATE_ROOMS_PER_ACCOUNT = 20     # direct conversations do not count
# How long a node trusts the private-room membership it read when no change reached it:
# changes are pushed to every node, so this only bounds the harm of one lost on the wire.
ACCESS_CACHE_S = 60.0
# uids whose bans a node keeps in memory (the message path asks it, never the database);
# the least recently used are read again at their next join.
BAN_CACHE_UIDS = 10_000

# Requests per person (an account; a guest's browser session), across every connection
# and node of theirs: (sustained per second, burst).  A person has one allowance
# whatever number of tabs, devices or scripts: 20 tabs do not send 20 times as much.
# Each is far above what one person does by hand, and at most what one connection
# may do (REQUEST_RATES, RATE_PER_S), so one tab never notices it.
PERSON_RATES = {
    "message": (5.0, 20),    # a fast typist sends one a second; a pasted burst of lines
    "join": (5.0, 50),       # a reconnect rejoins every room of every tab at once
    "history": (10.0, 40),   # scrolling back quickly in two tabs
    "search": (1.0, 10),     # each a full-text query on the database
    "dm": (0.5, 10),         # opening conversations one after another
    "create": (0.2, 5),      # rooms are made rarely; a script making many is not a person
    "report": (0.2, 5),      # a few reports in a row, not a flood for staff to wade through
}
# A guest's address (of every guest behind it, e.g. an office's NAT, and of guests
# without a session, who are new people at each connection) gets this many persons'
# allowance: a few dozen people behind one address each chat at a person's rate.
ADDRESS_RATE_FACTOR = 10
# How often a node tells the others what each person spent (a ``usage`` fan-out), in
# ms.  A person over their allowance is refused everywhere within about this long;
# meanwhile each node they use admits at most its own share of one burst.
USAGE_SHARE_MS = 200
# Persons a node tracks at once; beyond, the fullest (longest idle) buckets are dropped:
# a dropped bucket is a full one, so nobody gains by it.
PERSONS_TRACKED_MAX = 100_000

# --- Unread and typing (nodes only) --------------------------------------------------

# Unread counts are exact up to this; above it `rooms` says UNREAD_MAX + 1 and the lobby
# "99+": counting stops there, so a huge room costs one bounded query (LIMIT), not a scan.
UNREAD_MAX = 99
# Rooms one `rooms` answer counts unread messages in (the account's most recently read
# first, then the busiest): each is a query, and a lobby lists a few dozen at most.
UNREAD_ROOMS_MAX = 50
# Read positions are written to the database at most this often (in ms), every account's
# moves of the period in one transaction: a page reports one as each message is seen,
# and a burst of them is one row update.  Meanwhile every node knows it from the fan-out.
READ_FLUSH_MS = 1000
# A connection's `typing` is passed on at most once per this period (PROTOCOL.md "People").
TYPING_INTERVAL_MS = 2000


def own_origins(balancer_port=BALANCER_PORT, tls_port=BALANCER_TLS_PORT):
    """The default CHAT_ALLOWED_ORIGINS, the same on every node: the balancer's (http, and
    https when ``tls_port``), as 127.0.0.1 and as localhost.  A page a node serves itself
    may talk to that node too (``edge.OriginPolicy``: its own origin)."""
    origins = []
    for scheme, port in (("http", balancer_port), ("https", tls_port)):
        if port:
            origins += ["%s://127.0.0.1:%d" % (scheme, port), "%s://localhost:%d" % (scheme, port)]
    return origins


def handshake_rate(text=""):
    """HANDSHAKE_RATE, or ``text``'s ``"per_second/burst"``; ``"off"``: None (no limit)."""
    if not text.strip():
        return HANDSHAKE_RATE
    if text.strip() == "off":
        return None
    per_s, _, burst = text.partition("/")
    try:
        return float(per_s), int(burst)
    except ValueError:
        raise ValueError("CHAT_HANDSHAKE_RATE: %r is not per_second/burst or off" % text) from None


def request_rates(text="", defaults=None, name="CHAT_REQUEST_RATES"):
    """REQUEST_RATES (or ``defaults``) with the overrides of ``text``:
    ``"join=5/50,rooms=2/10"`` (event=per second/burst); an unknown event or a bad
    number raises ValueError naming the variable ``name``."""
    rates = dict(REQUEST_RATES if defaults is None else defaults)
    for item in filter(None, (part.strip() for part in text.split(","))):
        event, _, rate = item.partition("=")
        per_s, _, burst = rate.partition("/")
        if event not in rates:
            raise ValueError("%s: no request %r (have %s)"
                             % (name, event, ", ".join(sorted(rates))))
        try:
            rates[event] = (float(per_s), int(burst))
        except ValueError:
            raise ValueError("%s: %r is not event=per_second/burst"
                             % (name, item)) from None
    return rates


def person_rates(text=""):
    """PERSON_RATES with ``text``'s overrides (as :func:`request_rates`); ``"off"``: none."""
    if text.strip() == "off":
        return {}
    return request_rates(text, PERSON_RATES, name="CHAT_PERSON_RATES")


# --- Operations: metrics, /ops/, log format ------------------------------------

# The broker's Prometheus endpoint, http://<CHAT_BROKER_HOST>:5558/metrics: the
# port after its three ZeroMQ sockets; 0 serves no metrics.
BROKER_METRICS_PORT = 5558
# The archiver's (manage.py runarchiver), on loopback: beside the broker pair's ports.
ARCHIVER_METRICS_PORT = 5560
# The name of the archiver's key (authorized_nodes/archiver.key, its CHAT_NODE_NAME): the
# broker answers the archive requests (the store's backlog, watermarks) under it only.
ARCHIVER_NAME = "archiver"

# What /ops/ and scripts/status scrape, "name=url" by comma: the default cluster
# of scripts/run (supervisord.conf).  A name starting with "broker" is a broker, one
# starting with "archiver" the archiver (its lag on /ops/).
OPS_TARGETS = ("node1=http://127.0.0.1:8001,node2=http://127.0.0.1:8002,"
               "node3=http://127.0.0.1:8003,broker=http://127.0.0.1:5558,"
               "broker2=http://127.0.0.1:5568,archiver=http://127.0.0.1:%d" % ARCHIVER_METRICS_PORT)
# The nodes the balancer serves, written by scripts/node (chatstream/discovery.py) and
# read by Prometheus, /ops/ and scripts/status beside OPS_TARGETS.  Relative to the
# repository (Prometheus finds it from deploy/prometheus.yml: ../var/targets/).
OPS_TARGETS_FILE = "var/targets/nodes.json"
# One scrape may take this long before its target counts as down: well under the
# dashboard's 1 s period, and far above a loopback scrape (about 2 ms).
OPS_SCRAPE_TIMEOUT_S = 0.5
# Scrapes are cached this long: many open dashboards cost one scrape per second.
OPS_CACHE_S = 1.0

# Where scripts/node drain leaves a node its plan (``<node>.json``) before it signals
# the node (SIGUSR1); relative to the repository, like the discovery file.
DRAIN_DIR = "var/drain"
# How long a drain spreads its disconnects over when not told (scripts/node drain
# --over): a full node (MAX_CONNECTIONS) sends the others 1,000 reconnects a second
# instead of all of them at once, and a small one is empty within seconds.
DRAIN_OVER_S = 10.0

# "plain" (human) or "json" (one JSON object per line, for log collectors).
LOG_FORMAT = "plain"


def pair_brokers(k):
    """Supervisor program names of pair ``k`` (1-based) of scripts/run: ``broker``/``broker2``,
    ``broker3``/``broker4``...  (primary, backup)."""
    return ("broker" if k == 1 else "broker%d" % (2 * k - 1)), "broker%d" % (2 * k)


def broker_pair(name):
    """The pair (1-based) of a broker program named as scripts/run names them (``broker``
    and ``broker2``: 1, ``broker3`` and ``broker4``: 2 ...); None for another name."""
    found = re.fullmatch(r"broker(\d*)", name)
    return (int(found.group(1) or 1) + 1) // 2 if found else None


def default_ops_targets(environ=None):
    """OPS_TARGETS, with the brokers of pairs 2..CHAT_BROKER_PAIRS at their default metrics
    ports (scripts/run's second pair: broker3 on 5578, broker4 on 5588)."""
    host = env_str("CHAT_BROKER_HOST", BROKER_HOST, environ)
    extra = []
    for k in range(2, env_int("CHAT_BROKER_PAIRS", BROKER_PAIRS, environ) + 1):
        for backup, name in enumerate(pair_brokers(k)):
            port = BROKER_METRICS_PORT + (k - 1) * PAIR_PORT_STRIDE + backup * BROKER2_PORT_OFFSET
            extra.append("%s=http://%s:%d" % (name, host, port))
    return ",".join([OPS_TARGETS] + extra)


def ops_targets(text):
    """``[(name, url), ...]`` from "name=url,name=url" (CHAT_OPS_TARGETS)."""
    targets = []
    for item in text.split(","):
        name, sep, url = item.strip().partition("=")
        if not item.strip():
            continue
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError("CHAT_OPS_TARGETS item %r is not name=http(s)://host:port" % item)
        targets.append((name, url.rstrip("/")))
    return targets


def ops_targets_file(environ, root):
    """The discovery file to read beside CHAT_OPS_TARGETS: CHAT_OPS_TARGETS_FILE
    (relative to ``root``), else the default one unless CHAT_OPS_TARGETS is set (a
    hand-set list describes a cluster of its own); None: none."""
    path = environ.get("CHAT_OPS_TARGETS_FILE") or (
        None if environ.get("CHAT_OPS_TARGETS") else OPS_TARGETS_FILE)
    if not path:
        return None
    return os.path.join(root, path)


def drain_plan(drain_dir, node):
    """The file holding ``node``'s drain plan in ``drain_dir``."""
    return os.path.join(drain_dir, "%s.json" % node)


# --- The broker process -----------------------------------------------------------

# Durable room state (broker/store.py); "memory" keeps nothing across restarts.
BROKER_STATE_PATH = "var/broker.sqlite3"
# SQLite synchronous: NORMAL survives kill -9 of the broker; FULL also a power
# cut, at an fsync per commit.
BROKER_STATE_SYNC = "NORMAL"


@dataclass(frozen=True)
class BrokerConfig:
    """Everything the broker takes (broker/server.py); :func:`broker_config` reads it
    from the environment."""
    intake: str = INTAKE_ENDPOINT
    publish: str = PUBLISH_ENDPOINT
    snapshot: str = SNAPSHOT_ENDPOINT
    history_size: int = HISTORY_SIZE
    heartbeat_ms: int = HEARTBEAT_MS
    node_ttl_ms: int = NODE_TTL_MS
    sndhwm: int = ZMQ_HWM
    rcvhwm: int = ZMQ_HWM
    log_level: str = LOG_LEVEL
    state_path: str = BROKER_STATE_PATH
    state_sync: str = BROKER_STATE_SYNC
    # Presence: a room's list published at most once per interval; caps on reports.
    presence_interval_ms: int = PRESENCE_INTERVAL_MS
    presence_max_rooms: int = PRESENCE_MAX_ROOMS
    presence_max_nicks: int = PRESENCE_MAX_NICKS
    presence_max_nodes: int = PRESENCE_MAX_NODES
    room_ttl_days: int = ROOM_TTL_DAYS
    cid_window_s: int = CID_WINDOW_S
    rooms_in_memory: int = BROKER_ROOMS_IN_MEMORY
    # CURVE (broker/keys.py): the keys folder, or each file named on its own
    # ("" = its place in keys_dir); on when the files exist.
    keys_dir: str = KEYS_DIR
    secret_key: str = ""
    authorized_nodes: str = ""
    # The uid proof key's file ("" = its place in keys_dir): required with CURVE.
    uid_proof_key: str = ""
    # Without keys the broker binds loopback only, unless this is set.
    insecure: bool = False
    max_frame_bytes: int = BROKER_MAX_FRAME_BYTES
    # Prometheus /metrics (broker/metrics.py) on the broker's host; port 0: none.
    metrics_host: str = BROKER_HOST
    metrics_port: int = BROKER_METRICS_PORT
    log_format: str = LOG_FORMAT
    # The failover pair (broker/pair.py): "" runs alone, "primary" (broker) or
    # "backup" (broker2); peer_bind is this broker's peer ROUTER, peer the partner's.
    pair_role: str = ""
    peer_bind: str = ""
    peer: str = ""
    # The archiver's key name (ARCHIVER_NAME).
    archiver: str = ARCHIVER_NAME


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


def peer_endpoints(role, environ=None):
    """``(bind, connect)``: this pair broker's peer endpoint and its partner's.

    ``CHAT_BROKER_PEER_BIND`` and ``CHAT_BROKER_PEER`` override them; by
    default both are on ``CHAT_BROKER_HOST`` (the primary binds PEER_PORT and
    connects BROKER2_PEER_PORT, the backup the other way round).
    """
    if role not in PAIR_ROLES:
        raise ValueError("CHAT_BROKER_ROLE must be one of %s, not %r" % (PAIR_ROLES, role))
    host = env_str("CHAT_BROKER_HOST", BROKER_HOST, environ)
    own, other = ((PEER_PORT, BROKER2_PEER_PORT) if role == "primary"
                  else (BROKER2_PEER_PORT, PEER_PORT))
    return (env_str("CHAT_BROKER_PEER_BIND", tcp_endpoint(host, own), environ),
            env_str("CHAT_BROKER_PEER", tcp_endpoint(host, other), environ))


def broker2_endpoints(environ=None):
    """``broker2``'s three endpoints for the nodes, or None when the pair is
    not configured (``CHAT_BROKER_PAIR=1``, or any ``CHAT_BROKER2_*`` set).

    The rule of :func:`broker_endpoints` with ``CHAT_BROKER2_``:
    ``CHAT_BROKER2_<SOCKET>``, else ``tcp://CHAT_BROKER2_HOST:CHAT_BROKER2_<SOCKET>_PORT``
    (host default ``CHAT_BROKER_HOST``, ports offset by BROKER2_PORT_OFFSET).
    """
    env = os.environ if environ is None else environ
    if env.get("CHAT_BROKER_PAIR") != "1" and not any(k.startswith("CHAT_BROKER2_") for k in env):
        return None
    host = env_str("CHAT_BROKER2_HOST", env_str("CHAT_BROKER_HOST", BROKER_HOST, env), env)
    endpoints = {}
    for socket_name, port in BROKER_PORTS.items():
        prefix = "CHAT_BROKER2_%s" % socket_name.upper()
        port = env_int(prefix + "_PORT", port + BROKER2_PORT_OFFSET, env)
        endpoints[socket_name] = env_str(prefix, tcp_endpoint(host, port), env)
    return endpoints


@dataclass(frozen=True)
class BrokerPairEndpoints:
    """One failover pair as the nodes reach it: its name (what rooms hash over,
    chatstream/shards.py) and one or two brokers, each ``{"intake", "publish", "snapshot"}``."""
    name: str
    brokers: tuple


def broker_pairs(environ=None):
    """The broker pairs every node, the archiver and the tools follow, in order.

    ``CHAT_BROKERS``, when set, is the whole list: pairs separated by ``;``, a pair's
    two brokers by ``|``, a broker's intake, publish and snapshot endpoints by ``,``
    (``tcp://h:5555,tcp://h:5556,tcp://h:5557|tcp://h:5565,...;tcp://h:5575,...``).
    Otherwise pair one is :func:`broker_endpoints` and :func:`broker2_endpoints` (as
    with one pair), and ``CHAT_BROKER_PAIRS=N`` adds pairs 2..N on ``CHAT_BROKER_HOST``
    at PAIR_PORT_STRIDE ports each, with a backup when pair one has one.  Pairs are
    named ``pair1``, ``pair2``... by position: a pair is added at the end of the list.
    """
    env = os.environ if environ is None else environ
    count = env_int("CHAT_BROKER_PAIRS", BROKER_PAIRS, env)
    if count < 1:
        raise ValueError("CHAT_BROKER_PAIRS must be at least 1, not %d" % count)
    listed = env_str("CHAT_BROKERS", "", env).strip()
    if listed:
        pairs = [BrokerPairEndpoints("pair%d" % (k + 1), tuple(
            _broker_endpoints_item(broker) for broker in pair.split("|")))
            for k, pair in enumerate(p for p in listed.split(";") if p.strip())]
        if "CHAT_BROKER_PAIRS" in env and count != len(pairs):
            raise ValueError("CHAT_BROKERS lists %d pairs, CHAT_BROKER_PAIRS says %d"
                             % (len(pairs), count))
        return pairs
    first = tuple(e for e in (broker_endpoints(env), broker2_endpoints(env)) if e is not None)
    pairs = [BrokerPairEndpoints("pair1", first)]
    host = env_str("CHAT_BROKER_HOST", BROKER_HOST, env)
    for k in range(1, count):
        pairs.append(BrokerPairEndpoints("pair%d" % (k + 1), tuple(
            {name: tcp_endpoint(host, port + k * PAIR_PORT_STRIDE + backup * BROKER2_PORT_OFFSET)
             for name, port in BROKER_PORTS.items()}
            for backup in range(len(first)))))
    return pairs


def _broker_endpoints_item(text):
    endpoints = [e.strip() for e in text.split(",")]
    if len(endpoints) != 3 or not all(e.startswith("tcp://") for e in endpoints):
        raise ValueError("CHAT_BROKERS: %r is not intake,publish,snapshot (tcp:// each)" % text)
    return dict(zip(BROKER_PORTS, endpoints))


def broker_config(environ=None):
    """A :class:`BrokerConfig` from the CHAT_* environment variables (default ``os.environ``)."""
    default = BrokerConfig()
    endpoints = broker_endpoints(environ, bind=True)
    role = env_str("CHAT_BROKER_ROLE", "", environ)
    peer_bind, peer = peer_endpoints(role, environ) if role else ("", "")
    return BrokerConfig(
        pair_role=role, peer_bind=peer_bind, peer=peer,
        intake=endpoints["intake"],
        publish=endpoints["publish"],
        snapshot=endpoints["snapshot"],
        history_size=env_int("CHAT_HISTORY_SIZE", default.history_size, environ),
        heartbeat_ms=env_int("CHAT_BROKER_HEARTBEAT_MS", default.heartbeat_ms, environ),
        node_ttl_ms=env_int("CHAT_NODE_TTL_MS", default.node_ttl_ms, environ),
        sndhwm=env_int("CHAT_BROKER_SNDHWM", default.sndhwm, environ),
        rcvhwm=env_int("CHAT_BROKER_RCVHWM", default.rcvhwm, environ),
        log_level=env_str("CHAT_LOG_LEVEL", default.log_level, environ),
        state_path=env_str("CHAT_BROKER_STATE", default.state_path, environ),
        state_sync=env_str("CHAT_BROKER_SYNC", default.state_sync, environ).upper(),
        presence_interval_ms=env_int("CHAT_PRESENCE_INTERVAL_MS", default.presence_interval_ms,
                                     environ),
        presence_max_rooms=env_int("CHAT_PRESENCE_MAX_ROOMS", default.presence_max_rooms, environ),
        presence_max_nicks=env_int("CHAT_PRESENCE_MAX_NICKS", default.presence_max_nicks, environ),
        presence_max_nodes=env_int("CHAT_PRESENCE_MAX_NODES", default.presence_max_nodes, environ),
        room_ttl_days=env_int("CHAT_ROOM_TTL_DAYS", default.room_ttl_days, environ),
        cid_window_s=env_int("CHAT_CID_WINDOW_S", default.cid_window_s, environ),
        rooms_in_memory=env_int("CHAT_BROKER_ROOMS_IN_MEMORY", default.rooms_in_memory, environ),
        keys_dir=env_str("CHAT_KEYS_DIR", default.keys_dir, environ),
        secret_key=env_str(KEY_FILES["broker_secret"][0], default.secret_key, environ),
        authorized_nodes=env_str(KEY_FILES["authorized_nodes"][0], default.authorized_nodes,
                                 environ),
        uid_proof_key=env_str(KEY_FILES["uid_proof"][0], default.uid_proof_key, environ),
        insecure=env_str("CHAT_BROKER_INSECURE", "0", environ) == "1",
        # A node accepting larger payloads needs a broker that reads them.
        max_frame_bytes=env_int("CHAT_BROKER_MAX_FRAME_BYTES", env_int(
            "CHAT_MAX_PAYLOAD_BYTES", MAX_PAYLOAD_BYTES, environ) + WIRE_ENVELOPE_BYTES,
            environ),
        metrics_host=env_str("CHAT_BROKER_HOST", default.metrics_host, environ),
        metrics_port=env_int("CHAT_BROKER_METRICS_PORT", default.metrics_port, environ),
        log_format=env_str("CHAT_LOG_FORMAT", default.log_format, environ),
        archiver=env_str("CHAT_ARCHIVER_NAME", default.archiver, environ),
    )


def key_path(name, keys_dir=KEYS_DIR, named="", node=NODE_NAME):
    """``(path, named)`` of one CURVE file of KEY_FILES: the path its variable
    named (``named``), else its place in ``keys_dir`` (node ``node``'s, for its key)."""
    if named:
        return named, True
    return os.path.join(keys_dir, KEY_FILES[name][1].format(node=node)), False


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
