"""The node's connection limit: the one place that decides whether it takes one more client."""
from chatstream import config


class ConnectionLimit:
    """How many clients a node serves, asked by every layer that may refuse one.

    A Socket.IO connection past ``max_connections`` is refused with the contract's
    ``too_many_connections`` (PROTOCOL.md "Errors").  Engine.IO sessions, half-open
    ones included, may go ``headroom`` further, only so that Socket.IO clients get
    that answer; past :attr:`max_sessions` a handshake is refused before a session
    exists (HTTP 503, or close 1013 on a websocket already upgraded) and the edge
    declines the websocket upgrade.

    :param sessions: a callable returning the node's open Engine.IO sessions.
    :param max_connections: Socket.IO connections the node serves; None: no limit.
    :param headroom: Engine.IO sessions allowed beyond ``max_connections``.
    """

    def __init__(self, sessions, max_connections=None, headroom=config.SESSION_HEADROOM):
        self.sessions = sessions
        self.max_connections = max_connections
        self.headroom = headroom

    @property
    def max_sessions(self):
        """Engine.IO sessions the node keeps open at most (None: no limit)."""
        return None if self.max_connections is None else self.max_connections + self.headroom

    def sessions_full(self):
        """True when the node opens no more Engine.IO sessions."""
        return self.max_connections is not None and self.sessions() >= self.max_sessions

    def connections_full(self, connected):
        """True when the node refuses the Socket.IO connection being made now.

        :param connected: Socket.IO connections the node serves; the Engine.IO
            session of the one being made is open already and not counted.
        """
        return (self.max_connections is not None
                and max(connected, self.sessions() - 1) >= self.max_connections)
