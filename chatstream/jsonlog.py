"""One JSON object per log line (``CHAT_LOG_FORMAT=json``), for nodes and broker alike.

Each line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``process``
(the program: ``broker``, ``node1`` ...), ``pid``, ``node`` (nodes only),
``logger``, ``message``, ``exc`` when there is a traceback, and ``room``,
``seq``, ``cid``, ``uid`` when the call passed them as ``extra``::

    log.warning("message not sequenced: %s", exc, extra={"room": room, "cid": cid})
"""
import json
import logging
import time

# What a log call may add with ``extra=``; no other record attribute is copied.
CONTEXT_FIELDS = ("room", "seq", "cid", "uid")


class JsonFormatter(logging.Formatter):
    """:param process: the program's name; :param node: the node's name, if one."""

    def __init__(self, process="chat", node=None):
        super().__init__()
        self.process = process
        self.node = node

    def format(self, record):
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + ".%03dZ" % record.msecs,
            "level": record.levelname,
            "process": self.process,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.node is not None:
            line["node"] = self.node
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
