"""A ``json``-compatible module on orjson, for python-socketio / python-engineio.

Both accept a ``json`` module (``socketio.Server(json=...)``) and call only
``dumps(obj, separators=...)`` and ``loads(text)``.  orjson (C) encodes and
decodes a chat packet several times faster than the stdlib; whatever it refuses
-- a lone UTF-16 surrogate, a non-str key, an integer over 64 bits, invalid
JSON -- goes to the stdlib, so results and errors stay the stdlib's.
"""
import json as _json

import orjson

JSONDecodeError = _json.JSONDecodeError


def dumps(obj, **kwargs):
    if not kwargs or kwargs == {"separators": (",", ":")}:
        try:
            return orjson.dumps(obj).decode("utf-8")
        except TypeError:
            pass
    return _json.dumps(obj, **kwargs)


def loads(s, **kwargs):
    if not kwargs:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            pass
    return _json.loads(s, **kwargs)
