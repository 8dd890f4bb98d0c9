"""chat/engine/room_index.py: python-socketio's rooms with a sid -> rooms index, so a disconnect
costs the same with 1,000 or 10,000 connected sids (the library's scans them all).

A real Server (ChatServer, python-socketio's disconnect path unchanged) with fake
Engine.IO sids: no sockets, only the manager's structures."""
import random
import time

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


def _disconnect_s(sio, eio_sids):
    """Seconds per disconnect of DISCONNECTS of them, as engineio reports a dropped transport."""
    start = time.perf_counter()
    for eio_sid in eio_sids[:DISCONNECTS]:
        sio._handle_eio_disconnect(eio_sid, "transport close")
    return (time.perf_counter() - start) / DISCONNECTS


def _per_disconnect(manager_class, connected):
    sio = _server(manager_class())
    eio_sids = _connect(sio, connected)
    random.Random(1).shuffle(eio_sids)
    return _disconnect_s(sio, eio_sids)


def test_disconnect_time_does_not_grow_with_the_connections_of_the_node():
    small = min(_per_disconnect(IndexedManager, 1_000) for _ in range(3))
    large = min(_per_disconnect(IndexedManager, 10_000) for _ in range(3))
    print("indexed: %.1f us per disconnect at 1,000 sids, %.1f us at 10,000"
          % (small * 1e6, large * 1e6))
    assert large < 3 * small, (small, large)   # the library's grows ~10x here
    assert large < 200e-6


def test_the_library_manager_alone_is_linear_per_disconnect_so_the_check_above_means_something():
    small = _per_disconnect(socketio.Manager, 1_000)
    large = _per_disconnect(socketio.Manager, 10_000)
    print("library: %.1f us per disconnect at 1,000 sids, %.1f us at 10,000"
          % (small * 1e6, large * 1e6))
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
