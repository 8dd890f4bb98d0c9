"""The link's named states, and what it tells the node (its listener)."""
import enum
from typing import Protocol


class LinkState(enum.Enum):
    CONNECTING = "connecting"   # no heartbeat heard yet
    SYNCING = "syncing"         # heartbeat heard, snapshot being installed
    LIVE = "live"               # the mirror follows the broker's stream
    DOWN = "down"               # heartbeats stopped: broker gone or unreachable


class Listener(Protocol):
    """What must reach local connections; the client manager implements it.

    The link knows nothing of Socket.IO: it calls these from its reader
    greenlet, in the broker's order.
    """

    def deliver(self, event, data, room):
        """Emit to this node's members of a room: ``message`` (in seq order),
        ``presence`` or ``announcement``."""

    def restart_room(self, room):
        """This node cannot continue a room's stream: disconnect its local
        members, so they resume with ``since`` and hear ``gap``."""

    def relay(self, data):
        """A python-socketio pub/sub message from another node."""
