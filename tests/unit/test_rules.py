"""chatstream.rules: the contract's input rules, as the node and the broker both apply them."""
import pytest

from chatstream import rules
from chatstream.rules import RuleError


def refused(rule, value):
    with pytest.raises(RuleError) as info:
        rule(value)
    return info.value.code


# --- nick: NFKC, trimmed, 1-32, no Cc / Cf / Zl / Zp ---------------------------------

@pytest.mark.parametrize("nick", [
    "ann\u202e",            # right-to-left override (Cf)
    "\u202eevil",
    "a\u200bdmin",          # zero-width space (Cf)
    "ann\ufeff",            # byte order mark / zero-width no-break space (Cf)
    "a\u2066b",             # left-to-right isolate (Cf)
    "a\x00b",               # NUL (Cc)
    "a\x1bb", "a\x7fb", "a\x85b",   # ESC, DEL, NEL (Cc)
    "line1\nline2", "tab\there",    # Cc inside a nick, even newline and tab
    "a\u2028b",             # line separator (Zl)
    "a\u2029b",             # paragraph separator (Zp)
    "a\ud800b",             # a lone surrogate (Cs)
], ids=repr)
def test_nicks_with_control_format_or_separator_characters_are_invalid_nick(nick):
    assert refused(rules.nick, nick) == "invalid_nick"


@pytest.mark.parametrize("nick", ["", " ", "\t\n ", "\u3000", "a" * 33, "\u200b"], ids=repr)
def test_empty_or_too_long_nicks_are_invalid_nick(nick):
    assert refused(rules.nick, nick) == "invalid_nick"


@pytest.mark.parametrize("nick,clean", [
    ("\uff41\uff4c\uff49\uff43\uff45", "alice"),    # fullwidth letters normalise
    ("\uff21dmin", "Admin"),
    ("  ann  ", "ann"),
    ("\u3000ann\u3000", "ann"),                     # ideographic space: NFKC space, trimmed
    ("e\u0301", "\u00e9"),                          # combining accent composes
    ("\ufb01sh", "fish"),                           # the fi ligature decomposes
    ("Zo\u00eb \u65e5\u672c", "Zo\u00eb \u65e5\u672c"),
    ("a" * 32, "a" * 32),
], ids=repr)
def test_nicks_are_nfkc_normalised_then_trimmed(nick, clean):
    assert rules.nick(nick) == clean


def test_nick_length_counts_after_normalising():
    # U+FDFA is one character that NFKC spells out in 18: over 32 twice
    assert len(rules.nick("\ufdfa")) == 18
    assert refused(rules.nick, "\ufdfa\ufdfa") == "invalid_nick"


def test_clean_nick_accepts_only_the_rules_own_output():
    assert rules.clean_nick("alice") == "alice"
    for raw in ("\uff41lice", " alice", "a\u202e", "", 5, None):
        assert refused(rules.clean_nick, raw) == "invalid_nick"


# --- text: 1-2000, not only whitespace, Cc only newline and tab, no bidi controls -------------------------

@pytest.mark.parametrize("text", ["line1\nline2", "a\tb", "\n\tindented", "x" * 2000,
                                  "zero\u200bwidth", "\u200f rlm and \u200e lrm marks",
                                  "\u00e9" * 2000, "<b>x</b>"], ids=lambda t: repr(t)[:24])
def test_texts_with_newline_tab_and_format_characters_are_accepted_unchanged(text):
    assert rules.text(text) == text


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "bell\x07", "cr\r\nlf", "a\x0bb",
                                  "a\x0cb", "esc\x1b[31m", "a\x7fb", "a\x9fb", "a\ud800b",
                                  "\u202e reversed", "a\u202ab", "a\u202cb", "a\u2066b", "a\u2069b"],
                         ids=repr)
def test_texts_with_other_control_characters_are_invalid_text(text):
    assert refused(rules.text, text) == "invalid_text"


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "\u3000", "x" * 2001], ids=lambda t: repr(t)[:20])
def test_empty_blank_or_too_long_texts_are_invalid_text(text):
    assert refused(rules.text, text) == "invalid_text"


# --- room, cid, node name ---------------------------------------------------------------

@pytest.mark.parametrize("room,ok", [("a", True), ("a" * 64, True), ("Lobby_2-x", True),
                                     ("", False), ("a" * 65, False), ("a b", False),
                                     ("\u00e9", False), ("a\x00", False), ("lobby\n", False)])
def test_room_names(room, ok):
    if ok:
        assert rules.room(room) == room
    else:
        assert refused(rules.room, room) == "invalid_room"


def test_cid_is_1_to_64_characters():
    assert rules.cid("c" * 64) == "c" * 64
    assert refused(rules.cid, "") == "invalid_payload"
    assert refused(rules.cid, "c" * 65) == "invalid_payload"


@pytest.mark.parametrize("name,ok", [("node1", True), ("web-2.eu_west", True), ("n" * 64, True),
                                     ("", False), ("n" * 65, False), ("node 1", False),
                                     ("<b>", False), ("n\u00e9", False)])
def test_node_names(name, ok):
    if ok:
        assert rules.node_name(name) == name
    else:
        assert refused(rules.node_name, name) == "invalid_node"


# --- announcements -------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["ann joined", "ann left", "ann smith joined",
                                  "Zo\u00eb left"])
def test_announcements_of_joins_and_leaves_pass(text):
    assert rules.announcement(text) == text


BAD_ANNOUNCEMENTS = {
    "not-a-string": ["ann joined"],
    "free-text": "the server is moving, log in at evil.example",
    "other-verb": "ann kicked",
    "bad-nick": "ad\u202emin joined",
    "unclean-nick": " ann joined",
    "long-nick": "%s joined" % ("a" * 33),
    "no-nick": " joined",
    "verb-only": "joined",
    "trailing": "ann joined ",
    "two-spaces": "ann  joined",
    "capital-verb": "ann Joined",
    "newline-after": "ann joined\n",
    "newline-nick": "ann\nsmith joined",
    "zero-width-nick": "a\u200bnn joined",
    "empty": "",
}


@pytest.mark.parametrize("text", BAD_ANNOUNCEMENTS.values(), ids=BAD_ANNOUNCEMENTS.keys())
def test_every_other_announcement_is_invalid_announcement(text):
    assert refused(rules.announcement, text) == "invalid_announcement"
