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
    client's last GET racing its own disconnect) as ERROR, and one for a session
    already forgotten ("Invalid session": a long-polling client of a drained node
    asking once more before it reconnects elsewhere) too; both are routine."""

    ROUTINE = ("Session is disconnected", "Invalid session")

    def filter(self, record):
        if record.levelno == logging.ERROR and any(
                text in record.getMessage() for text in self.ROUTINE):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
