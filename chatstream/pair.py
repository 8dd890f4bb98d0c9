"""Where the two brokers of the failover pair are (issue 15), for brokers and nodes.

``broker`` (the primary) serves nodes on 5555-5557, ``broker2`` (the backup)
on 5565-5567; each binds its peer port (5559, 5569) for the other broker's
link (broker/replication.py).  Stdlib only, like :mod:`chatstream.config`.
"""
import os

from .config import BROKER_HOST, BROKER_PORTS, env_int, env_str, tcp_endpoint

PEER_PORT = 5559          # broker's ROUTER for broker2's peer DEALER
BROKER2_PORT_OFFSET = 10  # broker2's ports: 5565-5567 and 5569
BROKER2_PEER_PORT = PEER_PORT + BROKER2_PORT_OFFSET
ROLES = ("primary", "backup")
# CURVE on the peer link: both brokers hold the same key pair (broker.key_secret), so the
# nodes trust one broker key; a broker's peer ROUTER admits only the public keys in
# CHAT_KEYS_DIR/authorized_peers/ (scripts/keys init puts broker.key there), never a node's.
AUTHORIZED_PEERS = "authorized_peers"


def peer_endpoints(role, environ=None):
    """``(bind, connect)``: this broker's peer endpoint and its partner's.

    ``CHAT_BROKER_PEER_BIND`` and ``CHAT_BROKER_PEER`` override them; by
    default both are on ``CHAT_BROKER_HOST`` (the primary binds 5559 and
    connects 5569, the backup the other way round).
    """
    if role not in ROLES:
        raise ValueError("CHAT_BROKER_ROLE must be one of %s, not %r" % (ROLES, role))
    host = env_str("CHAT_BROKER_HOST", BROKER_HOST, environ)
    own, other = ((PEER_PORT, BROKER2_PEER_PORT) if role == "primary"
                  else (BROKER2_PEER_PORT, PEER_PORT))
    return (env_str("CHAT_BROKER_PEER_BIND", tcp_endpoint(host, own), environ),
            env_str("CHAT_BROKER_PEER", tcp_endpoint(host, other), environ))


def broker2_endpoints(environ=None):
    """``broker2``'s three endpoints for the nodes, or None when the pair is
    not configured (``CHAT_BROKER_PAIR=1``, or any ``CHAT_BROKER2_*`` set).

    The rule of :func:`chatstream.config.broker_endpoints` with ``CHAT_BROKER2_``:
    ``CHAT_BROKER2_<SOCKET>``, else ``tcp://CHAT_BROKER2_HOST:CHAT_BROKER2_<SOCKET>_PORT``
    (host default ``CHAT_BROKER_HOST``, ports 5565-5567).
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
