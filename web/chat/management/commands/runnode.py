"""``manage.py runnode --name node1 --port 8001``: serve one chat node with gevent.

The node's name, host and port are settings (CHAT_NODE_NAME / _HOST / _PORT).
``--name``/``--host``/``--port`` override them, and must do so before the
settings are read -- the log format carries the name -- so ``manage.py``
calls :func:`options_to_env` first; this command then reads only settings.
"""
import argparse
import gc
import logging
import os
import signal
import socket

import gevent
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import get_resolver

log = logging.getLogger("chat.runnode")

RFILE_BUFFER_BYTES = 1024
# pywsgi waits for a request's head as long as the client likes: trickled headers (slowloris)
# or an idle keep-alive connection held a socket and a greenlet for good.  A request line and
# its headers must arrive within this, counted from the moment the connection waits for them:
# the balancer's own "timeout http-request" (deploy/haproxy.cfg), and longer than it keeps an
# idle connection to a node (its pool purge, 5 s).
REQUEST_HEAD_TIMEOUT_S = 10.0
# Any one read or write of a request past its head (a POST body, a long-poll's answer) waits
# at most this: a body trickled byte by byte still ends (a long-poll's wait is not a read).
REQUEST_IO_TIMEOUT_S = 30.0
BAD_REQUEST_RESPONSE = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

# Command-line option -> the setting (and environment variable) it overrides.
NODE_OPTIONS = {"name": "CHAT_NODE_NAME", "host": "CHAT_NODE_HOST", "port": "CHAT_NODE_PORT"}


def _add_node_options(parser):
    parser.add_argument("--name", help="node name (default: CHAT_NODE_NAME)")
    parser.add_argument("--host", help="listen address (default: CHAT_NODE_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default: CHAT_NODE_PORT)")


def options_to_env(argv, environ):
    """Put a ``runnode`` command line's --name/--host/--port into ``environ``,
    for the settings (and the log format) to read; other arguments are left alone.

    :param argv: the arguments after ``runnode``.
    """
    parser = argparse.ArgumentParser(prog="manage.py runnode", add_help=False)
    _add_node_options(parser)
    known, _ = parser.parse_known_args(argv)
    for option, variable in NODE_OPTIONS.items():
        value = getattr(known, option)
        if value is not None:
            environ[variable] = str(value)


def _require_websocket_handler():
    try:
        from geventwebsocket.handler import WebSocketHandler
    except ImportError as exc:  # never silently fall back to long-polling only
        raise CommandError("gevent-websocket is required (pip install -r requirements.txt): %s" % exc)
    from chat.engine.socket import TcpSocketInEnviron

    class SmallBufferHandler(TcpSocketInEnviron, WebSocketHandler):
        """Reads requests through a 1 KB buffer instead of io's default 8 KB:
        the reader lives as long as the connection, and an idle websocket
        never needs more (an HTTP request or frame larger than the buffer
        is still read whole, in more than one recv).  A request's head must
        come within ``REQUEST_HEAD_TIMEOUT_S``, each later read or write
        within ``REQUEST_IO_TIMEOUT_S``; else the connection is closed."""

        head_deadline = None
        bad_input = None                    # the node's BadInputLog (chat.engine.bad_input)

        def __init__(self, sock, address, server, rfile=None):
            super().__init__(sock, address, server, rfile)
            sock.settimeout(REQUEST_IO_TIMEOUT_S)
            if rfile is None:
                self.rfile.close()          # drops the socket's io reference too
                self.rfile = sock.makefile("rb", RFILE_BUFFER_BYTES)

        def handle_one_request(self):
            # A socket.timeout: pywsgi closes the connection quietly, as for a client gone.
            self.head_deadline = gevent.Timeout.start_new(
                REQUEST_HEAD_TIMEOUT_S, socket.timeout("request head not received in time"))
            try:
                return super().handle_one_request()
            finally:
                self.head_deadline.cancel()

        def read_request(self, raw_requestline):
            try:
                return super().read_request(raw_requestline)
            finally:                        # the head is in: the application is not timed
                self.head_deadline.cancel()

        def _handle_client_error(self, ex):
            """pywsgi's hook for a bad request head: a timeout (or a client gone) mid-head
            closes the connection without an answer or a traceback; a malformed head gets
            400 with one line in the node's rate-limited log (pywsgi logs an ERROR each)."""
            if isinstance(ex, OSError):
                return None
            if self.bad_input is None:
                return super()._handle_client_error(ex)
            self.bad_input.refused(self.client_address[0] if isinstance(self.client_address, tuple)
                                   else self.client_address, "a malformed HTTP request", ex)
            return ("400", BAD_REQUEST_RESPONSE)

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


