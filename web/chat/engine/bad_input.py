"""The node's log of bad client input: one line each, and only so many lines a second.

A malformed Socket.IO or Engine.IO packet costs a client a few bytes; python-engineio
logs each one with a full traceback (kilobytes), so a client could fill the log and flush
its rotation in a minute.  :class:`BadInputLog` writes one warning line per refusal, no
traceback, at most ``lines_per_s`` (bursts of ``burst``) for the whole node; the lines it
drops are counted in the next line it writes.
"""
import logging

from ..protocol.ratelimit import TokenBucket

# A few lines a second tell an operator what is happening; more only feed the rotation.
LINES_PER_S = 2.0
LINES_BURST = 10


class BadInputLog:
    """Rate-limited one-line warnings about refused client input, one per node."""

    def __init__(self, logger=None, lines_per_s=LINES_PER_S, burst=LINES_BURST):
        self.log = logger or logging.getLogger("chat.engine.bad_input")
        self.bucket = TokenBucket(lines_per_s, burst)
        self.dropped = 0

    def refused(self, peer, what, error=None):
        """Note one refusal: ``what`` was refused from ``peer`` (``error``: the parser's reason)."""
        if not self.bucket.allow():
            self.dropped += 1
            return
        dropped, self.dropped = self.dropped, 0
        self.log.warning("refused %s from %s%s%s", what, peer,
                         ": %s" % str(error)[:200] if error is not None else "",
                         " (%d more since the last line, not logged)" % dropped if dropped else "")
