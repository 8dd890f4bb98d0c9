"""The broker's Prometheus metrics, served on ``CHAT_BROKER_METRICS_PORT``.

prometheus_client's WSGI app answers scrapes from a daemon thread (one per request),
so the broker's loop (one thread, one poller) is never blocked by a scrape: a
scrape holds the GIL only for one text rendering of these few series, a few times
a second at most (Prometheus, plus one /ops/ sampler per node with a dashboard
open).  The loop's own cost is one counter increment per message and two
histogram observations per batch.

Gauges (connected nodes, rooms in memory) are read at scrape time from the
broker's objects: ``len()`` of a dict is safe from another thread.  No metric
has a per-room or per-node label (cardinality).  ``chat_broker_role`` is the
Binary Star state of a broker of the failover pair (``active``, ``passive``,
``primary``, ``backup``: broker/bstar.py), ``primary`` for a broker alone;
``chat_broker_replication_lag_seconds`` is how long the active's oldest output
has waited for the passive's ack (0 alone or when nothing waits).
"""
import logging
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (CollectorRegistry, Counter, Histogram, ProcessCollector,
                               make_wsgi_app)
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)   # CPU, memory, start time (a restart shows)

SEQUENCED = Counter("chat_broker_messages_sequenced", "Messages given a seq and published",
                    registry=REGISTRY)
DUPLICATES = Counter("chat_broker_duplicates", "Messages resent with a cid already sequenced",
                     registry=REGISTRY)
ANNOUNCES_REFUSED = Counter("chat_broker_announces_refused",
                            "Announcements from nodes refused (bad room, text or node)",
                            registry=REGISTRY)
UNPROVEN_MEMBERS = Counter("chat_broker_unproven_members",
                           "Members of presence reports dropped: no uid, or no valid uid "
                           "proof (chatstream/uid_proofs.py)",
                           registry=REGISTRY)
NOT_MEMBER = Counter("chat_broker_not_member",
                     "Room events refused: the author is not one of its node's registered "
                     "connections in the room (or the node has not re-registered yet)",
                     registry=REGISTRY)
COMMIT_SECONDS = Histogram(
    "chat_broker_commit_seconds", "Store commit latency per batch", registry=REGISTRY,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
BATCH_MESSAGES = Histogram(
    "chat_broker_batch_messages", "Messages sequenced per committed batch", registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))


class BrokerState:
    """Gauges read from the broker at scrape time (no work in its loop)."""

    def __init__(self, broker):
        self.broker = broker

    def describe(self):
        return []   # collected lazily; nothing to check at registration

    def collect(self):
        broker = self.broker
        yield GaugeMetricFamily("chat_broker_up", "1 while the broker serves", value=1)
        yield GaugeMetricFamily("chat_broker_nodes", "Nodes present (heard within their TTL)",
                                value=len(broker.presence.nodes))
        yield GaugeMetricFamily("chat_broker_rooms_in_memory", "Rooms whose state is in memory",
                                value=len(broker.sequencer.rooms))
        role = GaugeMetricFamily("chat_broker_role", "1 for this broker's role in the pair",
                                 labels=["role"])
        pair = broker.pair
        role.add_metric(["primary" if pair is None else pair.state.lower()], 1)
        yield role
        yield GaugeMetricFamily("chat_broker_replication_lag_seconds",
                                "How long output has waited for the passive's ack (0 alone)",
                                value=0 if pair is None else pair.replicator.lag_seconds())


# A scrape's connection holds one thread of the server until its request is read and
# answered: a scraper sends its request at once, an idle or trickling connection is
# closed after this long instead of keeping a thread forever.
REQUEST_TIMEOUT_S = 5


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S      # socket timeout of every read and write

    def log_message(self, format, *args):   # noqa: A002 - the base class's signature
        """Scrapes are not logged."""


class _Server(ThreadingMixIn, WSGIServer):
    """prometheus_client's threading server, with :class:`_Handler`'s timeout."""
    daemon_threads = True
    request_queue_size = 128      # a burst of scrapers waits in the backlog, not refused

    def handle_error(self, request, client_address):
        """A timed-out or broken connection is the client's doing: one line, no traceback."""
        log.debug("metrics request from %s failed", client_address, exc_info=True)


def _server(host, port, request_timeout_s):
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    handler = type("Handler", (_Handler,), {"timeout": request_timeout_s})
    server_class = type("Server", (_Server,), {"address_family": family})
    return make_server(host, port, make_wsgi_app(REGISTRY), server_class, handler_class=handler)


def serve(broker, host, port, request_timeout_s=REQUEST_TIMEOUT_S):
    """Serve ``/metrics`` for ``broker`` on ``host:port`` (0: not at all), from a daemon thread.

    A port in use is logged as an error and the broker goes on sequencing:
    the chat matters more than its figures."""
    if not port:
        return None
    REGISTRY.register(BrokerState(broker))
    try:
        server = _server(host, port, request_timeout_s)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    except OSError as exc:
        log.error("metrics not served on %s:%d: %s", host, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server
