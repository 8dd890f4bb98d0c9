"""What a node's moderation handlers need of the database (chat/protocol/moderation.py):
a uid's active bans, storing a ban or a report, and a message's author from the archive.

Its in-memory twin is :class:`chat.protocol.moderation.MemoryModeration`.  Every call
blocks on the database (a greenlet each); none is made per delivered message.  Socket.IO
events are not Django requests, so each call closes its greenlet's connections when done,
except the check every join makes: joins waiting at one moment are answered by one query
in one long-lived greenlet (a reconnect storm is thousands of joins at once).
"""
from contextlib import contextmanager
from datetime import datetime, timezone as dt_timezone

from django.db import IntegrityError, connections, transaction

from archive.models import RoomEvent
from chat.protocol.identity import NickBatcher
from .models import Ban, ModAction, Report


@contextmanager
def closing_connections():
    try:
        yield
    finally:
        connections.close_all()


def banned_uids(uids):
    """The ``uids`` with a ban in force: one query for a batch of joins (NickBatcher's worker,
    which keeps its connection; a broken one is closed and the query asked once more)."""
    query = Ban.objects.active().filter(uid__in=list(uids)).values_list("uid", flat=True)
    try:
        return set(query)
    except Exception:              # noqa: BLE001 - a stale connection: a new one, once
        connections.close_all()
        return set(query.all())


def as_datetime(ms):
    """Unix milliseconds (the wire's) as an aware datetime; None stays None (for good)."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000.0, tz=dt_timezone.utc)


def merged(bans):
    """{uid: {room or None: until ms or None}} of Ban rows; the later end wins, None (for good) most."""
    found = {}
    for ban in bans:
        scopes = found.setdefault(ban.uid, {})
        room = ban.room or None
        held, until = scopes.get(room, 0), ban.until_ms
        scopes[room] = None if until is None or held is None else max(until, held)
    return found


def log_action(kind, actor, room="", target_uid="", seq=None, detail="", actor_uid=""):
    """One line of the moderator log.

    :param actor: the Django user who acted, or a connection's Identity.
    """
    user_id = getattr(actor, "user_id", None) or getattr(actor, "pk", None)
    name = getattr(actor, "username", None) or ""
    return ModAction.objects.create(kind=kind, actor_id=user_id, actor_name=name,
                                    actor_uid=actor_uid or getattr(actor, "uid", "") or "",
                                    room=room or "", target_uid=target_uid, seq=seq,
                                    detail=detail[:300])


class DatabaseModeration:
    """Bans, reports and the moderator log in the nodes' database."""

    def __init__(self):
        # "taken" is "has a ban in force": the batcher answers any key -> bool question
        self.checks = NickBatcher(banned_uids)

    def bans_of(self, uid):
        if not self.checks.taken(uid):
            return {}
        return self.bans_of_many([uid]).get(uid, {})

    def bans_of_many(self, uids):
        with closing_connections():
            return merged(Ban.objects.active().filter(uid__in=list(uids))
                          .only("uid", "room", "until"))

    def ban(self, room, uid, until, actor, nick=""):
        """A moderator's ban from a connection (``actor`` its Identity), logged."""
        with closing_connections(), transaction.atomic():
            Ban.objects.create(room=room or "", uid=uid, nick=nick, until=as_datetime(until),
                               by_id=actor.user_id, reason="banned from the chat page")
            log_action(ModAction.Kind.BAN, actor, room=room, target_uid=uid,
                       detail="until %s" % (as_datetime(until) or "for good"))

    def report(self, room, epoch, seq, author, reporter, reason):
        """A member's report; the same member reporting the same message again is one report."""
        try:
            with closing_connections(), transaction.atomic():
                Report.objects.create(room=room, epoch=epoch, seq=seq, author_uid=author["uid"],
                                      author_nick=author["nick"], reporter_uid=reporter.uid,
                                      reporter_id=reporter.user_id, reason=reason)
        except IntegrityError:
            pass   # reported already: the first reason stands

    def message(self, room, epoch, seq):
        """Message ``seq`` of ``room`` in the archive, {uid, nick, deleted}; None if absent."""
        with closing_connections():
            return (RoomEvent.objects.filter(room__name=room, epoch=epoch, seq=seq,
                                             kind=RoomEvent.Kind.MESSAGE)
                    .values("uid", "nick", "deleted").first())
