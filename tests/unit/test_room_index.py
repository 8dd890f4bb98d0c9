"""chat/engine/room_index.py: python-socketio's rooms with a sid -> rooms index, so a disconnect
looks at the same rooms with 1,000 or 10,000 connected sids (the library's scans them all).

A real Server (ChatServer, python-socketio's disconnect path unchanged) with fake
Engine.IO sids: no sockets, only the manager's structures."""
import random

import socketio

from chat.engine import patches, server
from chat.engine.room_index import IndexedManager

DISCONNECTS = 300


def _server(manager):
    sio = server.ChatServer(async_mode="gevent", client_manager=manager, logger=False,
                             engineio_logger=False)
    sio.manager_initialized = True
    return sio


def _connect(sio, count, rooms=50):
    """``count`` fake connections, each in its own sid room and one of ``rooms`` chat rooms."""
    eio_sids = []
    for i in range(count):
        eio_sid = "eio%d" % i
        sid = sio.manager.connect(eio_sid, "/")
        sio.manager.enter_room(sid, "/", "room%d" % (i % rooms))
        eio_sids.append(eio_sid)
    return eio_sids


class CountingRooms(dict):
    """A namespace's rooms that count how many rooms the manager looks at: every scan
    (iterating or copying the table) counts each room once, every lookup one."""

    def __init__(self, rooms):
        super().__init__(rooms)
        self.looked_at = 0

    def _scan(self):
        self.looked_at += len(self)

    def __iter__(self):
        self._scan()
        return super().__iter__()

    def items(self):
        self._scan()
        return super().items()

    def keys(self):
        self._scan()
        return super().keys()

    def values(self):
        self._scan()
        return super().values()

    def copy(self):
        self._scan()
        return dict(super().items())

    def __getitem__(self, room):
        self.looked_at += 1
        return super().__getitem__(room)

    def get(self, room, default=None):
        self.looked_at += 1
        return super().get(room, default)


def _rooms_per_disconnect(manager_class, connected):
    """Rooms of the namespace the manager looks at per disconnect, over DISCONNECTS of
    them in random order, as engineio reports a dropped transport (a count, not a time:
    the same on a loaded machine)."""
    sio = _server(manager_class())
    eio_sids = _connect(sio, connected)
    random.Random(1).shuffle(eio_sids)
    rooms = sio.manager.rooms["/"] = CountingRooms(sio.manager.rooms["/"])
    for eio_sid in eio_sids[:DISCONNECTS]:
        sio._handle_eio_disconnect(eio_sid, "transport close")
    assert sio.manager.rooms["/"] is rooms       # the library kept the counting table
    return rooms.looked_at / DISCONNECTS


def test_disconnect_looks_at_the_same_rooms_with_1000_or_10000_connections():
    small = _rooms_per_disconnect(IndexedManager, 1_000)
    large = _rooms_per_disconnect(IndexedManager, 10_000)
    print("indexed: %.1f rooms looked at per disconnect at 1,000 sids, %.1f at 10,000" % (small, large))
    assert large == small                       # its own rooms only: a sid room, a chat room, None
    assert large < 20


def test_the_library_manager_alone_scans_every_room_so_the_check_above_means_something():
    small = _rooms_per_disconnect(socketio.Manager, 1_000)
    large = _rooms_per_disconnect(socketio.Manager, 10_000)
    print("library: %.1f rooms looked at per disconnect at 1,000 sids, %.1f at 10,000" % (small, large))
    assert large > 5 * small, (small, large)


def _state(manager):
    return {ns: {room: dict(members) for room, members in rooms.items()}
            for ns, rooms in manager.rooms.items()}


def test_every_room_operation_leaves_the_same_rooms_as_the_library_and_no_index_behind():
    indexed, library = _server(IndexedManager()), _server(socketio.Manager())
    for sio in (indexed, library):
        sio.eio.generate_id = iter("sid%d" % i for i in range(100)).__next__
        _connect(sio, 30, rooms=4)
        for sid in ("sid0", "sid1", "sid2"):
            sio.manager.enter_room(sid, "/", "extra")
        sio.manager.leave_room("sid1", "/", "room1")
        sio.manager.close_room("room2", "/")
        sio.manager.pre_connect("eio99", "/")          # pending, never completed
    assert _state(indexed.manager) == _state(library.manager)
    for sid in ("sid0", "sid1", "sid5", "sid7"):
        assert sorted(indexed.manager.get_rooms(sid, "/")) == sorted(library.manager.get_rooms(sid, "/"))
    assert indexed.manager.is_pre_connected(indexed.manager.sid_from_eio_sid("eio99", "/"), "/")
    for sio in (indexed, library):
        sio.disconnect("sid3")                         # server side: pre_disconnect + disconnect
        for i in range(30):
            sio._handle_eio_disconnect("eio%d" % i, "transport close")
        sio._handle_eio_disconnect("eio99", "transport close")
    assert _state(indexed.manager) == _state(library.manager)
    assert indexed.manager.sid_rooms == {"/": {"sid30": {None, "sid30"}}}   # the pending one
    assert indexed.manager.pending_connect == {"/": {"sid30": None}}
    assert not indexed.manager.pending_disconnect
    indexed.manager.connect("sid30", "/")
    indexed.manager.disconnect("sid30", "/")
    assert indexed.manager.sid_rooms == indexed.manager.rooms == {}
    assert not indexed.manager.pending_connect


def test_install_refuses_a_node_server_whose_manager_lacks_the_index():
    sio = server.ChatServer(async_mode="gevent", client_manager=socketio.Manager(), logger=False,
                             engineio_logger=False)
    try:
        patches.install(sio)
    except RuntimeError as exc:
        assert "basic_disconnect" in str(exc)
    else:
        raise AssertionError("install accepted a manager without the index")
