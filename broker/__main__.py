"""``python -m broker``: run the chat cluster's broker in the foreground."""
import gc
import logging
import signal
import sys

from . import config as broker_config
from .server import Broker


def main(argv=None):
    cfg = broker_config.from_env()
    logging.basicConfig(level=cfg.log_level,
                        format="%(asctime)s %(levelname)s broker %(name)s: %(message)s")
    broker = Broker(cfg)
    try:
        broker.bind()
    except Exception as exc:
        logging.getLogger("broker").error("cannot bind: %s", exc)
        return 1
    signal.signal(signal.SIGTERM, broker.stop)
    signal.signal(signal.SIGINT, broker.stop)
    gc.collect()
    gc.freeze()     # the loaded state and modules stay: keep them out of full collections
    try:
        broker.run()
    finally:
        broker.close()
        logging.getLogger("broker").info("broker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
