"""When two names look alike: the Unicode confusable skeleton (UTS #39).

Two names with the same :func:`skeleton` are one name to a reader: ``alıce``
(U+0131), ``аlice`` (Cyrillic a) and ``alice``; ``ADMİN`` and ``admiṅ`` and
``admin``.  The skeleton is ICU's (PyICU's ``SpoofChecker``, the reference
implementation of UTS #39's confusables data), taken of the nick key (NFKC, case
folded: PROTOCOL.md "Identity") with combining marks removed, since UTS #39 keeps
``admiṅ``'s dot above apart from ``admin``.

Stored skeletons (accounts.User.nick_skeleton) follow the ICU data of the host that
made them: every node of a cluster needs the same ICU (the pinned PyICU against the
system's libicu).
"""
import unicodedata

import icu

from chatstream import rules

_checker = icu.SpoofChecker()


def skeleton(name):
    """The confusable skeleton of ``name`` (a nick as the nick rules made it)."""
    decomposed = unicodedata.normalize("NFD", rules.nick_key(name))
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _checker.getSkeleton(0, bare)
