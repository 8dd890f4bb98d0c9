"""Password hashing off the node's gevent loop.

PBKDF2 with Django's iteration count takes a quarter of a second of CPU: run on the
loop, every login or signup stalls every connection of the node that long.  Here the
hash runs in a pool of real OS threads (gevent's ThreadPool); ``hashlib.pbkdf2_hmac``
releases the GIL while it works, so the loop keeps serving meanwhile.  Outside a
gevent-patched process (manage.py commands, unit tests) it hashes in place.
"""
import threading

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

_pool = None
_pool_lock = threading.Lock()


def off_loop(function, *args):
    """``function(*args)`` in the hashing threads when the process runs under gevent."""
    from gevent import monkey
    if not monkey.is_module_patched("threading"):
        return function(*args)
    global _pool
    with _pool_lock:
        if _pool is None:
            from gevent.threadpool import ThreadPool
            _pool = ThreadPool(settings.CHAT_PASSWORD_HASH_THREADS)
    return _pool.apply(function, args)


class OffLoopPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 (same algorithm name, so existing hashes verify) in threads."""

    def encode(self, password, salt, iterations=None):
        return off_loop(super().encode, password, salt, iterations)
