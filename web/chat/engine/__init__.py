"""The node's Engine.IO transport: python-socketio/engineio servers with our sockets.

=================  ==========================================================
``server``         :class:`ChatServer` and :class:`ChatEngineServer`, and the
                   session table that makes every socket a ``ChatSocket``
``socket``         engineio's Socket as the node uses it (websocket without
                   greenlets, pings on libev timers)
``websocket``      a websocket connection run by loop callbacks (``WsConn``)
``frames``         websocket frames, each bounded at its header
``limit``          the node's connection limit, asked by every layer that refuses
``sweeps``         periodic sweeps: slow clients, half-open sessions, pongs
``room_index``     python-socketio's rooms with a sid -> rooms index
``manager``        python-socketio's client manager over the broker link
``fanout``         one room broadcast to this node's members
``patches``        every library internal replaced or relied on: the table,
                   ``install`` and ``verify``
=================  ==========================================================
"""
