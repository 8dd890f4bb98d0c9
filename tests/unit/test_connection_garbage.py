"""What a connection leaves to the cyclic garbage collector: counts, not times.

A full collection walks every object the collector tracks, with the node stopped; a
connection that holds few of them keeps those walks short, and one that leaves no
reference cycle behind when it drops leaves nothing for them to find.  Real
connections: gevent-websocket's handler on one end of a socketpair, ChatServer,
ChatSocket and WsConn above it (as test_patches runs them), and the chat's own
handlers (ChatEvents) over the link's twin."""
import collections
import contextlib
import gc

import gevent
import pytest
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler

from harness.twins import MemoryBroker

from .test_events import live_nodes
from .test_patches import WAIT_S, WireClient, build_server, restore_handler_websocket  # noqa: F401

pytestmark = pytest.mark.timeout(60)

CONNECTIONS = 40
# Tracked objects a held websocket costs, server and test client together: the client's
# WireClient, socket and its watchers are about five of them.
WEBSOCKET_OBJECTS_MAX = 20
# Tracked objects of the chat's own record of a joined connection (its Connection,
# Identity, message and join buckets, its rooms).
CHAT_OBJECTS_MAX = 14


@contextlib.contextmanager
def saved_garbage():
    """What the block leaves as cyclic garbage: yields the list filled when it ends."""
    found = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        del gc.garbage[:]


def by_type(objects):
    return collections.Counter("%s.%s" % (type(o).__module__, type(o).__qualname__)
                               for o in objects).most_common(8)


def tracked_since(before):
    gc.collect()
    return [o for o in gc.get_objects() if id(o) not in before]


class Websockets:
    """Real websocket connections to one server, through one pywsgi server as a node has."""

    def __init__(self):
        self.sio = build_server()
        self.wsgi = pywsgi.WSGIServer(("127.0.0.1", 0), self.sio.handle_request,
                                      handler_class=WebSocketHandler, log=None)
        self.sio.on("hello", lambda sid, data: {"ok": data})
        self.finished = gevent.spawn(lambda: None)
        self.finished.join()

    def connect(self, count):
        clients = []
        for _ in range(count):
            client = WireClient(self.sio, self.wsgi)
            client.send("40")                    # Socket.IO CONNECT; the server joins "room"
            assert client.receive().startswith("40")
            client.send('421["hello",1]')        # an event, handled in a greenlet, acked
            assert client.receive() == '431[{"ok":1}]'
            # the request's greenlet ends once the WsConn has the connection; the client's
            # reference to it (and its spawning stack) is the test's, not the node's
            client.serving.join(WAIT_S)
            assert client.serving.dead
            client.serving = self.finished
            clients.append(client)
        return clients

    def drop(self, clients):
        for client in clients:
            client.close()
        with gevent.Timeout(WAIT_S):
            while self.sio.eio.sockets or self.sio.manager.rooms.get("/", {}).get("room"):
                gevent.sleep(0.01)
        gevent.sleep(0.05)                       # the disconnect greenlets finish


def test_a_dropped_websocket_connection_leaves_no_cyclic_garbage():
    node = Websockets()
    node.drop(node.connect(3))                   # the server's first-use objects are made
    with saved_garbage() as garbage:
        node.drop(node.connect(CONNECTIONS))
    assert len(garbage) < CONNECTIONS / 10, by_type(garbage)


def test_a_held_websocket_connection_costs_few_tracked_objects():
    node = Websockets()
    node.drop(node.connect(3))
    before = {id(o) for o in gc.get_objects()}
    clients = node.connect(CONNECTIONS)
    held = tracked_since(before)
    assert len(held) / CONNECTIONS <= WEBSOCKET_OBJECTS_MAX, by_type(held)
    node.drop(clients)


def _join(node, count):
    sids = []
    for n in range(count):
        sid = node.connect()
        assert node.events.on_join(sid, {"room": "r", "nick": "u%d" % n})["ok"]
        assert node.events.on_message(sid, {"room": "r", "text": "hi", "cid": "c%d" % n})["ok"]
        sids.append(sid)
    return sids


def _leave(node, sids):
    for sid in sids:
        node.events.on_disconnect(sid)
        node.manager.disconnect(sid, "/")


def test_the_chat_s_record_of_a_joined_connection_is_small_and_leaves_no_garbage():
    node, = live_nodes(MemoryBroker(), 1)
    _leave(node, _join(node, 3))
    before = {id(o) for o in gc.get_objects()}
    sids = _join(node, CONNECTIONS)
    held = tracked_since(before)
    assert len(held) / CONNECTIONS <= CHAT_OBJECTS_MAX, by_type(held)
    del held
    with saved_garbage() as garbage:
        _leave(node, sids)
        gevent.sleep(0.05)                       # the link's greenlets take the leaves
    assert len(garbage) < CONNECTIONS / 10, by_type(garbage)


def test_a_request_bucket_is_made_on_first_use_and_limits_from_there():
    node, = live_nodes(MemoryBroker(), 1, request_rates={"members": (0.001, 1)})
    sid = node.connect()
    assert node.events.connections[sid].requests == {}
    assert node.events.on_join(sid, {"room": "r", "nick": "ann"})["ok"]   # no join limit here
    assert node.events.on_members(sid, {"room": "r"})["ok"]
    assert set(node.events.connections[sid].requests) == {"members"}
    assert node.events.on_members(sid, {"room": "r"})["error"] == "rate_limited"
