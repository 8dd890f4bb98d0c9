"""Logout ends that session's Socket.IO connections on every node.

A connection is identified once, when it connects (chat/protocol/identity.py), so
without this an account's open sockets would go on speaking as it after a logout.
Django sends ``user_logged_out`` from its logout view before it flushes the
session, so the key is still known: the node ends its own connections of that
session at once and sends the broker a ``revoke`` naming the session by its
session_ref (never the key), which the broker publishes to every node
(chatstream/wire.py).  A node that is down then has no connections to end: it
starts with none.
"""
from django.conf import settings
from django.contrib.auth.signals import user_logged_out

from .identity import session_ref


def end_connections(sender, request, user, **kwargs):
    """``user_logged_out``'s receiver: end the session's connections everywhere."""
    from chat.running import current_server   # the node's server; None outside a node
    sio = current_server()
    session = getattr(request, "session", None)
    key = session.session_key if session is not None else None
    if sio is None or key is None:
        return
    sio.manager.log_out(session_ref(settings.SECRET_KEY, key))


def connect():
    user_logged_out.connect(end_connections, dispatch_uid="chat.protocol.revocation")
