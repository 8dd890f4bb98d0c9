"""The node's link to the broker (imports zmq and chatstream, never Socket.IO).

=================  ==========================================================
``broker_link``    :class:`BrokerLink`: the link's state machine and the narrow
                   interface the chat's event handlers use (follow, release,
                   view, sequence, members, wait_synced ...)
``channel``        requests with many in flight, matched to replies by rid
``rooms``          rooms this node follows, one record per room
``mirror``         the followed rooms' streams, merged from snapshots and live
                   messages by (epoch, seq)
``presence``       this node's members (reported) and the cluster's (received)
``state``          the link's named states and its listener (the node)
``transport``      the three ZeroMQ sockets (``zmq.green``)
``memory``         the in-memory twin of the transport, over the real broker
``failover``       both brokers of the failover pair as one transport; requests
                   resent to the other broker (same cid) within the ack timeout
``memory_pair``    the in-memory twin of the pair (real Binary Star and replication)
=================  ==========================================================
"""
from .broker_link import BrokerLink
from .channel import BrokerUnavailable
from .state import LinkState, Listener
from .transport import ZmqTransport

__all__ = ["BrokerLink", "BrokerUnavailable", "LinkState", "Listener", "ZmqTransport"]
