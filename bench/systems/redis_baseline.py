"""The chat contract on python-socketio + ``socketio.RedisManager`` (gevent): a baseline.

Not part of the product: scripts/bench runs three of these against one local
redis-server to measure "the Python default" beside our cluster, with the same
load generator.  It is written the straightforward way a Python developer would:

- ``join``: ``enter_room``, an ``announcement`` to the room, and the reply's
  ``history``/``seq`` read from Redis (a list of the last ``--history-size``
  messages and a counter, in one MULTI/EXEC);
- ``message``: a repeated ``cid`` returns the first ``id``/``seq``; otherwise
  ``seq`` = ``INCR``, the message is appended to the history list (``RPUSH`` +
  ``LTRIM``) with its ``cid`` key, then ``sio.emit(..., room=room)`` - which
  RedisManager delivers to this node's members first and then ``PUBLISH``es to
  the other nodes - and only then is the author acknowledged.

Nothing orders a room's messages across concurrent senders: two greenlets (on
one node or two) can take seq 7 and 8 from INCR and publish 8 first.  That is
the behaviour being measured.  Input rules are the product's
(web/chat/validation.py); everything else is self-contained.

    python -m bench.systems.redis_baseline --name node1 --port 41001 --redis redis://127.0.0.1:41000/0

``GET /healthz`` answers 200 ``{"ok": true, "node": ..., "broker": "up"}`` while
Redis answers a PING.  SIGTERM or SIGINT stops the server.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after monkey-patching on purpose)
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402
import socketio  # noqa: E402
from gevent import pywsgi  # noqa: E402

try:
    from geventwebsocket.handler import WebSocketHandler  # noqa: E402
except ImportError as exc:  # never silently fall back to long-polling only
    raise SystemExit("gevent-websocket is required (scripts/setup installs it): %s" % exc)

from chat.protocol import validation  # noqa: E402  (the product's rules: no Django, no sockets)
from chat.protocol.validation import ContractError  # noqa: E402

log = logging.getLogger("baseline_redis")

# A retried cid is recognised for this long (the product keeps it while the
# message is in the replay buffer; an hour is the plain "long enough").
CID_TTL_SECS = 3600
# redis-py 8's default pool raises MaxConnectionsError at the 101st concurrent
# command, which an overloaded node reaches (hundreds of handler greenlets).
# A developer who met that error would do what is done here: a blocking pool
# for the handlers (wait for a connection, like any worker pool), and a larger
# pool for RedisManager's publishes (its options reach only Redis.from_url).
STORE_POOL_CONNECTIONS = 100
STORE_POOL_TIMEOUT_SECS = 20
PUBLISH_POOL_CONNECTIONS = 1000


def now_ms():
    return int(time.time() * 1000)


class RedisChat:
    """The contract's handlers over one Redis connection pool.

    :param sio: the Socket.IO server (its manager is a RedisManager).
    :param store: a ``redis.Redis`` client for history, counters and cids.
    :param node: this node's name, stamped on messages its clients author.
    :param history_size: messages kept per room.
    """

    def __init__(self, sio, store, node, history_size=50):
        self.sio = sio
        self.store = store
        self.node = node
        self.history_size = history_size
        # One epoch per Redis instance: the first node to start sets it.
        store.set("chat:epoch", uuid.uuid4().hex[:16], nx=True)
        self.epoch = store.get("chat:epoch").decode()
        self.rooms = {}   # sid -> {room: nick}
        for event in ("connect", "disconnect", "join", "leave", "message"):
            sio.on(event, getattr(self, "on_" + event))

    def on_connect(self, sid, environ, auth=None):
        self.rooms[sid] = {}

    def on_disconnect(self, sid, reason=None):
        for room, nick in self.rooms.pop(sid, {}).items():
            self.announce(room, "%s left" % nick)

    def announce(self, room, text):
        self.sio.emit("announcement", {"room": room, "text": text, "ts": now_ms()}, room=room)

    def on_join(self, sid, payload=None):
        try:
            req = validation.join_request(payload)
        except ContractError as exc:
            return exc.ack()
        room = req["room"]
        self.rooms.setdefault(sid, {})[room] = req["nick"]
        self.sio.enter_room(sid, room)
        self.announce(room, "%s joined" % req["nick"])
        pipe = self.store.pipeline()
        pipe.lrange("room:%s:history" % room, 0, -1)
        pipe.get("room:%s:seq" % room)
        raw_history, seq = pipe.execute()
        history = [json.loads(m) for m in raw_history]
        seq = int(seq or 0)
        since, gap = req["since"], False
        if since is not None:
            if req["epoch"] != self.epoch:
                gap = True
            else:
                gap = since < seq and (not history or history[0]["seq"] > since + 1)
                history = [m for m in history if m["seq"] > since]
        return {"ok": True, "room": room, "nick": req["nick"], "epoch": self.epoch, "seq": seq,
                "history": history, "gap": gap}

    def on_leave(self, sid, payload=None):
        try:
            room = validation.leave_request(payload)["room"]
        except ContractError as exc:
            return exc.ack()
        nick = self.rooms.get(sid, {}).pop(room, None)
        if nick is None:
            return ContractError("not_joined", "not in room %s" % room).ack()
        self.sio.leave_room(sid, room)
        self.announce(room, "%s left" % nick)
        return {"ok": True}

    def on_message(self, sid, payload=None):
        try:
            req = validation.message_request(payload)
        except ContractError as exc:
            return exc.ack()
        room, cid = req["room"], req["cid"]
        nick = self.rooms.get(sid, {}).get(room)
        if nick is None:
            return ContractError("not_joined", "join room %s first" % room).ack()
        cid_key = "room:%s:cid:%s" % (room, cid)
        if cid is not None:
            first = self.store.get(cid_key)
            if first is not None:
                first = json.loads(first)
                return {"ok": True, "id": first["id"], "seq": first["seq"]}
        message = {"id": uuid.uuid4().hex, "seq": self.store.incr("room:%s:seq" % room), "room": room,
                   "nick": nick, "text": req["text"], "ts": now_ms(), "node": self.node}
        if cid is not None:
            message["cid"] = cid
        encoded = json.dumps(message)
        pipe = self.store.pipeline()
        pipe.rpush("room:%s:history" % room, encoded)
        pipe.ltrim("room:%s:history" % room, -self.history_size, -1)
        if cid is not None:
            pipe.set(cid_key, encoded, ex=CID_TTL_SECS)
        pipe.execute()
        self.sio.emit("message", message, room=room)
        return {"ok": True, "id": message["id"], "seq": message["seq"]}


class NoDelayWSGIServer(pywsgi.WSGIServer):
    """Disables Nagle, as the product's node does, so both are measured alike."""

    def handle(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().handle(sock, address)


def health_app(node, store):
    """The non-Socket.IO part: /healthz only."""
    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/healthz":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        try:
            up = bool(store.ping())
        except redis.RedisError:
            up = False
        body = json.dumps({"ok": up, "node": node, "broker": "up" if up else "down"}).encode()
        start_response("200 OK" if up else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return app


def main(argv=None):
    p = argparse.ArgumentParser(description="chat contract on python-socketio + RedisManager (baseline)")
    p.add_argument("--name", default="node1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    p.add_argument("--history-size", type=int, default=50)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s " + args.name + " %(name)s: %(message)s")
    store = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        args.redis, max_connections=STORE_POOL_CONNECTIONS, timeout=STORE_POOL_TIMEOUT_SECS))
    manager = socketio.RedisManager(args.redis, redis_options={"max_connections": PUBLISH_POOL_CONNECTIONS})
    sio = socketio.Server(async_mode="gevent", client_manager=manager,
                          cors_allowed_origins=[], logger=False, engineio_logger=False)
    RedisChat(sio, store, args.name, args.history_size)
    app = socketio.WSGIApp(sio, health_app(args.name, store))
    server = NoDelayWSGIServer((args.host, args.port), app, handler_class=WebSocketHandler, log=None,
                               error_log=logging.getLogger("baseline_redis.wsgi"))
    gevent.signal_handler(signal.SIGTERM, server.stop, 2)
    gevent.signal_handler(signal.SIGINT, server.stop, 2)
    log.warning("node %s (RedisManager baseline) serving on http://%s:%d/", args.name, args.host, args.port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
