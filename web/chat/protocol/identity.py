"""Who a Socket.IO connection is (PROTOCOL.md "Identity"): an account or a guest, and its uid.

Read once per connection, when it connects, from the Django session named by the
handshake's cookie (the sessions are in the nodes' shared database, so a session made on
one node is valid on all): one database read per connection, none per message.

The ``uid`` every message and join ack carries (its shape is ``chatstream.rules.uid``):

- an account: ``"a"`` + HMAC-SHA256(SECRET_KEY, "account:<user id>"), 20 hex digits;
  the same on every node, in every session, for as long as the key stays;
- a guest with a session (the pages give every visitor one): ``"g"`` + HMAC of the
  session key, so reloads, reconnects and other nodes keep it, and the session key
  itself (a login credential) is never shown;
- a guest without one (a client that brings no valid session cookie): ``"c"`` + 20
  random hex digits, fresh per connection.

An account's connection also keeps a reference to its Django session (``session_ref``,
an HMAC of the session key): a logout names it to every node (chat/protocol/revocation.py),
and each ends the connections opened with it.

Rotating SECRET_KEY changes every uid (and ends every login session).

With CURVE, each identity made here also carries its uid's ``proof``
(chatstream/uid_proofs.py, under the uid proof key, not SECRET_KEY): the node registers
the connection at the broker with it, and the broker registers no uid without one, so a
node's CURVE key alone (without this node's keys and sessions) cannot speak as anyone.
"""
import hashlib
import hmac
import itertools
import logging
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import SimpleNamespace

import gevent
from django.http.cookie import parse_cookie
from gevent.event import AsyncResult, Event

from accounts.names import skeleton
from chatstream import uid_proofs

log = logging.getLogger(__name__)

UID_HEX_DIGITS = 20   # 80 bits: no two people of one deployment ever share a uid


@dataclass(frozen=True)
class Identity:
    """A connection's identity: ``username`` is the account's, None for a guest;
    ``session`` the :func:`session_ref` of an account's login session (None for a guest);
    ``user_id`` the account's primary key and ``staff`` its ``is_staff``, as read when
    the connection was made (a guest: None, False); ``proof`` the uid's proof for the
    broker (None without CURVE)."""
    uid: str
    username: str = None
    session: str = None
    user_id: int = None
    staff: bool = False
    proof: str = None

    @property
    def guest(self):
        return self.username is None


def _mac(secret_key, kind, value):
    digest = hmac.new(secret_key.encode("utf-8"), ("%s:%s" % (kind, value)).encode("utf-8"),
                      hashlib.sha256).hexdigest()
    return digest[:UID_HEX_DIGITS]


def account_uid(secret_key, user_id):
    return "a" + _mac(secret_key, "account", user_id)


def guest_uid(secret_key, session_key):
    return "g" + _mac(secret_key, "guest", session_key)


def session_ref(secret_key, session_key):
    """How nodes name a login session to each other: never the key itself (a credential)."""
    return "s" + _mac(secret_key, "session", session_key)


