"""``manage.py runarchiver``: the ``archiver`` program (archive/archiver.py).

Follows the broker (both of the pair when CHAT_BROKER2_* is set; every pair's with several) with a CURVE key of
its own: a node's, for the name CHAT_NODE_NAME gives it (``archiver`` in
supervisord.conf; ``scripts/keys add-node archiver`` makes it), until SIGTERM: then it
writes what it has received and exits.
"""
import logging
import signal

import gevent
from gevent.event import Event
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

log = logging.getLogger("archive.runarchiver")


class Command(BaseCommand):
    help = "Archive every room event the broker sequences (the supervisor program `archiver`)."

    def handle(self, *args, **options):
        from gevent import monkey
        if not monkey.is_module_patched("socket"):
            raise CommandError("runarchiver must be started through manage.py (gevent patches first)")
        from archive.archiver import Archiver, archived_positions
        from archive.retention import Retention
        from archive.sharded import ShardedArchiver, positions_by_pair
        from chat.assembly import broker_transport
        retention = Retention(settings.CHAT_RETENTION_DAYS) if settings.CHAT_RETENTION_DAYS else None
        pairs = settings.CHAT_BROKER_PAIRS
        positions = positions_by_pair(archived_positions(), [pair.name for pair in pairs])
        archivers = {pair.name: Archiver(
            broker_transport(hwm=settings.CHAT_ARCHIVER_HWM, pair=pair),
            positions=positions[pair.name], node=settings.CHAT_NODE_NAME,
            request_timeout_s=settings.CHAT_ACK_TIMEOUT_MS / 1000.0,
            retention=retention if k == 0 else None)       # one writer prunes
            for k, pair in enumerate(pairs)}
        archiver = (archivers[pairs[0].name] if len(pairs) == 1
                    else ShardedArchiver(archivers))       # one per pair (archive/sharded.py)
        stopping = Event()
        gevent.signal_handler(signal.SIGTERM, stopping.set)
        gevent.signal_handler(signal.SIGINT, stopping.set)
        archiver.start()
        if settings.CHAT_ARCHIVER_METRICS_PORT:
            from archive import metrics
            metrics.serve(archiver, settings.CHAT_ARCHIVER_METRICS_HOST,
                          settings.CHAT_ARCHIVER_METRICS_PORT)
        stopping.wait()
        log.info("archiver stopping: writing %d queued events", archiver.lag_events)
        archiver.stop()
        log.info("archiver stopped: %d events archived, %d lost before it had them",
                 archiver.archived, archiver.streams.lost)
