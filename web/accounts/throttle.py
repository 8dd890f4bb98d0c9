"""Login and signup attempts counted in the nodes' shared database.

The nodes are separate processes (and hosts), so a counter in one process would let an
attacker spread attempts over them; the database every node shares holds the counts
instead (model :class:`accounts.models.Attempt`, one row per key and fixed window).
Two limits, both per window (settings ``CHAT_AUTH_*``):

- per client address: every login and signup POST, whatever its outcome: this bounds
  the password hashing one address can ask of the cluster and the usernames signup
  lets it probe;
- per username: failed logins only, so guessing one account's password is slow from
  any number of addresses.
"""
import hashlib
import math
import time

from django.db import IntegrityError, transaction
from django.db.models import F

from chatstream import rules

from .models import Attempt


def _window_start(now, window_s):
    return math.floor(now / window_s) * window_s


def count(key, *, window_s, now=None, add=0):
    """The attempts of ``key`` in the current window, after adding ``add``."""
    now = time.time() if now is None else now
    start = _window_start(now, window_s)
    if add:
        with transaction.atomic():
            if not Attempt.objects.filter(key=key, window_start=start).update(count=F("count") + add):
                # A new window: every row of an older one goes, this key's too.
                Attempt.objects.filter(window_start__lt=start).delete()
                try:
                    with transaction.atomic():
                        Attempt.objects.create(key=key, window_start=start, count=add)
                except IntegrityError:     # another node made it meanwhile
                    Attempt.objects.filter(key=key).update(count=F("count") + add)
    found = Attempt.objects.filter(key=key, window_start=start).values_list("count", flat=True).first()
    return found or 0


def address_key(request):
    return "addr:" + (request.META.get("REMOTE_ADDR") or "?")


def username_key(username):
    """The same key for every spelling a login accepts (nick key); hashed to bound its size."""
    try:
        name = rules.nick_key(username)
    except (rules.RuleError, TypeError):
        name = str(username)
    return "user:" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()