def connection_uid():
    return "c" + secrets.token_hex(UID_HEX_DIGITS // 2)


def cookie(environ, name):
    """The value of cookie ``name`` in a WSGI environ's Cookie header, or None."""
    return parse_cookie(environ.get("HTTP_COOKIE", "")).get(name) or None


class GuestIdentities:
    """The in-memory twin of :class:`SessionIdentities` for unit tests: no database.

    :param usernames: the registered accounts' usernames (``nick_taken``).
    :param sessions: session cookie value -> :class:`Identity` for the handshakes
        that bring cookie ``sessionid``; every other connection is a new guest.
    """

    def __init__(self, usernames=(), sessions=None):
        self.taken = {skeleton(name) for name in usernames}
        self.sessions = dict(sessions or {})

    def identify(self, environ):
        found = self.sessions.get(cookie(environ, "sessionid"))
        return found or Identity(connection_uid())

    def nick_taken(self, nick):
        return skeleton(nick) in self.taken


@contextmanager
def _database():
    """Django closes a request's connections when the request ends; Socket.IO events are
    not Django requests, so close this greenlet's connections when done here."""
    from django.db import connections
    try:
        yield
    finally:
        connections.close_all()


class SessionIdentities:
    """Accounts and guests from the Django session in a handshake's cookie.

    :param uid_proof_key: the uid proof key (bytes); by default read from
        ``CHAT_UID_PROOF_KEY_FILE`` (none without CURVE: identities carry no proof).
    """

    def __init__(self, secret_key=None, uid_proof_key=None):
        from django.conf import settings
        self.secret_key = secret_key or settings.SECRET_KEY
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.nicks = NickBatcher(_taken_skeletons)
        if uid_proof_key is None and settings.CHAT_UID_PROOF_KEY_FILE:
            uid_proof_key = uid_proofs.read_key(settings.CHAT_UID_PROOF_KEY_FILE)
        self.uid_proof_key = uid_proof_key

    def identify(self, environ):
        """The connection's :class:`Identity`, with its uid's proof when this node has
        the key: the one place a node vouches for a uid, having read its session."""
        identity = self._identify(environ)
        if self.uid_proof_key is None:
            return identity
        return replace(identity, proof=uid_proofs.prove(self.uid_proof_key, identity.uid))

    def _identify(self, environ):
        from importlib import import_module

        from django.conf import settings
        from django.contrib.auth import get_user
        key = cookie(environ, self.cookie_name)
        if key is None:
            return Identity(connection_uid())
        with _database():
            session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
            # Django's own check: the user of the session, if its password hash still matches.
            user = get_user(SimpleNamespace(session=session))
            if user.is_authenticated:
                return Identity(account_uid(self.secret_key, user.pk), user.get_username(),
                                session_ref(self.secret_key, session.session_key),
                                user_id=user.pk, staff=user.is_staff)
            # session_key is None once the cookie named no live session (forged, expired).
            if session.session_key is None:
                return Identity(connection_uid())
            return Identity(guest_uid(self.secret_key, session.session_key))

    def nick_taken(self, nick):
        """True when ``nick`` looks like an account's username (its skeleton, accounts/names.py)."""
        return self.nicks.taken(skeleton(nick))


def _taken_skeletons(keys):
    """The ``keys`` (name skeletons) that registered accounts hold: one query for all of them.

    Runs in :class:`NickBatcher`'s one long-lived greenlet, which keeps its database
    connection open between batches (opening one per check was most of a join's cost);
    a broken connection (a database restart) is closed and the query asked once more.
    """
    from django.contrib.auth import get_user_model
    from django.db import connections
    query = get_user_model().objects.filter(nick_skeleton__in=keys).values_list("nick_skeleton",
                                                                      flat=True)
    try:
        return set(query)
    except Exception:              # noqa: BLE001 - a stale connection: a new one, once
        connections.close_all()
        return set(query.all())


class NickBatcher:
    """Answers every nick check waiting at one moment with one query.

    A join storm (thousands of clients reconnecting at once) would otherwise cost one
    database connection and query per join, most of a node's CPU while it accepts
    clients.  Callers block (their greenlet) on a result; one
    worker greenlet asks ``query(keys) -> set of taken keys`` for everything pending,
    at most :attr:`MAX_BATCH` keys per query, then waits for the next checks.  A failed
    query fails the checks of its batch only.
    """
    MAX_BATCH = 500

    def __init__(self, query):
        self.query = query
        self.pending = {}      # nick key -> gevent AsyncResult
        self.wakeup = Event()
        self.worker = None

    def taken(self, key):
        result = self.pending.get(key)
        if result is None:
            result = self.pending[key] = AsyncResult()
            if self.worker is None or self.worker.dead:
                self.worker = gevent.spawn(self._answer_forever)
            self.wakeup.set()
        return result.get()

    def _answer_forever(self):
        while True:
            self.wakeup.wait()
            self.wakeup.clear()
            while self.pending:
                self._answer(list(itertools.islice(self.pending, self.MAX_BATCH)))

    def _answer(self, keys):
        batch = {key: self.pending.pop(key) for key in keys}
        try:
            taken = self.query(keys)
        except Exception as exc:       # noqa: BLE001 - each caller gets it (-> "unavailable")
            for result in batch.values():
                result.set_exception(exc)
            return
        for key, result in batch.items():
            result.set(key in taken)
