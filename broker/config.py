"""Broker configuration, read from the environment once."""
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class BrokerConfig:
    intake: str = "tcp://127.0.0.1:5555"
    publish: str = "tcp://127.0.0.1:5556"
    snapshot: str = "tcp://127.0.0.1:5557"
    history_size: int = 50
    # Nodes call the broker gone after a few missed beats; 1 s keeps that
    # detection within ~3 s while costing one tiny PUB frame per second.
    heartbeat_ms: int = 1000
    # A node reports its members every heartbeat; five missed reports and its
    # members are gone (a dead node's users leave within ~5 s, while a node
    # busy for a second or two keeps them).
    node_ttl_ms: int = 5000
    # High-water marks: how many messages a socket queues per peer before it
    # drops (PUB) or refuses (ROUTER).  Large enough to ride out a burst of
    # several seconds at benchmark rates, small enough to bound memory.
    sndhwm: int = 100_000
    rcvhwm: int = 100_000
    log_level: str = "INFO"
    # Durable room state (see store.py); "memory" keeps nothing across restarts.
    state_path: str = "var/broker.sqlite3"
    # NORMAL survives kill -9 of the broker; FULL also a power cut (fsync per commit).
    state_sync: str = "NORMAL"


def from_env(environ=os.environ):
    """Build a BrokerConfig from CHAT_* environment variables."""
    def get(name, default):
        return environ.get(name, default)
    host = get("CHAT_BROKER_HOST", "127.0.0.1")
    return BrokerConfig(
        intake=get("CHAT_BROKER_INTAKE_BIND", "tcp://%s:%s" % (host, get("CHAT_BROKER_INTAKE_PORT", "5555"))),
        publish=get("CHAT_BROKER_PUBLISH_BIND", "tcp://%s:%s" % (host, get("CHAT_BROKER_PUBLISH_PORT", "5556"))),
        snapshot=get("CHAT_BROKER_SNAPSHOT_BIND", "tcp://%s:%s" % (host, get("CHAT_BROKER_SNAPSHOT_PORT", "5557"))),
        history_size=int(get("CHAT_HISTORY_SIZE", "50")),
        heartbeat_ms=int(get("CHAT_BROKER_HEARTBEAT_MS", "1000")),
        node_ttl_ms=int(get("CHAT_NODE_TTL_MS", "5000")),
        sndhwm=int(get("CHAT_BROKER_SNDHWM", "100000")),
        rcvhwm=int(get("CHAT_BROKER_RCVHWM", "100000")),
        log_level=get("CHAT_LOG_LEVEL", "INFO"),
        state_path=get("CHAT_BROKER_STATE", "var/broker.sqlite3"),
        state_sync=get("CHAT_BROKER_SYNC", "NORMAL").upper(),
    )
