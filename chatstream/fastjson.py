"""JSON through orjson, with the stdlib for whatever orjson refuses.

One place for the cluster's JSON: the broker wire (:mod:`chatstream.wire`), the
broker's store, the node's room broadcasts, and python-socketio /
python-engineio, which accept a ``json`` module (``socketio.Server(json=...)``)
and call only ``dumps(obj, separators=...)`` and ``loads(text)``.  orjson (C)
encodes and decodes a chat packet several times faster than the stdlib
(docs/BENCHMARKS.md).  What it refuses -- a lone UTF-16 surrogate, a non-str
key, an integer over 64 bits, invalid JSON -- goes to the stdlib, so results
and errors stay the stdlib's.
"""
import json as _json

import orjson

JSONDecodeError = _json.JSONDecodeError
COMPACT = (",", ":")


def dumpb(obj):
    """Compact JSON as bytes: orjson's UTF-8, or the stdlib's ASCII escapes
    (which carry any str, even a lone surrogate) for what orjson refuses."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return _json.dumps(obj, separators=COMPACT).encode("ascii")


def dumps(obj, **kwargs):
    """``json.dumps``; compact output (no kwargs, or ``separators=COMPACT``) via orjson."""
    if not kwargs or kwargs == {"separators": COMPACT}:
        try:
            return orjson.dumps(obj).decode("utf-8")
        except TypeError:
            pass
    return _json.dumps(obj, **kwargs)


def loads(s, **kwargs):
    """``json.loads``, via orjson when it accepts the text."""
    if not kwargs:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            pass
    return _json.loads(s, **kwargs)
