"""Broker configuration, read from the environment once.

The defaults shared with the nodes (endpoints, history size, heartbeat, HWM)
and the rule for reading the broker's endpoints come from
:mod:`chatstream.config`; only the broker's own settings are declared here.
"""
from dataclasses import dataclass

from chatstream import config as shared
from chatstream import pair as shared_pair
from chatstream.config import env_int, env_str


MAX_LINGER_MS = 100   # CHAT_BROKER_LINGER_MS: what a message may wait for its commit, at most


@dataclass(frozen=True)
class BrokerConfig:
    intake: str = shared.INTAKE_ENDPOINT
    publish: str = shared.PUBLISH_ENDPOINT
    snapshot: str = shared.SNAPSHOT_ENDPOINT
    history_size: int = shared.HISTORY_SIZE
    heartbeat_ms: int = shared.HEARTBEAT_MS
    node_ttl_ms: int = shared.NODE_TTL_MS
    sndhwm: int = shared.ZMQ_HWM
    rcvhwm: int = shared.ZMQ_HWM
    log_level: str = shared.LOG_LEVEL
    # Durable room state (see store.py); "memory" keeps nothing across restarts.
    state_path: str = "var/broker.sqlite3"
    # NORMAL survives kill -9 of the broker; FULL also a power cut (fsync per commit).
    state_sync: str = "NORMAL"
    # Group commit paced at high rates (broker/pacing.py): from this many sequenced
    # messages/s on, at most one commit per linger (ms); 0 turns it off.
    commit_linger_ms: int = 8
    commit_linger_above: int = 500
    # Presence: a room's list published at most once per interval; caps on reports.
    presence_interval_ms: int = shared.PRESENCE_INTERVAL_MS
    presence_max_rooms: int = shared.PRESENCE_MAX_ROOMS
    presence_max_nicks: int = shared.PRESENCE_MAX_NICKS
    presence_max_nodes: int = shared.PRESENCE_MAX_NODES
    room_ttl_days: int = shared.ROOM_TTL_DAYS
    rooms_in_memory: int = shared.BROKER_ROOMS_IN_MEMORY
    # CURVE (broker/keys.py): the keys folder, or each file named on its own
    # ("" = its place in keys_dir); on when the files exist.
    keys_dir: str = shared.KEYS_DIR
    secret_key: str = ""
    authorized_nodes: str = ""
    # Without keys the broker binds loopback only, unless this is set.
    insecure: bool = False
    max_frame_bytes: int = shared.BROKER_MAX_FRAME_BYTES
    # Prometheus /metrics (broker/metrics.py) on the broker's host; port 0: none.
    metrics_host: str = shared.BROKER_HOST
    metrics_port: int = shared.BROKER_METRICS_PORT
    log_format: str = shared.LOG_FORMAT
    # The failover pair (broker/pair.py): "" runs alone (the default run today),
    # "primary" (supervisor's broker) or "backup" (broker2); peer_bind is this
    # broker's peer ROUTER, peer the partner's.
    pair_role: str = ""
    peer_bind: str = ""
    peer: str = ""


def from_env(environ=None):
    """Build a BrokerConfig from CHAT_* environment variables (default ``os.environ``)."""
    default = BrokerConfig()
    endpoints = shared.broker_endpoints(environ, bind=True)
    role = env_str("CHAT_BROKER_ROLE", "", environ)
    peer_bind, peer = shared_pair.peer_endpoints(role, environ) if role else ("", "")
    linger_ms = env_int("CHAT_BROKER_LINGER_MS", default.commit_linger_ms, environ)
    if not 0 <= linger_ms <= MAX_LINGER_MS:
        raise ValueError("CHAT_BROKER_LINGER_MS must be 0-%d (ms), not %d: a commit waits"
                         " at most that long at high rates" % (MAX_LINGER_MS, linger_ms))
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
        commit_linger_ms=linger_ms,
        commit_linger_above=env_int("CHAT_BROKER_LINGER_ABOVE", default.commit_linger_above,
                                    environ),
        presence_interval_ms=env_int("CHAT_PRESENCE_INTERVAL_MS", default.presence_interval_ms,
                                     environ),
        presence_max_rooms=env_int("CHAT_PRESENCE_MAX_ROOMS", default.presence_max_rooms, environ),
        presence_max_nicks=env_int("CHAT_PRESENCE_MAX_NICKS", default.presence_max_nicks, environ),
        presence_max_nodes=env_int("CHAT_PRESENCE_MAX_NODES", default.presence_max_nodes, environ),
        room_ttl_days=env_int("CHAT_ROOM_TTL_DAYS", default.room_ttl_days, environ),
        rooms_in_memory=env_int("CHAT_BROKER_ROOMS_IN_MEMORY", default.rooms_in_memory, environ),
        keys_dir=env_str("CHAT_KEYS_DIR", default.keys_dir, environ),
        secret_key=env_str(shared.KEY_FILES["broker_secret"][0], default.secret_key, environ),
        authorized_nodes=env_str(shared.KEY_FILES["authorized_nodes"][0], default.authorized_nodes,
                                 environ),
        insecure=env_str("CHAT_BROKER_INSECURE", "0", environ) == "1",
        # A node accepting larger payloads needs a broker that reads them.
        max_frame_bytes=env_int("CHAT_BROKER_MAX_FRAME_BYTES", env_int(
            "CHAT_MAX_PAYLOAD_BYTES", shared.MAX_PAYLOAD_BYTES, environ) + shared.WIRE_ENVELOPE_BYTES,
            environ),
        metrics_host=env_str("CHAT_BROKER_HOST", default.metrics_host, environ),
        metrics_port=env_int("CHAT_BROKER_METRICS_PORT", default.metrics_port, environ),
        log_format=env_str("CHAT_LOG_FORMAT", default.log_format, environ),
    )
