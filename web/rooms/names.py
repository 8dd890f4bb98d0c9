"""The names of direct conversations.

A direct conversation's room name is derived from its two accounts, never from their
usernames: usernames are Unicode (and up to 32 characters each), room names 1-64 of
``A-Z a-z 0-9 _ -``.  ``dm-`` and 20 hex digits of an HMAC of the pair (with the
deployment's SECRET_KEY) is ASCII, 23 characters, free of look-alikes, and cannot be
guessed, so nobody can make the public room of that name before the two accounts talk.
Should it be in use all the same, the next ``attempt`` gives another name; the name
chosen is stored (rooms.models.PrivateRoom), so both sides find the same one.
"""
import hashlib
import hmac

DIRECT_PREFIX = "dm-"         # reserved: ``create`` refuses names that begin with it
NAME_HEX_DIGITS = 20          # 80 bits: no two pairs of one deployment share a name


def direct_name(secret_key, pair, attempt=0):
    """The room name of the direct conversation of ``pair`` (models.pair_key)."""
    value = "dm:%s" % pair if attempt == 0 else "dm:%s:%d" % (pair, attempt)
    digest = hmac.new(secret_key.encode("utf-8"), value.encode("utf-8"), hashlib.sha256)
    return DIRECT_PREFIX + digest.hexdigest()[:NAME_HEX_DIGITS]


def reserved(room):
    """True when ``room`` is in the namespace of direct conversations."""
    return room.lower().startswith(DIRECT_PREFIX)
