"""The archiver's Prometheus metrics, on ``CHAT_ARCHIVER_METRICS_PORT`` (0: none).

Read from the running :class:`~archive.archiver.Archiver` at scrape time:

- ``chat_archive_events_archived``: events written (each once);
- ``chat_archive_events_lost``: events the broker no longer had when the archiver
  came to them (0 while the broker keeps what the archive lacks);
- ``chat_archive_lag_events``: events received and not yet written, the rooms being
  caught up counted by what they hold so far;
- ``chat_archive_lag_seconds``: how long the oldest of those has waited since the
  broker sequenced it (0 when nothing waits).
"""
import logging

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)


class ArchiverCollector:
    def __init__(self, archiver):
        self.archiver = archiver

    def collect(self):
        archiver = self.archiver
        yield CounterMetricFamily("chat_archive_events_archived", "Room events written to the "
                                  "archive", value=archiver.archived)
        yield CounterMetricFamily("chat_archive_events_lost", "Room events gone from the broker "
                                  "before the archiver had them", value=archiver.streams.lost)
        yield GaugeMetricFamily("chat_archive_lag_events", "Room events received, not yet "
                                "written", value=archiver.lag_events)
        yield GaugeMetricFamily("chat_archive_lag_seconds", "Age of the oldest room event "
                                "received and not yet written", value=archiver.lag_s())


def serve(archiver, host, port):
    """Serve /metrics for ``archiver`` (gevent's WSGI server, in this process's loop)."""
    from gevent.pywsgi import WSGIServer
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ArchiverCollector(archiver))
    server = WSGIServer((host, port), make_wsgi_app(registry), log=None,
                        error_log=logging.getLogger("archive.metrics"))
    server.start()
    log.info("archiver metrics on http://%s:%d/metrics", host, server.server_port)
    return server
