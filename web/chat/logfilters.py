"""Logging filters for the node."""
import logging


class SkipHealthz503(logging.Filter):
    """Drop django.request's ERROR line for a 503 from /healthz: that answer is
    the health check doing its job (broker down or not yet synced), not a fault."""

    def filter(self, record):
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503
                    and getattr(request, "path", None) == "/healthz")
