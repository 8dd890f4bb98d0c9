"""What staff do to a report or a uid from the admin and /ops/, each in one step and logged.

The admin runs inside a node process: a ban made here is evicted through this node's
broker link (every node, within the second), and a delete is sequenced through it like a
client's (the ``edits`` work: ``chat.protocol.conversation.delete_as_staff``).  Outside a
node (``manage.py shell``) there is no link: the ban is stored and refuses the uid's next
join everywhere, but connections already in the room stay until their node resyncs.
"""
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archive.models import RoomEvent
from chat.protocol.eviction import BANNED
from chat.protocol.identity import account_uid
from .models import Ban, ModAction, Report
from .store import log_action

log = logging.getLogger(__name__)


class ActionFailed(Exception):
    """A staff action that could not be done; its message says why and what to do."""


def _link():
    from chat.running import current_server   # the node's server; None outside a node
    sio = current_server()
    return None if sio is None else sio.manager.link


def evict(ban):
    """Send a stored ban to every node (False when this process is not a node)."""
    link = _link()
    if link is None:
        log.warning("ban of %s stored outside a node: no eviction sent", ban.uid)
        return False
    link.evict(ban.room or None, ban.uid, BANNED, ban.until_ms)
    return True


def ban(user, room, uid, until=None, nick="", reason=""):
    """``user`` (staff) bans ``uid`` from ``room`` ("" or None: every room) until ``until``
    (an aware datetime, None for good); stored and logged, then evicted everywhere."""
    with transaction.atomic():
        row = Ban.objects.create(room=room or "", uid=uid, nick=nick, until=until, by=user,
                                 reason=reason)
        banned(user, row)
    evict(row)
    return row


def banned(user, row, changed=False):
    """Log a ban stored by the admin's own form."""
    log_action(ModAction.Kind.BAN, user, room=row.room, target_uid=row.uid,
               actor_uid=account_uid(settings.SECRET_KEY, user.pk),
               detail="%s until %s%s" % ("changed:" if changed else "", row.until or "for good",
                                         (": " + row.reason) if row.reason else ""))


def lift(user, rows):
    """End bans now (they stay listed, as the record of what was done)."""
    now = timezone.now()
    for row in rows:
        row.until = now
        row.save(update_fields=["until"])
        log_action(ModAction.Kind.LIFT, user, room=row.room, target_uid=row.uid,
                   actor_uid=account_uid(settings.SECRET_KEY, user.pk))


def message_of(report):
    """The reported message's archive row (None while not archived yet)."""
    return (RoomEvent.objects.filter(room__name=report.room, epoch=report.epoch, seq=report.seq,
                                     kind=RoomEvent.Kind.MESSAGE).first())


def delete_message(user, report):
    """Delete the reported message for every member (a sequenced ``delete``), logged."""
    try:
        from chat.protocol.conversation import delete_as_staff
    except ImportError:
        raise ActionFailed("deleting from the admin needs the edits work (a sequenced delete); "
                           "not in this build") from None
    from chat.protocol.validation import ContractError
    staff_uid = account_uid(settings.SECRET_KEY, user.pk)
    try:
        seq = delete_as_staff(report.room, report.epoch, report.seq, staff_uid)
    except ContractError as exc:
        if exc.code != "not_found":   # deleted already: the report is handled all the same
            raise ActionFailed("%s: %s" % (exc.code, exc.detail)) from None
        seq = None
    except RuntimeError as exc:
        raise ActionFailed(str(exc)) from None
    log_action(ModAction.Kind.DELETE, user, room=report.room, target_uid=report.author_uid,
               seq=report.seq, actor_uid=staff_uid,
               detail="report %d%s" % (report.pk, "" if seq else ": deleted already"))
    handled(user, report, Report.State.RESOLVED)


def ban_author(user, report):
    """Ban the reported message's author from its room for good, logged."""
    if not report.author_uid:
        raise ActionFailed("report %d: the message has no author uid to ban" % report.pk)
    ban(user, report.room, report.author_uid, nick=report.author_nick,
        reason="report %d: %s" % (report.pk, report.reason[:150]))
    handled(user, report, Report.State.RESOLVED)


def dismiss(user, report):
    log_action(ModAction.Kind.DISMISS, user, room=report.room, target_uid=report.author_uid,
               seq=report.seq, actor_uid=account_uid(settings.SECRET_KEY, user.pk),
               detail="report %d" % report.pk)
    handled(user, report, Report.State.DISMISSED)


def handled(user, report, state):
    report.state, report.handled_by, report.handled_at = state, user, timezone.now()
    report.save(update_fields=["state", "handled_by", "handled_at"])


def open_reports(limit=50):
    """The newest open reports with their message's current text (/ops/)."""
    reports = list(Report.objects.filter(state=Report.State.OPEN).order_by("-created")[:limit])
    for report in reports:
        row = message_of(report)
        report.message_text = ("(deleted)" if row is not None and row.deleted
                               else row.text if row is not None else "(not archived yet)")
    return reports
