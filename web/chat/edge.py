"""The node's HTTP edge, in front of Socket.IO and Django: who the client is, which host it asked.

- **Client address**: behind the balancer every peer is the balancer.  Only a peer
  in ``trusted_proxies`` (the balancer's exact address) may say who the client is (the
  last hop of ``X-Forwarded-For``, the one the balancer wrote, and
  ``X-Forwarded-Proto`` for Django's ``SECURE_PROXY_SSL_HEADER``); from anyone
  else both headers are dropped, so a client cannot claim another address or TLS.
- **Host**: Django checks ``ALLOWED_HOSTS`` on its own views only; ``/socket.io/``
  never reaches Django, so the same check is made here (a DNS-rebinding page
  talks to the node under its own host name and is refused, HTTP 400).

The Origin allow-list is python-engineio's own (``cors_allowed_origins``, chat/assembly.py).
gevent-websocket answers an upgrade with 101 before any application runs, so
:meth:`EdgeApp.pre_start_hook` (its server's hook) declines the upgrade of a
request that would be refused anyway: a foreign Origin or Host, or a node out of
sessions then gets engineio's or this module's HTTP refusal, not a 101 and a close.
"""
import logging

from django.http.request import split_domain_port, validate_host

log = logging.getLogger(__name__)


def client_address(environ, trusted_proxies):
    """Set ``REMOTE_ADDR`` to the client's address; drop forwarded headers nobody vouches for.

    :param trusted_proxies: addresses whose ``X-Forwarded-*`` headers are believed.
    """
    if environ.get("REMOTE_ADDR") not in trusted_proxies:
        environ.pop("HTTP_X_FORWARDED_FOR", None)
        environ.pop("HTTP_X_FORWARDED_PROTO", None)
        return environ.get("REMOTE_ADDR")
    # The balancer drops the client's own header and adds its line: the last hop is the
    # client as the balancer saw it (anything before it would be the client's own claim).
    hops = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if hops:
        environ["REMOTE_ADDR"] = hops[-1]
    return environ["REMOTE_ADDR"]


def host_allowed(environ, allowed_hosts):
    """Django's ALLOWED_HOSTS rule for the request's Host header."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed_hosts)


class EdgeApp:
    """WSGI middleware applying :func:`client_address` to every request and
    :func:`host_allowed` to the Socket.IO path.

    :param app: the node's WSGI app (Socket.IO around Django).
    """

    def __init__(self, app, allowed_hosts, trusted_proxies, socketio_path="/socket.io/",
                 allowed_origins=None, full=lambda: False):
        """:param allowed_origins: engineio's list (None: any); only read by the hook.
        :param full: True when the node opens no more sessions."""
        self.app = app
        self.allowed_hosts = list(allowed_hosts)
        self.trusted_proxies = frozenset(trusted_proxies)
        self.socketio_path = socketio_path
        self.allowed_origins = allowed_origins
        self.full = full

    def pre_start_hook(self, handler):
        """gevent-websocket's server hook: True serves the request as plain HTTP (no upgrade)."""
        environ = handler.environ
        origin = environ.get("HTTP_ORIGIN")
        return bool((origin and self.allowed_origins is not None and origin not in self.allowed_origins)
                    or not host_allowed(environ, self.allowed_hosts) or self.full())

    def __call__(self, environ, start_response):
        client_address(environ, self.trusted_proxies)
        if (environ.get("PATH_INFO", "").startswith(self.socketio_path)
                and not host_allowed(environ, self.allowed_hosts)):
            log.warning("refused %s: Host %r is not in ALLOWED_HOSTS", environ.get("REMOTE_ADDR"),
                        environ.get("HTTP_HOST"))
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"Host not allowed\n"]
        return self.app(environ, start_response)
