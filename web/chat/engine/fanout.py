"""A room broadcast to this node's members of the room, through public APIs only.

What ``server.manager.emit(event, data, room=room, ignore_queue=True)`` does -- the
Socket.IO packet encoded once, the same Engine.IO packet handed to every member --
without python-socketio's per-member layers; ``python -m bench.studies.emit_local``
compares the two.
"""
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from ..operations.metrics import DELIVERIES


def emit_local(server, event, data, room, namespace="/"):
    """Emit ``event`` with ``data`` to this node's members of ``room``, not published.

    :param server: the node's ``socketio.Server``.
    """
    members = server.manager.rooms.get(namespace, {}).get(room)
    if not members:
        return
    DELIVERIES.inc(len(members))   # once per broadcast, not per member (hot path)
    encoded = server.packet_class(sio_packet.EVENT, namespace=namespace,
                                  data=[event, data]).encode()
    if isinstance(encoded, list):       # binary attachments: python-socketio's own path
        server.manager.emit(event, data, namespace=namespace, room=room, ignore_queue=True)
        return
    pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
    send = server.eio.send_packet
    for eio_sid in list(members.values()):   # a send may close a socket and leave the room
        send(eio_sid, pkt)
