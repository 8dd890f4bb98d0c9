"""Acknowledging a request: a refusal becomes the contract's ``{ok: false, error, detail}``.

Every handler class of the protocol package (events.py and the others beside it) wraps
its handlers in :func:`acked`; the class has ``limits`` (its payload size).
"""
import functools
import logging

from ..operations import metrics
from . import validation
from .validation import ContractError

log = logging.getLogger(__name__)


def acked(handler):
    """Turn ContractError into the contract's refusal; log anything unexpected."""
    @functools.wraps(handler)
    def wrapper(self, sid, *args):
        # One payload argument per event; none is None, several are a list (both refused
        # by validation where a payload is required).
        payload = args[0] if len(args) == 1 else list(args) if args else None
        try:
            validation.payload_size(payload, self.limits.max_payload_bytes)
            return handler(self, sid, payload)
        except ContractError as exc:
            _count_refusal(handler.__name__, exc.code)
            return exc.ack()
        except Exception:
            log.exception("%s failed", handler.__name__)
            _count_refusal(handler.__name__, "internal")
            return {"ok": False, "error": "internal", "detail": "server error"}
    return wrapper


def _count_refusal(handler_name, code):
    """Metrics of a refused request: messages by code, rate_limited by event."""
    if handler_name == "on_message":
        metrics.REFUSED.labels(code).inc()
    if code == "rate_limited":
        metrics.RATE_LIMITED.labels(handler_name[3:]).inc()
