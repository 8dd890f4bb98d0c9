"""Logging filters for the node."""
import logging


class SkipHealthz503(logging.Filter):
    """Drop django.request's ERROR line for a 503 from /healthz: that answer is
    the health check doing its job (broker down or not yet synced), not a fault."""

    def filter(self, record):
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503
                    and getattr(request, "path", None) == "/healthz")


class DemoteClosedSession(logging.Filter):
    """engineio logs a request for an already closed session (a long-polling
    client's last GET racing its own disconnect) as ERROR; it is routine."""

    def filter(self, record):
        if record.levelno == logging.ERROR and "Session is disconnected" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
