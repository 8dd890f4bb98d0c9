"""The node's HTTP edge, in front of Socket.IO and Django: who the client is, which host it asked.

- **Client address**: behind the balancer every peer is the balancer.  Only a peer
  in ``trusted_proxies`` (the balancer's exact address) may say who the client is (the
  last hop of ``X-Forwarded-For``, the one the balancer wrote, and
  ``X-Forwarded-Proto`` for Django's ``SECURE_PROXY_SSL_HEADER``); from anyone
  else both headers are dropped, so a client cannot claim another address or TLS.
- **Host**: Django checks ``ALLOWED_HOSTS`` on its own views only; ``/socket.io/``
  never reaches Django, so the same check is made here (a DNS-rebinding page
  talks to the node under its own host name and is refused, HTTP 400).

- **Origin**: :class:`OriginPolicy`, python-engineio's ``cors_allowed_origins``
  (chat/assembly.py): one list for every node, and a node's own origin.
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


class OriginPolicy:
    """The browser origins allowed on /socket.io/: ``allowed`` (the same list on every node,
    so an Origin gets the same answer whichever node the balancer picks), and the request's
    own origin when a page talks to the very address that served it (a node reached
    directly; its Host passed ALLOWED_HOSTS, so a rebinding page is refused anyway).

    python-engineio calls it as ``cors_allowed_origins(origin, environ)``.
    """

    def __init__(self, allowed):
        self.allowed = frozenset(allowed)

    def __call__(self, origin, environ=None):
        if origin in self.allowed:
            return True
        environ = environ or {}
        host = environ.get("HTTP_HOST")
        return bool(host) and origin == "%s://%s" % (environ.get("wsgi.url_scheme", "http"), host)


def origin_allowed(environ, allowed_origins):
    """engineio's answer for the request's Origin: a list, a callable, or None (any)."""
    origin = environ.get("HTTP_ORIGIN")
    if not origin or allowed_origins is None:
        return True
    if callable(allowed_origins):
        return bool(allowed_origins(origin, environ))
    return origin in allowed_origins


class EdgeApp:
    """WSGI middleware applying :func:`client_address` to every request and
    :func:`host_allowed` to the Socket.IO path.

    :param app: the node's WSGI app (Socket.IO around Django).
    """

    def __init__(self, app, allowed_hosts, trusted_proxies, socketio_path="/socket.io/",
                 allowed_origins=None, full=lambda: False):
        """:param allowed_origins: engineio's list or :class:`OriginPolicy` (None: any); only
            read by the hook.
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
        return bool(not origin_allowed(environ, self.allowed_origins)
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