# Connections the kernel queues before the node accepts them (gevent's default is 128; a
# reconnect storm overflowed it, each overflow a ~1 s SYN retry).  The kernel caps it at
# net.core.somaxconn (README "Limits").
LISTEN_BACKLOG = 4096
EXIT_GRACE_S = 0.2


class Command(BaseCommand):
    help = "Serve a chat node (Django + Socket.IO over gevent) on the given port."

    def add_arguments(self, parser):
        _add_node_options(parser)

    def handle(self, *args, **options):
        from gevent import monkey
        if not monkey.is_module_patched("socket"):
            raise CommandError("runnode must be started through manage.py (gevent patches first)")
        for option, variable in NODE_OPTIONS.items():
            given = options.get(option)
            if given is not None and given != getattr(settings, variable):
                raise CommandError("--%s must be applied by manage.py before the settings load"
                                   % option)
        name, host, port = settings.CHAT_NODE_NAME, settings.CHAT_NODE_HOST, settings.CHAT_NODE_PORT
        from chatsite.wsgi import application as django_app
        from chat.assembly import build_app, build_server
        from chat.operations import drain, gcwatch, looplag
        handler_class = _require_websocket_handler()
        sio = build_server()
        handler_class.bad_input = sio.eio.bad_input
        app = build_app(sio, django_app)
        server = _nodelay_server_class()((host, port), app, handler_class=handler_class, log=None,
                                   error_log=logging.getLogger("chat.wsgi"),
                                   backlog=LISTEN_BACKLOG)
        server.pre_start_hook = app.pre_start_hook   # refusals before a websocket upgrade
        def stop():
            log.info("node %s stopping (%d sessions): goodbye to the broker", name,
                     sio.eio.count_open_sessions())
            sio.manager.goodbye()   # the broker announces this node's members as gone
            server.stop(2)
        gevent.signal_handler(signal.SIGTERM, stop)
        gevent.signal_handler(signal.SIGINT, stop)
        # scripts/node drain: close the sessions in batches, by the plan it left
        gevent.signal_handler(signal.SIGUSR1, drain.Drain(sio, settings.CHAT_DRAIN_PLAN).on_signal)
        log.info("node %s serving on http://%s:%d/", name, host, port)
        # Everything loaded so far (Django, the libraries) lives as long as the process:
        # keep it out of the cyclic collector's full passes, which otherwise walk it all.
        # The URLconf (the views and what they import) would only load on the first page.
        get_resolver().url_patterns
        gc.collect()
        gc.freeze()
        gcwatch.install(full_after=settings.CHAT_GC_FULL_AFTER)
        looplag.start()
        server.serve_forever()
        log.info("node %s stopped", name)
        _exit_now()


def _exit_now():
    """Leave without tearing down what the clients held: the interpreter's shutdown
    (a full collection, millions of objects freed one by one, every connection's
    greenlet unwound) takes longer than supervisor's stopwaitsecs on a full node.
    The broker has heard goodbye, so the clients' disconnect handlers have nothing to
    tell it; the kernel closes their sockets and they reconnect to another node.  The
    pause lets ZeroMQ's I/O thread put the goodbye on the wire (its sockets linger 0)."""
    gevent.sleep(EXIT_GRACE_S)
    logging.shutdown()
    os._exit(0)
