"""``manage.py runnode --name node1 --port 8001``: serve one chat node with gevent."""
import gc
import logging
import os
import signal
import socket

import gevent
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

log = logging.getLogger("chat.runnode")

RFILE_BUFFER_BYTES = 1024


def _require_websocket_handler():
    try:
        from geventwebsocket.handler import WebSocketHandler
    except ImportError as exc:  # never silently fall back to long-polling only
        raise CommandError("gevent-websocket is required (pip install -r requirements.txt): %s" % exc)
    class SmallBufferHandler(WebSocketHandler):
        """Reads requests through a 1 KB buffer instead of io's default 8 KB:
        the reader lives as long as the connection, and an idle websocket
        never needs more (an HTTP request or frame larger than the buffer
        is still read whole, in more than one recv)."""

        def __init__(self, sock, address, server, rfile=None):
            super().__init__(sock, address, server, rfile)
            if rfile is None:
                self.rfile.close()          # drops the socket's io reference too
                self.rfile = sock.makefile("rb", RFILE_BUFFER_BYTES)

    return SmallBufferHandler


def _nodelay_server_class():
    from gevent import pywsgi

    class NoDelayWSGIServer(pywsgi.WSGIServer):
        """Disables Nagle: an event and its ack are two small writes, and Nagle
        would hold the second until the client's delayed ACK (~40 ms)."""

        def handle(self, sock, address):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not TCP (e.g. a unix socket)
            super().handle(sock, address)

    return NoDelayWSGIServer


class Command(BaseCommand):
    help = "Serve a chat node (Django + Socket.IO over gevent) on the given port."

    def add_arguments(self, parser):
        parser.add_argument("--name", help="node name (default: CHAT_NODE_NAME)")
        parser.add_argument("--host", default=os.environ.get("CHAT_NODE_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("CHAT_NODE_PORT", "8001")))

    def handle(self, *args, name=None, host=None, port=None, **options):
        from gevent import monkey
        if not monkey.is_module_patched("socket"):
            raise CommandError("runnode must be started through manage.py (gevent patches first)")
        from chatsite.wsgi import application as django_app
        from chat.node import build_app, build_server
        handler_class = _require_websocket_handler()
        if name:
            settings.CHAT_NODE_NAME = name
        sio = build_server()
        app = build_app(sio, django_app)
        server = _nodelay_server_class()((host, port), app, handler_class=handler_class, log=None,
                                   error_log=logging.getLogger("chat.wsgi"))
        def stop():
            sio.manager.goodbye()   # the broker announces this node's members as gone
            server.stop(2)
        gevent.signal_handler(signal.SIGTERM, stop)
        gevent.signal_handler(signal.SIGINT, stop)
        log.info("node %s serving on http://%s:%d/", settings.CHAT_NODE_NAME, host, port)
        # Everything loaded so far (Django, the libraries) lives as long as the process:
        # keep it out of the cyclic collector's full passes, which otherwise walk it all.
        gc.collect()
        gc.freeze()
        server.serve_forever()
        log.info("node %s stopped", settings.CHAT_NODE_NAME)
