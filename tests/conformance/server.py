"""The server the official Engine.IO / Socket.IO protocol test suites expect, built two ways.

- ``--server ours``: a node's Socket.IO server as web/chat/assembly.py builds it
  (``ChatServer`` + ``patches.install``, fastjson, the cookie, the edge's
  Host check and upgrade hook) served as runnode serves it (TCP_NODELAY, the 1 KB
  request buffer), with only what the suites need changed: ping interval 300 ms,
  timeout 200 ms, maxPayload 1e6, any Origin, and their echo handlers instead of
  the chat's.  No broker: the suites never touch rooms.
- ``--server plain``: stock python-socketio / python-engineio on gevent's pywsgi
  and gevent-websocket's handler, the same options and handlers, no patch.

``--suite engine.io`` serves a bare Engine.IO server on ``/engine.io/`` that echoes
every message (the Engine.IO server inside our ChatServer, for ``ours``);
``--suite socket.io`` serves ``/socket.io/`` with the main namespace and ``/custom``.
See tests/conformance/README.md.

    python tests/conformance/server.py --server ours --suite socket.io --port 41234
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after monkey-patching on purpose)
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import engineio  # noqa: E402
import gevent  # noqa: E402
import socketio  # noqa: E402
from gevent import pywsgi  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

# The suites' expected configuration (their README "Test suite"): pingInterval 300,
# pingTimeout 200 (ms), maxPayload 1e6 bytes, CORS origin "*".  (Their connectTimeout
# of 1000 ms has no python-socketio equivalent: README.md "Failing for both".)
PING_INTERVAL_SECS = 0.3
PING_TIMEOUT_SECS = 0.2
MAX_PAYLOAD_BYTES = 1_000_000
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

log = logging.getLogger("conformance")


def options():
    """Server options shared by both builds (only what the suites prescribe)."""
    return {"async_mode": "gevent", "cors_allowed_origins": "*", "max_http_buffer_size": MAX_PAYLOAD_BYTES,
            "ping_interval": PING_INTERVAL_SECS, "ping_timeout": PING_TIMEOUT_SECS,
            "logger": False, "engineio_logger": False}


def build_ours():
    """(sio, wrap_app, server class, handler class) as chat/assembly.py and runnode build a node."""
    from chatstream import fastjson
    from chat.engine import patches
    from chat.engine.server import ChatServer
    from chat.edge import EdgeApp
    from chat.management.commands.runnode import _nodelay_server_class, _require_websocket_handler

    sio = ChatServer(cookie={"name": "io", "path": "/", "samesite": "Lax", "httponly": True},
                     json=fastjson, max_connections=10000, **options())
    patches.install(sio)

    def wrap(app, path):
        return EdgeApp(app, allowed_hosts=ALLOWED_HOSTS, trusted_proxies=(), socketio_path=path,
                       allowed_origins=None, full=sio.eio.limit.sessions_full)

    return sio, wrap, _nodelay_server_class(), _require_websocket_handler()


def build_plain():
    sio = socketio.Server(**options())
    return sio, lambda app, path: app, pywsgi.WSGIServer, WebSocketHandler


def socketio_app(sio):
    """The suite's handlers (socket.io-protocol README): auth echo, message-back, acks, /custom."""
    def connect(namespace):
        def on_connect(sid, environ, auth=None):
            # python-socketio sends the CONNECT packet after this handler returns; an
            # emit from here would precede it, so it goes out from the next greenlet.
            sio.start_background_task(sio.emit, "auth", auth if auth is not None else {}, to=sid,
                                      namespace=namespace)
        return on_connect

    sio.on("connect", connect("/"))
    sio.on("connect", connect("/custom"), namespace="/custom")
    sio.on("message", lambda sid, *args: sio.emit("message-back", args, to=sid))
    sio.on("message-with-ack", lambda sid, *args: args)
    return socketio.WSGIApp(sio, socketio_path="socket.io")


def engineio_app(sio):
    """A bare Engine.IO server (the one inside ``sio``) that echoes every message."""
    eio = sio.eio
    eio.handlers = {}          # python-socketio's packet handlers: the suite speaks Engine.IO only
    eio.on("message", lambda sid, data: eio.send(sid, data))
    return engineio.WSGIApp(eio, engineio_path="engine.io")


def main(argv=None):
    p = argparse.ArgumentParser(description="server for the official protocol test suites")
    p.add_argument("--server", choices=("ours", "plain"), required=True)
    p.add_argument("--suite", choices=("engine.io", "socket.io"), required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sio, wrap, server_class, handler_class = build_ours() if args.server == "ours" else build_plain()
    if args.suite == "socket.io":
        app = wrap(socketio_app(sio), "/socket.io/")
    else:
        app = wrap(engineio_app(sio), "/engine.io/")
    server = server_class((args.host, args.port), app, handler_class=handler_class, log=None,
                          error_log=logging.getLogger("conformance.wsgi"))
    if hasattr(app, "pre_start_hook"):
        server.pre_start_hook = app.pre_start_hook
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    gevent.signal_handler(signal.SIGINT, server.stop, 1)
    log.warning("%s %s server on http://%s:%d/", args.server, args.suite, args.host, args.port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
