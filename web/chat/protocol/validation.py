"""The Socket.IO side of the contract's input rules (PROTOCOL.md "Errors").

The rules themselves (room, nick, text, cid) live once in
:mod:`chatstream.rules`, shared with the broker; here each request's payload
is parsed (types, missing fields, sizes) and a refusal becomes
:class:`ContractError`.  Nothing here touches sockets or Django.
"""
from chatstream import fastjson, rules
from chatstream.rules import ROOM_RE  # noqa: F401 - the pages check room names with it


class ContractError(rules.RuleError):
    """A refused request: acknowledged as {ok: false, error, detail}."""

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


def _ruled(rule, value):
    try:
        return rule(value)
    except rules.RuleError as exc:
        raise ContractError(exc.code, exc.detail) from None


def room(payload):
    value = _typed(payload, "room", str, "a string")
    return _ruled(rules.room, "" if value is None else value)


def nick(payload):
    """The nick as it is used: NFKC-normalised and trimmed (chatstream.rules.nick)."""
    value = _typed(payload, "nick", str, "a string")
    return _ruled(rules.nick, value or "")


def text(payload):
    value = _typed(payload, "text", str, "a string")
    return _ruled(rules.text, value or "")


def cid(payload):
    value = _typed(payload, "cid", str, "a string")
    return None if value is None else _ruled(rules.cid, value)


def since(payload):
    value = _typed(payload, "since", int, "an integer")
    if value is not None and value < 0:
        raise ContractError("invalid_payload", "since must be a non-negative integer")
    return value


def epoch(payload):
    return _typed(payload, "epoch", str, "a string")


def join_request(payload, account=None):
    """:param account: the connection's username: its nick, whatever the payload says."""
    payload = payload_object(payload)
    return {"room": room(payload),
            "nick": nick(payload) if account is None else _ruled(rules.clean_nick, account),
            "since": since(payload), "epoch": epoch(payload)}


def leave_request(payload):
    return {"room": room(payload_object(payload))}


def message_request(payload):
    payload = payload_object(payload)
    return {"room": room(payload), "text": text(payload), "cid": cid(payload)}


def members_request(payload):
    return {"room": room(payload_object(payload))}


def page(payload, limit_max, limit_default):
    """``before`` (a seq, optional) and ``limit`` (1-``limit_max``) of a paged request."""
    before = _typed(payload, "before", int, "an integer")
    if before is not None and before < 1:
        raise ContractError("invalid_payload", "before must be a positive integer")
    limit = _typed(payload, "limit", int, "an integer")
    if limit is not None and not 1 <= limit <= limit_max:
        raise ContractError("invalid_payload", "limit must be 1-%d" % limit_max)
    return {"before": before, "limit": limit or limit_default}


def history_request(payload, limit_max=100, limit_default=50):
    payload = payload_object(payload)
    return {"room": room(payload), **page(payload, limit_max, limit_default)}


def search_request(payload, q_max=200, limit_max=50, limit_default=20):
    """q (1-``q_max`` chars, not only whitespace), room (optional), before, limit."""
    payload = payload_object(payload)
    q = _typed(payload, "q", str, "a string")
    if q is None or not q.strip() or len(q) > q_max:
        raise ContractError("invalid_payload", "q must be 1-%d characters of words to find" % q_max)
    return {"q": q, "room": None if payload.get("room") is None else room(payload),
            **page(payload, limit_max, limit_default)}


def rooms_request(payload):
    payload_object({} if payload is None else payload)
    return {}


def read_request(payload):
    payload = payload_object(payload)
    seq = _typed(payload, "seq", int, "an integer")
    if seq is None or seq < 0:
        raise ContractError("invalid_payload", "seq must be a non-negative integer")
    return {"room": room(payload), "seq": seq}


def typing_request(payload):
    return {"room": room(payload_object(payload))}
