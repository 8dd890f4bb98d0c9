"""The client contract's input rules (PROTOCOL.md "Errors"): one copy for nodes and broker.

Stdlib only.  Each rule takes a value already known to be a ``str`` and
returns the clean value (the one to use from then on) or raises
:class:`RuleError` with the contract's error code.  A node applies them to
what a client sends (``chat.validation``, which also parses the Socket.IO
payloads); the broker applies the same rules to what a node sends, so a node
that misbehaves cannot get past the broker what a client could not.

Besides the client's fields: node names, and the announcements a node has the
broker say to a room (:func:`announcement`).
"""
import re
import unicodedata

# Room names (they become ZeroMQ topics, and page URLs).
ROOM_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Node names: shown to clients in `message.node` and in logs; no spaces, no markup.
NODE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NICK_MAX = 32
TEXT_MAX = 2000
CID_MAX = 64
# An author's uid (PROTOCOL.md "Identity"): its kind, then 20 hex digits (80 bits of an
# HMAC or of randomness): "a" an account, "g" a guest's session, "c" a guest connection
# without one (web/chat/identity.py makes them).
UID_RE = re.compile(r"[agc][0-9a-f]{20}")
# A logged-in Django session as nodes name it to each other (a ``revoke``): "s" and 20
# hex digits of an HMAC of the session key, never the key itself (a login credential).
SESSION_REF_RE = re.compile(r"s[0-9a-f]{20}")
GUEST_UID_KINDS = frozenset("gc")
# Whom a per-person limit counts (a ``usage`` report): an account's or a guest session's
# uid, or "i" and 20 hex digits of an HMAC of a guest's address (never the address).
PERSON_KEY_RE = re.compile(r"[agi][0-9a-f]{20}")
# The requests a ``usage`` report may name: lower-case event names.
USAGE_EVENT_RE = re.compile(r"[a-z_]{1,16}")

# Categories a nick may not hold: controls (Cc), format characters such as
# U+200B zero-width space and U+202E right-to-left override (Cf), line and
# paragraph separators (Zl, Zp); and lone UTF-16 surrogates (Cs: not characters).
NICK_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Texts: every Cc but newline and tab (Cc is exactly U+0000-001F and U+007F-009F), the
# bidi embedding, override and isolate controls (U+202A-202E, U+2066-2069: they make a
# line read differently from what was sent), and lone surrogates.  A regex: texts are
# long and checked per message.
_TEXT_REFUSED_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class RuleError(ValueError):
    """A value the contract refuses; ``code`` is the contract's error code."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def room(value):
    if not ROOM_RE.fullmatch(value):
        raise RuleError("invalid_room", "room must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def nick(value):
    """The nick as it is used: NFKC-normalised, then trimmed."""
    value = unicodedata.normalize("NFKC", value).strip()
    if not value or len(value) > NICK_MAX:
        raise RuleError("invalid_nick", "nick must be 1-%d characters after trimming" % NICK_MAX)
    for char in value:
        if unicodedata.category(char) in NICK_REFUSED_CATEGORIES:
            raise RuleError("invalid_nick", "nick must not contain control, format or "
                            "separator characters (U+%04X)" % ord(char))
    return value


def text(value):
    if not value.strip():
        raise RuleError("invalid_text", "text must not be empty or only whitespace")
    if len(value) > TEXT_MAX:
        raise RuleError("invalid_text", "text must be at most %d characters" % TEXT_MAX)
    bad = _TEXT_REFUSED_RE.search(value)
    if bad:
        raise RuleError("invalid_text", "text must not contain control characters other than "
                        "newline and tab, bidi controls nor lone surrogates (U+%04X)" % ord(bad.group()))
    return value


def cid(value):
    if not 1 <= len(value) <= CID_MAX:
        raise RuleError("invalid_payload", "cid must be 1-%d characters" % CID_MAX)
    return value


def uid(value):
    if not isinstance(value, str) or not UID_RE.fullmatch(value):
        raise RuleError("invalid_uid", "uid must be a, g or c and 20 hex digits")
    return value


def person_key(value):
    if not isinstance(value, str) or not PERSON_KEY_RE.fullmatch(value):
        raise RuleError("invalid_person", "a person is a, g or i and 20 hex digits")
    return value


def session_ref(value):
    if not isinstance(value, str) or not SESSION_REF_RE.fullmatch(value):
        raise RuleError("invalid_session", "session must be s and 20 hex digits")
    return value


def nick_key(value):
    """What two nicks are compared by (``nick_taken``, unique usernames): NFKC, then
    case folding, then NFKC again (folding can undo the normal form, e.g. U+0345)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def node_name(value):
    if not NODE_RE.fullmatch(value):
        raise RuleError("invalid_node", "node name must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return value


def clean_nick(value):
    """A nick as a node passes it on: already the :func:`nick` rule's output."""
    if not isinstance(value, str) or nick(value) != value:
        raise RuleError("invalid_nick", "nick %r is not a clean nick (NFKC, trimmed)"
                        % (value,))
    return value


# --- announcements: the one thing nodes have the broker say ------------------------

_ANNOUNCED = re.compile(r"(.+) (joined|left)", re.DOTALL)


def announcement(value):
    """An announcement's text as a node sends it: "<nick> joined" or "<nick> left",
    with a clean nick; anything else is refused (``invalid_announcement``)."""
    match = _ANNOUNCED.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise RuleError("invalid_announcement", "text must be '<nick> joined' or '<nick> left'")
    try:
        clean_nick(match.group(1))
    except RuleError:
        raise RuleError("invalid_announcement", "text must name a valid nick") from None
    return value


# --- evictions: a uid's connections leaving a room on every node ---------------------

# Why a uid is evicted, as a short word ("banned", "removed"): clients see it, so no markup.
EVICT_REASON_RE = re.compile(r"[a-z_]{1,32}")


def evict_reason(value):
    if not isinstance(value, str) or not EVICT_REASON_RE.fullmatch(value):
        raise RuleError("invalid_reason", "reason must be 1-32 characters of a-z _")
    return value
