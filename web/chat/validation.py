"""The contract's input rules (PROTOCOL.md "Errors"), one function per rule.

Each rule returns the clean value or raises :class:`ContractError` with the
contract's error code.  Nothing here touches sockets or Django.
"""
import re

from chatstream import fastjson
from chatstream.wire import ROOM_RE  # noqa: E402 - one rule for clients and the wire
NICK_MAX = 32
TEXT_MAX = 2000
CID_MAX = 64
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")   # half of a UTF-16 pair: not a character


class ContractError(Exception):
    """A refused request: acknowledged as {ok: false, error, detail}."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail

    def ack(self):
        return {"ok": False, "error": self.code, "detail": self.detail}


def _typed(payload, field, kind, name):
    """The field's value, None when absent; invalid_payload when of another type."""
    value = payload.get(field)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ContractError("invalid_payload", "%s must be %s" % (field, name))
    return value


def payload_size(payload, limit):
    """payload_too_large when the payload's JSON is over ``limit`` bytes.

    Measured as :func:`chatstream.fastjson.dumpb` writes it: compact UTF-8, or
    ASCII escapes for what orjson refuses (a lone surrogate, a non-str key),
    i.e. the size the node itself would send on.
    """
    if isinstance(payload, str):
        size = len(payload.encode("utf-8", "surrogatepass"))
    elif isinstance(payload, (dict, list)):
        try:
            size = len(fastjson.dumpb(payload))
        except (TypeError, ValueError):
            raise ContractError("invalid_payload", "the payload is not JSON") from None
    else:
        return
    if size > limit:
        raise ContractError("payload_too_large", "the payload is %d bytes; the limit is %d"
                            % (size, limit))


def payload_object(payload):
    if not isinstance(payload, dict):
        raise ContractError("invalid_payload", "the payload must be a JSON object")
    return payload


def room(payload):
    value = _typed(payload, "room", str, "a string")
    if value is None or not ROOM_RE.fullmatch(value):
        raise ContractError("invalid_room", "room must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def nick(payload):
    value = _typed(payload, "nick", str, "a string")
    value = (value or "").strip()
    if not value or len(value) > NICK_MAX:
        raise ContractError("invalid_nick", "nick must be 1-%d characters after trimming" % NICK_MAX)
    if _CONTROL_RE.search(value) or _SURROGATE_RE.search(value):
        raise ContractError("invalid_nick", "nick must not contain control characters")
    return value


def text(payload):
    value = _typed(payload, "text", str, "a string")
    if value is None or not value.strip():
        raise ContractError("invalid_text", "text must not be empty or only whitespace")
    if len(value) > TEXT_MAX:
        raise ContractError("invalid_text", "text must be at most %d characters" % TEXT_MAX)
    if _SURROGATE_RE.search(value):
        raise ContractError("invalid_text", "text must be valid Unicode (no lone surrogates)")
    return value


def cid(payload):
    value = _typed(payload, "cid", str, "a string")
    if value is not None and not 1 <= len(value) <= CID_MAX:
        raise ContractError("invalid_payload", "cid must be 1-%d characters" % CID_MAX)
    return value


def since(payload):
    value = _typed(payload, "since", int, "an integer")
    if value is not None and value < 0:
        raise ContractError("invalid_payload", "since must be a non-negative integer")
    return value


def epoch(payload):
    return _typed(payload, "epoch", str, "a string")


def join_request(payload):
    payload = payload_object(payload)
    return {"room": room(payload), "nick": nick(payload),
            "since": since(payload), "epoch": epoch(payload)}


def leave_request(payload):
    return {"room": room(payload_object(payload))}


def message_request(payload):
    payload = payload_object(payload)
    return {"room": room(payload), "text": text(payload), "cid": cid(payload)}


def members_request(payload):
    return {"room": room(payload_object(payload))}


def rooms_request(payload):
    payload_object({} if payload is None else payload)
    return {}
