"""Where the two brokers of the failover pair are (issue 15), for brokers and nodes.

``broker`` (the primary) serves nodes on 5555-5557, ``broker2`` (the backup)
on 5565-5567; each binds its peer port (5559, 5569) for the other broker's
link (broker/replication.py).  Stdlib only, like :mod:`chatstream.config`.
"""
from .config import BROKER_HOST, env_str, tcp_endpoint

PEER_PORT = 5559          # broker's ROUTER for broker2's peer DEALER
BROKER2_PORT_OFFSET = 10  # broker2's ports: 5565-5567 and 5569
BROKER2_PEER_PORT = PEER_PORT + BROKER2_PORT_OFFSET
ROLES = ("primary", "backup")


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
