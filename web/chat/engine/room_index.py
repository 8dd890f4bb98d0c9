"""A reverse index sid -> rooms for python-socketio's manager: disconnects in O(rooms of the sid).

python-socketio keeps ``rooms[namespace][room] = bidict(sid -> eio_sid)`` and
every connection is also a room of its own (its sid), so its
``BaseManager.basic_disconnect`` and ``get_rooms`` scan every room of the
namespace: one disconnect costs O(connections) and a storm of N disconnects
O(N^2).  Its pending-connect and pending-disconnect lists are searched the same way.

:class:`IndexedRooms` is mixed in before the library's manager (see
:class:`chat.engine.manager.LinkManager`).  It keeps ``sid_rooms[namespace][sid]``
= the rooms of that sid (``None``, the namespace's "connected" room, included)
in step with every enter and leave, and stores the pending lists as
insertion-ordered dicts with the list methods the library calls, so a
disconnect touches only the rooms of its own sid.  chat/engine/patches.py lists it.
"""
from socketio.manager import Manager


class SidList(dict):
    """The library's pending list of sids, as a dict: ``in`` and ``remove`` in O(1)."""

    def append(self, sid):
        self[sid] = None

    def remove(self, sid):
        del self[sid]


class PendingTable(dict):
    """``pending[namespace]``: every list the library stores here becomes a :class:`SidList`."""

    def __setitem__(self, namespace, sids):
        super().__setitem__(namespace, sids if isinstance(sids, SidList) else SidList.fromkeys(sids))


class IndexedRooms:
    """Mixin for a python-socketio manager (before it in the bases)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sid_rooms = {}   # namespace -> {sid: set of rooms}
        self.pending_connect = PendingTable()
        self.pending_disconnect = PendingTable()

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.sid_rooms.setdefault(namespace, {}).setdefault(sid, set()).add(room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        by_sid = self.sid_rooms.get(namespace)
        rooms = by_sid.get(sid) if by_sid else None
        if rooms is None:
            return
        rooms.discard(room)
        if not rooms:
            del by_sid[sid]
            if not by_sid:
                del self.sid_rooms[namespace]

    def basic_disconnect(self, sid, namespace, **kwargs):
        """The library's basic_disconnect, leaving only the sid's own rooms."""
        if namespace not in self.rooms:
            return
        for room in list(self.sid_rooms.get(namespace, {}).get(sid, ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid, namespace):
        """The rooms a client is in (its own sid room included, as the library's)."""
        return [room for room in self.sid_rooms.get(namespace, {}).get(sid, ()) if room is not None]


class IndexedManager(IndexedRooms, Manager):
    """python-socketio's single-process manager with the index (the default of server.ChatServer)."""
