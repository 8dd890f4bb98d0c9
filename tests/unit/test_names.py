"""accounts/names.py: names that look alike share a skeleton (UTS #39), others do not."""
import pytest

from accounts.names import skeleton


@pytest.mark.parametrize("name,lookalike", [
    ("alice", "al\u0131ce"),        # dotless i
    ("alice", "\u0430lice"),        # Cyrillic a
    ("alice", "ALICE"), ("alice", "\uff41\uff4c\uff49\uff43\uff45"),   # case, width
    ("admin", "ADM\u0130N"),        # capital I with dot above
    ("admin", "admi\u1e45"),        # n with dot above
    ("admin", "adrnin"),            # rn looks like m
    ("paypal", "p\u0430yp\u0430l"),
])
def test_names_that_look_alike_share_a_skeleton(name, lookalike):
    assert skeleton(name) == skeleton(lookalike)


@pytest.mark.parametrize("name,other", [("alice", "alina"), ("bob", "bobby"), ("admin", "admit")])
def test_different_names_have_different_skeletons(name, other):
    assert skeleton(name) != skeleton(other)
