"""``python -m broker``: run the chat cluster's broker in the foreground.

SIGTERM / SIGINT stop it; SIGHUP reads the authorised node keys again.
"""
import gc
import logging
import signal
import sys

from chatstream.config import broker_config
from chatstream.jsonlog import JsonFormatter

from . import keys, metrics
from .bstar import BStarError
from .server import Broker


def main(argv=None):
    cfg = broker_config()
    logging.basicConfig(level=cfg.log_level,
                        format="%(asctime)s %(levelname)s broker %(name)s: %(message)s")
    if cfg.log_format == "json":   # CHAT_LOG_FORMAT: one JSON object per line
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter(process="broker"))
    broker = Broker(cfg)
    try:
        broker.bind()
    except Exception as exc:
        logging.getLogger("broker").error("cannot bind: %s", exc)
        broker.close()
        return 1
    metrics.serve(broker, cfg.metrics_host, cfg.metrics_port)
    signal.signal(signal.SIGTERM, broker.stop)
    signal.signal(signal.SIGINT, broker.stop)
    if broker.auth is not None:
        signal.signal(signal.SIGHUP, lambda *_: keys.reload_authorized(broker.auth))
    gc.collect()
    gc.freeze()     # the loaded state and modules stay: keep them out of full collections
    try:
        broker.run()
    except BStarError as exc:   # two actives or two passives: restart as PRIMARY/BACKUP
        logging.getLogger("broker").critical("%s", exc)
        return 4
    finally:
        broker.close()
        logging.getLogger("broker").info("broker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
