"""The node's link to the broker (imports zmq and chatstream, never Socket.IO).

=================  ==========================================================
``broker_link``    :class:`BrokerLink`: the link's state machine (its named states,
                   what it tells the node: :class:`Listener`) and the narrow
                   interface the chat's event handlers use (follow, release,
                   view, sequence, members, wait_synced ...)
``channel``        requests with many in flight, matched to replies by rid
``rooms``          rooms this node follows, one record per room
``mirror``         the followed rooms' streams, merged from snapshots and live
                   messages by (epoch, seq)
``presence``       this node's members (reported) and the cluster's (received)
``notices``        announcements and member lists waiting behind the room
                   events while the reader is behind (a storm's joins)
``transport``      the three ZeroMQ sockets (``zmq.green``)
``failover``       both brokers of the failover pair as one transport; requests
                   resent to the other broker (same cid) within the ack timeout
=================  ==========================================================

The in-memory twins of the transport and the pair, over the real broker code,
are test equipment: ``harness/twins.py``.
"""
from .broker_link import BrokerLink, LinkState, Listener
from .channel import BrokerUnavailable, Refused
from .transport import ZmqTransport

__all__ = ["BrokerLink", "BrokerUnavailable", "LinkState", "Listener", "Refused",
           "ZmqTransport"]
