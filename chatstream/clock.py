"""Time and epochs as the stream sees them: Unix milliseconds, random epochs."""
import time
import uuid


def now_ms():
    """Wall-clock Unix time in whole milliseconds (a message's ``ts``)."""
    return int(time.time() * 1000)


def new_epoch():
    """A fresh stream epoch: readers holding another epoch must start over.

    16 hex digits (64 random bits): unique across restarts in practice, and
    short on the wire, where every ``message`` and heartbeat carries it.
    """
    return uuid.uuid4().hex[:16]
